// Package observe is the ground floor of the gateway: the per-request Record
// that the core fills in as it decides, and the decision Event stream that
// telemetry packages subscribe to. It imports no other package of Vantage.
//
// One request, one Record: the entry handler takes a Record from a pool,
// stamps Start with the gateway's clock and puts it in the request context,
// and every stage writes what it decided (route, service, split choice,
// upstream, attempts, status, error kind, timings). When the route's
// handler returns (or panics), the gateway's end stage calls Finish exactly
// once: End, again from the gateway's clock, and the final Status are fixed
// from then on. Only then do the readers (tracing, metrics, access logs,
// RecordReaders) read it, and they never write it: every reader sees the
// same End and Status, and none re-derives what the core decided.
//
// A Record is owned by the request goroutine. Readers must not keep a pointer
// to it after the request's handler has returned: it goes back to the pool.
package observe

import (
	"time"
)

// MaxInlineAttempts is the number of upstream attempts a Record holds
// without allocating. More attempts still work; they allocate.
const MaxInlineAttempts = 4

// Record is everything the core decided about one request. Fields are
// written by the request goroutine only; see the package doc for ownership.
type Record struct {
	// Start is when the gateway began handling the request (set by the
	// entry handler); End when the route's handler returned, the response
	// written (set once, by Finish). Both come from the gateway's clock.
	Start, End time.Time

	// Listener is the name of the listener that accepted the request.
	Listener string
	// ClientAddr is the client's IP address after trusted_proxies were
	// applied (the right-most untrusted X-Forwarded-For hop, or the peer).
	ClientAddr string
	// PeerTrusted reports whether the connection's peer is a trusted proxy,
	// so the X-Forwarded-* headers it sent are kept and extended.
	PeerTrusted bool

	// Route is the matched route's name, empty when no route matched.
	Route string
	// RouteTemplate is the route's path pattern as configured (for example
	// "/users/{id}" or "/api/"), the value of the http.route attribute. It
	// is never the raw request path.
	RouteTemplate string

	// Service is the service the request was finally sent to (after any
	// split or breaker fallback).
	Service string
	// Split describes the weighted-split decision, when the route has one.
	Split SplitChoice

	// Upstream is the last upstream host tried ("host:port"), empty when
	// none was picked.
	Upstream string

	// Attempts lists every upstream attempt in order. Its first
	// MaxInlineAttempts entries live in attemptsBuf, so appending them
	// does not allocate.
	Attempts    []Attempt
	attemptsBuf [MaxInlineAttempts]Attempt

	// Status is the HTTP status written to the client (0 until written).
	Status int
	// ErrorKind classifies why the request failed, ErrNone on success.
	ErrorKind ErrorKind
	// GRPCStatus is the grpc-status trailer or header value, -1 when the
	// response carried none.
	GRPCStatus int

	// BytesIn and BytesOut count request and response body bytes.
	BytesIn, BytesOut int64

	// Breaker is the breaker state the request saw ("closed", "open",
	// "half_open"), empty when the service has no breaker.
	Breaker string
	// RateLimit names the rate-limit policy that rejected the request,
	// empty when it was not rejected.
	RateLimit string
	// Fault names the injected fault ("delay", "abort"), empty when none.
	Fault string
	// Mirrored reports whether a copy of the request was sent to a shadow
	// service.
	Mirrored bool

	// Aborted reports that the response was cut short after its headers
	// were sent (the upstream broke mid-body): the entry handler aborts the
	// client connection once every reader has seen the record, so the
	// client cannot mistake a truncated body for a whole one.
	Aborted bool

	// Trace is the request's trace context, filled by the tracing
	// middleware. It is set even when the trace is not sampled.
	Trace TraceContext
	// Tracing is the tracing middleware's own per-request state, opaque to
	// every other reader. It travels in the Record rather than in a context
	// value of its own so that tracing a request costs no request copy.
	Tracing any
}

// SplitChoice is the outcome of a weighted traffic split.
type SplitChoice struct {
	// Rule names the split (the route name by default).
	Rule string
	// Service is the service the split chose.
	Service string
	// Reason says why: "weight", "sticky" or "override".
	Reason string
}

// TraceContext is the identity of the request's server span.
type TraceContext struct {
	TraceID [16]byte
	SpanID  [8]byte
	Sampled bool
	// Valid is false when tracing is off.
	Valid bool
}

// Attempt is one try at an upstream.
type Attempt struct {
	// Service and Upstream name where the attempt went ("host:port").
	Service  string
	Upstream string
	// Start is when the attempt began; Duration lasts until the response
	// headers arrived or the attempt failed. BodyDuration is the rest: the
	// time to stream the body back (zero for failed attempts).
	Start        time.Time
	Duration     time.Duration
	BodyDuration time.Duration
	// Status is the upstream's HTTP status, 0 when none arrived.
	Status int
	// ErrorKind classifies a failed attempt.
	ErrorKind ErrorKind
	// RetryReason says why this attempt is a retry ("connect_error",
	// "status_503", ...), empty for the first attempt.
	RetryReason string
}

// Reset clears r for reuse, keeping its inline attempt storage.
func (r *Record) Reset() {
	*r = Record{}
	r.Attempts = r.attemptsBuf[:0]
	r.GRPCStatus = -1
}

// AddAttempt appends an attempt and returns a pointer to it, valid until the
// next AddAttempt call.
func (r *Record) AddAttempt(a Attempt) *Attempt {
	if r.Attempts == nil {
		r.Attempts = r.attemptsBuf[:0]
	}
	r.Attempts = append(r.Attempts, a)
	return &r.Attempts[len(r.Attempts)-1]
}

// LastAttempt returns the most recent attempt, or nil.
func (r *Record) LastAttempt() *Attempt {
	if len(r.Attempts) == 0 {
		return nil
	}
	return &r.Attempts[len(r.Attempts)-1]
}

// Finished reports whether Finish was called: End is fixed.
func (r *Record) Finished() bool { return !r.End.IsZero() }

// RecordReader reads a request's Record once it is finished (End, Status
// and every decision fixed). ReadRecord runs on the request's goroutine
// after the route's handler returned (or panicked): it must not block, must
// not write rec, and must not keep rec after it returns.
type RecordReader interface {
	ReadRecord(rec *Record)
}

// Total is the time from Start to End.
func (r *Record) Total() time.Duration {
	if r.End.IsZero() {
		return 0
	}
	return r.End.Sub(r.Start)
}

// UpstreamTime is the time spent waiting on upstreams: the sum over attempts
// of the time to response headers plus the body streaming time.
func (r *Record) UpstreamTime() time.Duration {
	var d time.Duration
	for i := range r.Attempts {
		d += r.Attempts[i].Duration + r.Attempts[i].BodyDuration
	}
	return d
}

// Overhead is the gateway's own share of Total: Total minus UpstreamTime,
// never negative.
func (r *Record) Overhead() time.Duration {
	d := r.Total() - r.UpstreamTime()
	if d < 0 {
		return 0
	}
	return d
}

// Retries is the number of attempts after the first.
func (r *Record) Retries() int {
	if len(r.Attempts) == 0 {
		return 0
	}
	return len(r.Attempts) - 1
}

// Finish ends the request at t and defaults Status to 200 when nothing was
// written. The gateway's end stage calls it once, when the route's handler
// returns, before any reader sees the record; readers never call it. A
// second call changes nothing, so End and Status are fixed once.
func (r *Record) Finish(t time.Time) {
	if r.End.IsZero() {
		r.End = t
	}
	if r.Status == 0 {
		r.Status = 200
	}
}
