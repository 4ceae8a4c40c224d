package otlpreceiver

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/vantage-gateway/vantage/internal/clock"
)

// fuzzLimits are small, so the fuzzer reaches every limit.
var fuzzLimits = Limits{MaxItemsPerRequest: 8, MaxAttributes: 4, MaxEvents: 2, MaxLinks: 2, MaxValueBytes: 16, MaxDepth: 3}

// fuzzTarget is a receiver with a recording consumer, built once per fuzz
// target: the fuzz engine runs one input at a time per process.
type fuzzTarget struct {
	rec *recorder
	r   *Receiver
}

func newFuzzTarget(f *testing.F) *fuzzTarget {
	rec := newRecorder()
	r, err := New(Options{Traces: rec, Logs: rec, Limits: fuzzLimits, MaxBodyBytes: 1 << 16, Clock: clock.NewFake(testNow)})
	if err != nil {
		f.Fatal(err)
	}
	return &fuzzTarget{rec: rec, r: r}
}

// post posts body to path and checks what any body must get: an OTLP
// answer in the request's encoding, and, when accepted, a request that
// passes validation again unchanged (nothing invalid or oversized reaches
// the consumer).
func (ft *fuzzTarget) post(t *testing.T, path, contentType string, body []byte) {
	rec, r := ft.rec, ft.r
	rec.mu.Lock()
	rec.traces, rec.logs = nil, nil
	rec.mu.Unlock()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	json := contentType == "application/json"
	unmarshal := proto.Unmarshal
	if json {
		unmarshal = protojson.Unmarshal
	}
	switch w.Code {
	case http.StatusOK:
		var resp proto.Message = &coltracepb.ExportTraceServiceResponse{}
		if path == LogsPath {
			resp = &collogspb.ExportLogsServiceResponse{}
		}
		if err := unmarshal(w.Body.Bytes(), resp); err != nil {
			t.Fatalf("200 answer %q does not decode: %v", w.Body.Bytes(), err)
		}
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
	default:
		t.Fatalf("status %d for %q", w.Code, body)
	}
	v := validator{lim: fuzzLimits.withDefaults(), now: testNow}
	for _, got := range rec.traces {
		again := proto.Clone(got).(*coltracepb.ExportTraceServiceRequest)
		vd := v.traces(again)
		if vd.rejected != 0 || vd.truncated != 0 || !proto.Equal(again, got) {
			t.Fatalf("the consumer got spans that do not pass validation again: %v", vd.reasons)
		}
		checkTraces(t, got)
	}
	for _, got := range rec.logs {
		again := proto.Clone(got).(*collogspb.ExportLogsServiceRequest)
		vd := v.logs(again)
		if vd.rejected != 0 || vd.truncated != 0 || !proto.Equal(again, got) {
			t.Fatalf("the consumer got log records that do not pass validation again: %v", vd.reasons)
		}
	}
}

// checkTraces asserts the invariants the consumer is promised directly, not
// through the validator.
func checkTraces(t *testing.T, req *coltracepb.ExportTraceServiceRequest) {
	n := 0
	for _, rs := range req.ResourceSpans {
		if len(rs.ScopeSpans) == 0 {
			t.Fatal("a resource without spans reached the consumer")
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				n++
				if len(s.TraceId) != 16 || allZero(s.TraceId) || len(s.SpanId) != 8 || allZero(s.SpanId) {
					t.Fatalf("span with ids %x/%x reached the consumer", s.TraceId, s.SpanId)
				}
				if s.EndTimeUnixNano < s.StartTimeUnixNano || len(s.Attributes) > fuzzLimits.MaxAttributes || len(s.Name) > fuzzLimits.MaxValueBytes {
					t.Fatalf("span %v reached the consumer", s)
				}
			}
		}
	}
	if n == 0 || n > fuzzLimits.MaxItemsPerRequest {
		t.Fatalf("%d spans reached the consumer", n)
	}
}

