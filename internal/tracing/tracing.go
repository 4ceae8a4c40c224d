// Package tracing gives every request through Vantage a trace context and,
// for the traces kept, OpenTelemetry spans: one SERVER span per request,
// named by route template, and one CLIENT span per upstream attempt, so
// retries are visible.
//
// The request path is built to be cheap for the traces that are not kept.
// When a request arrives, the middleware (ForRoute) extracts the incoming
// context (see package propagation), applies the edge trust policy, takes
// the head sampling decision, and keeps a small pooled per-request state in
// the request's Record: ids, the decision, the attempts that got a span of
// their own, and the decision events of the request. No span exists yet. The
// transport wrapper (WrapTransport) injects the context into each upstream
// attempt, the Observer (Observe) buffers decision events. When the request
// ends, the late decision can still keep a trace the head decision dropped
// (errors, slow and retried requests). Only then, and only for kept traces,
// are the spans built, with the recorded ids and the Record's timestamps:
// written once as OTLP Span messages for the OTLP exporters, and as
// OpenTelemetry SDK span snapshots for any other exporter. They go to the
// exporters' bounded queues (package export), whose goroutines do the
// exporting.
//
// Nothing here uses the OpenTelemetry globals: the propagators, exporters
// and resource belong to the Tracing value.
package tracing

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/redact"
	"github.com/vantage-gateway/vantage/internal/tracing/export"
	"github.com/vantage-gateway/vantage/internal/tracing/propagation"
	"github.com/vantage-gateway/vantage/internal/tracing/sampling"
)

// InstrumentationName is the instrumentation scope of Vantage's spans.
const InstrumentationName = "github.com/vantage-gateway/vantage/internal/tracing"

// Options are the dependencies of a Tracing.
type Options struct {
	// Logger receives export errors (rate-limited). Nil discards.
	Logger *slog.Logger
	// Registerer receives the tracing metrics (spans exported and dropped
	// per exporter, queue sizes, sampling decisions). Nil: not registered.
	Registerer prometheus.Registerer
	// ServiceName is service.name when the config sets none (default
	// "vantage").
	ServiceName string
	// Version is service.version ("" omits it).
	Version string
	// Clock times the sampling rate caps and the error log (default real).
	// Span timestamps come from the Record.
	Clock clock.Clock
	// Redaction is the redaction policy of url.query, url.full and
	// recorded headers (nil: the default policy with the section's own
	// sensitive_query_params).
	Redaction *redact.Policy
	// Exporters are extra span exporters beside the configured ones (the
	// embedded trace store, tests), each behind its own bounded queue with
	// the default sizes, named "extra-<index>". Tracing owns them:
	// Shutdown shuts them down.
	Exporters []sdktrace.SpanExporter
	// Sink, when set, also receives the spans of every kept trace, as
	// they are built (the embedded trace store).
	Sink SpanSink
}

// SpanSink takes the spans of each kept trace beside the exporters,
// without their being encoded: an in-process store.
type SpanSink interface {
	// TakeSpans is called on the request goroutine with the spans of one
	// kept trace, the SERVER span last, and their resource and scope. It
	// must copy what it keeps and return without waiting: the slices are
	// reused once it returns.
	TakeSpans(res *resource.Resource, scope instrumentation.Scope, spans []export.SpanData)
}

// Tracing is the tracing of one gateway process: built once at start from
// the validated config, used by every route's middleware, every service's
// transport and the decision-event stream. Its methods are safe for
// concurrent use. A Tracing built from a disabled config does nothing:
// ForRoute returns nil, WrapTransport returns its argument.
type Tracing struct {
	enabled bool
	cfg     config.Tracing
	clock   clock.Clock
	logger  *slog.Logger

	props  *propagation.Propagators
	bits64 bool
	procs  []*export.Processor // empty when nothing is exported
	sink   SpanSink            // nil when none
	// encodedProcs counts the procs that take encoded spans (OTLP).
	encodedProcs int
	resource     *resource.Resource
	scope        instrumentation.Scope

	parentBased bool
	headLimiter *sampling.Limiter
	late        sampling.Late

	global    edgeSettings
	listeners map[string]edgeSettings

	redact      *redact.Policy
	reqHeaders  []recordedHeader
	respHeaders []recordedHeader

	decisions [7]prometheus.Counter
}

