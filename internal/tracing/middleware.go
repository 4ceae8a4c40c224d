package tracing

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/tracing/propagation"
	"github.com/vantage-gateway/vantage/internal/tracing/sampling"
)

// routeTracing is one route's pre-resolved tracing: built by ForRoute at
// snapshot build, read-only afterwards but for its span-name cache.
type routeTracing struct {
	t        *Tracing
	name     string
	template string
	// spanNames caches "{method} {template}" per index of spanMethods
	// (the last: any other method, "HTTP"), built on first use so that a
	// route without sampled traffic holds no names.
	spanNames [len(spanMethods) + 1]atomic.Pointer[string]
	head      sampling.Head
	late      sampling.Late
	def       edgeSettings
	listeners map[string]edgeSettings
}

var spanMethods = [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace}

// ForRoute returns the tracing middleware of route r, with the route's
// settings (ratio, trust, response header, slow threshold) resolved once.
// It returns nil when tracing is off globally or for the route: then the
// request carries no trace context of Vantage's and trace headers pass
// through untouched. It implements middleware.Factory.
//
// The gateway puts the middleware outermost in the route's chain (the
// Tracing slot of middleware.Telemetry). Before calling the next handler
// it sets rec.Trace (for every request, sampled or not) and the configured
// trace id response header, so responses the gateway generates itself carry
// it too. After the next handler it only reads the Record, which the
// gateway's end stage has finished.
func (t *Tracing) ForRoute(r middleware.Route) middleware.Middleware {
	if !t.enabled {
		return nil
	}
	rc := r.Config
	var rt *config.RouteTracing
	if rc != nil && rc.Tracing != nil {
		if !rc.Tracing.IsEnabled() {
			return nil
		}
		rt = rc.Tracing
	}
	m := &routeTracing{t: t, name: r.Name, template: r.Template}

	ratio := 1.0
	if rs := t.cfg.Sampling.Ratio; rs != nil {
		ratio = *rs
	}
	m.late = t.late
	m.def = t.global
	if rt != nil {
		if rt.Ratio != nil {
			ratio = *rt.Ratio
		}
		if rt.SlowerThan != nil {
			m.late.SlowerThan = rt.SlowerThan.D()
		}
	}
	m.head = sampling.Head{Bound: sampling.Bound(ratio), ParentBased: t.parentBased, Limiter: t.headLimiter}
	override := func(s edgeSettings) edgeSettings {
		if rt == nil {
			return s
		}
		if rt.TrustIncoming != nil {
			s.trust = *rt.TrustIncoming
		}
		if rt.ResponseHeader != "" {
			s.resp = resolveResponseHeader(rt.ResponseHeader)
		}
		return s
	}
	m.def = override(m.def)
	if rt == nil || rt.TrustIncoming == nil && rt.ResponseHeader == "" {
		m.listeners = t.listeners // nothing to override: share the read-only map
	} else if len(t.listeners) > 0 {
		m.listeners = make(map[string]edgeSettings, len(t.listeners))
		for name, s := range t.listeners {
			m.listeners[name] = override(s)
		}
	}
	return m.wrap
}

func spanName(method, template string) string {
	if template == "" {
		return method
	}
	return method + " " + template
}

func (m *routeTracing) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(w, r, next) })
}

func (m *routeTracing) settings(listener string) edgeSettings {
	if m.listeners != nil {
		if s, ok := m.listeners[listener]; ok {
			return s
		}
	}
	return m.def
}

// reqState is the per-request tracing state. It travels in the request's
// Record (observe.Record.Tracing), not in a context value, so tracing a
// request costs no request copy; states are pooled. Fields above mu are
// written before the next handler runs and read-only afterwards; the rest
// is guarded by mu.
type reqState struct {
	sc      trace.SpanContext // the server span's context (flags: head decision)
	in      trace.SpanContext // the incoming context, invalid when none
	trusted bool              // in is the parent (else it is only linked)
	format  string            // incoming format, "" when none
	bag     baggage.Baggage
	present propagation.HeaderSet
	head    sampling.Reason
	record  bool // keep per-attempt span ids and events for export

	mu      sync.Mutex
	done    bool
	claimed uint64 // bit i: attempt i reached the transport and has a span
	out     outgoing
	events  []eventRecord
}

var statePool = sync.Pool{New: func() any { return new(reqState) }}

// release resets s, keeping its event storage, and returns it to the pool.
// The request has ended: nothing else holds s.
func (s *reqState) release() {
	clear(s.events)
	*s = reqState{events: s.events[:0]}
	statePool.Put(s)
}

// outgoing is the URL of the latest upstream attempt, as the transport
// wrapper saw it (after path rewriting).
type outgoing struct {
	scheme, host, path, query string
}

// eventRecord is a decision event as its span event will show it (see
// spanEvent).
type eventRecord struct {
	kind              observe.EventKind
	time              time.Time
	service, upstream string
	from, to, reason  string
	policy, detail    string
	value             float64
}

