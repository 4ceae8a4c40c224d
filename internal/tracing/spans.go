package tracing

import (
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/tracing/export"
	"github.com/vantage-gateway/vantage/internal/tracing/sampling"
)

// Attribute keys: OpenTelemetry HTTP semantic conventions, then Vantage's.
const (
	attrMethod         = attribute.Key("http.request.method")
	attrMethodOriginal = attribute.Key("http.request.method_original")
	attrRoute          = attribute.Key("http.route")
	attrStatus         = attribute.Key("http.response.status_code")
	attrResendCount    = attribute.Key("http.request.resend_count")
	attrReqBodySize    = attribute.Key("http.request.body.size")
	attrRespBodySize   = attribute.Key("http.response.body.size")
	attrURLPath        = attribute.Key("url.path")
	attrURLQuery       = attribute.Key("url.query")
	attrURLScheme      = attribute.Key("url.scheme")
	attrURLFull        = attribute.Key("url.full")
	attrServerAddr     = attribute.Key("server.address")
	attrServerPort     = attribute.Key("server.port")
	attrClientAddr     = attribute.Key("client.address")
	attrPeerAddr       = attribute.Key("network.peer.address")
	attrPeerPort       = attribute.Key("network.peer.port")
	attrProtoVersion   = attribute.Key("network.protocol.version")
	attrUserAgent      = attribute.Key("user_agent.original")
	attrErrorType      = attribute.Key("error.type")
	attrRPCSystem      = attribute.Key("rpc.system")
	attrGRPCStatus     = attribute.Key("rpc.grpc.status_code")

	attrListener     = attribute.Key("vantage.listener")
	attrVRoute       = attribute.Key("vantage.route")
	attrService      = attribute.Key("vantage.service")
	attrUpstream     = attribute.Key("vantage.upstream")
	attrSplitRule    = attribute.Key("vantage.split.rule")
	attrSplitService = attribute.Key("vantage.split.service")
	attrSplitReason  = attribute.Key("vantage.split.reason")
	attrBreaker      = attribute.Key("vantage.breaker.state")
	attrRateLimit    = attribute.Key("vantage.rate_limit.policy")
	attrFault        = attribute.Key("vantage.fault")
	attrMirrored     = attribute.Key("vantage.mirrored")
	attrRetries      = attribute.Key("vantage.retries")
	attrRetryReason  = attribute.Key("vantage.retry.reason")
	attrErrorKind    = attribute.Key("vantage.error.kind")
	attrSampling     = attribute.Key("vantage.sampling.decision")
	attrInFormat     = attribute.Key("vantage.trace.incoming_format")
	attrLinkReason   = attribute.Key("vantage.link.reason")
	attrEvFrom       = attribute.Key("vantage.state.from")
	attrEvTo         = attribute.Key("vantage.state.to")
	attrEvReason     = attribute.Key("vantage.reason")
	attrEvValue      = attribute.Key("vantage.value")
	attrEvPolicy     = attribute.Key("vantage.policy")
	attrEvDetail     = attribute.Key("vantage.detail")
)

// maxAttrValueLen caps string attribute values that come from the client
// (paths, queries, user agents, recorded headers), so a request cannot
// make a queued span arbitrarily large.
const maxAttrValueLen = 2048

// spanScratch is the memory emit builds one kept request's spans in:
// their fields, attributes and events, and their OTLP encoding. It is
// pooled; nothing in it outlives the emit call.
type spanScratch struct {
	spans  []export.SpanData
	attrs  []attribute.KeyValue // the attributes of every span, event and link
	events []sdktrace.Event
	links  [1]sdktrace.Link
	enc    []byte
}

var scratchPool = sync.Pool{New: func() any {
	return &spanScratch{attrs: make([]attribute.KeyValue, 0, 64), spans: make([]export.SpanData, 0, 4)}
}}

// maxPooledEncoding is the largest encoding buffer kept in the pool.
const maxPooledEncoding = 64 << 10

