// Package upstream holds the state of a service's upstream hosts, shared by
// the balancer (which reads it on every pick), the proxy (which reports each
// attempt's outcome) and the health checks (which probe in the background).
//
// A host is available when it is healthy by active health checks and not
// ejected by passive outlier detection. Available is a lock-free read of two
// atomics, so pickers can call it for every host on every request.
//
// State lives behind a pointer keyed by the upstream URL, so a Pool built for
// a new configuration takes over the health, ejection and in-flight state of
// the pool it replaces (see NewPool): a hot reload does not reset health.
//
// All exported methods are safe for concurrent use.
package upstream

import (
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// Host is one upstream host of a service, shared by the balancer, the health
// checks and the proxy. Its exported fields are set by NewPool and must not
// be modified; its state methods are safe for concurrent use. Hosts must not
// be copied.
type Host struct {
	// Service is the name of the service the host belongs to.
	Service string
	// Key is the upstream URL as configured. It is the host's stable
	// identity across reloads.
	Key string
	// URL is Key parsed; its Scheme is http, https or h2c.
	URL *url.URL
	// Addr is host:port (the scheme's default port filled in when the URL
	// has none). It is the value of the "upstream" label and attribute.
	Addr string
	// Weight is the configured weight (default 1). Hosts of weight 0 are
	// out of rotation: no picker chooses them.
	Weight int

	st   *hostState
	pool *Pool // the pool that built this Host: its clock, observer and config
}

// hostState is the mutable part of a Host. It is shared by the Hosts with the
// same Key in successive Pools of one service.
type hostState struct {
	// Hot path: read on every pick, written on every attempt's end.
	healthy       atomic.Bool
	ejectedUntil  atomic.Int64 // clock's UnixNano when the ejection ends; 0 when not ejected
	inFlight      atomic.Int64
	consec5xx     atomic.Int64
	consecConnect atomic.Int64

	// Guarded by the service group's ejectMu (see group).
	ejections      int       // n: ejections counting toward the doubling
	lastEjectedEnd time.Time // when the latest ejection ends(ed)

	// Guarded by mu: the active health check's bookkeeping.
	mu              sync.Mutex
	checkSuccesses  int
	checkFailures   int
	lastCheck       time.Time
	lastCheckResult string
	lastCheckErr    string
}

func newHostState() *hostState {
	st := &hostState{}
	st.healthy.Store(true)
	return st
}

// Available reports whether the host may receive traffic: healthy by active
// checks and not ejected. It is the pickers' hot-path check: two atomic loads
// (plus a clock read while the host is ejected) and no allocation.
func (h *Host) Available() bool {
	return h.st.healthy.Load() && !h.Ejected()
}

// Healthy reports whether active health checks consider the host healthy. It
// is true for services without a health check.
func (h *Host) Healthy() bool { return h.st.healthy.Load() }

// Ejected reports whether passive outlier detection has ejected the host. An
// ejection expires lazily: the first call that sees the clock past the
// ejection's end clears it and emits EventHostRestored, exactly once.
func (h *Host) Ejected() bool {
	until := h.st.ejectedUntil.Load()
	if until == 0 {
		return false
	}
	now := h.pool.clk.Now()
	if now.UnixNano() < until {
		return true
	}
	if h.st.ejectedUntil.CompareAndSwap(until, 0) {
		h.pool.logger.Info("upstream restored", "upstream", h.Addr, "reason", "ejection expired")
		h.pool.obs.Observe(observe.Event{
			Kind:     observe.EventHostRestored,
			Time:     now,
			Service:  h.Service,
			Upstream: h.Addr,
			Ejection: observe.Ejection{Reason: observe.EjectionExpired},
		})
	}
	return false
}

// InFlight returns the number of attempts on the host that began and have
// not yet ended.
func (h *Host) InFlight() int64 { return h.st.inFlight.Load() }

// Begin records that an attempt on the host starts. Every Begin must be
// followed by exactly one End.
func (h *Host) Begin() { h.st.inFlight.Add(1) }

// End records that an attempt on the host ended, and feeds passive outlier
// detection (when the service has it) with the outcome:
//
//   - kind ErrClientCanceled counts as nothing: the client went away.
//   - kind ErrUpstreamConnect counts as a connect failure.
//   - a 5xx status, or kind ErrUpstreamTimeout, ErrUpstreamReset or
//     ErrUpstreamProtocol without a status (the gateway would answer
//     502/504 for them), counts as a 5xx failure.
//   - any other status (1xx-4xx) is a success: it resets both streaks.
//   - no status and any other kind counts as nothing.
//
// When a streak reaches its threshold the host is ejected, unless that would
// leave the service without an available host. End does not allocate unless
// it ejects.
func (h *Host) End(kind observe.ErrorKind, status int) {
	st := h.st
	st.inFlight.Add(-1)
	od := h.pool.od
	if od == nil {
		return
	}
	switch {
	case kind == observe.ErrClientCanceled:
	case kind == observe.ErrUpstreamConnect:
		if od.connect > 0 && st.consecConnect.Add(1) >= od.connect {
			h.tryEject(observe.EjectionConsecutiveConnectFailures, int(od.connect))
		}
	case status >= 500 && status <= 599 || status == 0 && kind.IsUpstreamFailure():
		if od.c5xx > 0 && st.consec5xx.Add(1) >= od.c5xx {
			h.tryEject(observe.EjectionConsecutive5xx, int(od.c5xx))
		}
	case status > 0:
		// Load before Store: on the common success path the streaks are
		// already zero, and a load does not dirty a shared cache line.
		if st.consec5xx.Load() != 0 {
			st.consec5xx.Store(0)
		}
		if st.consecConnect.Load() != 0 {
			st.consecConnect.Store(0)
		}
	}
}

// tryEject ejects h unless it is already ejected or it is the last available
// host of its service. Either way the failure streaks start again, so a host
// that may not be ejected costs this slow path once per threshold failures,
// not once per failure.
//
// The ejection multiplier n (the ejection lasts base × 2^(n-1), capped at
// max) decays: every full max_ejection_time the host spends un-ejected since
// its previous ejection ended forgives one doubling, so a host that stays
// good for long enough is treated as new again.
func (h *Host) tryEject(reason observe.EjectionReason, failures int) {
	p := h.pool
	od := p.od
	st := h.st

	p.grp.ejectMu.Lock()
	st.consec5xx.Store(0)
	st.consecConnect.Store(0)
	if h.Ejected() {
		p.grp.ejectMu.Unlock()
		return
	}
	others := 0
	for _, o := range p.hosts {
		if o.st != st && o.Weight > 0 && o.Available() {
			others++
		}
	}
	if others == 0 {
		p.grp.ejectMu.Unlock()
		p.logger.Warn("not ejecting the last available host of the service",
			"service", h.Service, "upstream", h.Addr, "reason", reason.String(), "failures", failures)
		return
	}
	now := p.clk.Now()
	if st.ejections > 0 && !st.lastEjectedEnd.IsZero() {
		if quiet := now.Sub(st.lastEjectedEnd); quiet > 0 {
			st.ejections = max(0, st.ejections-int(quiet/od.maxTime))
		}
	}
	st.ejections++
	d := od.baseTime
	for i := 1; i < st.ejections && d < od.maxTime; i++ {
		d *= 2
	}
	d = min(d, od.maxTime)
	until := now.Add(d)
	st.lastEjectedEnd = until
	st.ejectedUntil.Store(until.UnixNano())
	p.grp.ejectMu.Unlock()

	p.logger.Info("upstream ejected", "upstream", h.Addr, "reason", reason.String(), "for", d.String(), "until", until)
	p.obs.Observe(observe.Event{
		Kind:     observe.EventHostEjected,
		Time:     now,
		Service:  h.Service,
		Upstream: h.Addr,
		Ejection: observe.Ejection{Reason: reason, Failures: failures, Duration: d},
	})
}
