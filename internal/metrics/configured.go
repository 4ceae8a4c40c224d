package metrics

import (
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/metrics/series"
	"github.com/vantage-gateway/vantage/internal/middleware/ratelimit"
)

// configured holds the zero-initialised counters of the controls the
// serving config sets up, so that they exist from the moment it serves
// (Prometheus' instrumentation guide: a rate() over a series that appears
// only with its first event misses that event's burst).
type configured struct {
	mu     sync.Mutex
	series map[zeroKey]*series.Child
}

type zeroKey struct {
	fam *series.Family
	key series.Key
}

// Configured creates, at zero, the counters of every control cfg (a
// validated config, defaults applied) configures: rate-limit rejections
// per route and policy (and key kind), breaker rejections per route and
// guarded service (and host, for per-host breakers), retries per route,
// service and configured reason, retry-budget refusals, request-body
// timeouts per route and enabled limit, fault injections, mirrored
// requests, and per host of a service with outlier detection or health
// checks, its ejections, restorations and health transitions. Counters
// that already exist keep their value. The counters of the previous call
// that cfg no longer configures (a reload removed the route, service, host
// or control) are deleted. While configured, these counters never expire
// for being idle.
//
// Call it each time a config starts serving: at start and after every
// successful reload. It is safe for concurrent use and does nothing when
// metrics are disabled.
func (m *Metrics) Configured(cfg *config.Config) {
	if !m.enabled || cfg == nil {
		return
	}
	next := map[zeroKey]*series.Child{}
	add := func(f *series.Family, values ...string) {
		var k series.Key
		copy(k[:], values)
		next[zeroKey{f, k}] = nil
	}
	f := &m.f
	services := map[string]*config.Service{}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		services[s.Name] = s
		for _, up := range s.Upstreams {
			addr := upstreamAddr(up.URL)
			if addr == "" {
				continue
			}
			if s.OutlierDetection != nil {
				add(f.ejections, s.Name, addr)
				add(f.restored, s.Name, addr)
			}
			if s.HealthCheck != nil {
				add(f.healthTransitions, s.Name, addr, "healthy")
				add(f.healthTransitions, s.Name, addr, "unhealthy")
			}
		}
	}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		route := r.Name
		legs := routeLegs(r)
		if rl := r.RateLimit; rl != nil {
			policy := rl.Name
			if policy == "" {
				policy = route
			}
			if rl.Rate > 0 {
				add(f.rateLimited, route, policy, boundedValue(rl.Key.Kind()))
			}
			if rl.MaxInFlight > 0 {
				add(f.rateLimited, route, policy, ratelimit.KeyInFlight.String())
			}
		}
		for _, name := range legs {
			s := services[name]
			if s == nil || s.CircuitBreaker == nil {
				continue
			}
			add(f.breakerRejections, route, name, none)
			if s.CircuitBreaker.PerHost {
				for _, up := range s.Upstreams {
					if addr := upstreamAddr(up.URL); addr != "" {
						add(f.breakerRejections, route, name, addr)
					}
				}
			}
		}
		if rt := r.Retry; rt != nil && rt.Attempts > 1 {
			for _, name := range legs {
				add(f.retryBudget, route, name)
				for _, reason := range retryReasons(rt.On) {
					add(f.retries, route, name, reason)
				}
			}
		}
		idle, minRate, _ := r.RequestBody.Limits()
		if idle > 0 {
			add(f.bodyTimeouts, route, "idle")
		}
		if minRate > 0 {
			add(f.bodyTimeouts, route, "min_rate")
		}
		if ft := r.Fault; ft != nil {
			if ft.Delay != nil {
				add(f.faults, route, "delay")
			}
			if ft.Abort != nil {
				add(f.faults, route, "abort")
			}
		}
		if mr := r.Mirror; mr != nil {
			add(f.mirrored, route, mr.Service)
		}
	}

	c := &m.configured
	c.mu.Lock()
	defer c.mu.Unlock()
	for zk, child := range c.series {
		if _, keep := next[zk]; keep {
			next[zk] = child
			continue
		}
		k := zk.key
		zk.fam.Delete(&k)
	}
	for zk := range next {
		k := zk.key
		next[zk] = zk.fam.Get(&k) // at zero unless it exists
	}
	c.series = next
}

// keepConfigured marks the configured counters as in use, re-creating any
// that was removed meanwhile, so that idle expiry never drops them. The
// sweep runs it before each Sweep.
func (m *Metrics) keepConfigured() {
	c := &m.configured
	c.mu.Lock()
	defer c.mu.Unlock()
	for zk, child := range c.series {
		if child == nil || child.Dead() {
			k := zk.key
			child = zk.fam.Get(&k)
			c.series[zk] = child
		}
		child.Touch()
	}
}

// sweep expires idle series, keeping the configured counters.
func (m *Metrics) sweep(now time.Time) {
	m.keepConfigured()
	m.set.Sweep(now)
}

// routeLegs lists the services a route sends to: its service, or the legs
// of its split.
func routeLegs(r *config.Route) []string {
	if r.Split != nil {
		out := make([]string, 0, len(r.Split.Services))
		for _, s := range r.Split.Services {
			out = append(out, s.Service)
		}
		return out
	}
	if r.Service == "" {
		return nil
	}
	return []string{r.Service}
}

// retryReasons maps a retry policy's "on" list to the reasons its retries
// are counted under (the proxy's: the error kind, or status_NNN).
func retryReasons(on []string) []string {
	var out []string
	for _, o := range on {
		switch o {
		case "connect_error":
			out = append(out, "upstream_connect")
		case "timeout":
			out = append(out, "upstream_timeout")
		case "reset":
			out = append(out, "upstream_reset", "upstream_protocol")
		default:
			if len(o) == 3 && strings.Trim(o, "0123456789") == "" {
				out = append(out, "status_"+o)
			}
		}
	}
	return out
}

// upstreamAddr is the host:port an upstream URL names, as upstream.Host's
// Addr (the port defaults to the scheme's); "" when it cannot be parsed.
func upstreamAddr(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}
