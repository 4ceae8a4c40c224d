package tracing

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/observe"
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
)

var attrPool = sync.Pool{New: func() any { s := make([]attribute.KeyValue, 0, 40); return &s }}

// emit creates the SDK spans of a kept trace from the Record and the
// request's state, with the ids already propagated and the Record's
// timestamps, and ends them, which queues them for export.
func (t *Tracing) emit(m *routeTracing, st *reqState, rec *observe.Record, r *http.Request, w http.ResponseWriter, reason sampling.Reason, panicked bool) {
	hold := &idHolder{traceID: st.sc.TraceID(), spanID: st.sc.SpanID()}
	ctx := context.WithValue(context.Background(), idHolderKey{}, hold)
	if st.parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, st.parent)
	}
	bufp := attrPool.Get().(*[]attribute.KeyValue)
	defer func() { clear(*bufp); *bufp = (*bufp)[:0]; attrPool.Put(bufp) }()
	attrs := t.serverAttrs((*bufp)[:0], m, st, rec, r, w, reason)

	opts := make([]trace.SpanStartOption, 0, 4)
	opts = append(opts, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(rec.Start), trace.WithAttributes(attrs...))
	if !st.parent.IsValid() {
		opts = append(opts, trace.WithNewRoot())
	}
	if st.link.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{
			SpanContext: st.link,
			Attributes:  []attribute.KeyValue{attrLinkReason.String("untrusted_incoming"), attrInFormat.String(st.format)},
		}))
	}
	name, ok := m.spanNames[r.Method]
	if !ok {
		name = m.otherName
	}
	sctx, span := t.tracer.Start(ctx, name, opts...)

	// Decision events. The request has ended (st.done), so no one else
	// touches them now.
	for i := range st.events {
		ev := &st.events[i]
		ea := (*bufp)[:0]
		if ev.service != "" {
			ea = append(ea, attrService.String(ev.service))
		}
		if ev.upstream != "" {
			ea = append(ea, attrUpstream.String(ev.upstream))
		}
		if ev.from != "" {
			ea = append(ea, attrEvFrom.String(ev.from))
		}
		if ev.to != "" {
			ea = append(ea, attrEvTo.String(ev.to))
		}
		if ev.reason != "" {
			ea = append(ea, attrEvReason.String(ev.reason))
		}
		if ev.value != 0 {
			ea = append(ea, attrEvValue.Float64(ev.value))
		}
		span.AddEvent(ev.kind.String(), trace.WithTimestamp(ev.time), trace.WithAttributes(ea...))
	}

	// One CLIENT span per attempt.
	for i := range rec.Attempts {
		a := &rec.Attempts[i]
		info := st.slot(i, false)
		if info == nil || !info.spanID.IsValid() {
			continue // never reached the transport (or not tracked)
		}
		hold.spanID = info.spanID
		ca := t.clientAttrs((*bufp)[:0], st, rec, r, a, info, i)
		_, cs := t.tracer.Start(sctx, r.Method+" "+a.Service,
			trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(a.Start), trace.WithAttributes(ca...))
		if a.ErrorKind != observe.ErrNone && a.ErrorKind != observe.ErrClientCanceled || a.Status >= 500 {
			cs.SetStatus(codes.Error, attemptErrorType(a))
		}
		cs.End(trace.WithTimestamp(a.Start.Add(a.Duration + a.BodyDuration)))
	}

	if panicked || failed(rec) {
		msg := rec.ErrorKind.String()
		if panicked && msg == "" {
			msg = "handler aborted"
		}
		span.SetStatus(codes.Error, msg)
	}
	span.End(trace.WithTimestamp(rec.End))
}

