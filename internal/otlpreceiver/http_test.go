package otlpreceiver

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/vantage-gateway/vantage/internal/clock"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// goodSpan returns a valid span with the given ids (hex) ending at testNow.
func goodSpan(traceID, spanID string) *tracepb.Span {
	tid, _ := hex.DecodeString(traceID)
	sid, _ := hex.DecodeString(spanID)
	return &tracepb.Span{
		TraceId: tid, SpanId: sid, Name: "op",
		StartTimeUnixNano: uint64(testNow.Add(-time.Second).UnixNano()),
		EndTimeUnixNano:   uint64(testNow.UnixNano()),
		Attributes:        []*commonpb.KeyValue{{Key: "k", Value: strValue("v")}},
	}
}

func strValue(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

const (
	tid1 = "0af7651916cd43dd8448eb211c80319c"
	sid1 = "b7ad6b7169203331"
	sid2 = "00f067aa0ba902b7"
)

func tracesRequest(spans ...*tracepb.Span) *coltracepb.ExportTraceServiceRequest {
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func post(t *testing.T, url, contentType, contentEncoding string, body []byte, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if contentEncoding != "" {
		req.Header.Set("Content-Encoding", contentEncoding)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

func mustProto(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// status decodes a google.rpc.Status answer in the given encoding.
func (a answer) status_(t *testing.T, json bool) *spb.Status {
	t.Helper()
	st := &spb.Status{}
	var err error
	if json {
		err = protojson.Unmarshal(a.body, st)
	} else {
		err = proto.Unmarshal(a.body, st)
	}
	if err != nil {
		t.Fatalf("answer body %q is not a google.rpc.Status: %v", a.body, err)
	}
	return st
}

func (a answer) traceResponse(t *testing.T, json bool) *coltracepb.ExportTraceServiceResponse {
	t.Helper()
	r := &coltracepb.ExportTraceServiceResponse{}
	var err error
	if json {
		err = protojson.Unmarshal(a.body, r)
	} else {
		err = proto.Unmarshal(a.body, r)
	}
	if err != nil {
		t.Fatalf("answer body %q is not an ExportTraceServiceResponse: %v", a.body, err)
	}
	return r
}

func TestHTTPRefusals(t *testing.T) {
	rec := newRecorder()
	r, _ := newReceiver(t, Options{Traces: rec, Logs: rec, MaxBodyBytes: 1 << 16, Clock: clock.NewFake(testNow)})
	base := startHTTP(t, r)
	good := mustProto(t, tracesRequest(goodSpan(tid1, sid1)))
	big := mustProto(t, tracesRequest(&tracepb.Span{Name: strings.Repeat("x", 1<<17)}))
	for _, tc := range []struct {
		name        string
		method      string
		ct, ce      string
		body        []byte
		status      int
		json        bool
		outcome     string
		wantInBody  string
		wantHeaders map[string]string
	}{
		{"malformed protobuf", "POST", "application/x-protobuf", "", []byte{0x0a, 0xff, 0xff}, 400, false, outcomeMalformed, "protobuf", nil},
		{"malformed JSON", "POST", "application/json", "", []byte(`{"resourceSpans": [`), 400, true, outcomeMalformed, "JSON", nil},
		{"JSON of the wrong shape", "POST", "application/json", "", []byte(`{"resourceSpans": 7}`), 400, true, outcomeMalformed, "JSON", nil},
		{"bad gzip", "POST", "application/x-protobuf", "gzip", []byte("not gzip"), 400, false, outcomeMalformed, "gzip", nil},
		{"wrong content type", "POST", "text/plain", "", good, 415, false, outcomeUnsupportedMedia, "Content-Type", nil},
		{"no content type", "POST", "", "", good, 415, false, outcomeUnsupportedMedia, "Content-Type", nil},
		{"unknown content encoding", "POST", "application/x-protobuf", "br", good, 415, false, outcomeUnsupportedMedia, "Content-Encoding", nil},
		{"wrong method", "GET", "application/x-protobuf", "", nil, 405, false, outcomeMethodNotAllowed, "POST", map[string]string{"Allow": "POST"}},
		{"oversized body", "POST", "application/x-protobuf", "", big, 413, false, outcomeTooLarge, "max_body_bytes", nil},
		{"oversized after gunzip", "POST", "application/x-protobuf", "gzip", gz(big), 413, false, outcomeTooLarge, "max_body_bytes", nil},
		{"oversized JSON", "POST", "application/json", "", append([]byte(`{"x":"`), bytes.Repeat([]byte("a"), 1<<17)...), 413, true, outcomeTooLarge, "max_body_bytes", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(r.m.requests.WithLabelValues(signalTraces, transportHTTP, tc.outcome))
			req, _ := http.NewRequest(tc.method, base+TracesPath, bytes.NewReader(tc.body))
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
			}
			if tc.ce != "" {
				req.Header.Set("Content-Encoding", tc.ce)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			a := answer{resp.StatusCode, resp.Header, body}
			if a.status != tc.status {
				t.Fatalf("status %d, want %d (%q)", a.status, tc.status, a.body)
			}
			wantCT := "application/x-protobuf"
			if tc.json {
				wantCT = "application/json"
			}
			if got := a.header.Get("Content-Type"); got != wantCT {
				t.Errorf("Content-Type %q, want %q", got, wantCT)
			}
			if st := a.status_(t, tc.json); !strings.Contains(st.Message, tc.wantInBody) || st.Code == 0 {
				t.Errorf("status body %v, want a code and a message naming %q", st, tc.wantInBody)
			}
			for k, v := range tc.wantHeaders {
				if got := a.header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if got := testutil.ToFloat64(r.m.requests.WithLabelValues(signalTraces, transportHTTP, tc.outcome)); got != before+1 {
				t.Errorf("requests_total{outcome=%q} went from %v to %v, want +1", tc.outcome, before, got)
			}
		})
	}
	if rec.calls != 0 {
		t.Errorf("the consumer was called %d times for refused requests", rec.calls)
	}
	// And a good one still passes, counted once.
	if a := post(t, base+TracesPath, "application/x-protobuf", "", good); a.status != 200 || a.traceResponse(t, false).PartialSuccess != nil {
		t.Fatalf("good request: %d %q", a.status, a.body)
	}
	if got := testutil.ToFloat64(r.m.requests.WithLabelValues(signalTraces, transportHTTP, outcomeSuccess)); got != 1 {
		t.Errorf("requests_total{success} = %v, want 1", got)
	}
}

// TestHTTPPartialSuccess sends spans each wrong in one way, beside a good
// one: the good span reaches the consumer, each bad one is rejected and
// counted, and the answer is a partial success naming the reasons.
func TestHTTPPartialSuccess(t *testing.T) {
	past, future := testNow.Add(-8*24*time.Hour), testNow.Add(2*time.Hour)
	bad := func(name string, f func(s *tracepb.Span)) (string, *tracepb.Span) {
		s := goodSpan(tid1, sid2)
		f(s)
		return name, s
	}
	cases := map[string]*tracepb.Span{}
	for _, c := range []func() (string, *tracepb.Span){
		func() (string, *tracepb.Span) {
			return bad("trace_id is all zeros", func(s *tracepb.Span) { s.TraceId = make([]byte, 16) })
		},
		func() (string, *tracepb.Span) {
			return bad("trace_id is 8 bytes", func(s *tracepb.Span) { s.TraceId = s.TraceId[:8] })
		},
		func() (string, *tracepb.Span) {
			return bad("trace_id is missing", func(s *tracepb.Span) { s.TraceId = nil })
		},
		func() (string, *tracepb.Span) {
			return bad("span_id is all zeros", func(s *tracepb.Span) { s.SpanId = make([]byte, 8) })
		},
		func() (string, *tracepb.Span) {
			return bad("span_id is 9 bytes", func(s *tracepb.Span) { s.SpanId = append(s.SpanId, 1) })
		},
		func() (string, *tracepb.Span) {
			return bad("parent_span_id is 3 bytes", func(s *tracepb.Span) { s.ParentSpanId = []byte{1, 2, 3} })
		},
		func() (string, *tracepb.Span) {
			return bad("end_time_unix_nano is before start", func(s *tracepb.Span) {
				s.StartTimeUnixNano, s.EndTimeUnixNano = s.EndTimeUnixNano, s.StartTimeUnixNano
			})
		},
		func() (string, *tracepb.Span) {
			return bad("start_time_unix_nano is more than", func(s *tracepb.Span) { s.StartTimeUnixNano = uint64(past.UnixNano()) })
		},
		func() (string, *tracepb.Span) {
			return bad("end_time_unix_nano is more than 1h0m0s in the future", func(s *tracepb.Span) { s.EndTimeUnixNano = uint64(future.UnixNano()) })
		},
		func() (string, *tracepb.Span) {
			return bad("start_time_unix_nano is missing", func(s *tracepb.Span) { s.StartTimeUnixNano = 0 })
		},
		func() (string, *tracepb.Span) {
			return bad("end_time_unix_nano is out of range", func(s *tracepb.Span) { s.EndTimeUnixNano = 1 << 63 })
		},
	} {
		name, s := c()
		cases[name] = s
	}
	for name, s := range cases {
		t.Run(name, func(t *testing.T) {
			rec := newRecorder()
			r, _ := newReceiver(t, Options{Traces: rec, Clock: clock.NewFake(testNow)})
			base := startHTTP(t, r)
			a := post(t, base+TracesPath, "application/x-protobuf", "", mustProto(t, tracesRequest(goodSpan(tid1, sid1), s)))
			if a.status != 200 {
				t.Fatalf("status %d %q", a.status, a.body)
			}
			ps := a.traceResponse(t, false).PartialSuccess
			if ps.GetRejectedSpans() != 1 || !strings.Contains(ps.GetErrorMessage(), name) {
				t.Errorf("partial success %v, want 1 rejected naming %q", ps, name)
			}
			got := rec.spans()
			if len(got) != 1 || hex.EncodeToString(got[0].span.SpanId) != sid1 {
				t.Errorf("the consumer got %v, want the good span only", got)
			}
			for outcome, want := range map[string]float64{"accepted": 1, "rejected": 1, "truncated": 0} {
				if v := testutil.ToFloat64(r.m.itemsVec.WithLabelValues(signalTraces, outcome)); v != want {
					t.Errorf("items_total{%s} = %v, want %v", outcome, v, want)
				}
			}
			if v := testutil.ToFloat64(r.m.requests.WithLabelValues(signalTraces, transportHTTP, outcomePartial)); v != 1 {
				t.Errorf("requests_total{partial} = %v, want 1", v)
			}
		})
	}
}

func TestHTTPAllRejectedDoesNotCallTheConsumer(t *testing.T) {
	rec := newRecorder()
	r, _ := newReceiver(t, Options{Traces: rec, Clock: clock.NewFake(testNow)})
	s := goodSpan(tid1, sid1)
	s.TraceId = make([]byte, 16)
	a := post(t, startHTTP(t, r)+TracesPath, "application/x-protobuf", "", mustProto(t, tracesRequest(s, s, s, s)))
	ps := a.traceResponse(t, false).PartialSuccess
	if a.status != 200 || ps.GetRejectedSpans() != 4 || !strings.Contains(ps.GetErrorMessage(), "and 1 more") {
		t.Errorf("answer %d %v, want 4 rejected, 3 reasons and 1 more", a.status, ps)
	}
	if rec.calls != 0 {
		t.Errorf("consumer called %d times", rec.calls)
	}
}

func TestHTTPTruncation(t *testing.T) {
	rec := newRecorder()
	lim := Limits{MaxAttributes: 4, MaxValueBytes: 10, MaxDepth: 3, MaxEvents: 2, MaxLinks: 1}
	r, _ := newReceiver(t, Options{Traces: rec, Limits: lim, Clock: clock.NewFake(testNow)})
	s := goodSpan(tid1, sid1)
	s.Name = "ééééééééé" // 18 bytes: cut at a rune boundary
	s.Attributes = nil
	for i := range 6 {
		s.Attributes = append(s.Attributes, &commonpb.KeyValue{Key: fmt.Sprint("k", i), Value: strValue("0123456789abcdef")})
	}
	// 5 levels of arrays: the fourth is replaced.
	deep := strValue("leaf")
	for range 5 {
		deep = &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{deep}}}}
	}
	s.Attributes[0].Value = deep
	s.Attributes[1].Value = &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: bytes.Repeat([]byte{1}, 50)}}
	for range 3 {
		s.Events = append(s.Events, &tracepb.Span_Event{Name: "e", TimeUnixNano: s.StartTimeUnixNano})
	}
	tid, _ := hex.DecodeString(tid1)
	sid, _ := hex.DecodeString(sid2)
	s.Links = []*tracepb.Span_Link{{TraceId: make([]byte, 16), SpanId: sid}, {TraceId: tid, SpanId: sid}}
	a := post(t, startHTTP(t, r)+TracesPath, "application/x-protobuf", "", mustProto(t, tracesRequest(s)))
	if a.status != 200 || a.traceResponse(t, false).PartialSuccess != nil {
		t.Fatalf("answer %d %q, want 200 without partial success", a.status, a.body)
	}
	got := rec.spans()[0].span
	if got.Name != "ééééé" {
		t.Errorf("name %q, want cut to 10 bytes at a rune boundary", got.Name)
	}
	if len(got.Attributes) != 4 || got.DroppedAttributesCount != 2 {
		t.Errorf("%d attributes, %d dropped; want 4 and 2", len(got.Attributes), got.DroppedAttributesCount)
	}
	if v := got.Attributes[2].Value.GetStringValue(); v != "0123456789" {
		t.Errorf("value %q, want cut to 10 bytes", v)
	}
	if n := len(got.Attributes[1].Value.GetBytesValue()); n != 10 {
		t.Errorf("bytes value of %d bytes, want 10", n)
	}
	v := got.Attributes[0].Value
	for range 2 {
		v = v.GetArrayValue().GetValues()[0]
	}
	if !strings.Contains(v.GetStringValue(), "nested deeper than 3") {
		t.Errorf("value at depth 3 = %v, want the too-deep marker", v)
	}
	if len(got.Events) != 2 || got.DroppedEventsCount != 1 {
		t.Errorf("%d events, %d dropped; want 2 and 1", len(got.Events), got.DroppedEventsCount)
	}
	if len(got.Links) != 0 || got.DroppedLinksCount != 2 {
		t.Errorf("%d links, %d dropped; want 0 and 2 (one over the limit, one invalid)", len(got.Links), got.DroppedLinksCount)
	}
	for outcome, want := range map[string]float64{"accepted": 1, "rejected": 0, "truncated": 1} {
		if v := testutil.ToFloat64(r.m.itemsVec.WithLabelValues(signalTraces, outcome)); v != want {
			t.Errorf("items_total{%s} = %v, want %v", outcome, v, want)
		}
	}
}

