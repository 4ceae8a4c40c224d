package accesslog

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/accesslog/otlplog"
	"github.com/vantage-gateway/vantage/internal/batch"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/tracing"
)

// InstrumentationName is the instrumentation scope of the OTLP log records.
const InstrumentationName = "github.com/vantage-gateway/vantage/internal/accesslog"

// EventName is the event name of every OTLP access log record.
const EventName = "access_log"

const (
	// maxEntryBytes caps the client-controlled bytes one queued OTLP entry
	// holds (path, query, host, user agent, Referer, allow-listed header
	// values, each already cut at maxValueBytes); values past the cap are
	// replaced by truncMark. It bounds the queue's memory.
	maxEntryBytes = 64 << 10
	// attributeCountLimit bounds the attributes of one log record.
	attributeCountLimit = 256
)

// otlpEntry is what the OTLP export needs of one finished request, copied
// on the request path: the Record goes back to its pool and the request
// may be gone before the exporter goroutine reads it. Strings the gateway
// set (route, service, ...) are shared, being immutable; client-controlled
// values are copied into text, cut, so that an entry's size is bounded.
type otlpEntry struct {
	end, observed time.Time
	trace         observe.TraceContext

	text                                   []byte // client-controlled values, addressed by span
	method, path, query, host, ua, referer span
	headers                                []entryHeader

	proto, listener, client string
	route, template         string
	service, upstream       string
	split                   observe.SplitChoice
	breaker, rateLimit      string
	fault                   string
	retryReasons            []string

	status, grpcStatus, attempts int
	errKind                      observe.ErrorKind
	mirrored, aborted            bool
	bytesIn, bytesOut            int64
	total, upstreamTime, overhd  time.Duration
}

// span addresses a value in otlpEntry.text.
type span struct{ off, n int32 }

// entryHeader is one value of an allow-listed header: field indexes
// otlpSink.headerKeys.
type entryHeader struct {
	field int
	value span
}

// otlpSink exports access log records as OpenTelemetry log records. The
// request path copies what it needs into a recycled entry and queues it
// without blocking; the queue's worker turns each batch of entries into SDK
// log records and exports them in one call. When the queue is full the
// record is dropped and counted.
type otlpSink struct {
	l          *Logger
	exp        sdklog.Exporter
	provider   *sdklog.LoggerProvider
	logger     otellog.Logger
	headerKeys []string
	reqHeaders int // headerKeys[:reqHeaders] are request headers

	queue   *batch.Queue[*otlpEntry]
	entries *batch.Pool[*otlpEntry]

	batchSize     int
	flushInterval time.Duration
	timeout       time.Duration

	// ctx is the parent of every export call; cancel aborts an export
	// still running when Close gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc

	exported, dropped, failed atomic.Uint64
	lastErr                   atomic.Pointer[error]
	reportedDropped           uint64
	reportedFailed            uint64

	// Worker state.
	records []sdklog.Record
	cur     *otlpEntry
	attrs   []attribute.KeyValue
	sbuf    []byte
}

// newOTLPSink builds the OTLP export of l from cfg. exp, when not nil,
// replaces the exporter built from the config.
func newOTLPSink(l *Logger, cfg config.AccessLog, tr *config.Tracing, version string, exp sdklog.Exporter) (*otlpSink, error) {
	o := cfg.OTLP
	if tr == nil {
		tr = &config.Tracing{}
	}
	s := &otlpSink{
		l:             l,
		batchSize:     o.BatchSize,
		flushInterval: o.FlushInterval.D(),
		timeout:       config.DefaultExportTimeout,
	}
	size := o.QueueSize
	if size <= 0 {
		size = config.DefaultAccessLogOTLPQueueSize
	}
	if s.batchSize <= 0 {
		s.batchSize = min(config.DefaultAccessLogOTLPBatchSize, size)
	}
	if s.flushInterval <= 0 {
		s.flushInterval = config.DefaultAccessLogOTLPFlushInterval
	}
	if exp == nil {
		e, ok := cfg.OTLPExporter(tr)
		if !ok {
			return nil, fmt.Errorf("access log: otlp: no otlp exporter named %q in tracing.exporters", o.Exporter)
		}
		if e.Timeout > 0 {
			s.timeout = e.Timeout.D()
		}
		var err error
		exp, err = otlplog.NewExporter(context.Background(), *o, e)
		if err != nil {
			return nil, fmt.Errorf("access log: %w", err)
		}
	}
	s.exp = exp
	s.entries = batch.NewPool(size, func() *otlpEntry { return &otlpEntry{text: make([]byte, 0, initialBuffer)} })
	s.records = make([]sdklog.Record, 0, s.batchSize)

	for _, f := range l.enc.reqHeaders {
		s.headerKeys = append(s.headerKeys, "http.request.header."+strings.ToLower(f.canon))
	}
	s.reqHeaders = len(s.headerKeys)
	for _, f := range l.enc.respHeaders {
		s.headerKeys = append(s.headerKeys, "http.response.header."+strings.ToLower(f.canon))
	}

	// The resource of the gateway's spans, so that its logs and traces are
	// one entity in a backend.
	res := tracing.Resource(*tr, version)
	s.provider = sdklog.NewLoggerProvider(
		sdklog.WithResource(res),
		sdklog.WithProcessor(collector{s}),
		sdklog.WithAttributeCountLimit(attributeCountLimit),
		sdklog.WithAttributeValueLengthLimit(-1), // values are cut here
		// Keys are unique by construction (the header allow-lists are
		// deduplicated, Referer has its own field): skip the SDK's
		// per-record deduplication map.
		sdklog.WithAllowKeyDuplication(),
	)
	s.logger = s.provider.Logger(InstrumentationName, otellog.WithInstrumentationVersion(version))
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.queue = batch.New(batch.Options{
		Capacity: size, BatchSize: s.batchSize, MaxDelay: s.flushInterval,
	}, s.export)
	return s, nil
}

