package accesslog

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// receivedLog is one log record a test receiver got, flattened.
type receivedLog struct {
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

// logsReceiver is an in-process OTLP logs collector (HTTP/protobuf or
// gRPC) that records what it receives. It is safe for concurrent use.
type logsReceiver struct {
	mu      sync.Mutex
	logs    []receivedLog
	headers []http.Header
	changed chan struct{}
}

func newLogsReceiver() *logsReceiver { return &logsReceiver{changed: make(chan struct{}, 1)} }

func (r *logsReceiver) received() ([]receivedLog, []http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedLog(nil), r.logs...), append([]http.Header(nil), r.headers...)
}

// wait waits until at least n records arrived, or fails the test.
func (r *logsReceiver) wait(t testing.TB, n int) []receivedLog {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		if got, _ := r.received(); len(got) >= n {
			return got
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			got, _ := r.received()
			t.Fatalf("received %d log records, want %d", len(got), n)
		}
	}
}

func (r *logsReceiver) add(req *collogs.ExportLogsServiceRequest, h http.Header) {
	var out []receivedLog
	for _, rl := range req.GetResourceLogs() {
		res := anyMap(rl.GetResource().GetAttributes())
		for _, sl := range rl.GetScopeLogs() {
			for _, l := range sl.GetLogRecords() {
				out = append(out, receivedLog{
					Time:         time.Unix(0, int64(l.GetTimeUnixNano())).UTC(),
					Observed:     time.Unix(0, int64(l.GetObservedTimeUnixNano())).UTC(),
					Severity:     int32(l.GetSeverityNumber()),
					SeverityText: l.GetSeverityText(),
					Body:         l.GetBody().GetStringValue(),
					EventName:    l.GetEventName(),
					TraceID:      hex.EncodeToString(l.GetTraceId()),
					SpanID:       hex.EncodeToString(l.GetSpanId()),
					Flags:        l.GetFlags(),
					Attrs:        anyMap(l.GetAttributes()),
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

func anyMap(kvs []*commonpb.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		m[kv.GetKey()] = anyValue(kv.GetValue())
	}
	return m
}

func anyValue(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_ArrayValue:
		var out []any
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, anyValue(e))
		}
		return out
	}
	return nil
}

// newHTTPLogsReceiver serves OTLP/HTTP protobuf on 127.0.0.1 and returns
// its base URL.
func newHTTPLogsReceiver(t testing.TB) (*logsReceiver, string) {
	r := newLogsReceiver()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/v1/logs" || req.Method != http.MethodPost {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = gz
		}
		data, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var msg collogs.ExportLogsServiceRequest
		if err := proto.Unmarshal(data, &msg); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.add(&msg, req.Header.Clone())
		resp, _ := proto.Marshal(&collogs.ExportLogsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

type grpcLogs struct {
	collogs.UnimplementedLogsServiceServer
	r *logsReceiver
}

func (g grpcLogs) Export(ctx context.Context, req *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error) {
	h := http.Header{}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for k, vs := range md {
			for _, v := range vs {
				h.Add(k, v)
			}
		}
	}
	g.r.add(req, h)
	return &collogs.ExportLogsServiceResponse{}, nil
}

// newGRPCLogsReceiver serves OTLP/gRPC on 127.0.0.1 and returns its
// host:port.
func newGRPCLogsReceiver(t testing.TB) (*logsReceiver, string) {
	r := newLogsReceiver()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	collogs.RegisterLogsServiceServer(srv, grpcLogs{r: r})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return r, ln.Addr().String()
}

// blackHole accepts connections and never answers, like a collector whose
// host drops packets after the handshake. It returns host:port.
func blackHole(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