func (sb *spanScratch) release() {
	clear(sb.spans)
	clear(sb.attrs)
	clear(sb.events)
	sb.links = [1]sdktrace.Link{}
	sb.spans, sb.attrs, sb.events, sb.enc = sb.spans[:0], sb.attrs[:0], sb.events[:0], sb.enc[:0]
	if cap(sb.enc) > maxPooledEncoding {
		sb.enc = nil
	}
	scratchPool.Put(sb)
}

// appendAttrs appends the attributes add writes to sb.attrs and returns
// them as a slice of their own (full: a later append cannot write into it).
func (sb *spanScratch) appendAttrs(add func([]attribute.KeyValue) []attribute.KeyValue) []attribute.KeyValue {
	start := len(sb.attrs)
	sb.attrs = add(sb.attrs)
	return sb.attrs[start:len(sb.attrs):len(sb.attrs)]
}

// emit builds the spans of a kept trace from the Record and the request's
// state, with the ids already propagated and the Record's timestamps, and
// hands them to every exporter's queue.
//
// No Tracer and, for the OTLP exporters, no SDK span object is involved:
// the request has already ended and every field is known, so the spans are
// written as OTLP Span messages straight from the Record (export.AppendSpan)
// into a pooled buffer, encoded once for every OTLP exporter. Only other
// exporters (Zipkin, the embedded ones) get SDK span snapshots, built from
// the same fields. (The Tracer path cost about twice as much CPU per kept
// request as snapshots; snapshots cost two span objects and their copied
// attribute slices per kept request, which waited in the queue for the
// exporter to encode them.)
func (t *Tracing) emit(m *routeTracing, st *reqState, rec *observe.Record, r *http.Request, w http.ResponseWriter, reason sampling.Reason, panicked bool) {
	sb := scratchPool.Get().(*spanScratch)
	defer sb.release()

	sampled := st.sc.TraceFlags() | trace.FlagsSampled
	serverSC := st.sc.WithTraceFlags(sampled)

	// One CLIENT span per attempt that reached the transport.
	for i := range rec.Attempts {
		a := &rec.Attempts[i]
		if i >= maxTrackedAttempts || st.claimed&(1<<i) == 0 {
			continue // never reached the transport, or not tracked
		}
		cs := export.SpanData{
			Name:        r.Method + " " + a.Service,
			SpanContext: serverSC.WithSpanID(st.attemptSpanID(i)).WithRemote(false),
			Parent:      serverSC,
			Kind:        trace.SpanKindClient,
			Start:       a.Start,
			End:         a.Start.Add(a.Duration + a.BodyDuration),
			Attributes: sb.appendAttrs(func(b []attribute.KeyValue) []attribute.KeyValue {
				return t.clientAttrs(b, rec, r, a, &st.out, i)
			}),
		}
		if attemptFailed(a) {
			cs.Status = sdktrace.Status{Code: codes.Error, Description: attemptErrorType(a)}
		}
		sb.spans = append(sb.spans, cs)
	}
	children := len(sb.spans)

	ss := export.SpanData{
		Name:        m.spanName(r.Method),
		SpanContext: serverSC.WithRemote(false),
		Parent:      st.parent(),
		Kind:        trace.SpanKindServer,
		Start:       rec.Start,
		End:         rec.End,
		Attributes: sb.appendAttrs(func(b []attribute.KeyValue) []attribute.KeyValue {
			return t.serverAttrs(b, m, st, rec, r, w, reason)
		}),
	}
	if l := st.link(); l.IsValid() {
		sb.links[0] = sdktrace.Link{
			SpanContext: l,
			Attributes: sb.appendAttrs(func(b []attribute.KeyValue) []attribute.KeyValue {
				return append(b, attrLinkReason.String("untrusted_incoming"), attrInFormat.String(st.format))
			}),
		}
		ss.Links = sb.links[:]
	}
	// Decision events. The request has ended (st.done): no one else
	// touches them now.
	for i := range st.events {
		ev := &st.events[i]
		sb.events = append(sb.events, sdktrace.Event{
			Name: ev.kind.String(),
			Time: ev.time,
			Attributes: sb.appendAttrs(func(ea []attribute.KeyValue) []attribute.KeyValue {
				ea = appendNonEmpty(ea, attrService, ev.service)
				ea = appendNonEmpty(ea, attrUpstream, ev.upstream)
				ea = appendNonEmpty(ea, attrEvFrom, ev.from)
				ea = appendNonEmpty(ea, attrEvTo, ev.to)
				ea = appendNonEmpty(ea, attrEvReason, ev.reason)
				ea = appendNonEmpty(ea, attrEvPolicy, ev.policy)
				ea = appendNonEmpty(ea, attrEvDetail, ev.detail)
				if ev.value != 0 {
					ea = append(ea, attrEvValue.Float64(ev.value))
				}
				return ea
			}),
		})
	}
	ss.Events = sb.events
	if panicked || failed(rec) {
		msg := rec.ErrorKind.String()
		if panicked && msg == "" {
			msg = "handler aborted"
		}
		ss.Status = sdktrace.Status{Code: codes.Error, Description: msg}
	}
	sb.spans = append(sb.spans, ss)

	if t.encodedProcs > 0 {
		for i := range sb.spans {
			sb.enc = export.AppendSpan(sb.enc, &sb.spans[i])
		}
	}
	var snapBuf [8]sdktrace.ReadOnlySpan
	var snaps []sdktrace.ReadOnlySpan
	if len(t.procs) > t.encodedProcs {
		snaps = snapBuf[:0]
		for i := range sb.spans {
			n := 0
			if i == len(sb.spans)-1 {
				n = children // the server span
			}
			snaps = append(snaps, t.snapshot(&sb.spans[i], n))
		}
	}
	for _, p := range t.procs {
		if p.TakesEncoded() {
			p.EnqueueEncoded(sb.enc, len(sb.spans))
		} else {
			p.Enqueue(snaps...)
		}
	}
	if t.sink != nil {
		t.sink.TakeSpans(t.resource, t.scope, sb.spans)
	}
}

