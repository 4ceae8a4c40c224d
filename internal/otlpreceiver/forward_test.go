package otlpreceiver

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/proto"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/otlptest"
)

func logsRequest(recs ...*logspb.LogRecord) *collogspb.ExportLogsServiceRequest {
	return &collogspb.ExportLogsServiceRequest{ResourceLogs: []*logspb.ResourceLogs{{ScopeLogs: []*logspb.ScopeLogs{{LogRecords: recs}}}}}
}

// TestForwardThroughReceiver: services → receiver → (store, forwarder) →
// a real OTLP endpoint, over HTTP and gRPC, for spans and log records.
func TestForwardThroughReceiver(t *testing.T) {
	spansHTTP, spansHTTPURL := otlptest.StartHTTP(t)
	logsHTTP, logsHTTPURL := otlptest.StartLogsHTTP(t)
	spansGRPC, spansGRPCAddr := otlptest.StartGRPC(t)
	reg := prometheus.NewPedanticRegistry()
	httpFwd, err := NewForwarder(ForwardTarget{Name: "collector-http", TracesURL: spansHTTPURL + TracesPath, LogsURL: logsHTTPURL + LogsPath, Gzip: true,
		Headers: map[string]string{"X-Api-Key": "k"}}, ForwarderOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	grpcFwd, err := NewForwarder(ForwardTarget{Name: "collector-grpc", GRPCTarget: spansGRPCAddr, Plaintext: true}, ForwarderOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	r, _ := newReceiver(t, Options{Traces: Fanout{Traces: []TraceConsumer{rec, httpFwd, grpcFwd}}, Logs: Fanout{Logs: []LogConsumer{rec, httpFwd}},
		Clock: clock.NewFake(testNow)})
	base := startHTTP(t, r)
	bad := goodSpan(tid1, sid2)
	bad.TraceId = nil
	a := post(t, base+TracesPath, "application/x-protobuf", "", mustProto(t, tracesRequest(goodSpan(tid1, sid1), bad)))
	if a.status != 200 || a.traceResponse(t, false).PartialSuccess.GetRejectedSpans() != 1 {
		t.Fatalf("answer %d %q", a.status, a.body)
	}
	for _, got := range [][]otlptest.Span{spansHTTP.WaitSpans(t, 1, 10*time.Second), spansGRPC.WaitSpans(t, 1, 10*time.Second)} {
		if len(got) != 1 || got[0].SpanID != sid1 || got[0].TraceID != tid1 || got[0].Attrs["k"] != "v" {
			t.Errorf("forwarded %+v, want the valid span only", got)
		}
	}
	if h := spansHTTP.Headers()[0]; h.Get("X-Api-Key") != "k" {
		t.Errorf("forwarded without the target's headers: %v", h)
	}
	tid := goodSpan(tid1, sid1).TraceId
	a = post(t, base+LogsPath, "application/x-protobuf", "", mustProto(t, logsRequest(&logspb.LogRecord{TraceId: tid, Body: strValue("hi")})))
	if a.status != 200 {
		t.Fatalf("logs answer %d %q", a.status, a.body)
	}
	if got := logsHTTP.Wait(t, 1); got[0].Body != "hi" || got[0].TraceID != tid1 {
		t.Errorf("forwarded log %+v", got[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, f := range []*Forwarder{httpFwd, grpcFwd} {
		if err := f.Close(ctx); err != nil {
			t.Error(err)
		}
	}
	for _, c := range []struct {
		target, signal string
	}{{"collector-http", signalTraces}, {"collector-grpc", signalTraces}, {"collector-http", signalLogs}} {
		if v := testutil.ToFloat64(httpFwd.counter.WithLabelValues(c.target, c.signal, "sent")); v != 1 {
			t.Errorf("forwarded_total{%s,%s,sent} = %v, want 1", c.target, c.signal, v)
		}
	}
}

// TestForwarderNeverBlocks: with a target that never answers and a tiny
// queue, ConsumeTraces returns at once and what does not fit is dropped
// and counted.
func TestForwarderNeverBlocks(t *testing.T) {
	hole := otlptest.StartBlackHole(t)
	f, err := NewForwarder(ForwardTarget{Name: "hole", TracesURL: "http://" + hole + TracesPath, Timeout: 30 * time.Second},
		ForwarderOptions{QueueBytes: 300})
	if err != nil {
		t.Fatal(err)
	}
	req := tracesRequest(goodSpan(tid1, sid1))
	for range 10 {
		if _, err := f.ConsumeTraces(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	// A request holds its bytes of the queue until its send ends, so as
	// many as fit in 300 bytes are taken and the rest dropped.
	fit := 300 / proto.Size(req)
	if v := testutil.ToFloat64(f.counter.WithLabelValues("hole", signalTraces, "dropped")); v != float64(10-fit) {
		t.Errorf("dropped %v, want %d", v, 10-fit)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := f.Close(ctx); err == nil {
		t.Error("Close with a hung target and an expired context: no error")
	}
}

func TestFanoutPrimaryFailureStopsTheRest(t *testing.T) {
	primary, second := newRecorder(), newRecorder()
	primary.failures, primary.failWith = 1, ErrOverloaded
	f := Fanout{Traces: []TraceConsumer{primary, second}}
	if _, err := f.ConsumeTraces(context.Background(), tracesRequest(goodSpan(tid1, sid1))); err != ErrOverloaded {
		t.Fatalf("error %v, want the primary's", err)
	}
	if second.calls != 0 {
		t.Error("the second consumer got a request the client will retry")
	}
	primary.reject = 1
	if n, err := f.ConsumeTraces(context.Background(), tracesRequest(goodSpan(tid1, sid1))); err != nil || n != 1 || second.calls != 1 {
		t.Errorf("rejected %d, err %v, second calls %d", n, err, second.calls)
	}
}