// capture queues the finished request for export. It never blocks: with
// every entry in use the record is dropped and counted. now is the time
// the access log observed the request's end.
func (s *otlpSink) capture(rec *observe.Record, r *http.Request, respHeader http.Header, now time.Time) {
	if s.l.closed.Load() {
		s.dropped.Add(1)
		return
	}
	e, ok := s.entries.Get()
	if !ok {
		s.dropped.Add(1)
		return
	}
	s.fill(e, rec, r, respHeader, now)
	if s.queue.Put(e) != nil {
		s.dropped.Add(1)
		s.put(e)
	}
}

// put clears e (so that it keeps no request's strings alive) and makes it
// available again.
func (s *otlpSink) put(e *otlpEntry) {
	text, headers, reasons := e.text[:0], e.headers, e.retryReasons
	if cap(text) > maxPooledBuffer {
		text = make([]byte, 0, initialBuffer)
	}
	clear(reasons)
	*e = otlpEntry{text: text, headers: headers[:0], retryReasons: reasons[:0]}
	s.entries.Put(e)
}

// fill copies the request into e.
func (s *otlpSink) fill(e *otlpEntry, rec *observe.Record, r *http.Request, respHeader http.Header, now time.Time) {
	e.end, e.observed, e.trace = rec.End, now, rec.Trace
	path, query := requestTarget(r)
	e.method = e.add(r.Method)
	e.path = e.add(path)
	e.query = e.add(query)
	e.host = e.add(r.Host)
	enc := s.l.enc
	if !enc.omitUA {
		e.ua = e.add(headerValue(r.Header, "User-Agent"))
	}
	if !enc.omitReferer {
		e.referer = e.add(headerValue(r.Header, "Referer"))
	}
	for i := range enc.reqHeaders {
		for _, v := range r.Header[enc.reqHeaders[i].canon] {
			e.headers = append(e.headers, entryHeader{field: i, value: e.add(v)})
		}
	}
	for i := range enc.respHeaders {
		for _, v := range respHeader[enc.respHeaders[i].canon] {
			e.headers = append(e.headers, entryHeader{field: s.reqHeaders + i, value: e.add(v)})
		}
	}
	e.proto = protocolVersion(r)
	e.listener, e.client = rec.Listener, rec.ClientAddr
	e.route, e.template = rec.Route, rec.RouteTemplate
	e.service, e.upstream, e.split = rec.Service, rec.Upstream, rec.Split
	e.breaker, e.rateLimit, e.fault = rec.Breaker, rec.RateLimit, rec.Fault
	for i := 1; i < len(rec.Attempts); i++ {
		e.retryReasons = append(e.retryReasons, rec.Attempts[i].RetryReason)
	}
	e.status, e.grpcStatus, e.attempts = rec.Status, rec.GRPCStatus, len(rec.Attempts)
	e.errKind, e.mirrored, e.aborted = rec.ErrorKind, rec.Mirrored, rec.Aborted
	e.bytesIn, e.bytesOut = rec.BytesIn, rec.BytesOut
	e.total, e.upstreamTime, e.overhd = rec.Total(), rec.UpstreamTime(), rec.Overhead()
}