func seedTraces() *coltracepb.ExportTraceServiceRequest {
	s := goodSpan(tid1, sid1)
	s.ParentSpanId = []byte{0, 0, 0, 0, 0, 0, 0, 0}
	s.Events = []*tracepb.Span_Event{{Name: "e", TimeUnixNano: s.StartTimeUnixNano, Attributes: s.Attributes}}
	s.Links = []*tracepb.Span_Link{{TraceId: s.TraceId, SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}}}
	s.Attributes = append(s.Attributes, &commonpb.KeyValue{Key: "kv", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{
		KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{{Key: "a", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{
			ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{strValue("x"), {Value: &commonpb.AnyValue_IntValue{IntValue: 3}}}}}}}}}}}})
	return tracesRequest(s, goodSpan(tid1, sid2))
}

func seedLogs() *collogspb.ExportLogsServiceRequest {
	s := goodSpan(tid1, sid1)
	return &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{
		{TimeUnixNano: s.EndTimeUnixNano, TraceId: s.TraceId, SpanId: s.SpanId, SeverityNumber: 9, Body: strValue("hello"), Attributes: s.Attributes},
		{Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: s.Attributes}}}},
	}}}}}}
}

func jsonSeeds() []string {
	start, end := testNow.Add(-time.Second).UnixNano(), testNow.UnixNano()
	return []string{
		`{}`,
		`{"resourceSpans":[]}`,
		fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"x"}}]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"0000000000000000","name":"n","kind":2,"startTimeUnixNano":"%d","endTimeUnixNano":%d,"attributes":[{"key":"a","value":{"arrayValue":{"values":[{"kvlistValue":{"values":[{"key":"b","value":{"bytesValue":"AAE="}}]}}]}}}],"events":[{"name":"e","timeUnixNano":"%d"}],"links":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175"}],"status":{"code":2}}]}]}]}`, start, end, start),
	}
}

func logsJSONSeeds() []string {
	end := testNow.UnixNano()
	return []string{
		`{}`,
		fmt.Sprintf(`{"resourceLogs":[{"resource":{},"scopeLogs":[{"scope":{"name":"s"},"logRecords":[{"timeUnixNano":"%d","observedTimeUnixNano":%d,"severityNumber":9,"severityText":"INFO","body":{"stringValue":"hi"},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","attributes":[{"key":"k","value":{"doubleValue":1.5}}]},{"body":{"kvlistValue":{"values":[{"key":"k","value":{"boolValue":true}}]}},"traceId":"00000000000000000000000000000000"}]}]}]}`, end, end),
	}
}

func FuzzTracesProto(f *testing.F) {
	b, _ := proto.Marshal(seedTraces())
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	ft := newFuzzTarget(f)
	f.Fuzz(func(t *testing.T, body []byte) { ft.post(t, TracesPath, "application/x-protobuf", body) })
}

func FuzzTracesJSON(f *testing.F) {
	// protojson's own output varies from run to run; a seed must not.
	b, _ := protojson.MarshalOptions{Multiline: false}.Marshal(seedTraces())
	f.Add(bytes.Join(bytes.Fields(b), nil)) // base64 ids: rejected, not fatal
	for _, s := range jsonSeeds() {
		f.Add([]byte(s))
	}
	ft := newFuzzTarget(f)
	f.Fuzz(func(t *testing.T, body []byte) { ft.post(t, TracesPath, "application/json", body) })
}

func FuzzLogsProto(f *testing.F) {
	b, _ := proto.Marshal(seedLogs())
	f.Add(b)
	f.Add([]byte{})
	ft := newFuzzTarget(f)
	f.Fuzz(func(t *testing.T, body []byte) { ft.post(t, LogsPath, "application/x-protobuf", body) })
}

func FuzzLogsJSON(f *testing.F) {
	for _, s := range logsJSONSeeds() {
		f.Add([]byte(s))
	}
	ft := newFuzzTarget(f)
	f.Fuzz(func(t *testing.T, body []byte) { ft.post(t, LogsPath, "application/json", body) })
}
