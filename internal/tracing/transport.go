package tracing

import (
	"encoding/binary"
	"net/http"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/tracing/propagation"
)

// FieldsRoundTripper is a RoundTripper that also sends extra header fields
// handed to it in wire form, so that a wrapper can add computed headers
// without going through req.Header (no value allocation, map insert or
// validation per request). Vantage's own transport implements it for the
// requests its HTTP/1.1 client serves (transport.Transport).
type FieldsRoundTripper interface {
	http.RoundTripper
	// TakesFields reports whether RoundTripFields can send req.
	TakesFields(req *http.Request) bool
	// RoundTripFields is RoundTrip with fields ("Name: value\r\n" each,
	// complete and valid, names not in req.Header) written after
	// req.Header's fields. It reads fields only during the call, so they
	// may live in the caller's stack frame. req must be one TakesFields
	// reports true for.
	RoundTripFields(req *http.Request, fields []byte) (*http.Response, error)
}

// maxTrackedAttempts bounds the attempts of one request that get their own
// CLIENT span (one bit each); later ones are propagated with the server
// span as parent.
const maxTrackedAttempts = 64

// WrapTransport returns rt wrapped so that every upstream attempt of a
// traced request carries the trace context: the incoming trace headers of
// every known format are removed from the outgoing request and the
// configured formats are injected, with the attempt's CLIENT span as the
// parent. Requests without Vantage's trace context (tracing off for the
// route, background requests) pass through untouched. The wrapper edits
// req.Header in place (the proxy owns that map) and allocates only the
// header values. It returns rt itself when tracing is off.
//
// When rt is a FieldsRoundTripper (Vantage's own transport) that takes the
// request (its HTTP/1.1 client), the injected fields are instead handed to
// it in wire form, formatted in this call's stack frame: no allocation,
// map insert or validation per attempt. What the upstream receives is the
// same.
//
// The proxy must append the attempt to the Record before calling the
// wrapped RoundTripper for it, as it does for every try: the attempt's
// index (its resend count) is len(rec.Attempts)-1. A second call for the
// same index (a mirror sharing the context) gets no span of its own.
func (t *Tracing) WrapTransport(service string, rt http.RoundTripper) http.RoundTripper {
	if !t.enabled || rt == nil {
		return rt
	}
	tr := &transport{t: t, service: service, next: rt}
	if f, ok := rt.(FieldsRoundTripper); ok && t.props.AppendsFields() {
		tr.fields = f
	}
	return tr
}

type transport struct {
	t       *Tracing
	service string
	next    http.RoundTripper
	// fields is next when the trace fields can be passed to it in wire
	// form, else nil.
	fields FieldsRoundTripper
}

// maxStackFields is the room for trace fields in wire form kept in
// RoundTrip's frame: a traceparent field takes 70 bytes, and a tracestate
// or baggage that does not fit moves the buffer to the heap.
const maxStackFields = 256

// RoundTrip implements http.RoundTripper.
func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	rec := observe.FromContext(ctx)
	var (
		sc      trace.SpanContext
		bag     baggage.Baggage
		present propagation.HeaderSet
	)
	if st := stateOf(rec); st != nil {
		sc, bag, present = st.sc, st.bag, st.present
		if st.record && len(rec.Attempts) > 0 {
			if id, ok := st.claim(len(rec.Attempts)-1, req); ok {
				sc = sc.WithSpanID(id)
			}
		}
	} else if tc, ok := observe.TraceFromContext(ctx); ok {
		// A mirrored copy: its headers are the client's, so every known
		// trace header goes.
		sc, present = spanContextOf(tc), propagation.AllHeaders
	} else {
		return tr.next.RoundTrip(req)
	}
	if req.Header == nil {
		req.Header = make(http.Header, 4)
	}
	tr.t.props.RemoveStale(req.Header, present)
	if tr.fields != nil && tr.fields.TakesFields(req) {
		var buf [maxStackFields]byte
		return tr.fields.RoundTripFields(req, tr.t.props.AppendFields(buf[:0], sc, bag))
	}
	tr.t.props.Inject(req.Header, sc, bag)
	return tr.next.RoundTrip(req)
}

// spanContextOf is the span context of a Record's trace identity.
func spanContextOf(tc observe.TraceContext) trace.SpanContext {
	cfg := trace.SpanContextConfig{TraceID: tc.TraceID, SpanID: tc.SpanID}
	if tc.Sampled {
		cfg.TraceFlags = trace.FlagsSampled
	}
	return trace.NewSpanContext(cfg)
}

// claim marks attempt idx as sent with its own CLIENT span and notes its
// URL, unless the attempt was already claimed or the request has ended. It
// returns the attempt's span id.
func (s *reqState) claim(idx int, req *http.Request) (trace.SpanID, bool) {
	if idx < 0 || idx >= maxTrackedAttempts {
		return trace.SpanID{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done || s.claimed&(1<<idx) != 0 {
		return trace.SpanID{}, false
	}
	s.claimed |= 1 << idx
	if u := req.URL; u != nil {
		s.out = outgoing{u.Scheme, u.Host, u.Path, u.RawQuery}
	}
	return s.attemptSpanID(idx), true
}

// attemptSpanID derives attempt idx's CLIENT span id from the server span
// id, so that no per-attempt storage is needed: a splitmix64 step, never
// zero, distinct per attempt.
func (s *reqState) attemptSpanID(idx int) trace.SpanID {
	sid := s.sc.SpanID()
	z := binary.BigEndian.Uint64(sid[:]) + uint64(idx+1)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	if z == 0 {
		z = 1
	}
	var id trace.SpanID
	binary.BigEndian.PutUint64(id[:], z)
	return id
}
