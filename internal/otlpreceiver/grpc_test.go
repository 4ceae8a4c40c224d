package otlpreceiver

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/vantage-gateway/vantage/internal/clock"
)

func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func TestGRPCPartialOverloadAuth(t *testing.T) {
	rec := newRecorder()
	r, _ := newReceiver(t, Options{Traces: rec, Logs: rec, BearerToken: "tok", MaxBodyBytes: 1 << 12, RetryAfter: 2 * time.Second, Clock: clock.NewFake(testNow)})
	cc := dialGRPC(t, startGRPC(t, r))
	traces, logs := coltracepb.NewTraceServiceClient(cc), collogspb.NewLogsServiceClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer tok")

	if _, err := traces.Export(ctx, tracesRequest(goodSpan(tid1, sid1))); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v, want UNAUTHENTICATED", err)
	}
	bad := goodSpan(tid1, sid2)
	bad.SpanId = make([]byte, 8)
	resp, err := traces.Export(authed, tracesRequest(goodSpan(tid1, sid1), bad))
	if err != nil || resp.GetPartialSuccess().GetRejectedSpans() != 1 || !strings.Contains(resp.GetPartialSuccess().GetErrorMessage(), "span_id is all zeros") {
		t.Errorf("partial: %v %v", resp, err)
	}
	rec.mu.Lock()
	rec.failures, rec.failWith = 1, ErrOverloaded
	rec.mu.Unlock()
	_, err = traces.Export(authed, tracesRequest(goodSpan(tid1, sid1)))
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("overloaded: %v, want RESOURCE_EXHAUSTED", err)
	}
	var delay time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.RetryDelay.AsDuration()
		}
	}
	if delay != 2*time.Second {
		t.Errorf("RetryInfo delay %v, want 2s (OTLP clients retry RESOURCE_EXHAUSTED only with it)", delay)
	}
	big := goodSpan(tid1, sid1)
	big.Name = strings.Repeat("x", 1<<13)
	if _, err := traces.Export(authed, tracesRequest(big)); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("oversized: %v, want RESOURCE_EXHAUSTED", err)
	}
	lr := &logspb.LogRecord{TraceId: []byte{1, 2}, Body: strValue("x")}
	lresp, err := logs.Export(authed, &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{lr, {Body: strValue("ok")}}}}}}})
	if err != nil || lresp.GetPartialSuccess().GetRejectedLogRecords() != 1 {
		t.Errorf("logs partial: %v %v", lresp, err)
	}
	for _, c := range []struct {
		signal, outcome string
		want            float64
	}{
		{signalTraces, outcomeUnauthorized, 1}, {signalTraces, outcomePartial, 1}, {signalTraces, outcomeOverloaded, 1}, {signalLogs, outcomePartial, 1},
	} {
		if v := testutil.ToFloat64(r.m.requests.WithLabelValues(c.signal, transportGRPC, c.outcome)); v != c.want {
			t.Errorf("requests_total{%s,grpc,%s} = %v, want %v", c.signal, c.outcome, v, c.want)
		}
	}
}

func TestGRPCConsumerFailure(t *testing.T) {
	rec := newRecorder()
	rec.failures, rec.failWith = 1, errors.New("disk full")
	r, _ := newReceiver(t, Options{Traces: rec, Clock: clock.NewFake(testNow)})
	cc := dialGRPC(t, startGRPC(t, r))
	_, err := coltracepb.NewTraceServiceClient(cc).Export(context.Background(), tracesRequest(goodSpan(tid1, sid1)))
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "disk full") {
		t.Errorf("consumer failure: %v, want INTERNAL without the consumer's message", err)
	}
	if _, err := collogspb.NewLogsServiceClient(cc).Export(context.Background(), &collogspb.ExportLogsServiceRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("logs without a consumer: %v, want UNIMPLEMENTED", err)
	}
}

// TestSDKGRPCRetriesOnOverload: RESOURCE_EXHAUSTED with RetryInfo makes
// the SDK's gRPC exporter wait and send again.
func TestSDKGRPCRetriesOnOverload(t *testing.T) {
	rec := newRecorder()
	rec.failures, rec.failWith = 1, ErrOverloaded
	r, _ := newReceiver(t, Options{Traces: rec, RetryAfter: 100 * time.Millisecond})
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(startGRPC(t, r)), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond, MaxElapsedTime: 20 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	want := emitSpans(t, exp)
	checkSpans(t, want, rec.waitSpans(t, len(want)))
	if v := testutil.ToFloat64(r.m.requests.WithLabelValues(signalTraces, transportGRPC, outcomeOverloaded)); v != 1 {
		t.Errorf("requests_total{grpc,overloaded} = %v, want 1", v)
	}
}

// TestGRPCMalformedCounted sends bytes that are not a valid
// ExportTraceServiceRequest through a raw codec: gRPC refuses them and the
// receiver counts them.
func TestGRPCMalformedCounted(t *testing.T) {
	rec := newRecorder()
	r, _ := newReceiver(t, Options{Traces: rec, Logs: rec})
	cc := dialGRPC(t, startGRPC(t, r))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// An AnyValue of 300 nested arrays: well-formed protobuf, but over the
	// recursion limit.
	deep := []byte{}
	for range 300 {
		arr := append([]byte{0x0a}, protowire.AppendVarint(nil, uint64(len(deep)))...) // ArrayValue.values = 1
		arr = append(arr, deep...)
		deep = append([]byte{0x2a}, protowire.AppendVarint(nil, uint64(len(arr)))...) // AnyValue.array_value = 5
		deep = append(deep, arr...)
	}
	if err := proto.Unmarshal(wrapSpanAttr(deep), &coltracepb.ExportTraceServiceRequest{}); err != nil {
		t.Fatalf("the deep message is not well-formed protobuf: %v", err)
	}
	for _, body := range [][]byte{{0x0a, 0xff, 0xff}, wrapSpanAttr(deep)} {
		msg := rawMessage(body)
		err := cc.Invoke(ctx, "/opentelemetry.proto.collector.trace.v1.TraceService/Export", &msg, &rawMessage{}, grpc.ForceCodecV2(rawCodec{}))
		if err == nil {
			t.Errorf("malformed body accepted")
		}
	}
	if v := testutil.ToFloat64(r.m.requests.WithLabelValues(signalTraces, transportGRPC, outcomeMalformed)); v != 2 {
		t.Errorf("requests_total{grpc,malformed} = %v, want 2", v)
	}
	if rec.calls != 0 {
		t.Errorf("consumer called %d times", rec.calls)
	}
}

// wrapSpanAttr puts an encoded AnyValue as the value of a span attribute
// in an ExportTraceServiceRequest.
func wrapSpanAttr(anyValue []byte) []byte {
	field := func(num protowire.Number, b []byte) []byte {
		out := protowire.AppendTag(nil, num, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(len(b)))
		return append(out, b...)
	}
	kv := append(field(1, []byte("k")), field(2, anyValue)...) // KeyValue{key, value}
	span := field(9, kv)                                       // Span.attributes = 9
	return field(1, field(2, field(2, span)))                  // request.resource_spans.scope_spans.spans
}

type rawMessage []byte

// rawCodec sends rawMessage bytes as they are.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*rawMessage))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*rawMessage) = data.Materialize()
	return nil
}
