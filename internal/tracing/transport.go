package tracing

import (
	"net/http"

	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// maxTrackedAttempts bounds the attempts of one request that get their own
// CLIENT span; later ones are propagated with the server span as parent.
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
// The proxy must append the attempt to the Record before calling the
// wrapped RoundTripper for it, as it does for every try: the attempt's
// index (its resend count) is len(rec.Attempts)-1. A second call for the
// same index (a mirror sharing the context) gets no span of its own.
func (t *Tracing) WrapTransport(service string, rt http.RoundTripper) http.RoundTripper {
	if !t.enabled || rt == nil {
		return rt
	}
	return &transport{t: t, service: service, next: rt}
}

type transport struct {
	t       *Tracing
	service string
	next    http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	st := stateFrom(ctx)
	if st == nil {
		return tr.next.RoundTrip(req)
	}
	sc := st.sc
	if st.record {
		if rec := observe.FromContext(ctx); rec != nil && len(rec.Attempts) > 0 {
			if id, ok := st.claim(len(rec.Attempts)-1, req); ok {
				sc = sc.WithSpanID(id)
			}
		}
	}
	if req.Header == nil {
		req.Header = make(http.Header, 4)
	}
	tr.t.props.RemoveStale(req.Header, st.present)
	tr.t.props.Inject(req.Header, sc, st.bag)
	return tr.next.RoundTrip(req)
}

// claim gives attempt idx its CLIENT span id and notes its URL, unless the
// attempt already has one or the request has ended.
func (s *reqState) claim(idx int, req *http.Request) (trace.SpanID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return trace.SpanID{}, false
	}
	a := s.slot(idx, true)
	if a == nil || a.spanID.IsValid() {
		return trace.SpanID{}, false
	}
	a.spanID = newSpanID()
	if u := req.URL; u != nil {
		a.scheme, a.host, a.path, a.query = u.Scheme, u.Host, u.Path, u.RawQuery
	}
	return a.spanID, true
}

// slot returns attempt idx's info (growing the overflow when grow is set),
// or nil. The caller holds s.mu or owns s exclusively.
func (s *reqState) slot(idx int, grow bool) *attemptInfo {
	if idx < 0 || idx >= maxTrackedAttempts {
		return nil
	}
	if idx >= len(s.attempts) {
		if !grow {
			return nil
		}
		if s.attempts == nil {
			s.attempts = make([]attemptInfo, 0, max(2, idx+1))
		}
		for len(s.attempts) <= idx {
			s.attempts = append(s.attempts, attemptInfo{})
		}
	}
	return &s.attempts[idx]
}