// edgeSettings are the settings that vary by listener and route.
type edgeSettings struct {
	trust bool
	resp  responseHeader
}

// responseHeader is a resolved response_header setting; name "" is off.
type responseHeader struct {
	name          string // canonical header name
	traceresponse bool
}

type recordedHeader struct {
	name string // canonical
	key  attribute.Key
}

// New builds the tracing described by cfg (after defaults and validation):
// propagators, samplers, and the exporters with their queues. Exporters connect lazily, so a backend that is down does not
// fail New.
func New(cfg config.Tracing, opts Options) (*Tracing, error) {
	t := &Tracing{enabled: cfg.IsEnabled(), cfg: cfg, clock: opts.Clock, logger: opts.Logger, sink: opts.Sink}
	if t.clock == nil {
		t.clock = clock.Real{}
	}
	if !t.enabled {
		return t, nil
	}
	// A config built in code may skip SetDefaults: nil lists mean the
	// defaults (an empty list means none, as OTEL_PROPAGATORS=none says).
	extract, inject := cfg.Propagation.Extract, cfg.Propagation.Inject
	if extract == nil {
		extract = config.DefaultExtract
	}
	if inject == nil {
		inject = config.DefaultInject
	}
	var err error
	if t.props, err = propagation.New(extract, inject); err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	t.bits64 = cfg.Propagation.TraceIDBits == 64
	t.parentBased = cfg.Sampling.ParentBased == nil || *cfg.Sampling.ParentBased
	t.headLimiter = sampling.NewLimiter(cfg.Sampling.MaxPerSecond, t.clock)
	late := cfg.Sampling.Late
	t.late = sampling.Late{
		Errors:     late.Errors == nil || *late.Errors,
		Retried:    late.Retried == nil || *late.Retried,
		SlowerThan: late.SlowerThan.D(),
		Limiter:    sampling.NewLimiter(late.MaxPerSecond, t.clock),
	}

	t.global = edgeSettings{trust: cfg.TrustIncoming == nil || *cfg.TrustIncoming, resp: resolveResponseHeader(cfg.ResponseHeader)}
	t.listeners = make(map[string]edgeSettings, len(cfg.Listeners))
	for name, l := range cfg.Listeners {
		s := t.global
		if l.TrustIncoming != nil {
			s.trust = *l.TrustIncoming
		}
		if l.ResponseHeader != "" {
			s.resp = resolveResponseHeader(l.ResponseHeader)
		}
		t.listeners[name] = s
	}

	t.redact = opts.Redaction
	if t.redact == nil {
		t.redact = (&config.Config{Tracing: cfg}).RedactPolicy()
	}
	t.reqHeaders = resolveRecordedHeaders("http.request.header.", cfg.RecordRequestHeaders, t.redact)
	t.respHeaders = resolveRecordedHeaders("http.response.header.", cfg.RecordResponseHeaders, t.redact)

	metrics, err := export.NewMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("tracing: metrics: %w", err)
	}
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "vantage", Subsystem: "tracing", Name: "traces_total",
		Help: "Requests by sampling decision: parent, ratio, late_error, late_slow, late_retried (kept); dropped, rate_limited (not kept).",
	}, []string{"decision"})
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(decisions); err != nil {
			return nil, fmt.Errorf("tracing: metrics: %w", err)
		}
	}
	for _, r := range sampling.Reasons() {
		t.decisions[r] = decisions.WithLabelValues(r.String())
	}

	t.resource = buildResource(cfg, opts)
	t.scope = instrumentation.Scope{Name: InstrumentationName, Version: opts.Version}
	ctx := context.Background()
	for _, ec := range cfg.Exporters {
		exp, err := export.NewExporter(ec)
		if err != nil {
			t.shutdownProcs(ctx)
			return nil, fmt.Errorf("tracing: %w", err)
		}
		t.procs = append(t.procs, export.NewProcessor(exp, export.ProcessorOptions{
			Name: ec.Name, QueueSize: ec.QueueSize, BatchSize: ec.BatchSize,
			FlushInterval: ec.FlushInterval.D(), Timeout: ec.Timeout.D(),
			Logger: opts.Logger, Clock: t.clock, Metrics: metrics,
			Resource: t.resource, Scope: t.scope,
		}))
	}
	for i, exp := range opts.Exporters {
		t.procs = append(t.procs, export.NewProcessor(exp, export.ProcessorOptions{
			Name: fmt.Sprintf("extra-%d", i), Logger: opts.Logger, Clock: t.clock, Metrics: metrics,
			Resource: t.resource, Scope: t.scope,
		}))
	}
	for _, p := range t.procs {
		if p.TakesEncoded() {
			t.encodedProcs++
		}
	}
	return t, nil
}