// add copies v into e.text, cut at maxValueBytes, and returns its span.
func (e *otlpEntry) add(v string) span {
	if v == "" {
		return span{}
	}
	off := len(e.text)
	switch {
	case off+len(truncMark) > maxEntryBytes:
		return span{}
	case off+min(len(v), maxValueBytes) > maxEntryBytes:
		e.text = append(e.text, truncMark...)
	case len(v) > maxValueBytes:
		e.text = append(e.text, v[:maxValueBytes]...)
		e.text = append(e.text, truncMark...)
	default:
		e.text = append(e.text, v...)
	}
	return span{off: int32(off), n: int32(len(e.text) - off)}
}

func (e *otlpEntry) bytes(s span) []byte { return e.text[s.off : s.off+s.n] }

// export is the queue's handler: it turns a batch of entries into log
// records, recycles the entries and sends the records in one export call,
// bounded by the exporter timeout.
func (s *otlpSink) export(entries []*otlpEntry) {
	for _, e := range entries {
		s.emit(e)
		s.put(e)
	}
	n := uint64(len(s.records))
	if n == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	err := s.exp.Export(ctx, s.records)
	cancel()
	clear(s.records)
	s.records = s.records[:0]
	if err != nil {
		s.failed.Add(n)
		s.lastErr.Store(&err)
		return
	}
	s.exported.Add(n)
}

// collector is the LoggerProvider's only processor: it runs on the
// exporter goroutine (inside logger.Emit), adds the request's trace
// context and attributes and appends the record to the batch. Setting the
// attributes here, in one call, costs one allocation instead of the SDK's
// one-by-one copy of an API record's attributes.
type collector struct{ s *otlpSink }

func (c collector) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }

func (c collector) OnEmit(_ context.Context, r *sdklog.Record) error {
	s := c.s
	if t := &s.cur.trace; t.Valid {
		r.SetTraceID(trace.TraceID(t.TraceID))
		r.SetSpanID(trace.SpanID(t.SpanID))
		if t.Sampled {
			r.SetTraceFlags(trace.FlagsSampled)
		}
	}
	r.SetAttributes(s.attrs...)
	// The SDK made r for this call and keeps no reference: no Clone.
	s.records = append(s.records, *r)
	return nil
}

func (collector) Shutdown(context.Context) error   { return nil }
func (collector) ForceFlush(context.Context) error { return nil }

// emit turns e into a log record and hands it to the collector.
func (s *otlpSink) emit(e *otlpEntry) {
	s.cur = e
	defer func() { s.cur = nil }()
	var rec otellog.Record
	rec.SetEventName(EventName)
	rec.SetTimestamp(e.end)
	rec.SetObservedTimestamp(e.observed)
	sev, sevText := severity(e)
	rec.SetSeverity(sev)
	rec.SetSeverityText(sevText)

	method, path := s.str(e, e.method), s.str(e, e.path)
	target := e.template
	if target == "" {
		target = path
	}
	rec.SetBody(attribute.StringValue(method + " " + target + " " + strconv.Itoa(e.status)))

	a := s.attrs[:0]
	a = append(a, attribute.String("http.request.method", method), attribute.String("url.path", path))
	if e.query.n > 0 {
		s.sbuf = s.l.enc.appendQuery(s.sbuf[:0], string(e.bytes(e.query)), appendValidUTF8)
		a = append(a, attribute.String("url.query", string(s.sbuf)))
	}
	a = appendString(a, "http.route", e.template)
	a = appendString(a, "network.protocol.version", e.proto)
	a = appendString(a, "server.address", s.str(e, e.host))
	a = appendString(a, "client.address", e.client)
	a = appendString(a, "user_agent.original", s.str(e, e.ua))
	if e.referer.n > 0 {
		s.sbuf = s.l.enc.appendURL(s.sbuf[:0], string(e.bytes(e.referer)), appendValidUTF8)
		a = append(a, attribute.StringSlice("http.request.header.referer", []string{string(s.sbuf)}))
	}
	a = append(a, attribute.Int("http.response.status_code", e.status))
	a = appendString(a, "listener", e.listener)
	a = appendString(a, "route", e.route)
	a = appendString(a, "service", e.service)
	a = appendString(a, "upstream", e.upstream)
	if e.split.Service != "" {
		a = appendString(a, "split.rule", e.split.Rule)
		a = appendString(a, "split.service", e.split.Service)
		a = appendString(a, "split.reason", e.split.Reason)
	}
	a = append(a, attribute.Int("attempts", e.attempts))
	if len(e.retryReasons) > 0 {
		a = append(a, attribute.StringSlice("retry_reasons", e.retryReasons))
	}
	a = appendString(a, "breaker", e.breaker)
	a = appendString(a, "rate_limit", e.rateLimit)
	a = appendString(a, "fault", e.fault)
	if e.mirrored {
		a = append(a, attribute.Bool("mirrored", true))
	}
	if e.aborted {
		a = append(a, attribute.Bool("aborted", true))
	}
	if e.grpcStatus >= 0 {
		a = append(a, attribute.Int("rpc.grpc.status_code", e.grpcStatus))
	}
	a = appendString(a, "error.type", e.errKind.String())
	a = append(a,
		attribute.Int64("http.request.body.size", e.bytesIn),
		attribute.Int64("http.response.body.size", e.bytesOut),
		attribute.Float64("duration_seconds", e.total.Seconds()),
		attribute.Float64("upstream_duration_seconds", e.upstreamTime.Seconds()),
		attribute.Float64("overhead_seconds", e.overhd.Seconds()),
	)
	// Header values, grouped per header (entries list them in order).
	for i := 0; i < len(e.headers); {
		j := i
		for j < len(e.headers) && e.headers[j].field == e.headers[i].field {
			j++
		}
		vs := make([]string, 0, j-i)
		for _, h := range e.headers[i:j] {
			vs = append(vs, s.str(e, h.value))
		}
		a = append(a, attribute.StringSlice(s.headerKeys[e.headers[i].field], vs))
		i = j
	}
	s.attrs = a
	s.logger.Emit(context.Background(), rec)
	clear(a)
	s.attrs = a[:0]
}

