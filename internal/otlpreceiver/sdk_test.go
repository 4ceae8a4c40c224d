package otlpreceiver

import (
	"context"
	"encoding/hex"
	"net"
	"net/http/httptest"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// recorder is a consumer that keeps what it is given. Its next error, when
// set, is returned (and cleared) by the next call instead of keeping.
type recorder struct {
	mu       sync.Mutex
	traces   []*coltracepb.ExportTraceServiceRequest
	logs     []*collogspb.ExportLogsServiceRequest
	failures int   // calls left that answer failWith
	failWith error // returned while failures > 0
	reject   int64 // reported as rejected by every call
	calls    int
	changed  chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (c *recorder) ConsumeTraces(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.failures > 0 {
		c.failures--
		return 0, c.failWith
	}
	c.traces = append(c.traces, req)
	c.notify()
	return c.reject, nil
}

func (c *recorder) ConsumeLogs(_ context.Context, req *collogspb.ExportLogsServiceRequest) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.failures > 0 {
		c.failures--
		return 0, c.failWith
	}
	c.logs = append(c.logs, req)
	c.notify()
	return c.reject, nil
}

func (c *recorder) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// spans returns every span received so far, flattened with its resource
// and scope.
func (c *recorder) spans() []flatSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []flatSpan
	for _, req := range c.traces {
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					out = append(out, flatSpan{res: attrMap(rs.GetResource().GetAttributes()), scope: ss.GetScope().GetName(), span: s})
				}
			}
		}
	}
	return out
}

type flatSpan struct {
	res   map[string]any
	scope string
	span  *tracepb.Span
}

func (c *recorder) waitSpans(t *testing.T, n int) []flatSpan {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		if s := c.spans(); len(s) >= n {
			return s
		}
		select {
		case <-c.changed:
		case <-deadline.C:
			t.Fatalf("received %d spans, want %d", len(c.spans()), n)
		}
	}
}

// attrMap flattens OTLP attributes for comparison.
func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		m[kv.Key] = anyValue(kv.Value)
	}
	return m
}

func anyValue(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return string(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		var out []any
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, anyValue(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		return attrMap(x.KvlistValue.GetValues())
	}
	return nil
}

// sdkAttrMap flattens SDK attributes the way the OTLP exporter maps them.
func sdkAttrMap(kvs []attribute.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		m[string(kv.Key)] = sdkValue(kv.Value)
	}
	return m
}

func sdkValue(v attribute.Value) any {
	switch v.Type() {
	case attribute.BOOL:
		return v.AsBool()
	case attribute.INT64:
		return v.AsInt64()
	case attribute.FLOAT64:
		return v.AsFloat64()
	case attribute.STRING:
		return v.AsString()
	case attribute.BYTESLICE:
		return string(v.AsByteSlice())
	case attribute.BOOLSLICE:
		return sliceOf(v.AsBoolSlice())
	case attribute.INT64SLICE:
		return sliceOf(v.AsInt64Slice())
	case attribute.FLOAT64SLICE:
		return sliceOf(v.AsFloat64Slice())
	case attribute.STRINGSLICE:
		return sliceOf(v.AsStringSlice())
	case attribute.SLICE:
		var out []any
		for _, e := range v.AsSlice() {
			out = append(out, sdkValue(e))
		}
		return out
	case attribute.MAP:
		return sdkAttrMap(v.AsMap())
	}
	return nil
}

func sliceOf[T any](s []T) []any {
	var out []any
	for _, e := range s {
		out = append(out, e)
	}
	return out
}

// everyType is one attribute of each type the SDK has.
var everyType = []attribute.KeyValue{
	attribute.Bool("b", true),
	attribute.Int64("i", -42),
	attribute.Float64("f", 2.5),
	attribute.String("s", "héllo"),
	attribute.BoolSlice("bs", []bool{true, false}),
	attribute.Int64Slice("is", []int64{1, 1 << 40}),
	attribute.Float64Slice("fs", []float64{0.5, -1}),
	attribute.StringSlice("ss", []string{"a", ""}),
	attribute.ByteSlice("raw", []byte{0, 0xff, 7}),
	attribute.Slice("mixed", attribute.StringValue("x"), attribute.Int64Value(7), attribute.SliceValue(attribute.BoolValue(false))),
	attribute.Map("nested", attribute.String("k", "v"), attribute.Map("inner", attribute.Float64("pi", 3.14))),
}

// startHTTP serves r's handlers on 127.0.0.1.
func startHTTP(t *testing.T, r *Receiver) string {
	t.Helper()
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv.URL
}

// startGRPC serves r's gRPC services on 127.0.0.1.
func startGRPC(t *testing.T, r *Receiver) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := r.NewGRPCServer()
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return ln.Addr().String()
}

func newReceiver(t *testing.T, o Options) (*Receiver, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	o.Registerer = reg
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r, reg
}