// snapshot returns d as an SDK span snapshot, with copies of its slices
// (sdktrace/tracetest.SpanStub.Snapshot is the SDK's constructor for
// them), for the exporters that take SDK spans.
func (t *Tracing) snapshot(d *export.SpanData, children int) sdktrace.ReadOnlySpan {
	stub := tracetest.SpanStub{
		Name:                 d.Name,
		SpanContext:          d.SpanContext,
		Parent:               d.Parent,
		SpanKind:             d.Kind,
		StartTime:            d.Start,
		EndTime:              d.End,
		Attributes:           slices.Clone(d.Attributes),
		Status:               d.Status,
		ChildSpanCount:       children,
		Resource:             t.resource,
		InstrumentationScope: t.scope,
	}
	if len(d.Events) > 0 {
		stub.Events = make([]sdktrace.Event, len(d.Events))
		for i, ev := range d.Events {
			ev.Attributes = slices.Clone(ev.Attributes)
			stub.Events[i] = ev
		}
	}
	if len(d.Links) > 0 {
		stub.Links = make([]sdktrace.Link, len(d.Links))
		for i, l := range d.Links {
			l.Attributes = slices.Clone(l.Attributes)
			stub.Links[i] = l
		}
	}
	return stub.Snapshot()
}

// spanName is the SERVER span name: "{method} {route template}".
// The name is built on the route's first span of each method and cached.
func (m *routeTracing) spanName(method string) string {
	i := len(spanMethods)
	for j, sm := range spanMethods {
		if sm == method {
			i = j
			break
		}
	}
	if p := m.spanNames[i].Load(); p != nil {
		return *p
	}
	meth := "HTTP"
	if i < len(spanMethods) {
		meth = spanMethods[i]
	}
	n := spanName(meth, m.template)
	m.spanNames[i].Store(&n)
	return n
}

func truncate(s string) string {
	if len(s) <= maxAttrValueLen {
		return s
	}
	return s[:maxAttrValueLen]
}

