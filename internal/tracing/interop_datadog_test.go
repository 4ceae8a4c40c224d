package tracing

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/DataDog/dd-trace-go/v2/ddtrace/ext"
	"github.com/DataDog/dd-trace-go/v2/ddtrace/mocktracer"
	"github.com/DataDog/dd-trace-go/v2/ddtrace/tracer"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestInteropDatadogTracer: a caller instrumented with Datadog's Go tracer
// (dd-trace-go, its mock tracer: real propagators, no agent) sends only
// Datadog headers through the gateway to a service that extracts them with
// dd-trace-go. The gateway continues the 128-bit trace (low half in
// x-datadog-trace-id, high half in _dd.p.tid) and is the service's parent.
func TestInteropDatadogTracer(t *testing.T) {
	mt := mocktracer.Start()
	defer mt.Stop()

	up := newUpstream(t)
	up.onRequest = func(r *http.Request) {
		sc, err := tracer.Extract(tracer.HTTPHeadersCarrier(r.Header))
		if err != nil {
			t.Errorf("dd-trace-go could not extract what the gateway sent: %v (%v)", err, r.Header)
			return
		}
		tracer.StartSpan("upstream", tracer.ChildOf(sc)).Finish()
	}

	cfg := parseTracing(t, "propagation:\n  inject: [datadog, tracecontext]\n", "")
	gwSpans := tracetest.NewInMemoryExporter()
	tr := newTracing(t, cfg, Options{Exporters: []sdktrace.SpanExporter{gwSpans}})
	gw := startGateway(t, tr, cfg, "public", mustURL(t, up.srv.URL), 1)

	caller := tracer.StartSpan("caller")
	caller.SetTag(ext.ManualKeep, true) // sampling priority 2: keep
	hdr := http.Header{}
	if err := tracer.Inject(caller.Context(), tracer.HTTPHeadersCarrier(hdr)); err != nil {
		t.Fatal(err)
	}
	// Only the Datadog headers: the gateway must read them, not W3C.
	hdr.Del("Traceparent")
	hdr.Del("Tracestate")
	if hdr.Get("X-Datadog-Trace-Id") == "" {
		t.Fatalf("dd-trace-go injected no Datadog headers: %v", hdr)
	}
	gw.get(t, "/items/5", hdr)
	caller.Finish()
	if err := tr.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}

	server, client := serverAndClient(t, gwSpans.GetSpans())
	cctx := caller.Context()
	if got, want := server.SpanContext.TraceID().String(), cctx.TraceID(); got != want {
		t.Errorf("gateway trace %s, Datadog caller's 128-bit trace %s", got, want)
	}
	if got, want := server.Parent.SpanID().String(), hex64(cctx.SpanID()); got != want {
		t.Errorf("gateway parent %s, Datadog caller span %s", got, want)
	}

	var upstream *mocktracer.Span
	for _, s := range mt.FinishedSpans() {
		if s.OperationName() == "upstream" {
			upstream = s
		}
	}
	if upstream == nil {
		t.Fatal("the Datadog-instrumented service recorded no span")
	}
	if got, want := hex64(upstream.ParentID()), client.SpanContext.SpanID().String(); got != want {
		t.Errorf("service parent %s, want the gateway's client span %s", got, want)
	}
	if got, want := upstream.Context().TraceID(), server.SpanContext.TraceID().String(); got != want {
		t.Errorf("service trace %s, gateway trace %s", got, want)
	}
}

func hex64(id uint64) string {
	s := strconv.FormatUint(id, 16)
	for len(s) < 16 {
		s = "0" + s
	}
	return s
}
