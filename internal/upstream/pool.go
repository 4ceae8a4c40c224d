package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/tlsclient"
)

// Pool is the set of hosts of one service, built from one configuration. It
// owns the service's active health checks (Start, Stop). Its host list is
// fixed; a new configuration builds a new Pool (see NewPool's prev).
type Pool struct {
	name   string
	hosts  []*Host
	byKey  map[string]*Host
	obs    observe.Observer
	clk    clock.Clock
	logger *slog.Logger
	od     *outlier      // nil without outlier detection
	hc     *healthConfig // nil without health checks
	grp    *group

	runMu     sync.Mutex
	started   bool
	stopped   bool
	halted    atomic.Bool     // set by Stop: the checker drops the pool's hosts
	probeCtx  context.Context // cancelled by Stop; probes run under it
	cancel    context.CancelFunc
	ownChecks *Checker       // the pool's own checker when started by Start
	checks    *Checker       // the checker running the pool's probes, set by StartWith
	wg        sync.WaitGroup // probes in flight
	stopOnce  sync.Once
}

// group is what successive Pools of one service share besides host state.
type group struct {
	// ejectMu serialises ejections across all Pools of the service, so two
	// hosts failing at once cannot both be ejected as "not the last one".
	ejectMu sync.Mutex
}

// outlier is the resolved outlier_detection config.
type outlier struct {
	c5xx, connect     int64
	baseTime, maxTime time.Duration
}

// healthConfig is the resolved health_check config.
type healthConfig struct {
	path               string
	host               string
	interval, timeout  time.Duration
	healthyThreshold   int
	unhealthyThreshold int
	expected           []config.StatusMatcher
	// key names the probe client the pool's Checker shares between every
	// pool with the same settings. client and transport are the pool's
	// own instead when the service has a ca_file (whose content a reload
	// must read again), or once built for a pool probed without a Checker.
	key       probeKey
	shared    bool
	ownOnce   sync.Once
	client    *http.Client
	transport *http.Transport
}

// probeKey is what makes two pools' probe clients interchangeable: the
// probe timeout and the TLS settings other than ca_file.
type probeKey struct {
	timeout            time.Duration
	serverName         string
	insecureSkipVerify bool
}