func (t *Tracing) serverAttrs(a []attribute.KeyValue, m *routeTracing, st *reqState, rec *observe.Record, r *http.Request, w http.ResponseWriter, reason sampling.Reason) []attribute.KeyValue {
	a = appendMethod(a, r.Method)
	a = appendNonEmpty(a, attrRoute, m.template)
	if r.URL != nil {
		a = append(a, attrURLPath.String(truncate(r.URL.Path)))
		if r.URL.RawQuery != "" {
			a = append(a, attrURLQuery.String(truncate(t.redact.Query(r.URL.RawQuery))))
		}
	}
	if r.TLS != nil {
		a = append(a, attrURLScheme.String("https"))
	} else {
		a = append(a, attrURLScheme.String("http"))
	}
	if host, port := splitHostPort(r.Host); host != "" {
		a = append(a, attrServerAddr.String(host))
		if port > 0 {
			a = append(a, attrServerPort.Int(port))
		}
	}
	peer, peerPort := splitHostPort(r.RemoteAddr)
	if peer != "" {
		a = append(a, attrPeerAddr.String(peer))
		if peerPort > 0 {
			a = append(a, attrPeerPort.Int(peerPort))
		}
	}
	a = appendNonEmpty(a, attrClientAddr, rec.ClientAddr)
	a = append(a, attrProtoVersion.String(protoVersion(r)))
	if ua := r.UserAgent(); ua != "" {
		a = append(a, attrUserAgent.String(truncate(ua)))
	}
	a = append(a, attrStatus.Int(rec.Status))
	if rec.BytesIn > 0 {
		a = append(a, attrReqBodySize.Int64(rec.BytesIn))
	}
	a = append(a, attrRespBodySize.Int64(rec.BytesOut))
	if rec.GRPCStatus >= 0 {
		a = append(a, attrRPCSystem.String("grpc"), attrGRPCStatus.Int(rec.GRPCStatus))
	}
	if failed(rec) {
		a = append(a, attrErrorType.String(errorType(rec.ErrorKind, rec.Status)))
	}
	if rec.ErrorKind != observe.ErrNone {
		a = append(a, attrErrorKind.String(rec.ErrorKind.String()))
	}
	a = appendNonEmpty(a, attrListener, rec.Listener)
	a = appendNonEmpty(a, attrVRoute, rec.Route)
	a = appendNonEmpty(a, attrService, rec.Service)
	a = appendNonEmpty(a, attrUpstream, rec.Upstream)
	if rec.Split.Service != "" {
		a = append(a, attrSplitRule.String(rec.Split.Rule), attrSplitService.String(rec.Split.Service), attrSplitReason.String(rec.Split.Reason))
	}
	a = appendNonEmpty(a, attrBreaker, rec.Breaker)
	a = appendNonEmpty(a, attrRateLimit, rec.RateLimit)
	a = appendNonEmpty(a, attrFault, rec.Fault)
	if rec.Mirrored {
		a = append(a, attrMirrored.Bool(true))
	}
	if n := rec.Retries(); n > 0 {
		a = append(a, attrRetries.Int(n))
	}
	a = append(a, attrSampling.String(reason.String()))
	if st.format != "" && st.trusted {
		a = append(a, attrInFormat.String(st.format))
	}
	for _, h := range t.reqHeaders {
		if vs := r.Header[h.name]; len(vs) > 0 {
			a = append(a, h.key.StringSlice(truncateAll(vs)))
		}
	}
	if w != nil {
		for _, h := range t.respHeaders {
			if vs := w.Header()[h.name]; len(vs) > 0 {
				a = append(a, h.key.StringSlice(truncateAll(vs)))
			}
		}
	}
	return a
}

