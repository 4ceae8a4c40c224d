package tracestore

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/tracing/export"
)

func TestSinkTakesGatewaySpansAndLogs(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	res := resource.NewSchemaless(attribute.String("service.name", "edge"), attribute.String("host.name", "h1"))
	k := s.NewSink(res, time.Second)
	tid := trace.TraceID{1, 2, 3}
	server := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	client := server.WithSpanID(trace.SpanID{2})
	spans := []export.SpanData{
		{
			SpanContext: client, Parent: server, Name: "GET shop", Kind: trace.SpanKindClient,
			Start: t0.Add(time.Millisecond), End: t0.Add(9 * time.Millisecond),
			Attributes: []attribute.KeyValue{attribute.Int("http.response.status_code", 503), attribute.Int("http.request.resend_count", 1)},
			Status:     sdktrace.Status{Code: codes.Error, Description: "status_503"},
		},
		{
			SpanContext: server, Name: "GET /cart", Kind: trace.SpanKindServer, Start: t0, End: t0.Add(10 * time.Millisecond),
			Attributes: []attribute.KeyValue{
				attribute.String("http.route", "/cart"), attribute.Int("http.response.status_code", 200),
				attribute.StringSlice("http.request.header.x-request-id", []string{"a", "b"}),
			},
			Events: []sdktrace.Event{{Name: "retry", Time: t0.Add(5 * time.Millisecond), Attributes: []attribute.KeyValue{attribute.String("vantage.reason", "status_503")}}},
		},
	}
	k.TakeSpans(res, instrumentation.Scope{Name: "vantage", Version: "1"}, spans)
	// The caller reuses its slices at once: the store must have copied.
	spans[1].Name = "reused"
	spans[1].Attributes[0] = attribute.String("reused", "x")

	rec := &observe.Record{Start: t0, End: t0.Add(10 * time.Millisecond), Status: 200}
	rec.Trace = observe.TraceContext{TraceID: tid, SpanID: trace.SpanID{1}, Sampled: true, Valid: true}
	if !k.WantsLog(rec) {
		t.Fatal("a sampled request's log line is not wanted")
	}
	line := []byte(`{"http.route":"/cart"}` + "\n")
	k.TakeLog(rec, line)
	line[2] = 'X'
	unsampled := &observe.Record{Start: t0, End: t0.Add(time.Millisecond), Status: 200}
	unsampled.Trace = observe.TraceContext{TraceID: tid, Valid: true}
	if k.WantsLog(unsampled) {
		t.Error("the log line of a fast, successful, unsampled request is wanted")
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	tr, ok := s.GetTrace(TraceID(tid), false)
	if !ok {
		t.Fatal("trace not stored")
	}
	if len(tr.Spans) != 2 || tr.Class != ClassError {
		t.Fatalf("spans %d, class %s", len(tr.Spans), tr.Class)
	}
	sv := tr.Spans[1]
	if sv.Name != "GET /cart" || sv.Kind != KindServer || sv.Resource.ServiceName != "edge" || sv.Scope.Name != "vantage" || sv.Flags != 1 {
		t.Errorf("server span: %+v", sv)
	}
	if kv, _ := sv.Attr("http.request.header.x-request-id"); kv.Str != `["a","b"]` {
		t.Errorf("string slice attribute: %+v", kv)
	}
	if len(sv.Events) != 1 || !sv.Events[0].Time.Equal(t0.Add(5*time.Millisecond)) {
		t.Errorf("events: %+v", sv.Events)
	}
	cl := tr.Spans[0]
	if cl.ParentSpanID != SpanID(server.SpanID()) || cl.StatusCode != StatusError || cl.StatusMessage != "status_503" {
		t.Errorf("client span: %+v", cl)
	}
	if got := s.Search(Query{Route: "/cart"}); len(got) != 1 {
		t.Errorf("route index: %v", got)
	}
	if len(tr.Logs) != 1 || tr.Logs[0].Body != `{"http.route":"/cart"}` || tr.Logs[0].Service != "edge" || tr.Logs[0].SeverityText != "INFO" {
		t.Errorf("logs: %+v", tr.Logs)
	}
}