// Enabled reports whether tracing is on.
func (t *Tracing) Enabled() bool { return t.enabled }

// Exporting reports whether any exporter receives spans.
func (t *Tracing) Exporting() bool { return len(t.procs) > 0 || t.sink != nil }

// ForceFlush exports every span queued so far, waiting at most until ctx
// ends.
func (t *Tracing) ForceFlush(ctx context.Context) error {
	var errs []error
	for _, p := range t.procs {
		if err := p.ForceFlush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("exporter %q: %w", p.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// Shutdown flushes the queued spans and stops the exporters, waiting at
// most until ctx ends. Spans of requests that end later are dropped and
// counted. It is safe to call more than once.
func (t *Tracing) Shutdown(ctx context.Context) error {
	var errs []error
	for _, p := range t.procs {
		if err := p.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("exporter %q: %w", p.Name(), err))
		}
	}
	return errors.Join(errs...)
}

func (t *Tracing) shutdownProcs(ctx context.Context) { _ = t.Shutdown(ctx) }

func resolveResponseHeader(s string) responseHeader {
	switch s {
	case "", config.ResponseHeaderOff:
		return responseHeader{}
	case config.ResponseHeaderTraceresponse:
		return responseHeader{name: "Traceresponse", traceresponse: true}
	}
	return responseHeader{name: canonicalHeader(s)}
}

func canonicalHeader(s string) string { return http.CanonicalHeaderKey(s) }

func resolveRecordedHeaders(prefix string, names []string, pol *redact.Policy) []recordedHeader {
	out := make([]recordedHeader, 0, len(names))
	for _, n := range names {
		if pol.Header(n) {
			continue // validation refuses these; never record them anyway
		}
		out = append(out, recordedHeader{name: canonicalHeader(n), key: attribute.Key(prefix + strings.ToLower(n))})
	}
	return out
}

// Resource returns the resource Vantage's spans carry for cfg and version
// (service.name, service.version, host.name, telemetry.sdk.*, the
// configured resource attributes), so that other signals can carry the
// same one.
func Resource(cfg config.Tracing, version string) *resource.Resource {
	return buildResource(cfg, Options{Version: version})
}

func buildResource(cfg config.Tracing, opts Options) *resource.Resource {
	name := cfg.ServiceName
	if name == "" {
		name = opts.ServiceName
	}
	if name == "" {
		name = config.DefaultTracingServiceName
	}
	attrs := []attribute.KeyValue{
		attribute.String("service.name", name),
		attribute.String("telemetry.sdk.name", "opentelemetry"),
		attribute.String("telemetry.sdk.language", "go"),
		attribute.String("telemetry.sdk.version", sdk.Version()),
	}
	if opts.Version != "" {
		attrs = append(attrs, attribute.String("service.version", opts.Version))
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		attrs = append(attrs, attribute.String("host.name", h))
	}
	for k, v := range cfg.ResourceAttributes {
		if k == "service.name" || k == "service.version" && opts.Version != "" {
			continue
		}
		attrs = append(attrs, attribute.String(k, v))
	}
	return resource.NewSchemaless(attrs...)
}

// newTraceID returns a random trace id whose low 64 bits are never zero
// (Datadog and OpenTracing carry only those), with zero high bits when
// trace_id_bits is 64.
func (t *Tracing) newTraceID() trace.TraceID {
	var id trace.TraceID
	if !t.bits64 {
		binary.BigEndian.PutUint64(id[:8], rand.Uint64())
	}
	binary.BigEndian.PutUint64(id[8:], nonZero())
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	binary.BigEndian.PutUint64(id[:], nonZero())
	return id
}

func nonZero() uint64 {
	for {
		if v := rand.Uint64(); v != 0 {
			return v
		}
	}
}

var (
	_ middleware.Factory = (*Tracing)(nil)
	_ observe.Observer   = (*Tracing)(nil)
)

// now is the tracing clock: decision event times, and Start and End of the
// records it keeps itself outside the gateway.
func (t *Tracing) now() time.Time { return t.clock.Now() }