// newProbeClient builds a probe client: a new connection per probe (a
// probe checks that the host accepts connections), every phase bounded by
// timeout, redirects judged by their own status.
func newProbeClient(timeout time.Duration, tlsConf *tls.Config) (*http.Client, *http.Transport) {
	dialer := &net.Dialer{Timeout: timeout}
	tr := &http.Transport{
		Proxy:                  nil, // probes go straight to the host
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConf,
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, tr
}

// probeTLS builds the probes' TLS config for key (no ca_file).
func probeTLS(key probeKey) (*tls.Config, error) {
	return tlsclient.Config(tlsclient.ForUpstream(config.Transport{ServerName: key.serverName, InsecureSkipVerify: key.insecureSkipVerify}))
}

// NewPool builds the pool for svc, which must have had its defaults applied
// (config.Config.SetDefaults) and been validated.
//
// prev is the pool of the same service from the configuration being
// replaced, or nil. Hosts of prev with the same Key share their state with
// the new pool's hosts: health, ejection, failure streaks and in-flight
// counts carry over, so a reload does not reset them. A prev of another
// service name is ignored. prev keeps working (its in-flight requests end on
// the shared state); the caller stops it once the new pool serves. When svc
// no longer has a health check, carried-over hosts are marked healthy; when it
// no longer has outlier detection, their ejections are lifted.
//
// obs receives EventHealthChanged, EventHostEjected and EventHostRestored;
// nil means observe.Nop. clk drives ejections and timestamps; nil means
// clock.Real. logger may be nil (no logging).
//
// NewPool starts nothing: call Start to begin health checks.
func NewPool(svc *config.Service, prev *Pool, obs observe.Observer, clk clock.Clock, logger *slog.Logger) (*Pool, error) {
	if svc == nil {
		return nil, errors.New("upstream: nil service")
	}
	if obs == nil {
		obs = observe.Nop{}
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if prev != nil && prev.name != svc.Name {
		prev = nil
	}
	p := &Pool{
		name:   svc.Name,
		hosts:  make([]*Host, 0, len(svc.Upstreams)),
		byKey:  make(map[string]*Host, len(svc.Upstreams)),
		obs:    obs,
		clk:    clk,
		logger: logger.With("service", svc.Name),
		grp:    &group{},
	}
	if prev != nil {
		p.grp = prev.grp
	}
	if od := svc.OutlierDetection; od != nil {
		p.od = &outlier{
			c5xx:     int64(od.Consecutive5xx),
			connect:  int64(od.ConsecutiveConnectFailures),
			baseTime: od.BaseEjectionTime.D(),
			maxTime:  od.MaxEjectionTime.D(),
		}
		if p.od.baseTime <= 0 {
			return nil, fmt.Errorf("upstream: service %q: outlier_detection.base_ejection_time must be positive", svc.Name)
		}
		p.od.maxTime = max(p.od.maxTime, p.od.baseTime)
	}
	if svc.HealthCheck != nil {
		hc, err := newHealthConfig(svc)
		if err != nil {
			return nil, fmt.Errorf("upstream: service %q: %w", svc.Name, err)
		}
		p.hc = hc
	}

	for i, u := range svc.Upstreams {
		h, err := newHost(svc.Name, u)
		if err != nil {
			return nil, fmt.Errorf("upstream: service %q: upstreams[%d]: %w", svc.Name, i, err)
		}
		if _, dup := p.byKey[h.Key]; dup {
			return nil, fmt.Errorf("upstream: service %q: upstreams[%d]: duplicate upstream %q", svc.Name, i, h.Key)
		}
		h.pool = p
		if prev != nil {
			if ph := prev.byKey[h.Key]; ph != nil {
				h.st = ph.st
			}
		}
		if h.st == nil {
			h.st = newHostState()
		}
		p.hosts = append(p.hosts, h)
		p.byKey[h.Key] = h
	}

	// Carried-over state the new config no longer explains is reset.
	for _, h := range p.hosts {
		if p.hc == nil && h.st.healthy.CompareAndSwap(false, true) {
			p.logger.Info("upstream health changed", "upstream", h.Addr, "from", "unhealthy", "to", "healthy", "reason", "health check removed")
			p.emit(observe.Event{Kind: observe.EventHealthChanged, Health: observe.HealthChange{
				From: observe.HealthUnhealthy, To: observe.HealthHealthy, Reason: observe.HealthCheckRemoved}, Detail: "health check removed"}, h)
		}
		if p.od == nil {
			if until := h.st.ejectedUntil.Load(); until != 0 && h.st.ejectedUntil.CompareAndSwap(until, 0) {
				p.logger.Info("upstream restored", "upstream", h.Addr, "reason", "outlier detection removed")
				p.emit(observe.Event{Kind: observe.EventHostRestored, Ejection: observe.Ejection{Reason: observe.EjectionDetectionRemoved}}, h)
			}
		}
	}
	return p, nil
}

func newHost(service string, u config.Upstream) (*Host, error) {
	pu, err := url.Parse(u.URL)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q: %w", u.URL, err)
	}
	var defPort string
	switch pu.Scheme {
	case "http", "h2c":
		defPort = "80"
	case "https":
		defPort = "443"
	default:
		return nil, fmt.Errorf("scheme must be http, https or h2c, got %q", u.URL)
	}
	if pu.Host == "" {
		return nil, fmt.Errorf("URL must have a host, got %q", u.URL)
	}
	port := pu.Port()
	if port == "" {
		port = defPort
	}
	w := u.WeightOrDefault()
	if w < 0 {
		return nil, fmt.Errorf("weight must be >= 0, got %d", w)
	}
	return &Host{
		Service: service,
		Key:     u.URL,
		URL:     pu,
		Addr:    net.JoinHostPort(pu.Hostname(), port),
		Weight:  w,
	}, nil
}

func newHealthConfig(svc *config.Service) (*healthConfig, error) {
	c := svc.HealthCheck
	hc := &healthConfig{
		path:               c.Path,
		host:               c.Host,
		interval:           c.Interval.D(),
		timeout:            c.Timeout.D(),
		healthyThreshold:   max(c.HealthyThreshold, 1),
		unhealthyThreshold: max(c.UnhealthyThreshold, 1),
	}
	if hc.path == "" {
		hc.path = "/"
	}
	if hc.interval <= 0 {
		return nil, errors.New("health_check.interval must be positive")
	}
	if hc.timeout <= 0 || hc.timeout > hc.interval {
		hc.timeout = hc.interval
	}
	expected := c.ExpectedStatus
	if len(expected) == 0 {
		expected = []string{"2xx"}
	}
	for i, s := range expected {
		m, err := config.ParseStatusMatcher(s)
		if err != nil {
			return nil, fmt.Errorf("health_check.expected_status[%d]: %w", i, err)
		}
		hc.expected = append(hc.expected, m)
	}

	// The probes speak TLS as the service's transport does: one builder.
	hc.key = probeKey{timeout: hc.timeout, serverName: svc.Transport.ServerName, insecureSkipVerify: svc.Transport.InsecureSkipVerify}
	if svc.Transport.CAFile == "" {
		// Shared through the Checker; built here only to report a bad
		// setting now rather than at the first probe.
		if _, err := probeTLS(hc.key); err != nil {
			return nil, fmt.Errorf("health check: transport: %w", err)
		}
		hc.shared = true
		return hc, nil
	}
	tlsConf, err := tlsclient.Config(tlsclient.ForUpstream(svc.Transport))
	if err != nil {
		return nil, fmt.Errorf("health check: transport: %w", err)
	}
	hc.client, hc.transport = newProbeClient(hc.timeout, tlsConf)
	return hc, nil
}

// probeClient returns the client of the pool's probes: its own (ca_file),
// else the one its Checker shares between pools with the same settings,
// else (probed without a Checker) one built for the pool on first use.
func (p *Pool) probeClient() *http.Client {
	hc := p.hc
	if !hc.shared {
		return hc.client
	}
	p.runMu.Lock()
	c := p.checks
	p.runMu.Unlock()
	if c != nil {
		if cl := c.probeClient(hc.key); cl != nil {
			return cl
		}
	}
	hc.ownOnce.Do(func() {
		tlsConf, _ := probeTLS(hc.key) // checked by NewPool
		hc.client, hc.transport = newProbeClient(hc.timeout, tlsConf)
	})
	return hc.client
}

// Name returns the service name.
func (p *Pool) Name() string { return p.name }

// Hosts returns the pool's hosts in configuration order. The slice is shared
// and stable for the pool's life: callers must not modify it.
func (p *Pool) Hosts() []*Host { return p.hosts }

// Start reports every host's current state (EventHostState) and starts the
// active health checks on a Checker of the pool's own (see StartWith). It
// does nothing when already started or after Stop, and starts no checks
// without a health check.
func (p *Pool) Start() { p.StartWith(nil) }

// StartWith reports every host's current state (EventHostState) and hands
// the pool's hosts to c for active health checks (see Checker for the
// schedule and the bound on probes in flight). A nil c means a Checker of
// the pool's own, with the default limit, which Stop closes. A gateway
// passes the one Checker it shares between all its pools. c must have been
// started and must outlive the pool's checks. It does nothing when already
// started or after Stop, and hands nothing to c without a health check.
func (p *Pool) StartWith(c *Checker) {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.started || p.stopped {
		return
	}
	p.started = true
	for _, h := range p.hosts {
		hs := observe.HealthChange{To: observe.HealthHealthy, Ejected: h.Ejected()}
		if !h.Healthy() {
			hs.To = observe.HealthUnhealthy
		}
		p.emit(observe.Event{Kind: observe.EventHostState, Health: hs}, h)
	}
	if p.hc == nil {
		return
	}
	p.probeCtx, p.cancel = context.WithCancel(context.Background())
	if c == nil {
		c = NewChecker(p.clk, 0, rand.Uint64())
		c.Start()
		p.ownChecks = c
	}
	p.checks = c
	c.add(p)
}

// checksStopped reports whether Stop was called.
func (p *Pool) checksStopped() bool { return p.halted.Load() }

// beginProbe counts a probe in flight, false after Stop.
func (p *Pool) beginProbe() bool {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.stopped {
		return false
	}
	p.wg.Add(1)
	return true
}

func (p *Pool) endProbe() { p.wg.Done() }

// Stop stops the health checks and waits for their goroutines to return; a
// probe in progress is cancelled. It is safe to call more than once and
// concurrently: every call returns after the checks have stopped. The hosts
// stay usable (they keep their last health state).
func (p *Pool) Stop() {
	p.stopOnce.Do(func() {
		p.runMu.Lock()
		p.stopped = true
		p.halted.Store(true)
		cancel := p.cancel
		p.runMu.Unlock()
		if cancel != nil {
			cancel()
		}
		p.wg.Wait()
		if p.ownChecks != nil {
			p.ownChecks.Close()
		}
		if p.hc != nil && p.hc.transport != nil {
			p.hc.transport.CloseIdleConnections()
		}
	})
}

// emit reports ev about h, now.
func (p *Pool) emit(ev observe.Event, h *Host) {
	ev.Time, ev.Service, ev.Upstream = p.clk.Now(), h.Service, h.Addr
	p.obs.Observe(ev)
}

// PoolStatus is a snapshot of a pool for the admin API.
type PoolStatus struct {
	Service string `json:"service"`
	// HealthCheck and OutlierDetection report whether they are configured.
	HealthCheck      bool         `json:"health_check"`
	OutlierDetection bool         `json:"outlier_detection"`
	Hosts            []HostStatus `json:"hosts"`
}

// HostStatus is a snapshot of one host.
type HostStatus struct {
	URL    string `json:"url"`
	Addr   string `json:"addr"`
	Weight int    `json:"weight"`
	// Available is Healthy and not Ejected.
	Available bool `json:"available"`
	Healthy   bool `json:"healthy"`
	Ejected   bool `json:"ejected"`
	// EjectedUntil is when the current ejection ends, nil when not ejected.
	EjectedUntil *time.Time `json:"ejected_until,omitempty"`
	// Ejections is the current ejection multiplier n (see End).
	Ejections int   `json:"ejections"`
	InFlight  int64 `json:"in_flight"`
	// Consecutive5xx and ConsecutiveConnectFailures are the passive
	// failure streaks.
	Consecutive5xx             int64 `json:"consecutive_5xx"`
	ConsecutiveConnectFailures int64 `json:"consecutive_connect_failures"`
	// ConsecutiveCheckSuccesses and ConsecutiveCheckFailures are the active
	// health check streaks.
	ConsecutiveCheckSuccesses int `json:"consecutive_check_successes"`
	ConsecutiveCheckFailures  int `json:"consecutive_check_failures"`
	// LastCheck is when the last probe finished, nil before the first.
	LastCheck *time.Time `json:"last_check,omitempty"`
	// LastCheckResult is the last probe's outcome ("status 200",
	// "connect refused", "timeout", ...).
	LastCheckResult string `json:"last_check_result,omitempty"`
	// LastCheckError is the last failed probe's error, empty after a
	// success.
	LastCheckError string `json:"last_check_error,omitempty"`
}

// Status returns a snapshot of the pool. It is safe to call concurrently
// with traffic and health checks; the values are read one by one, not as
// one atomic snapshot.
func (p *Pool) Status() PoolStatus {
	ps := PoolStatus{
		Service:          p.name,
		HealthCheck:      p.hc != nil,
		OutlierDetection: p.od != nil,
		Hosts:            make([]HostStatus, 0, len(p.hosts)),
	}
	for _, h := range p.hosts {
		st := h.st
		hs := HostStatus{
			URL:                        h.Key,
			Addr:                       h.Addr,
			Weight:                     h.Weight,
			Healthy:                    h.Healthy(),
			Ejected:                    h.Ejected(),
			InFlight:                   h.InFlight(),
			Consecutive5xx:             st.consec5xx.Load(),
			ConsecutiveConnectFailures: st.consecConnect.Load(),
		}
		hs.Available = hs.Healthy && !hs.Ejected
		if until := st.ejectedUntil.Load(); until != 0 && hs.Ejected {
			t := time.Unix(0, until).UTC()
			hs.EjectedUntil = &t
		}
		p.grp.ejectMu.Lock()
		hs.Ejections = st.ejections
		p.grp.ejectMu.Unlock()

		st.mu.Lock()
		hs.ConsecutiveCheckSuccesses = st.checkSuccesses
		hs.ConsecutiveCheckFailures = st.checkFailures
		if !st.lastCheck.IsZero() {
			t := st.lastCheck
			hs.LastCheck = &t
		}
		hs.LastCheckResult = st.lastCheckResult
		hs.LastCheckError = st.lastCheckErr
		st.mu.Unlock()
		ps.Hosts = append(ps.Hosts, hs)
	}
	return ps
}
