package history

import (
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// cell accumulates the current second of one request-path series: atomic
// counters and histograms written by request goroutines with no lock, and
// drained by the rotator once a second. A request racing the drain may
// have part of its figures counted in the next second; nothing is lost.
//
// Its histograms are allocated at the first request that needs them (a
// route's cell of requests that reach no service may never see one), and
// counted in held, the history's bytes outside its rings.
type cell struct {
	v      [ErrorKind0 + maxErrorKinds]atomic.Uint64
	lat    atomic.Pointer[atomicHist]
	ovh    atomic.Pointer[atomicHist]
	hasOvh bool          // the cell keeps overheads (not host cells)
	held   *atomic.Int64 // History.held
	ex     exemplarSlot
}

// hist returns the histogram of p, allocating it on first use.
func (c *cell) hist(p *atomic.Pointer[atomicHist]) *atomicHist {
	if x := p.Load(); x != nil {
		return x
	}
	x := new(atomicHist)
	if !p.CompareAndSwap(nil, x) {
		return p.Load()
	}
	if c.held != nil {
		c.held.Add(histBytes)
	}
	return x
}

// record adds a finished request.
func (c *cell) record(rec *observe.Record) {
	c.v[Requests].Add(1)
	c.v[ClassField(rec.Status)].Add(1)
	if rec.ErrorKind != observe.ErrNone {
		c.v[ErrorField(rec.ErrorKind)].Add(1)
	}
	if rec.BytesIn > 0 {
		c.v[BytesIn].Add(uint64(rec.BytesIn))
	}
	if rec.BytesOut > 0 {
		c.v[BytesOut].Add(uint64(rec.BytesOut))
	}
	if n := len(rec.Attempts); n > 0 {
		c.v[Attempts].Add(uint64(n))
		if n > 1 {
			c.v[Retries].Add(uint64(n - 1))
		}
	}
	if rec.Start.IsZero() {
		return
	}
	total := rec.Total()
	up := rec.UpstreamTime()
	ovh := total - up
	if ovh < 0 {
		ovh = 0
	}
	// UpstreamSum is derived when the second is drained: latency minus
	// overhead.
	c.v[LatencySum].Add(uint64(total / time.Microsecond))
	c.v[OverheadSum].Add(uint64(ovh / time.Microsecond))
	c.hist(&c.lat).observe(total)
	if c.hasOvh {
		c.hist(&c.ovh).observe(ovh)
	}
	if rec.Trace.Valid {
		c.ex.offer(rec, total, failing(rec.Status, rec.ErrorKind))
	}
}

// recordAttempt adds one upstream attempt (host cells).
func (c *cell) recordAttempt(a *observe.Attempt, rec *observe.Record) {
	c.v[Requests].Add(1)
	c.v[ClassField(a.Status)].Add(1)
	if a.ErrorKind != observe.ErrNone {
		c.v[ErrorField(a.ErrorKind)].Add(1)
	}
	d := a.Duration + a.BodyDuration
	c.v[LatencySum].Add(uint64(d / time.Microsecond))
	c.hist(&c.lat).observe(d)
	if rec.Trace.Valid {
		c.ex.offer(rec, d, failing(a.Status, a.ErrorKind))
	}
}

// failing reports whether a request (or attempt) failed: a 5xx, or any
// error kind but the client going away.
func failing(status int, k observe.ErrorKind) bool {
	return status >= 500 || (k != observe.ErrNone && k != observe.ErrClientCanceled)
}

// drain moves the cell's second into a and zeroes the cell. It reports
// whether the cell held anything.
func (c *cell) drain(a *accum) bool {
	if c.v[Requests].Load() == 0 {
		return false
	}
	var got Values
	for f := range c.v {
		if c.v[f].Load() != 0 {
			got[f] = c.v[f].Swap(0)
		}
	}
	if c.hasOvh && got[LatencySum] > got[OverheadSum] {
		got[UpstreamSum] = got[LatencySum] - got[OverheadSum]
	}
	a.v.add(&got)
	if x := c.lat.Load(); x != nil {
		x.drainInto(&a.lat)
	}
	a.hasLat = true
	if c.hasOvh {
		if x := c.ovh.Load(); x != nil {
			x.drainInto(&a.ovh)
		}
		a.hasOvh = true
	}
	return true
}

// ExemplarKind says why a request's trace id was kept.
type ExemplarKind uint8

// The exemplar kinds.
const (
	// ExemplarError: the request failed (5xx, or an error kind other than
	// the client going away).
	ExemplarError ExemplarKind = iota + 1
	// ExemplarSlow: the slowest request of its second.
	ExemplarSlow
)

// String returns "error" or "slow".
func (k ExemplarKind) String() string {
	switch k {
	case ExemplarError:
		return "error"
	case ExemplarSlow:
		return "slow"
	}
	return "unknown"
}

// Exemplar is the trace id of one failing or slow request.
type Exemplar struct {
	// Time is the start of the second the request ended in.
	Time time.Time
	Kind ExemplarKind
	// TraceID is the W3C trace id.
	TraceID [16]byte
	// Sampled reports whether the trace was sampled (so it can be found
	// in a trace store).
	Sampled bool
	// Latency is the request's (or attempt's) latency.
	Latency time.Duration
	// Status is the status sent to the client (the upstream's for an
	// attempt; 0 when none).
	Status int
}

// exemplarSlot keeps, for the current second, the first failing request's
// trace id and the slowest request's. Writers take its try-lock without
// waiting: when another writer holds it, the offer is dropped.
type exemplarSlot struct {
	busy    atomic.Uint32
	has     atomic.Uint32 // bit 0: err set; bit 1: slow set
	slowest atomic.Int64  // latency of slow, to skip faster requests unlocked
	err     Exemplar
	slow    Exemplar
}

func (s *exemplarSlot) offer(rec *observe.Record, d time.Duration, fail bool) {
	wantErr := fail && s.has.Load()&1 == 0
	wantSlow := int64(d) > s.slowest.Load()
	if !wantErr && !wantSlow {
		return
	}
	if !s.busy.CompareAndSwap(0, 1) {
		return
	}
	h := s.has.Load()
	if wantErr && h&1 == 0 {
		s.err = Exemplar{Kind: ExemplarError, TraceID: rec.Trace.TraceID, Sampled: rec.Trace.Sampled, Latency: d, Status: rec.Status}
		h |= 1
	}
	if wantSlow && int64(d) > s.slowest.Load() {
		s.slow = Exemplar{Kind: ExemplarSlow, TraceID: rec.Trace.TraceID, Sampled: rec.Trace.Sampled, Latency: d, Status: rec.Status}
		s.slowest.Store(int64(d))
		h |= 2
	}
	s.has.Store(h)
	s.busy.Store(0)
}

// take returns the second's exemplars (appended to dst) and resets the
// slot. Only the rotator calls it; it spins while a writer holds the lock
// (a writer holds it for a few stores).
func (s *exemplarSlot) take(dst []Exemplar) []Exemplar {
	if s.has.Load() == 0 {
		return dst
	}
	for !s.busy.CompareAndSwap(0, 1) {
	}
	h := s.has.Load()
	if h&1 != 0 {
		dst = append(dst, s.err)
	}
	if h&2 != 0 {
		dst = append(dst, s.slow)
	}
	s.has.Store(0)
	s.slowest.Store(0)
	s.busy.Store(0)
	return dst
}