func TestHTTPTooManySpans(t *testing.T) {
	rec := newRecorder()
	r, _ := newReceiver(t, Options{Traces: rec, Limits: Limits{MaxItemsPerRequest: 3}, Clock: clock.NewFake(testNow)})
	var spans []*tracepb.Span
	for range 5 {
		spans = append(spans, goodSpan(tid1, sid1))
	}
	a := post(t, startHTTP(t, r)+TracesPath, "application/x-protobuf", "", mustProto(t, tracesRequest(spans...)))
	if ps := a.traceResponse(t, false).PartialSuccess; ps.GetRejectedSpans() != 2 || !strings.Contains(ps.GetErrorMessage(), "more than 3 spans") {
		t.Errorf("partial success %v, want 2 rejected over the cap of 3", ps)
	}
	if n := len(rec.spans()); n != 3 {
		t.Errorf("consumer got %d spans, want 3", n)
	}
}

// TestHTTPJSON posts OTLP/JSON as the spec writes it: hex ids, enums as
// integers, 64-bit integers as strings or numbers, unknown fields.
func TestHTTPJSON(t *testing.T) {
	rec := newRecorder()
	r, _ := newReceiver(t, Options{Traces: rec, Logs: rec, Clock: clock.NewFake(testNow)})
	base := startHTTP(t, r)
	start, end := testNow.Add(-time.Second).UnixNano(), testNow.UnixNano()
	body := fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"cart"}}]},
	 "scopeSpans":[{"scope":{"name":"lib"},"spans":[
	  {"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"eee19b7ec3c1b173","name":"a","kind":2,
	   "startTimeUnixNano":"%d","endTimeUnixNano":%d,"futureField":{"x":1},
	   "attributes":[{"key":"n","value":{"intValue":"42"}},{"key":"m","value":{"intValue":7}},{"key":"raw","value":{"bytesValue":"AAEC"}}],
	   "links":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175"}],
	   "status":{"code":2,"message":"boom"}},
	  {"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b176","name":"snake","kind":"SPAN_KIND_CLIENT","start_time_unix_nano":"%d","end_time_unix_nano":"%d"},
	  {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"zzzzzzzzzzzzzzzz","name":"not hex","startTimeUnixNano":"%d","endTimeUnixNano":"%d"},
	  {"traceId":"AAAAAAAAAAAAAAAAAAAAAA==","spanId":"eee19b7ec3c1b177","name":"base64 id","startTimeUnixNano":"%d","endTimeUnixNano":"%d"}
	 ]}]}]}`, start, end, start, end, start, end, start, end)
	a := post(t, base+TracesPath, "application/json; charset=utf-8", "", []byte(body))
	if a.status != 200 || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("answer %d %q %q", a.status, a.header.Get("Content-Type"), a.body)
	}
	ps := a.traceResponse(t, true).PartialSuccess
	if ps.GetRejectedSpans() != 2 || !strings.Contains(ps.GetErrorMessage(), "span_id is not 16 hex digits") || !strings.Contains(ps.GetErrorMessage(), "trace_id is not 32 hex digits") {
		t.Errorf("partial success %v, want the non-hex and the base64 ids rejected", ps)
	}
	if !bytes.Contains(a.body, []byte(`"partialSuccess"`)) || !bytes.Contains(a.body, []byte(`"rejectedSpans"`)) {
		t.Errorf("answer %s is not lowerCamelCase OTLP/JSON", a.body)
	}
	got := rec.spans()
	if len(got) != 2 {
		t.Fatalf("consumer got %d spans, want 2", len(got))
	}
	s := got[0].span
	if hex.EncodeToString(s.TraceId) != "5b8efff798038103d269b633813fc60c" || hex.EncodeToString(s.SpanId) != "eee19b7ec3c1b174" ||
		hex.EncodeToString(s.ParentSpanId) != "eee19b7ec3c1b173" || hex.EncodeToString(s.Links[0].SpanId) != "eee19b7ec3c1b175" {
		t.Errorf("ids %x %x %x %x", s.TraceId, s.SpanId, s.ParentSpanId, s.Links[0].SpanId)
	}
	if s.Kind != tracepb.Span_SPAN_KIND_SERVER || s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || int64(s.StartTimeUnixNano) != start || int64(s.EndTimeUnixNano) != end {
		t.Errorf("span %v", s)
	}
	attrs := attrMap(s.Attributes)
	if attrs["n"] != int64(42) || attrs["m"] != int64(7) || attrs["raw"] != "\x00\x01\x02" {
		t.Errorf("attributes %v (bytes values stay base64 in OTLP/JSON)", attrs)
	}
	if got[0].res["service.name"] != "cart" || got[0].scope != "lib" {
		t.Errorf("resource %v scope %q", got[0].res, got[0].scope)
	}
	if s := got[1].span; s.Name != "snake" || s.Kind != tracepb.Span_SPAN_KIND_CLIENT || hex.EncodeToString(s.SpanId) != "eee19b7ec3c1b176" {
		t.Errorf("snake_case span %v", s)
	}
}

func TestHTTPOverloadedConsumer(t *testing.T) {
	rec := newRecorder()
	rec.failures, rec.failWith = 2, fmt.Errorf("store: queue full: %w", ErrOverloaded)
	r, _ := newReceiver(t, Options{Traces: rec, Clock: clock.NewFake(testNow)})
	base := startHTTP(t, r)
	body := mustProto(t, tracesRequest(goodSpan(tid1, sid1)))
	a := post(t, base+TracesPath, "application/x-protobuf", "", body)
	if a.status != 429 || a.header.Get("Retry-After") != "1" {
		t.Fatalf("answer %d Retry-After %q, want 429 with Retry-After: 1", a.status, a.header.Get("Retry-After"))
	}
	if st := a.status_(t, false); st.Code != 8 {
		t.Errorf("status %v, want RESOURCE_EXHAUSTED", st)
	}
	// JSON gets it in JSON.
	a = post(t, base+TracesPath, "application/json", "", []byte(`{}`))
	if a.status != 200 {
		t.Errorf("an empty request: %d, want 200 (nothing to store)", a.status)
	}
	if v := testutil.ToFloat64(r.m.requests.WithLabelValues(signalTraces, transportHTTP, outcomeOverloaded)); v != 1 {
		t.Errorf("requests_total{overloaded} = %v, want 1", v)
	}
	// A failure that is not overload is a 500, not retried.
	rec.mu.Lock()
	rec.failures, rec.failWith = 1, io.ErrUnexpectedEOF
	rec.mu.Unlock()
	if a = post(t, base+TracesPath, "application/x-protobuf", "", body); a.status != 500 {
		t.Errorf("consumer failure: %d, want 500", a.status)
	}
}

// TestSDKRetriesOnOverload: the SDK's exporter is told 429 twice, waits as
// Retry-After says, and the third attempt is stored.
func TestSDKRetriesOnOverload(t *testing.T) {
	rec := newRecorder()
	rec.failures, rec.failWith = 2, ErrOverloaded
	r, _ := newReceiver(t, Options{Traces: rec})
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(startHTTP(t, r)+TracesPath),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: true, InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond, MaxElapsedTime: 20 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	want := emitSpans(t, exp)
	checkSpans(t, want, rec.waitSpans(t, len(want)))
	if v := testutil.ToFloat64(r.m.requests.WithLabelValues(signalTraces, transportHTTP, outcomeOverloaded)); v != 2 {
		t.Errorf("requests_total{overloaded} = %v, want 2", v)
	}
}

func TestHTTPBearerToken(t *testing.T) {
	rec := newRecorder()
	r, _ := newReceiver(t, Options{Traces: rec, BearerToken: "s3cret", Clock: clock.NewFake(testNow)})
	base := startHTTP(t, r)
	body := mustProto(t, tracesRequest(goodSpan(tid1, sid1)))
	for _, auth := range []string{"", "Bearer wrong", "Basic s3cret", "Bearer s3cre", "Bearer s3cret2"} {
		a := post(t, base+TracesPath, "application/x-protobuf", "", body, "Authorization", auth)
		if a.status != 401 || a.header.Get("WWW-Authenticate") == "" || bytes.Contains(a.body, []byte("s3cret")) {
			t.Errorf("Authorization %q: %d %q, want 401 without the token", auth, a.status, a.body)
		}
	}
	if a := post(t, base+TracesPath, "application/x-protobuf", "", body, "Authorization", "bearer s3cret"); a.status != 200 {
		t.Errorf("right token: %d", a.status)
	}
	if v := testutil.ToFloat64(r.m.requests.WithLabelValues(signalTraces, transportHTTP, outcomeUnauthorized)); v != 5 {
		t.Errorf("requests_total{unauthorized} = %v, want 5", v)
	}
}

// TestHTTPInFlightCap: with every slot taken by a consumer that has not
// returned, the next request is refused at once with 503 and Retry-After.
func TestHTTPInFlightCap(t *testing.T) {
	block := &blockingConsumer{entered: make(chan struct{}, 1), release: make(chan struct{})}
	r, _ := newReceiver(t, Options{Traces: block, MaxInFlight: 1, RetryAfter: 3 * time.Second, Clock: clock.NewFake(testNow)})
	base := startHTTP(t, r)
	body := mustProto(t, tracesRequest(goodSpan(tid1, sid1)))
	first := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+TracesPath, "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-block.entered
	a := post(t, base+TracesPath, "application/x-protobuf", "", body)
	close(block.release)
	if a.status != 503 || a.header.Get("Retry-After") != "3" {
		t.Errorf("answer %d Retry-After %q, want 503 with 3", a.status, a.header.Get("Retry-After"))
	}
	if s := <-first; s != 200 {
		t.Errorf("the first request got %d", s)
	}
}

type blockingConsumer struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingConsumer) ConsumeTraces(ctx context.Context, _ *coltracepb.ExportTraceServiceRequest) (int64, error) {
	b.entered <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return 0, nil
}

func TestConsumerRejectedCounts(t *testing.T) {
	rec := newRecorder()
	rec.reject = 1
	r, _ := newReceiver(t, Options{Traces: rec, Clock: clock.NewFake(testNow)})
	a := post(t, startHTTP(t, r)+TracesPath, "application/x-protobuf", "", mustProto(t, tracesRequest(goodSpan(tid1, sid1), goodSpan(tid1, sid2))))
	ps := a.traceResponse(t, false).PartialSuccess
	if ps.GetRejectedSpans() != 1 || !strings.Contains(ps.GetErrorMessage(), "refused by the store") {
		t.Errorf("partial success %v", ps)
	}
	for outcome, want := range map[string]float64{"accepted": 1, "rejected": 1} {
		if v := testutil.ToFloat64(r.m.itemsVec.WithLabelValues(signalTraces, outcome)); v != want {
			t.Errorf("items_total{%s} = %v, want %v", outcome, v, want)
		}
	}
}

func TestNoConsumerNotServed(t *testing.T) {
	r, _ := newReceiver(t, Options{Traces: newRecorder()})
	if _, ok := r.Handlers()[LogsPath]; ok {
		t.Error("a logs handler without a logs consumer")
	}
	if a := post(t, startHTTP(t, r)+LogsPath, "application/x-protobuf", "", nil); a.status != 404 {
		t.Errorf("logs without a consumer: %d, want 404", a.status)
	}
}

// TestHTTPLogsJSON posts OTLP/JSON log records: hex ids decoded, zero ids
// cleared, a bad id rejected, a body nested too deep cut.
func TestHTTPLogsJSON(t *testing.T) {
	rec := newRecorder()
	r, _ := newReceiver(t, Options{Logs: rec, Limits: Limits{MaxDepth: 2}, Clock: clock.NewFake(testNow)})
	body := fmt.Sprintf(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[
	  {"timeUnixNano":"%d","severityNumber":17,"body":{"stringValue":"boom"},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"},
	  {"body":{"arrayValue":{"values":[{"arrayValue":{"values":[{"stringValue":"deep"}]}}]}},"traceId":"00000000000000000000000000000000"},
	  {"body":{"stringValue":"bad"},"spanId":"eee19b7ec3c1"}
	]}]}]}`, testNow.UnixNano())
	a := post(t, startHTTP(t, r)+LogsPath, "application/json", "", []byte(body))
	resp := &collogspb.ExportLogsServiceResponse{}
	if err := protojson.Unmarshal(a.body, resp); err != nil || a.status != 200 {
		t.Fatalf("answer %d %q: %v", a.status, a.body, err)
	}
	if ps := resp.PartialSuccess; ps.GetRejectedLogRecords() != 1 || !strings.Contains(ps.GetErrorMessage(), "span_id is not 16 hex digits") {
		t.Errorf("partial success %v", ps)
	}
	recs := rec.logs[0].ResourceLogs[0].ScopeLogs[0].LogRecords
	if len(recs) != 2 || hex.EncodeToString(recs[0].TraceId) != "5b8efff798038103d269b633813fc60c" || hex.EncodeToString(recs[0].SpanId) != "eee19b7ec3c1b174" {
		t.Fatalf("records %v", recs)
	}
	if recs[1].TraceId != nil {
		t.Errorf("all-zero trace id kept: %x", recs[1].TraceId)
	}
	if inner := recs[1].Body.GetArrayValue().GetValues()[0]; !strings.Contains(inner.GetStringValue(), "nested deeper than 2") {
		t.Errorf("nested body %v, want cut at depth 2", recs[1].Body)
	}
	if v := testutil.ToFloat64(r.m.itemsVec.WithLabelValues(signalLogs, "truncated")); v != 1 {
		t.Errorf("items_total{logs,truncated} = %v, want 1", v)
	}
}

// TestHTTPSlowBodyReleasesItsSlot: a client that sends headers and then
// stalls is cut off after the body timeout, and its slot serves the next.
func TestHTTPSlowBodyReleasesItsSlot(t *testing.T) {
	rec := newRecorder()
	r, _ := newReceiver(t, Options{Traces: rec, MaxInFlight: 1, Clock: clock.NewFake(testNow)})
	r.bodyTimeout = 200 * time.Millisecond
	base := startHTTP(t, r)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\nabc")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("stalled body: %d, want 400", resp.StatusCode)
	}
	if a := post(t, base+TracesPath, "application/x-protobuf", "", mustProto(t, tracesRequest(goodSpan(tid1, sid1)))); a.status != 200 {
		t.Errorf("the next request: %d, want 200 (the slot was released)", a.status)
	}
}