func (t *Tracing) serverAttrs(a []attribute.KeyValue, m *routeTracing, st *reqState, rec *observe.Record, r *http.Request, w http.ResponseWriter, reason sampling.Reason) []attribute.KeyValue {
	a = appendMethod(a, r.Method)
	if m.template != "" {
		a = append(a, attrRoute.String(m.template))
	}
	if r.URL != nil {
		a = append(a, attrURLPath.String(r.URL.Path))
		if r.URL.RawQuery != "" {
			a = append(a, attrURLQuery.String(t.redactQuery(r.URL.RawQuery)))
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
	if rec.ClientAddr != "" {
		a = append(a, attrClientAddr.String(rec.ClientAddr))
	}
	if host, port := splitHostPort(r.RemoteAddr); host != "" {
		a = append(a, attrPeerAddr.String(host))
		if port > 0 {
			a = append(a, attrPeerPort.Int(port))
		}
	}
	a = append(a, attrProtoVersion.String(protoVersion(r)))
	if ua := r.UserAgent(); ua != "" {
		a = append(a, attrUserAgent.String(ua))
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
	if rec.Listener != "" {
		a = append(a, attrListener.String(rec.Listener))
	}
	if rec.Route != "" {
		a = append(a, attrVRoute.String(rec.Route))
	}
	if rec.Service != "" {
		a = append(a, attrService.String(rec.Service))
	}
	if rec.Upstream != "" {
		a = append(a, attrUpstream.String(rec.Upstream))
	}
	if rec.Split.Service != "" {
		a = append(a, attrSplitRule.String(rec.Split.Rule), attrSplitService.String(rec.Split.Service), attrSplitReason.String(rec.Split.Reason))
	}
	if rec.Breaker != "" {
		a = append(a, attrBreaker.String(rec.Breaker))
	}
	if rec.RateLimit != "" {
		a = append(a, attrRateLimit.String(rec.RateLimit))
	}
	if rec.Fault != "" {
		a = append(a, attrFault.String(rec.Fault))
	}
	if rec.Mirrored {
		a = append(a, attrMirrored.Bool(true))
	}
	if n := rec.Retries(); n > 0 {
		a = append(a, attrRetries.Int(n))
	}
	a = append(a, attrSampling.String(reason.String()))
	if st.format != "" && st.parent.IsValid() {
		a = append(a, attrInFormat.String(st.format))
	}
	for _, h := range t.reqHeaders {
		if vs := r.Header[h.name]; len(vs) > 0 {
			a = append(a, h.key.StringSlice(vs))
		}
	}
	if w != nil {
		for _, h := range t.respHeaders {
			if vs := w.Header()[h.name]; len(vs) > 0 {
				a = append(a, h.key.StringSlice(vs))
			}
		}
	}
	return a
}

func (t *Tracing) clientAttrs(a []attribute.KeyValue, st *reqState, rec *observe.Record, r *http.Request, at *observe.Attempt, info *attemptInfo, idx int) []attribute.KeyValue {
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
		if ip := net.ParseIP(host); ip != nil {
			a = append(a, attrPeerAddr.String(host))
			if port > 0 {
				a = append(a, attrPeerPort.Int(port))
			}
		}
	}
	if info.host != "" {
		scheme := info.scheme
		if scheme == "" {
			scheme = "http"
		}
		full := scheme + "://" + info.host + info.path
		if info.query != "" {
			full += "?" + t.redactQuery(info.query)
		}
		a = append(a, attrURLFull.String(full))
	}
	if at.Status > 0 {
		a = append(a, attrStatus.Int(at.Status))
	}
	if idx > 0 {
		a = append(a, attrResendCount.Int(idx))
	}
	if at.ErrorKind != observe.ErrNone && at.ErrorKind != observe.ErrClientCanceled || at.Status >= 500 {
		a = append(a, attrErrorType.String(attemptErrorType(at)))
	}
	if at.ErrorKind != observe.ErrNone {
		a = append(a, attrErrorKind.String(at.ErrorKind.String()))
	}
	if at.Service != "" {
		a = append(a, attrService.String(at.Service))
	}
	if at.Upstream != "" {
		a = append(a, attrUpstream.String(at.Upstream))
	}
	if at.RetryReason != "" {
		a = append(a, attrRetryReason.String(at.RetryReason))
	}
	if idx == len(rec.Attempts)-1 && rec.GRPCStatus >= 0 {
		a = append(a, attrRPCSystem.String("grpc"), attrGRPCStatus.Int(rec.GRPCStatus))
	}
	return a
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

var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true,
	http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true, http.MethodTrace: true,
}

func appendMethod(a []attribute.KeyValue, m string) []attribute.KeyValue {
	if knownMethods[m] {
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

func splitHostPort(hp string) (string, int) {
	if hp == "" {
		return "", 0
	}
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return strings.Trim(hp, "[]"), 0
	}
	port, _ := strconv.Atoi(p)
	return host, port
}

// redactQuery replaces the values of sensitive query parameters with
// "REDACTED"; names are matched case-insensitively after unescaping.
func (t *Tracing) redactQuery(q string) string {
	var b strings.Builder
	b.Grow(len(q))
	for i, part := range strings.Split(q, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		k, _, hasValue := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if t.sensitiveQuery[strings.ToLower(name)] {
			b.WriteString(k)
			b.WriteString("=REDACTED")
			continue
		}
		if !hasValue {
			b.WriteString(part)
			continue
		}
		b.WriteString(part)
	}
	return b.String()
}
