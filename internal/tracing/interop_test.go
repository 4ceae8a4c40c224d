package tracing

import (
	"context"
	"encoding/binary"
	"net/http"
	"strconv"
	"testing"

	"github.com/openzipkin/zipkin-go"
	zipkinhttp "github.com/openzipkin/zipkin-go/middleware/http"
	"github.com/openzipkin/zipkin-go/reporter/recorder"
	otelprop "go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// Interop tests: real third-party tracing clients call through the gateway
// and serve behind it. The gateway must continue their traces and be the
// parent their upstream spans see.

func serverAndClient(t *testing.T, spans tracetest.SpanStubs) (server, client tracetest.SpanStub) {
	t.Helper()
	for _, s := range spans {
		switch s.SpanKind {
		case trace.SpanKindServer:
			server = s
		case trace.SpanKindClient:
			client = s
		}
	}
	if !server.SpanContext.IsValid() || !client.SpanContext.IsValid() {
		t.Fatalf("gateway spans: %d, want a server and a client span", len(spans))
	}
	return server, client
}

// TestInteropOpenTelemetrySDK: an OpenTelemetry-SDK client calls through the
// gateway to an OpenTelemetry-SDK service.
func TestInteropOpenTelemetrySDK(t *testing.T) {
	prop := otelprop.NewCompositeTextMapPropagator(otelprop.TraceContext{}, otelprop.Baggage{})

	// The upstream service, instrumented with its own SDK provider.
	upSpans := tracetest.NewInMemoryExporter()
	upTP := sdktrace.NewTracerProvider(sdktrace.WithSyncer(upSpans))
	defer upTP.Shutdown(context.Background())
	up := newUpstream(t)
	up.onRequest = func(r *http.Request) {
		ctx := prop.Extract(r.Context(), otelprop.HeaderCarrier(r.Header))
		_, span := upTP.Tracer("upstream").Start(ctx, "GET /items/{id}", trace.WithSpanKind(trace.SpanKindServer))
		span.End()
	}

	cfg := parseTracing(t, "", "")
	gwSpans := tracetest.NewInMemoryExporter()
	tr := newTracing(t, cfg, Options{Exporters: []sdktrace.SpanExporter{gwSpans}})
	gw := startGateway(t, tr, cfg, "public", mustURL(t, up.srv.URL), 1)

	// The caller, with its own SDK provider.
	callerSpans := tracetest.NewInMemoryExporter()
	callerTP := sdktrace.NewTracerProvider(sdktrace.WithSyncer(callerSpans))
	defer callerTP.Shutdown(context.Background())
	ctx, span := callerTP.Tracer("caller").Start(context.Background(), "GET items", trace.WithSpanKind(trace.SpanKindClient))
	hdr := http.Header{}
	prop.Inject(ctx, otelprop.HeaderCarrier(hdr))
	gw.get(t, "/items/3", hdr)
	span.End()
	if err := tr.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}

	caller := callerSpans.GetSpans()[0]
	server, client := serverAndClient(t, gwSpans.GetSpans())
	if server.SpanContext.TraceID() != caller.SpanContext.TraceID() || server.Parent.SpanID() != caller.SpanContext.SpanID() {
		t.Errorf("gateway did not continue the caller's trace: server %v parent %v, caller %v", server.SpanContext, server.Parent, caller.SpanContext)
	}
	upstream := upSpans.GetSpans()
	if len(upstream) != 1 {
		t.Fatalf("upstream spans %d", len(upstream))
	}
	if upstream[0].SpanContext.TraceID() != caller.SpanContext.TraceID() || upstream[0].Parent.SpanID() != client.SpanContext.SpanID() {
		t.Errorf("upstream parent %v, want the gateway's client span %v", upstream[0].Parent, client.SpanContext)
	}
	if !upstream[0].SpanContext.IsSampled() {
		t.Error("upstream did not follow the sampled decision")
	}
}