// parent returns the trusted remote parent, or an invalid context.
func (s *reqState) parent() trace.SpanContext {
	if s.trusted {
		return s.in
	}
	return trace.SpanContext{}
}

// link returns the untrusted incoming context, or an invalid one.
func (s *reqState) link() trace.SpanContext {
	if s.trusted {
		return trace.SpanContext{}
	}
	return s.in
}

// stateOf returns the tracing state of the request rec records, or nil.
func stateOf(rec *observe.Record) *reqState {
	if rec == nil {
		return nil
	}
	s, _ := rec.Tracing.(*reqState)
	return s
}

// SpanContextFromRequest returns the span context Vantage assigned to the
// request whose context is ctx (its SERVER span), or an invalid one.
func SpanContextFromRequest(ctx context.Context) trace.SpanContext {
	if s := stateOf(observe.FromContext(ctx)); s != nil {
		return s.sc
	}
	return trace.SpanContext{}
}

func (m *routeTracing) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	t := m.t
	rec := observe.FromContext(r.Context())
	own := rec == nil
	if own {
		// Outside the gateway (tests, embedding): keep a record of our
		// own, and end it ourselves, as the gateway would.
		rec = observe.GetRecord()
		defer observe.PutRecord(rec)
		rec.Start = t.now()
		rec.RouteTemplate = m.template
		rec.Route = m.name
		r = r.WithContext(observe.NewContext(r.Context(), rec))
	}
	edge := m.settings(rec.Listener)

	st := statePool.Get().(*reqState)
	rec.Tracing = st
	ex := t.props.Extract(r.Header)
	st.present = ex.Present
	st.format = ex.Format
	var traceID trace.TraceID
	hasParent, parentSampled := false, false
	st.in = ex.SpanContext
	switch {
	case ex.Found() && edge.trust:
		st.trusted = true
		traceID = ex.SpanContext.TraceID()
		st.bag = ex.Baggage
		hasParent, parentSampled = !ex.Deferred, ex.SpanContext.IsSampled()
	default:
		traceID = t.newTraceID()
	}
	st.head = m.head.Decide(traceID, hasParent, parentSampled)
	spanID := newSpanID()
	cfg := trace.SpanContextConfig{TraceID: traceID, SpanID: spanID}
	if st.head.Kept() {
		cfg.TraceFlags = trace.FlagsSampled
	}
	if p := st.parent(); p.IsValid() {
		cfg.TraceState = p.TraceState()
		cfg.TraceFlags |= p.TraceFlags() & trace.FlagsRandom
	}
	st.sc = trace.NewSpanContext(cfg)
	st.record = t.Exporting() && (st.head.Kept() || m.late.Enabled())
	rec.Trace = observe.TraceContext{TraceID: traceID, SpanID: spanID, Sampled: st.head.Kept(), Valid: true}
	if edge.resp.name != "" {
		w.Header()[edge.resp.name] = propagation.HeaderValue(st.sc, edge.resp.traceresponse)
	}

	finished := false
	defer func() {
		if !finished {
			// The handler panicked (http.ErrAbortHandler when a proxied
			// body broke off): record what we know, then let it unwind.
			if own {
				rec.Finish(t.now())
			}
			m.finish(st, rec, r, w, true)
		}
	}()
	next.ServeHTTP(w, r)
	finished = true
	if own {
		rec.Finish(t.now())
	}
	m.finish(st, rec, r, w, false)
	rec.Tracing = nil
	st.release()
}

// finish takes the late decision and, for kept traces, builds the spans
// from the finished Record (End and Status fixed by the gateway), which it
// only reads.
func (m *routeTracing) finish(st *reqState, rec *observe.Record, r *http.Request, w http.ResponseWriter, panicked bool) {
	st.mu.Lock()
	st.done = true
	st.mu.Unlock()
	t := m.t
	reason := st.head
	if !reason.Kept() && reason != sampling.RateLimited && st.record {
		reason = m.late.Decide(panicked || failed(rec), rec.Retries(), rec.Total())
	}
	t.decisions[reason].Inc()
	if !reason.Kept() || !t.Exporting() {
		return
	}
	t.emit(m, st, rec, r, w, reason, panicked)
}

// failed reports whether the request counts as an error for late sampling
// and span status: a 5xx, a transport or internal failure, or a gRPC
// server error.
func failed(rec *observe.Record) bool {
	if rec.Status >= 500 || rec.ErrorKind.IsUpstreamFailure() || rec.ErrorKind == observe.ErrInternal {
		return true
	}
	return grpcServerError(rec.GRPCStatus)
}

// grpcServerError reports the gRPC codes the OpenTelemetry RPC conventions
// treat as server errors: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
// INTERNAL, UNAVAILABLE, DATA_LOSS.
func grpcServerError(code int) bool {
	switch code {
	case 2, 4, 12, 13, 14, 15:
		return true
	}
	return false
}
