// Package sampling decides which traces the gateway keeps: a head decision
// when the request arrives (parent-based ratio with a rate cap), and a late
// decision when it ends (errors, slow and retried requests), which only the
// gateway can make without a tail-sampling collector because it sees the
// whole request.
//
// Everything here is safe for concurrent use and allocation-free.
package sampling

import (
	"encoding/binary"
	"math"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/clock"
)

// Reason says why a trace was kept. It is a closed set, safe as a label.
type Reason uint8

// The reasons, in label form by String.
const (
	// Dropped: not kept.
	Dropped Reason = iota
	// Parent: head-sampled because a trusted caller sampled it.
	Parent
	// Ratio: head-sampled by the ratio.
	Ratio
	// LateError: kept at the end because the request failed.
	LateError
	// LateSlow: kept at the end because the request was slow.
	LateSlow
	// LateRetried: kept at the end because the request was retried.
	LateRetried
	// RateLimited: the head or late decision said keep, but the per-second
	// cap refused it.
	RateLimited

	numReasons
)

var reasonNames = [numReasons]string{"dropped", "parent", "ratio", "late_error", "late_slow", "late_retried", "rate_limited"}

// String returns the reason's label value.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every reason, for pre-resolving instruments.
func Reasons() []Reason {
	rs := make([]Reason, numReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}

// Kept reports whether r keeps the trace.
func (r Reason) Kept() bool { return r != Dropped && r != RateLimited }

// IsLate reports whether r is a late decision.
func (r Reason) IsLate() bool { return r == LateError || r == LateSlow || r == LateRetried }

// Bound converts a ratio (clamped to 0..1) to the threshold RatioSampled
// compares against, as OpenTelemetry's TraceIDRatioBased does, so that the
// gateway and SDK-instrumented services agree on the same trace ids.
func Bound(ratio float64) uint64 {
	switch {
	case ratio >= 1:
		return math.MaxUint64
	case ratio <= 0 || math.IsNaN(ratio):
		return 0
	}
	return uint64(ratio * (1 << 63))
}

// RatioSampled reports whether traceID falls under bound.
func RatioSampled(traceID trace.TraceID, bound uint64) bool {
	if bound == math.MaxUint64 {
		return true
	}
	return binary.BigEndian.Uint64(traceID[8:16])>>1 < bound
}

// Head is the decision taken when a request arrives. Its zero value samples
// nothing. It is a value: copy it per route with the route's bound.
type Head struct {
	// Bound is the ratio threshold (see Bound).
	Bound uint64
	// ParentBased follows a trusted parent's sampled flag.
	ParentBased bool
	// Limiter caps head-sampled traces per second; nil means no cap.
	Limiter *Limiter
}

// Decide takes the head decision for traceID. hasParent reports a trusted
// parent that made a decision (not deferred); parentSampled is its flag.
func (h Head) Decide(traceID trace.TraceID, hasParent, parentSampled bool) Reason {
	r := Dropped
	switch {
	case hasParent && h.ParentBased:
		if parentSampled {
			r = Parent
		}
	case RatioSampled(traceID, h.Bound):
		r = Ratio
	}
	if r != Dropped && !h.Limiter.Allow() {
		return RateLimited
	}
	return r
}

// Late is the decision taken when a request ends, for requests the head
// decision dropped.
type Late struct {
	// Errors keeps failed requests.
	Errors bool
	// Retried keeps requests with more than one upstream attempt.
	Retried bool
	// SlowerThan keeps requests that lasted at least this long; 0 is off.
	SlowerThan time.Duration
	// Limiter caps late-kept traces per second; nil means no cap.
	Limiter *Limiter
}

// Enabled reports whether any late rule is on.
func (l Late) Enabled() bool { return l.Errors || l.Retried || l.SlowerThan > 0 }

// Decide takes the late decision for a request that failed or not, had
// retries attempts after the first, and lasted total.
func (l Late) Decide(failed bool, retries int, total time.Duration) Reason {
	r := Dropped
	switch {
	case l.Errors && failed:
		r = LateError
	case l.Retried && retries > 0:
		r = LateRetried
	case l.SlowerThan > 0 && total >= l.SlowerThan:
		r = LateSlow
	}
	if r != Dropped && !l.Limiter.Allow() {
		return RateLimited
	}
	return r
}

// Limiter is a token bucket of Rate tokens per second with a burst of
// max(1, Rate), read through an injected clock. A nil *Limiter allows
// everything. It is safe for concurrent use.
type Limiter struct {
	clock clock.Clock
	rate  float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// NewLimiter returns a limiter of perSecond tokens, or nil (no cap) when
// perSecond <= 0. A nil clk means the real clock.
func NewLimiter(perSecond float64, clk clock.Clock) *Limiter {
	if perSecond <= 0 || math.IsInf(perSecond, 1) || math.IsNaN(perSecond) {
		return nil
	}
	if clk == nil {
		clk = clock.Real{}
	}
	return &Limiter{clock: clk, rate: perSecond, tokens: max(1, perSecond), last: clk.Now()}
}

// Allow takes a token if one is available.
func (l *Limiter) Allow() bool {
	if l == nil {
		return true
	}
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if el := now.Sub(l.last); el > 0 {
		l.tokens = min(max(1, l.rate), l.tokens+el.Seconds()*l.rate)
		l.last = now
	}
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