// TestInteropZipkinGo: a zipkin-go client (B3 multi headers, 128-bit ids)
// calls through the gateway to a zipkin-go service; the gateway injects B3.
func TestInteropZipkinGo(t *testing.T) {
	for _, bits128 := range []bool{true, false} {
		t.Run("128bit="+strconv.FormatBool(bits128), func(t *testing.T) {
			upRec := recorder.NewReporter()
			// Unshared spans: the service's span is a child of the
			// propagated one (Zipkin's default would join it instead).
			upTracer, err := zipkin.NewTracer(upRec, zipkin.WithTraceID128Bit(bits128), zipkin.WithSharedSpans(false))
			if err != nil {
				t.Fatal(err)
			}
			up := newUpstream(t)
			var upHandler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
			upHandler = zipkinhttp.NewServerMiddleware(upTracer, zipkinhttp.SpanName("upstream"))(upHandler)
			up.onRequest = func(r *http.Request) { upHandler.ServeHTTP(discardWriter{}, r) }

			cfg := parseTracing(t, "propagation:\n  inject: [b3multi, tracecontext]\n", "")
			gwSpans := tracetest.NewInMemoryExporter()
			tr := newTracing(t, cfg, Options{Exporters: []sdktrace.SpanExporter{gwSpans}})
			gw := startGateway(t, tr, cfg, "public", mustURL(t, up.srv.URL), 1)

			callerRec := recorder.NewReporter()
			callerTracer, err := zipkin.NewTracer(callerRec, zipkin.WithTraceID128Bit(bits128))
			if err != nil {
				t.Fatal(err)
			}
			rt, err := zipkinhttp.NewTransport(callerTracer, zipkinhttp.TransportTrace(false))
			if err != nil {
				t.Fatal(err)
			}
			parent := callerTracer.StartSpan("caller")
			req, _ := http.NewRequestWithContext(zipkin.NewContext(context.Background(), parent), http.MethodGet, gw.srv.URL+"/items/9", nil)
			resp, err := (&http.Client{Transport: rt}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			parent.Finish()
			_ = tr.ForceFlush(context.Background())

			var callerClient zipkinSpan
			for _, s := range callerRec.Flush() {
				if s.Kind == "CLIENT" {
					callerClient = zipkinSpan{traceID: s.TraceID.String(), id: s.ID.String()}
				}
			}
			server, client := serverAndClient(t, gwSpans.GetSpans())
			if got := server.SpanContext.TraceID().String(); got != pad128(callerClient.traceID) {
				t.Errorf("gateway trace %s, zipkin caller trace %s", got, callerClient.traceID)
			}
			if server.Parent.SpanID().String() != callerClient.id {
				t.Errorf("gateway parent %s, zipkin caller span %s", server.Parent.SpanID(), callerClient.id)
			}
			upSpans := upRec.Flush()
			if len(upSpans) != 1 || upSpans[0].ParentID == nil {
				t.Fatalf("zipkin upstream spans %+v", upSpans)
			}
			if got := upSpans[0].ParentID.String(); got != client.SpanContext.SpanID().String() {
				t.Errorf("zipkin upstream parent %s, want the gateway's client span %s", got, client.SpanContext.SpanID())
			}
			if pad128(upSpans[0].TraceID.String()) != server.SpanContext.TraceID().String() {
				t.Errorf("zipkin upstream trace %s, gateway %s", upSpans[0].TraceID, server.SpanContext.TraceID())
			}
		})
	}
}

type zipkinSpan struct{ traceID, id string }

func pad128(hexID string) string {
	for len(hexID) < 32 {
		hexID = "0" + hexID
	}
	return hexID
}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}

// TestInteropDatadogHeaders checks the Datadog headers against Datadog's
// documented format (decimal 64-bit ids; the high half of a 128-bit trace
// id in x-datadog-tags as _dd.p.tid; priority 1/0), computed here
// independently of the propagator. dd-trace-go itself is not used: its
// module pulls in a very large dependency tree.
func TestInteropDatadogHeaders(t *testing.T) {
	cfg := parseTracing(t, "propagation:\n  inject: [datadog]\n", "")
	gwSpans := tracetest.NewInMemoryExporter()
	tr := newTracing(t, cfg, Options{Exporters: []sdktrace.SpanExporter{gwSpans}})
	up := newUpstream(t)
	gw := startGateway(t, tr, cfg, "public", mustURL(t, up.srv.URL), 1)

	// A Datadog-instrumented caller: 128-bit trace, priority 2 (user keep).
	const high, low, parent = uint64(0x640cfd8d00000000), uint64(1234567890123456789), uint64(987654321)
	gw.get(t, "/items/1", h(
		"x-datadog-trace-id", strconv.FormatUint(low, 10),
		"x-datadog-parent-id", strconv.FormatUint(parent, 10),
		"x-datadog-sampling-priority", "2",
		"x-datadog-origin", "rum",
		"x-datadog-tags", "_dd.p.dm=-4,_dd.p.tid=640cfd8d00000000",
	))
	_ = tr.ForceFlush(context.Background())
	server, client := serverAndClient(t, gwSpans.GetSpans())
	tid := server.SpanContext.TraceID()
	if binary.BigEndian.Uint64(tid[:8]) != high || binary.BigEndian.Uint64(tid[8:]) != low {
		t.Errorf("gateway trace id %s, want high %x low %x", tid, high, low)
	}
	psid := server.Parent.SpanID()
	if binary.BigEndian.Uint64(psid[:]) != parent {
		t.Errorf("gateway parent %s, want %d", psid, parent)
	}
	got := up.received()[0]
	csid := client.SpanContext.SpanID()
	want := map[string]string{
		"X-Datadog-Trace-Id":          strconv.FormatUint(low, 10),
		"X-Datadog-Parent-Id":         strconv.FormatUint(binary.BigEndian.Uint64(csid[:]), 10),
		"X-Datadog-Sampling-Priority": "1",
		"X-Datadog-Tags":              "_dd.p.tid=640cfd8d00000000",
	}
	for k, v := range want {
		if got.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, got.Get(k), v)
		}
	}
	if got.Get("X-Datadog-Origin") != "" || got.Get("Traceparent") != "" {
		t.Errorf("unexpected headers upstream: %v", got)
	}
}
