package tracestore

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/vantage-gateway/vantage/internal/otlpreceiver"
)

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func res(service string, kvs ...*commonpb.KeyValue) *resourcepb.Resource {
	return &resourcepb.Resource{Attributes: append([]*commonpb.KeyValue{str("service.name", service)}, kvs...)}
}

func pspan(trace, span, parent uint64, name string) *tracepb.Span {
	t, s := tid(trace), sid(span)
	sp := &tracepb.Span{TraceId: t[:], SpanId: s[:], Name: name, Kind: tracepb.Span_SPAN_KIND_SERVER,
		StartTimeUnixNano: uint64(t0.UnixNano()), EndTimeUnixNano: uint64(t0.UnixNano() + 5e6)}
	if parent != 0 {
		p := sid(parent)
		sp.ParentSpanId = p[:]
	}
	return sp
}

func TestOTLPConsumerTraces(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	c := s.OTLPConsumer()
	ok := pspan(1, 2, 1, "cart.load")
	ok.Attributes = []*commonpb.KeyValue{
		{Key: "list", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{
			{Value: &commonpb.AnyValue_StringValue{StringValue: "a\x00"}}, {Value: &commonpb.AnyValue_IntValue{IntValue: 7}},
		}}}}},
		{Key: "map", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{str("k", "v")}}}}},
		{Key: "http.response.status_code", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 500}}},
	}
	ok.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "boom"}
	ok.Events = []*tracepb.Span_Event{{TimeUnixNano: uint64(t0.UnixNano() + 1e6), Name: "exception", Attributes: []*commonpb.KeyValue{str("exception.type", "E")}}}
	badTrace := pspan(0, 3, 0, "bad")
	badTrace.TraceId = make([]byte, 16)
	badSpan := pspan(1, 4, 0, "bad")
	badSpan.SpanId = []byte{1, 2, 3}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{Resource: res("cart", str("k8s.pod.name", "cart-1")), ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "otelhttp", Version: "0.6"},
			Spans: []*tracepb.Span{ok, badTrace, badSpan},
		}}},
		{Resource: res("vantage"), ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{pspan(1, 1, 0, "GET /cart")}}}},
	}}
	rejected, err := c.ConsumeTraces(context.Background(), req)
	if err != nil || rejected != 2 {
		t.Fatalf("rejected %d, err %v; want 2, nil", rejected, err)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	tr, found := s.GetTrace(tid(1), false)
	if !found || len(tr.Spans) != 2 || tr.Class != ClassError {
		t.Fatalf("stored: %+v", tr)
	}
	sp := tr.Spans[0]
	if sp.Resource.ServiceName != "cart" || sp.Scope.Name != "otelhttp" || sp.StatusMessage != "boom" || len(sp.Events) != 1 {
		t.Errorf("span: %+v", sp)
	}
	if kv, _ := sp.Attr("list"); kv.Str != `["a\u0000",7]` {
		t.Errorf("array value: %q", kv.Str)
	}
	if kv, _ := sp.Attr("map"); kv.Str != `{"k":"v"}` {
		t.Errorf("map value: %q", kv.Str)
	}
	if got := s.Dependencies(t0.Add(1), 1e12); len(got) != 1 || got[0].Parent != "vantage" || got[0].Child != "cart" {
		t.Errorf("dependencies: %v", got)
	}
	if got := s.Search(Query{HTTPStatus: 500}); len(got) != 1 {
		t.Errorf("status index: %v", got)
	}
}

func TestOTLPConsumerLogs(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	c := s.OTLPConsumer()
	id := tid(9)
	req := &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{
		Resource: res("cart"),
		ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{
			{TimeUnixNano: uint64(t0.UnixNano()), TraceId: id[:], SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_WARN, SeverityText: "WARN",
				Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "slow query"}}},
			{ObservedTimeUnixNano: uint64(t0.UnixNano()), TraceId: id[:],
				Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{str("msg", "hi")}}}}},
			{Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "no trace"}}},
			{TraceId: []byte{1}},
		}}},
	}}}
	rejected, err := c.ConsumeLogs(context.Background(), req)
	if err != nil || rejected != 1 {
		t.Fatalf("rejected %d, err %v", rejected, err)
	}
	s.Flush(context.Background())
	tr, ok := s.GetTrace(id, false)
	if !ok || len(tr.Logs) != 2 || tr.Logs[0].Body != "slow query" || tr.Logs[1].Body != `{"msg":"hi"}` || tr.Logs[0].Service != "cart" {
		t.Fatalf("logs: %+v", tr)
	}
	if got := testutil.ToFloat64(s.m.logsDropped[dropNoTrace]); got != 1 {
		t.Errorf("no_trace drops: %v", got)
	}
}

func TestOTLPConsumerOverloaded(t *testing.T) {
	s, _ := newTestStore(t, Options{QueueSize: 1})
	c := s.OTLPConsumer()
	// Hold the store so that its writer blocks and the queue fills.
	s.mu.Lock()
	var err error
	for i := uint64(1); i <= 10 && err == nil; i++ {
		_, err = c.ConsumeTraces(context.Background(), &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
			{Resource: res("svc"), ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{pspan(i, 1, 0, "op")}}}},
		}})
	}
	s.mu.Unlock()
	if !errors.Is(err, otlpreceiver.ErrOverloaded) {
		t.Fatalf("a full queue: err %v, want ErrOverloaded", err)
	}
	if _, err := c.ConsumeLogs(context.Background(), &collogspb.ExportLogsServiceRequest{}); err != nil && !errors.Is(err, otlpreceiver.ErrOverloaded) {
		t.Fatal(err)
	}
}