// emitSpans makes a parent and a child span with every attribute type, an
// event and a link, exported through exp; it returns what the SDK ended.
func emitSpans(t *testing.T, exp sdktrace.SpanExporter) tracetest.SpanStubs {
	t.Helper()
	mem := tracetest.NewInMemoryExporter()
	res := resource.NewWithAttributes("", attribute.String("service.name", "checkout"), attribute.Int64("replica", 3))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(exp), sdktrace.WithSyncer(mem))
	tr := tp.Tracer("shop/checkout")
	linked := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
		SpanID:  trace.SpanID{0xbb, 1, 2, 3, 4, 5, 6, 7}, TraceFlags: trace.FlagsSampled,
	})
	ctx, parent := tr.Start(context.Background(), "GET /cart", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(everyType...), trace.WithLinks(trace.Link{SpanContext: linked, Attributes: []attribute.KeyValue{attribute.String("why", "batch")}}))
	_, child := tr.Start(ctx, "SELECT cart", trace.WithSpanKind(trace.SpanKindClient))
	child.AddEvent("retry", trace.WithAttributes(attribute.Int64("attempt", 2)))
	child.SetStatus(codes.Error, "timeout")
	child.End()
	parent.End()
	ended := mem.GetSpans() // Shutdown empties it
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ended
}

// checkSpans asserts that every span the SDK ended arrived intact.
func checkSpans(t *testing.T, want tracetest.SpanStubs, got []flatSpan) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d spans, want %d", len(got), len(want))
	}
	sort.Slice(got, func(i, j int) bool { return got[i].span.GetName() < got[j].span.GetName() })
	sort.Slice(want, func(i, j int) bool { return want[i].Name < want[j].Name })
	for i, w := range want {
		g := got[i].span
		if g.GetName() != w.Name {
			t.Errorf("span %d name %q, want %q", i, g.GetName(), w.Name)
		}
		if hex.EncodeToString(g.GetTraceId()) != w.SpanContext.TraceID().String() || hex.EncodeToString(g.GetSpanId()) != w.SpanContext.SpanID().String() {
			t.Errorf("span %q ids %x/%x, want %s/%s", w.Name, g.GetTraceId(), g.GetSpanId(), w.SpanContext.TraceID(), w.SpanContext.SpanID())
		}
		if w.Parent.IsValid() && hex.EncodeToString(g.GetParentSpanId()) != w.Parent.SpanID().String() {
			t.Errorf("span %q parent %x, want %s", w.Name, g.GetParentSpanId(), w.Parent.SpanID())
		}
		if int64(g.GetStartTimeUnixNano()) != w.StartTime.UnixNano() || int64(g.GetEndTimeUnixNano()) != w.EndTime.UnixNano() {
			t.Errorf("span %q times differ", w.Name)
		}
		if !equalAny(attrMap(g.GetAttributes()), sdkAttrMap(w.Attributes)) {
			t.Errorf("span %q attributes %v, want %v", w.Name, attrMap(g.GetAttributes()), sdkAttrMap(w.Attributes))
		}
		if !equalAny(got[i].res, sdkAttrMap(w.Resource.Attributes())) {
			t.Errorf("span %q resource %v, want %v", w.Name, got[i].res, sdkAttrMap(w.Resource.Attributes()))
		}
		if got[i].scope != w.InstrumentationScope.Name {
			t.Errorf("span %q scope %q, want %q", w.Name, got[i].scope, w.InstrumentationScope.Name)
		}
		if len(g.GetEvents()) != len(w.Events) {
			t.Fatalf("span %q has %d events, want %d", w.Name, len(g.GetEvents()), len(w.Events))
		}
		for j, e := range w.Events {
			ge := g.GetEvents()[j]
			if ge.GetName() != e.Name || !equalAny(attrMap(ge.GetAttributes()), sdkAttrMap(e.Attributes)) || int64(ge.GetTimeUnixNano()) != e.Time.UnixNano() {
				t.Errorf("span %q event %d = %v, want %v", w.Name, j, ge, e)
			}
		}
		if len(g.GetLinks()) != len(w.Links) {
			t.Fatalf("span %q has %d links, want %d", w.Name, len(g.GetLinks()), len(w.Links))
		}
		for j, l := range w.Links {
			gl := g.GetLinks()[j]
			if hex.EncodeToString(gl.GetTraceId()) != l.SpanContext.TraceID().String() || hex.EncodeToString(gl.GetSpanId()) != l.SpanContext.SpanID().String() ||
				!equalAny(attrMap(gl.GetAttributes()), sdkAttrMap(l.Attributes)) {
				t.Errorf("span %q link %d = %v, want %v", w.Name, j, gl, l)
			}
		}
		if w.Status.Code == codes.Error && (g.GetStatus().GetCode() != 2 || g.GetStatus().GetMessage() != w.Status.Description) {
			t.Errorf("span %q status %v, want error %q", w.Name, g.GetStatus(), w.Status.Description)
		}
		if int(g.GetKind()) != int(w.SpanKind) { // OTLP and the SDK number kinds alike
			t.Errorf("span %q kind %v, want %v", w.Name, g.GetKind(), w.SpanKind)
		}
	}
}

