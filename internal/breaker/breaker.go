// Package breaker is the circuit breaker of a service (and optionally of each
// of its upstream hosts): it fails fast while the service is failing, so the
// gateway stops piling requests onto it and answers at once.
//
// A breaker is closed (requests flow) until a trigger fires: a run of
// consecutive failures, an error ratio over a rolling window, or a slow-call
// ratio. It is then open (requests are refused: the proxy answers 503 or
// routes to the fallback service) for a cool-down, then half-open: a bounded
// number of probe requests go through, and enough successful probes close it
// while one failed probe opens it again. Every transition is an
// EventBreakerTransition with a typed reason (observe.BreakerReason) and, in
// its Detail, the numbers that tripped it.
//
// Time comes from an injected clock.Clock. All methods are safe for
// concurrent use.
package breaker

import (
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// State is a breaker's state: the observe contract's BreakerState, so that
// events and records carry it without conversion.
type State = observe.BreakerState

// The breaker states.
const (
	// Closed: requests flow and their outcomes are counted.
	Closed = observe.BreakerClosed
	// Open: requests are refused until the cool-down ends.
	Open = observe.BreakerOpen
	// HalfOpen: a bounded number of probe requests go through; the others
	// are refused.
	HalfOpen = observe.BreakerHalfOpen
)

// Ticket is the breaker's answer to one Allow call. Its State is the state
// the request was admitted (or refused) in, for observe.Record.Breaker. An
// admitted ticket must be handed back to Done exactly once; Done ignores a
// ticket issued before the breaker last changed state, so outcomes of
// requests admitted while closed never count as half-open probes.
type Ticket struct {
	State    State
	gen      uint64
	admitted bool
}

// settings are a config resolved for the request path.
type settings struct {
	consecutive int
	errorRatio  float64
	slowCall    time.Duration
	slowRatio   float64
	minRequests int
	window      time.Duration
	width       int64 // bucket width, ns
	buckets     int
	open        time.Duration
	probes      int
	successes   int
	failKinds   uint64     // bit k set: observe.ErrorKind k is a failure
	failStatus  [10]uint64 // bit s set: status s is a failure (s < 640)
}

func resolve(cfg *config.CircuitBreaker) (settings, error) {
	s := settings{
		slowCall:    cfg.SlowCallDuration.D(),
		slowRatio:   cfg.SlowCallRatio,
		minRequests: cfg.MinRequests,
		window:      cfg.Window.D(),
		buckets:     cfg.WindowBuckets,
		open:        cfg.OpenDuration.D(),
		probes:      cfg.HalfOpenProbes,
		successes:   cfg.HalfOpenSuccesses,
	}
	if cfg.ConsecutiveFailures != nil {
		s.consecutive = *cfg.ConsecutiveFailures
	}
	if cfg.ErrorRatio != nil {
		s.errorRatio = *cfg.ErrorRatio
	}
	if s.buckets < 1 || s.window <= 0 || s.open <= 0 || s.probes < 1 || s.successes < 1 || s.minRequests < 1 {
		return s, fmt.Errorf("invalid breaker config (window %s, buckets %d, open %s, probes %d, successes %d, min requests %d): apply defaults and validate first",
			s.window, s.buckets, s.open, s.probes, s.successes, s.minRequests)
	}
	s.width = int64(s.window) / int64(s.buckets)
	if s.width < 1 {
		s.width = 1
	}
	for _, tok := range cfg.FailureOn {
		switch tok {
		case "connect_error":
			s.failKinds |= 1 << observe.ErrUpstreamConnect
		case "timeout":
			s.failKinds |= 1 << observe.ErrUpstreamTimeout
		case "reset":
			s.failKinds |= 1 << observe.ErrUpstreamReset
		case "protocol":
			s.failKinds |= 1 << observe.ErrUpstreamProtocol
		default:
			m, err := config.ParseStatusMatcher(tok)
			if err != nil {
				return s, fmt.Errorf("breaker failure_on: %w", err)
			}
			for code := m.Lo; code <= m.Hi && code < 640; code++ {
				s.failStatus[code/64] |= 1 << (code % 64)
			}
		}
	}
	return s, nil
}

// outcome classifies one finished request.
type outcome uint8

const (
	neutral outcome = iota // not counted at all (client went away, ...)
	success
	failure
)

func (s *settings) classify(kind observe.ErrorKind, status int) outcome {
	switch {
	case kind == observe.ErrClientCanceled:
		return neutral
	case kind != observe.ErrNone:
		if s.failKinds&(1<<kind) != 0 {
			return failure
		}
		return neutral
	case status > 0 && status < 640 && s.failStatus[status/64]&(1<<(status%64)) != 0:
		return failure
	}
	return success
}

// bucket counts the outcomes of one slice of the window.
type bucket struct {
	num                   int64 // which slice: elapsed time / width
	total, failures, slow int
}

// core is the state of one breaker. It is shared by the Breakers of
// successive config snapshots while the config is unchanged, so requests
// still draining from the old snapshot report to the same state.
type core struct {
	word      atomic.Uint64 // generation<<2 | State
	openUntil atomic.Int64  // ns since epoch; valid while open
	epoch     time.Time     // time origin of the window and openUntil

	mu          sync.Mutex
	consecutive int
	buckets     []bucket
	inFlight    int // half-open probes in flight
	probesOK    int // successful half-open probes
	since       time.Time
	lastReason  string
}

func (c *core) load() (State, uint64) {
	w := c.word.Load()
	return State(w & 3), w >> 2
}

// Breaker is the circuit breaker of one service, or of one upstream host of
// a service. A nil *Breaker allows every request.
type Breaker struct {
	service, host string
	cfg           config.CircuitBreaker
	set           settings
	c             *core
	obs           observe.Observer
	clk           clock.Clock
}

// New returns the breaker of service (host "" for the service-wide breaker,
// else the upstream host "host:port") configured by cfg, which must be
// validated and defaulted (see config.CircuitBreaker); New returns nil when
// cfg is nil. obs receives EventBreakerTransition (nil: none); clk tells the
// time (nil: the system clock).
//
// prev is the same breaker from the previous config snapshot, or nil. When
// prev is for the same service and host and its config has the same values,
// the new breaker shares prev's state (an open breaker stays open across a
// reload); otherwise it starts closed.
//
// New panics if cfg is invalid: validation is the config's job.
func New(service, host string, cfg *config.CircuitBreaker, prev *Breaker, obs observe.Observer, clk clock.Clock) *Breaker {
	if cfg == nil {
		return nil
	}
	set, err := resolve(cfg)
	if err != nil {
		panic(fmt.Sprintf("breaker of service %q: %v", service, err))
	}
	if obs == nil {
		obs = observe.Nop{}
	}
	if clk == nil {
		clk = clock.Real{}
	}
	b := &Breaker{service: service, host: host, cfg: *cfg, set: set, obs: obs, clk: clk}
	if prev != nil && prev.service == service && prev.host == host && reflect.DeepEqual(prev.cfg, *cfg) {
		b.c = prev.c
		return b
	}
	now := clk.Now()
	b.c = &core{epoch: now, since: now, buckets: make([]bucket, set.buckets)}
	for i := range b.c.buckets {
		b.c.buckets[i].num = -1
	}
	return b
}

// Service returns the service the breaker guards.
func (b *Breaker) Service() string { return b.service }

// Host returns the upstream host the breaker guards, "" for a service-wide
// breaker.
func (b *Breaker) Host() string { return b.host }

// Fallback returns the service that takes requests while the breaker
// refuses them, "" for none (answer 503).
func (b *Breaker) Fallback() string {
	if b == nil {
		return ""
	}
	return b.cfg.Fallback
}

// State returns the current state. An open breaker whose cool-down has
// ended reports Open until the next Allow moves it to HalfOpen.
func (b *Breaker) State() State {
	if b == nil {
		return Closed
	}
	s, _ := b.c.load()
	return s
}

// Allow reports whether a request may go now. When ok, the caller must call
// Done exactly once with the ticket and the outcome. When not ok, the
// request must not be sent to the breaker's service or host: answer 503
// (observe.ErrBreakerOpen) or use Fallback, and emit EventBreakerRejected. While closed, Allow is one
// atomic load; it never allocates.
func (b *Breaker) Allow() (t Ticket, ok bool) {
	if b == nil {
		return Ticket{State: Closed}, true
	}
	st, gen := b.c.load()
	if st == Closed {
		return Ticket{State: Closed, gen: gen, admitted: true}, true
	}
	now := b.clk.Now()
	if st == Open && b.since(now) < b.c.openUntil.Load() {
		return Ticket{State: Open}, false
	}

	var tr transition
	b.c.mu.Lock()
	st, gen = b.c.load()
	switch st {
	case Closed:
		t, ok = Ticket{State: Closed, gen: gen, admitted: true}, true
	case Open:
		if b.since(now) < b.c.openUntil.Load() {
			t = Ticket{State: Open}
			break
		}
		tr = b.setLocked(HalfOpen, now, observe.BreakerCooldown, "cool-down "+b.set.open.String()+" elapsed")
		st, gen = b.c.load()
		fallthrough
	case HalfOpen:
		if b.c.inFlight < b.set.probes {
			b.c.inFlight++
			t, ok = Ticket{State: HalfOpen, gen: gen, admitted: true}, true
		} else {
			t = Ticket{State: HalfOpen}
		}
	}
	b.c.mu.Unlock()
	b.emit(tr)
	return t, ok
}

// Done reports the outcome of a request admitted by Allow: the error kind of
// its last attempt (observe.ErrNone when a response arrived), the response
// status (0 when none) and the time to the response headers. What counts as
// a failure is the config's FailureOn; observe.ErrClientCanceled never
// counts, and other kinds not listed are not counted either. Done does not
// allocate unless it changes the state.
func (b *Breaker) Done(t Ticket, kind observe.ErrorKind, status int, latency time.Duration) {
	if b == nil || !t.admitted {
		return
	}
	if _, gen := b.c.load(); gen != t.gen {
		return // admitted before the last transition
	}
	out := b.set.classify(kind, status)
	slow := b.set.slowCall > 0 && latency > b.set.slowCall && out != neutral
	now := b.clk.Now()

	var tr transition
	b.c.mu.Lock()
	if st, gen := b.c.load(); gen == t.gen {
		switch st {
		case Closed:
			tr = b.recordLocked(now, out, slow)
		case HalfOpen:
			tr = b.probeLocked(now, out, slow, kind, status, latency)
		}
	}
	b.c.mu.Unlock()
	b.emit(tr)
}

// since converts t to ns since the core's epoch.
func (b *Breaker) since(t time.Time) int64 { return int64(t.Sub(b.c.epoch)) }

// recordLocked counts a closed-state outcome and opens the breaker when a
// trigger fires.
func (b *Breaker) recordLocked(now time.Time, out outcome, slow bool) transition {
	if out == neutral {
		return transition{}
	}
	c, s := b.c, &b.set
	num := b.since(now) / s.width
	bk := &c.buckets[int(uint64(num)%uint64(len(c.buckets)))]
	if bk.num != num {
		*bk = bucket{num: num}
	}
	bk.total++
	if out == failure {
		bk.failures++
		c.consecutive++
	} else {
		c.consecutive = 0
	}
	if slow {
		bk.slow++
	}
	if out != failure && !slow {
		return transition{}
	}

	if s.consecutive > 0 && c.consecutive >= s.consecutive {
		return b.setLocked(Open, now, observe.BreakerConsecutiveFailures, strconv.Itoa(c.consecutive)+" consecutive failures")
	}
	total, failures, slowCalls := b.windowLocked(num)
	if total < s.minRequests {
		return transition{}
	}
	if r := float64(failures) / float64(total); s.errorRatio > 0 && out == failure && r >= s.errorRatio {
		return b.setLocked(Open, now, observe.BreakerErrorRatio, fmt.Sprintf("error ratio %.2f >= %.2f over %d requests in %s", r, s.errorRatio, total, s.window))
	}
	if r := float64(slowCalls) / float64(total); s.slowCall > 0 && slow && r >= s.slowRatio {
		return b.setLocked(Open, now, observe.BreakerSlowCallRatio, fmt.Sprintf("slow call ratio %.2f >= %.2f (calls over %s) over %d requests in %s", r, s.slowRatio, s.slowCall, total, s.window))
	}
	return transition{}
}

// windowLocked sums the buckets of the window ending in bucket num.
func (b *Breaker) windowLocked(num int64) (total, failures, slow int) {
	oldest := num - int64(len(b.c.buckets))
	for i := range b.c.buckets {
		bk := &b.c.buckets[i]
		if bk.num > oldest && bk.num <= num {
			total += bk.total
			failures += bk.failures
			slow += bk.slow
		}
	}
	return total, failures, slow
}

// probeLocked counts a half-open probe's outcome.
func (b *Breaker) probeLocked(now time.Time, out outcome, slow bool, kind observe.ErrorKind, status int, latency time.Duration) transition {
	c := b.c
	if c.inFlight > 0 {
		c.inFlight--
	}
	switch {
	case out == neutral:
		return transition{}
	case out == failure:
		what := kind.String()
		if kind == observe.ErrNone {
			what = "status " + strconv.Itoa(status)
		}
		return b.setLocked(Open, now, observe.BreakerProbeFailure, "probe failed: "+what)
	case slow:
		return b.setLocked(Open, now, observe.BreakerProbeFailure, "probe slow: "+latency.String()+" > "+b.set.slowCall.String())
	}
	c.probesOK++
	if c.probesOK >= b.set.successes {
		return b.setLocked(Closed, now, observe.BreakerProbeSuccess, strconv.Itoa(c.probesOK)+" probes succeeded")
	}
	return transition{}
}

// transition is a state change to report once the lock is released.
type transition struct {
	from, to State
	reason   observe.BreakerReason
	detail   string
	at       time.Time
}

// setLocked moves the breaker to st and resets what the new state counts.
func (b *Breaker) setLocked(st State, now time.Time, reason observe.BreakerReason, detail string) transition {
	c := b.c
	from, gen := c.load()
	c.word.Store((gen+1)<<2 | uint64(st))
	c.since = now
	c.lastReason = detail
	c.inFlight, c.probesOK = 0, 0
	switch st {
	case Open:
		c.openUntil.Store(b.since(now.Add(b.set.open)))
	case Closed:
		c.consecutive = 0
		for i := range c.buckets {
			c.buckets[i] = bucket{num: -1}
		}
	}
	return transition{from: from, to: st, reason: reason, detail: detail, at: now}
}

func (b *Breaker) emit(tr transition) {
	if tr.reason == observe.BreakerReasonNone {
		return
	}
	b.obs.Observe(observe.Event{
		Kind:     observe.EventBreakerTransition,
		Time:     tr.at,
		Service:  b.service,
		Upstream: b.host,
		Breaker:  observe.BreakerChange{From: tr.from, To: tr.to, Reason: tr.reason},
		Detail:   tr.detail,
	})
}

// Status is a breaker's state for the admin API, JSON-friendly.
type Status struct {
	Service string `json:"service"`
	// Upstream is the host of a per-host breaker, "" for the service's.
	Upstream string `json:"upstream,omitempty"`
	// State is "closed", "open" or "half_open".
	State string `json:"state"`
	// Since is when the breaker entered State.
	Since time.Time `json:"since"`
	// OpenUntil is when the cool-down ends, while open.
	OpenUntil time.Time `json:"open_until,omitzero"`
	// Window counts the closed-state outcomes in the rolling window.
	WindowRequests  int `json:"window_requests"`
	WindowFailures  int `json:"window_failures"`
	WindowSlowCalls int `json:"window_slow_calls"`
	// ConsecutiveFailures is the current run of failures while closed.
	ConsecutiveFailures int `json:"consecutive_failures"`
	// ProbesInFlight and ProbeSuccesses count half-open probes.
	ProbesInFlight int `json:"probes_in_flight"`
	ProbeSuccesses int `json:"probe_successes"`
	// LastReason is the reason of the last transition.
	LastReason string `json:"last_reason,omitempty"`
	// Fallback is the configured fallback service.
	Fallback string `json:"fallback,omitempty"`
}

// Status returns a snapshot of the breaker's state and counters; a nil
// breaker reports closed.
func (b *Breaker) Status() Status {
	if b == nil {
		return Status{State: Closed.String()}
	}
	now := b.clk.Now()
	c := b.c
	c.mu.Lock()
	defer c.mu.Unlock()
	st, _ := c.load()
	s := Status{
		Service:             b.service,
		Upstream:            b.host,
		State:               st.String(),
		Since:               c.since,
		ConsecutiveFailures: c.consecutive,
		ProbesInFlight:      c.inFlight,
		ProbeSuccesses:      c.probesOK,
		LastReason:          c.lastReason,
		Fallback:            b.cfg.Fallback,
	}
	switch st {
	case Closed:
		s.WindowRequests, s.WindowFailures, s.WindowSlowCalls = b.windowLocked(b.since(now) / b.set.width)
	case Open:
		s.OpenUntil = c.epoch.Add(time.Duration(c.openUntil.Load()))
	}
	return s
}