// str returns a client-controlled value as valid UTF-8.
func (s *otlpSink) str(e *otlpEntry, sp span) string {
	if sp.n == 0 {
		return ""
	}
	b := e.bytes(sp)
	if utf8.Valid(b) {
		return string(b)
	}
	s.sbuf = appendValidUTF8(s.sbuf[:0], string(b))
	return string(s.sbuf)
}

// appendValidUTF8 appends s with every invalid byte sequence replaced by
// U+FFFD: OTLP strings must be valid UTF-8, or the collector refuses the
// whole batch. It is the escaper the shared query redaction writes with.
func appendValidUTF8(dst []byte, s string) []byte {
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, s[:size]...)
		}
		s = s[size:]
	}
	return dst
}

func appendString(a []attribute.KeyValue, key, v string) []attribute.KeyValue {
	if v == "" {
		return a
	}
	return append(a, attribute.String(key, v))
}

// severity maps a request's outcome to a log severity: ERROR for 5xx,
// upstream transport failures and aborted responses, WARN for 4xx, INFO
// otherwise.
func severity(e *otlpEntry) (otellog.Severity, string) {
	switch {
	case e.status >= 500 || e.errKind.IsUpstreamFailure() || e.aborted:
		return otellog.SeverityError, "ERROR"
	case e.status >= 400:
		return otellog.SeverityWarn, "WARN"
	}
	return otellog.SeverityInfo, "INFO"
}

// close stops the queue, exporting what is queued until deadline; then it
// aborts an export in progress and shuts the exporter down. Entries still
// queued at the deadline are counted as dropped.
func (s *otlpSink) close(deadline time.Time) error {
	var err error
	qctx, qcancel := context.WithDeadline(context.Background(), deadline)
	left, qerr := s.queue.Close(qctx)
	qcancel()
	if qerr != nil {
		s.dropped.Add(uint64(left))
		err = fmt.Errorf("access log: otlp: %d records not exported within the close timeout: the collector is not answering", left)
		s.cancel()
		// The export in progress returns once its context is canceled.
		select {
		case <-s.queue.Done():
		case <-time.After(time.Second):
		}
	}
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if e := s.exp.Shutdown(ctx); e != nil && !errors.Is(e, context.Canceled) {
		err = errors.Join(err, fmt.Errorf("access log: otlp: shutting the exporter down: %w", e))
	}
	if e := s.provider.Shutdown(ctx); e != nil {
		err = errors.Join(err, fmt.Errorf("access log: otlp: %w", e))
	}
	return err
}

// reportDrops logs, at most once per report interval, the records dropped
// or lost since the last report.
func (s *otlpSink) reportDrops() {
	if n := s.dropped.Load(); n > s.reportedDropped {
		s.l.log.Warn("access log records dropped: the OTLP export is not keeping up",
			"dropped", n-s.reportedDropped, "dropped_total", n, "queue_size", s.queue.Cap(), "reason", "otlp_queue_full")
		s.reportedDropped = n
	}
	if n := s.failed.Load(); n > s.reportedFailed {
		attrs := []any{"dropped", n - s.reportedFailed, "dropped_total", n, "reason", "otlp_export_error"}
		if err := s.lastErr.Load(); err != nil {
			attrs = append(attrs, "err", *err)
		}
		s.l.log.Warn("access log records lost: the OTLP export failed", attrs...)
		s.reportedFailed = n
	}
}