func equalAny(a, b map[string]any) bool { return reflect.DeepEqual(a, b) }

func TestSDKExportersDeliverSpansIntact(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		exp  func(t *testing.T, r *Receiver) sdktrace.SpanExporter
	}{
		{"http protobuf", func(t *testing.T, r *Receiver) sdktrace.SpanExporter {
			e, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(startHTTP(t, r)+TracesPath))
			if err != nil {
				t.Fatal(err)
			}
			return e
		}},
		{"http protobuf gzip", func(t *testing.T, r *Receiver) sdktrace.SpanExporter {
			e, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(startHTTP(t, r)+TracesPath), otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
			if err != nil {
				t.Fatal(err)
			}
			return e
		}},
		{"grpc", func(t *testing.T, r *Receiver) sdktrace.SpanExporter {
			e, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(startGRPC(t, r)), otlptracegrpc.WithInsecure())
			if err != nil {
				t.Fatal(err)
			}
			return e
		}},
		{"grpc gzip", func(t *testing.T, r *Receiver) sdktrace.SpanExporter {
			e, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(startGRPC(t, r)), otlptracegrpc.WithInsecure(), otlptracegrpc.WithCompressor("gzip"))
			if err != nil {
				t.Fatal(err)
			}
			return e
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			r, reg := newReceiver(t, Options{Traces: rec, Logs: rec})
			want := emitSpans(t, tc.exp(t, r))
			checkSpans(t, want, rec.waitSpans(t, len(want)))
			transport := transportHTTP
			if tc.name[:4] == "grpc" {
				transport = transportGRPC
			}
			if got := testutil.ToFloat64(r.m.requests.WithLabelValues(signalTraces, transport, outcomeSuccess)); got != 2 {
				t.Errorf("requests_total{success} = %v, want 2 (one per span: a syncer exports each)", got)
			}
			if got := testutil.ToFloat64(r.m.itemsVec.WithLabelValues(signalTraces, "accepted")); got != 2 {
				t.Errorf("items_total{accepted} = %v, want 2", got)
			}
			if _, err := reg.Gather(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSDKLogExporterDeliversRecords(t *testing.T) {
	rec := newRecorder()
	r, _ := newReceiver(t, Options{Traces: rec, Logs: rec})
	ctx := context.Background()
	exp, err := otlploghttp.New(ctx, otlploghttp.WithEndpointURL(startHTTP(t, r)+LogsPath))
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewWithAttributes("", attribute.String("service.name", "checkout"))
	lp := sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)))
	spanCtx := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:  trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled,
	}))
	var lr otellog.Record
	now := time.Now()
	lr.SetTimestamp(now)
	lr.SetSeverity(otellog.SeverityWarn)
	lr.SetSeverityText("WARN")
	lr.SetBody(attribute.StringValue("cart is empty"))
	lr.AddAttributes(everyType...)
	lp.Logger("shop/checkout").Emit(spanCtx, lr)
	var noCtx otellog.Record
	noCtx.SetBody(attribute.StringValue("no span"))
	lp.Logger("shop/checkout").Emit(ctx, noCtx)
	if err := lp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var got []*logspb.LogRecord
	for _, req := range rec.logs {
		for _, rl := range req.ResourceLogs {
			if attrMap(rl.GetResource().GetAttributes())["service.name"] != "checkout" {
				t.Errorf("resource %v", rl.GetResource())
			}
			for _, sl := range rl.ScopeLogs {
				if sl.GetScope().GetName() != "shop/checkout" {
					t.Errorf("scope %q", sl.GetScope().GetName())
				}
				got = append(got, sl.LogRecords...)
			}
		}
	}
	if len(got) != 2 {
		t.Fatalf("got %d log records, want 2", len(got))
	}
	l := got[0]
	if hex.EncodeToString(l.TraceId) != "0102030405060708090a0b0c0d0e0f10" || hex.EncodeToString(l.SpanId) != "0102030405060708" {
		t.Errorf("ids %x %x", l.TraceId, l.SpanId)
	}
	if int64(l.TimeUnixNano) != now.UnixNano() || l.SeverityNumber != 13 || l.SeverityText != "WARN" || l.Body.GetStringValue() != "cart is empty" {
		t.Errorf("record %v", l)
	}
	wantAttrs := sdkAttrMap(everyType)
	if !equalAny(attrMap(l.Attributes), wantAttrs) {
		t.Errorf("attributes %v, want %v", attrMap(l.Attributes), wantAttrs)
	}
	if len(got[1].TraceId) != 0 || got[1].Body.GetStringValue() != "no span" {
		t.Errorf("record without span %v", got[1])
	}
}
