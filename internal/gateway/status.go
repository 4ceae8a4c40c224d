package gateway

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/vantage-gateway/vantage/internal/breaker"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/upstream"
)

// RouteStatus describes a serving route for the admin API.
type RouteStatus struct {
	Name      string        `json:"name"`
	Template  string        `json:"template"`
	Listeners []string      `json:"listeners,omitempty"`
	Match     config.Match  `json:"match"`
	Service   string        `json:"service,omitempty"`
	Split     *config.Split `json:"split,omitempty"`
	// Weights are the split's live weights (they differ from Split after
	// a runtime change).
	Weights  []config.SplitService `json:"weights,omitempty"`
	Priority int                   `json:"priority"`
	// Status is "enabled" when the route serves, or "warning" when one of
	// its services has no available host.
	Status string   `json:"status"`
	Errors []string `json:"errors,omitempty"`
}

// ServiceStatus describes a serving service and its hosts.
type ServiceStatus struct {
	Name          string              `json:"name"`
	LoadBalancing string              `json:"load_balancing"`
	Status        string              `json:"status"`
	Pool          upstream.PoolStatus `json:"pool"`
	// Breaker is the service breaker's state, nil without one; Hosts the
	// per-host breakers by address.
	Breaker      *breaker.Status           `json:"breaker,omitempty"`
	HostBreakers map[string]breaker.Status `json:"host_breakers,omitempty"`
}

// Routes returns the serving routes in config order.
func (g *Gateway) Routes() []RouteStatus {
	snap := g.cur.Load()
	out := make([]RouteStatus, 0, len(snap.routes))
	for _, rt := range snap.table.Routes() {
		rc := rt.Config
		st := RouteStatus{Name: rt.Name, Template: rt.Template, Listeners: rc.Listeners, Match: rc.Match,
			Service: rc.Service, Split: rc.Split, Priority: rc.Priority, Status: "enabled"}
		if r := snap.routes[rt.Name]; r != nil && r.split != nil {
			st.Weights = r.split.Weights()
		}
		for _, name := range routeServices(rc) {
			if svc := snap.services[name]; svc != nil && !anyAvailable(svc.pool) {
				st.Status = "warning"
				st.Errors = append(st.Errors, "service "+name+" has no available upstream")
			}
		}
		out = append(out, st)
	}
	return out
}

// Services returns the serving services sorted by name.
func (g *Gateway) Services() []ServiceStatus {
	snap := g.cur.Load()
	out := make([]ServiceStatus, 0, len(snap.services))
	for name, svc := range snap.services {
		st := ServiceStatus{Name: name, LoadBalancing: svc.cfg.LoadBalancing.Policy, Status: "up", Pool: svc.pool.Status()}
		if !anyAvailable(svc.pool) {
			st.Status = "down"
		}
		if svc.breaker != nil {
			bs := svc.breaker.Status()
			st.Breaker = &bs
			if bs.State != "closed" {
				st.Status = "breaker_" + bs.State
			}
		}
		if len(svc.hostBreakers) > 0 {
			st.HostBreakers = map[string]breaker.Status{}
			for _, hb := range svc.hostBreakers {
				st.HostBreakers[hb.Host()] = hb.Status()
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func anyAvailable(p *upstream.Pool) bool {
	for _, h := range p.Hosts() {
		if h.Available() {
			return true
		}
	}
	return false
}

func routeServices(rc *config.Route) []string {
	if rc.Split == nil {
		return []string{rc.Service}
	}
	names := make([]string, 0, len(rc.Split.Services))
	for _, s := range rc.Split.Services {
		names = append(names, s.Service)
	}
	return names
}

// ErrNoSuchSplit is returned by SetSplit for a route without a split.
var ErrNoSuchSplit = errors.New("route has no split")

// SetSplit changes a route's split weights at runtime (blue-green flips,
// canary steps). The change holds until the next config reload, which
// takes the file's weights. source names who changed it, for the event.
func (g *Gateway) SetSplit(routeName string, weights map[string]int, source observe.ChangeSource) ([]config.SplitService, error) {
	snap := g.cur.Load()
	r := snap.routes[routeName]
	if r == nil || r.split == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchSplit, routeName)
	}
	if err := r.split.SetWeights(weights, source); err != nil {
		return nil, err
	}
	return r.split.Weights(), nil
}

// SetSplitLabels sets the words that describe each leg of a route's split
// (see split.Splitter.SetLabels): a rollout names itself, its step and the
// leg, and every request the split sends there carries them in its
// split_chosen event (a span event). Like SetSplit, they hold until the
// next reload.
func (g *Gateway) SetSplitLabels(routeName string, labels map[string]string) error {
	r := g.cur.Load().routes[routeName]
	if r == nil || r.split == nil {
		return fmt.Errorf("%w: %q", ErrNoSuchSplit, routeName)
	}
	return r.split.SetLabels(labels)
}

// Probe sends one GET of path to a host of service (a rollout's synthetic
// load) and returns its outcome (see proxy.Service.Probe).
func (g *Gateway) Probe(ctx context.Context, service, path string) (int, observe.ErrorKind, time.Duration) {
	svc := g.cur.Load().services[service]
	if svc == nil {
		return 0, observe.ErrNoHealthyUpstream, 0
	}
	return svc.proxy.Probe(ctx, path)
}

// SplitWeights returns a route's current split weights.
func (g *Gateway) SplitWeights(routeName string) ([]config.SplitService, error) {
	r := g.cur.Load().routes[routeName]
	if r == nil || r.split == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchSplit, routeName)
	}
	return r.split.Weights(), nil
}