func (t *Tracing) clientAttrs(a []attribute.KeyValue, rec *observe.Record, r *http.Request, at *observe.Attempt, info *outgoing, idx int) []attribute.KeyValue {
	a = appendMethod(a, r.Method)
	hostport := at.Upstream
	if hostport == "" {
		hostport = info.host
	}
	if host, port := splitHostPort(hostport); host != "" {
		a = append(a, attrServerAddr.String(host))
		if port > 0 {
			a = append(a, attrServerPort.Int(port))
		}
		if isIP(host) {
			// The upstream is addressed by IP: that is the peer (ports
			// are the same as server.port, not repeated).
			a = append(a, attrPeerAddr.String(host))
		}
	}
	if info.host != "" {
		scheme := info.scheme
		if scheme == "" {
			scheme = "http"
		}
		full := scheme + "://" + info.host + info.path
		if info.query != "" {
			full += "?" + t.redact.Query(info.query)
		}
		a = append(a, attrURLFull.String(truncate(full)))
	}
	if at.Status > 0 {
		a = append(a, attrStatus.Int(at.Status))
	}
	if idx > 0 {
		a = append(a, attrResendCount.Int(idx))
	}
	if attemptFailed(at) {
		a = append(a, attrErrorType.String(attemptErrorType(at)))
	}
	if at.ErrorKind != observe.ErrNone {
		a = append(a, attrErrorKind.String(at.ErrorKind.String()))
	}
	a = appendNonEmpty(a, attrService, at.Service)
	a = appendNonEmpty(a, attrUpstream, at.Upstream)
	a = appendNonEmpty(a, attrRetryReason, at.RetryReason)
	if idx == len(rec.Attempts)-1 && rec.GRPCStatus >= 0 {
		a = append(a, attrRPCSystem.String("grpc"), attrGRPCStatus.Int(rec.GRPCStatus))
	}
	return a
}

func truncateAll(vs []string) []string {
	for _, v := range vs {
		if len(v) > maxAttrValueLen {
			out := make([]string, len(vs))
			for i, v := range vs {
				out[i] = truncate(v)
			}
			return out
		}
	}
	return vs
}

// appendNonEmpty appends key=v unless v is empty.
func appendNonEmpty(a []attribute.KeyValue, key attribute.Key, v string) []attribute.KeyValue {
	if v == "" {
		return a
	}
	return append(a, key.String(v))
}

// attemptFailed reports whether an attempt's CLIENT span has error status:
// a transport failure (a client that went away, or whose request body
// could not be read, is not the attempt's fault) or a 5xx.
func attemptFailed(a *observe.Attempt) bool {
	return a.ErrorKind != observe.ErrNone && !a.ErrorKind.IsClientError() || a.Status >= 500
}

func attemptErrorType(a *observe.Attempt) string {
	return errorType(a.ErrorKind, a.Status)
}

// errorType is error.type: the error kind for failures, else the status.
func errorType(k observe.ErrorKind, status int) string {
	if k != observe.ErrNone {
		return k.String()
	}
	if status > 0 {
		return strconv.Itoa(status)
	}
	return "_OTHER"
}

// appendMethod appends http.request.method: the method when it is one of
// the standard ones, else _OTHER and the original method.
func appendMethod(a []attribute.KeyValue, m string) []attribute.KeyValue {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return append(a, attrMethod.String(m))
	}
	return append(a, attrMethod.String("_OTHER"), attrMethodOriginal.String(m))
}

func protoVersion(r *http.Request) string {
	switch r.ProtoMajor {
	case 2:
		return "2"
	case 3:
		return "3"
	}
	if r.ProtoMinor == 0 {
		return "1.0"
	}
	return "1.1"
}

func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// splitHostPort splits host[:port], [ipv6][:port] or a bare IPv6 address
// into the host (without brackets) and the port (0 when there is none or
// it is not a number). Unlike net.SplitHostPort it accepts a missing port,
// the usual Host header, without building an error.
func splitHostPort(hp string) (string, int) {
	colon := strings.LastIndexByte(hp, ':')
	if colon < 0 || colon < strings.LastIndexByte(hp, ']') || strings.IndexByte(hp, ':') != colon && hp[0] != '[' {
		// No port: a name, an IPv4 address, [ipv6] or a bare IPv6 address.
		return strings.Trim(hp, "[]"), 0
	}
	port, err := strconv.Atoi(hp[colon+1:])
	if err != nil || port < 0 || port > 65535 {
		port = 0
	}
	return strings.Trim(hp[:colon], "[]"), port
}
