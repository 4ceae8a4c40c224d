package otlptest

import (
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Log is one received log record, flattened for assertions.
type Log struct {
	Time, Observed  time.Time
	Severity        int32
	SeverityText    string
	Body, EventName string
	TraceID, SpanID string
	Flags           uint32
	Attrs           map[string]any
	Resource        map[string]any
	Scope, Version  string
}

// LogsReceiver records the log records an OTLP logs receiver got. It is
// safe for concurrent use.
type LogsReceiver struct {
	mu      sync.Mutex
	logs    []Log
	headers []http.Header
	changed chan struct{}
}

func newLogsReceiver() *LogsReceiver { return &LogsReceiver{changed: make(chan struct{}, 1)} }

// Received returns the records and the request headers (or gRPC metadata)
// of every export so far.
func (r *LogsReceiver) Received() ([]Log, []http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Log(nil), r.logs...), append([]http.Header(nil), r.headers...)
}

// Wait waits until at least n records arrived (at most 10 s), or fails the
// test.
func (r *LogsReceiver) Wait(t testing.TB, n int) []Log {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		if got, _ := r.Received(); len(got) >= n {
			return got
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			got, _ := r.Received()
			t.Fatalf("received %d log records, want %d", len(got), n)
		}
	}
}

func (r *LogsReceiver) add(req *collogs.ExportLogsServiceRequest, h http.Header) {
	var out []Log
	for _, rl := range req.GetResourceLogs() {
		res := attrs(rl.GetResource().GetAttributes())
		for _, sl := range rl.GetScopeLogs() {
			for _, l := range sl.GetLogRecords() {
				out = append(out, Log{
					Time:         time.Unix(0, int64(l.GetTimeUnixNano())).UTC(),
					Observed:     time.Unix(0, int64(l.GetObservedTimeUnixNano())).UTC(),
					Severity:     int32(l.GetSeverityNumber()),
					SeverityText: l.GetSeverityText(),
					Body:         l.GetBody().GetStringValue(),
					EventName:    l.GetEventName(),
					TraceID:      hex.EncodeToString(l.GetTraceId()),
					SpanID:       hex.EncodeToString(l.GetSpanId()),
					Flags:        l.GetFlags(),
					Attrs:        attrs(l.GetAttributes()),
					Resource:     res,
					Scope:        sl.GetScope().GetName(),
					Version:      sl.GetScope().GetVersion(),
				})
			}
		}
	}
	r.mu.Lock()
	r.logs = append(r.logs, out...)
	r.headers = append(r.headers, h)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// StartLogsHTTP starts an OTLP HTTP/protobuf logs receiver and returns it
// and its base URL (records are posted to <url>/v1/logs). It stops when the
// test ends.
func StartLogsHTTP(t testing.TB) (*LogsReceiver, string) {
	t.Helper()
	r := newLogsReceiver()
	url := serveOTLPHTTP(t, "/v1/logs", &collogs.ExportLogsServiceResponse{}, func(body []byte, h http.Header) error {
		var msg collogs.ExportLogsServiceRequest
		if err := proto.Unmarshal(body, &msg); err != nil {
			return err
		}
		r.add(&msg, h)
		return nil
	})
	return r, url
}

type grpcLogs struct {
	collogs.UnimplementedLogsServiceServer
	r *LogsReceiver
}

func (g grpcLogs) Export(ctx context.Context, req *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error) {
	g.r.add(req, headerFromMetadata(ctx))
	return &collogs.ExportLogsServiceResponse{}, nil
}

// StartLogsGRPC starts an OTLP gRPC logs receiver on 127.0.0.1 and returns
// it and its "host:port". It stops when the test ends.
func StartLogsGRPC(t testing.TB) (*LogsReceiver, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := newLogsReceiver()
	srv := grpc.NewServer()
	collogs.RegisterLogsServiceServer(srv, grpcLogs{r: r})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return r, ln.Addr().String()
}
