package export

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/vantage-gateway/vantage/internal/config"
)

// grpcCall is one Export call a grpcCapture received.
type grpcCall struct {
	at  time.Time
	md  metadata.MD
	req *coltracepb.ExportTraceServiceRequest
}

// grpcCapture is a local OTLP/gRPC trace receiver that records every call
// and answers as its respond function says.
type grpcCapture struct {
	coltracepb.UnimplementedTraceServiceServer
	respond func(n int) (*coltracepb.ExportTraceServiceResponse, error)

	mu       sync.Mutex
	calls    []grpcCall
	payloads []*stats.InPayload // of requests
}

// The stats.Handler methods record the requests' payload sizes.

func (c *grpcCapture) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (c *grpcCapture) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c *grpcCapture) HandleConn(context.Context, stats.ConnStats)                       {}
func (c *grpcCapture) HandleRPC(_ context.Context, s stats.RPCStats) {
	if p, ok := s.(*stats.InPayload); ok {
		c.mu.Lock()
		c.payloads = append(c.payloads, p)
		c.mu.Unlock()
	}
}

// startGRPCCapture starts a grpcCapture on 127.0.0.1 until the test ends
// and returns it and its host:port. respond answers the n-th call (from
// 1); nil answers with an empty response.
func startGRPCCapture(t *testing.T, respond func(n int) (*coltracepb.ExportTraceServiceResponse, error)) (*grpcCapture, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &grpcCapture{respond: respond}
	srv := grpc.NewServer(grpc.StatsHandler(c))
	coltracepb.RegisterTraceServiceServer(srv, c)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return c, ln.Addr().String()
}

// Export implements coltracepb.TraceServiceServer.
func (c *grpcCapture) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	c.mu.Lock()
	c.calls = append(c.calls, grpcCall{at: time.Now(), md: md, req: req})
	n := len(c.calls)
	c.mu.Unlock()
	if c.respond != nil {
		return c.respond(n)
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// received returns the calls so far.
func (c *grpcCapture) received() []grpcCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]grpcCall(nil), c.calls...)
}

// newTestGRPCExporter returns a plaintext exporter to addr with a 5 s
// timeout, as edit changes it, shut down when the test ends.
func newTestGRPCExporter(t *testing.T, addr string, edit func(*otlpGRPCConfig)) *otlpGRPCExporter {
	t.Helper()
	cfg := otlpGRPCConfig{Target: addr, Plaintext: true, Timeout: 5 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	e, err := newOTLPGRPCExporter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	return e
}

// officialGRPCRequests exports spans with otlptracegrpc to a local
// receiver and returns what it received.
func officialGRPCRequests(t *testing.T, spans []sdktrace.ReadOnlySpan) []*coltracepb.ExportTraceServiceRequest {
	t.Helper()
	rcv, addr := startGRPCCapture(t, nil)
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	exportAndShutdown(t, exp, spans)
	var out []*coltracepb.ExportTraceServiceRequest
	for _, c := range rcv.received() {
		out = append(out, c.req)
	}
	return out
}

func TestOTLPGRPCMatchesOfficialExporter(t *testing.T) {
	spans := variedSpans()
	want := officialGRPCRequests(t, spans)
	if len(want) != 1 {
		t.Fatalf("official exporter: %d calls", len(want))
	}
	for _, gz := range []bool{false, true} {
		rcv, addr := startGRPCCapture(t, nil)
		e := newTestGRPCExporter(t, addr, func(c *otlpGRPCConfig) { c.Gzip = gz })
		if _, err := export(e, spans); err != nil {
			t.Fatalf("gzip %v: %v", gz, err)
		}
		got := rcv.received()
		if len(got) != 1 {
			t.Fatalf("gzip %v: %d calls", gz, len(got))
		}
		assertSameAsOfficial(t, got[0].req, proto.Clone(want[0]).(*coltracepb.ExportTraceServiceRequest), linkTraceStates(t, spans))
	}
}

func TestOTLPGRPCRequest(t *testing.T) {
	rcv, addr := startGRPCCapture(t, nil)
	e := newTestGRPCExporter(t, addr, func(c *otlpGRPCConfig) {
		c.Headers = map[string]string{"X-Api-Key": "k1"}
		c.Gzip = true
	})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-caller", "c")
	if err := e.ExportSpans(ctx, variedSpans()[:2]); err != nil {
		t.Fatal(err)
	}
	if err := e.ExportSpans(ctx, nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
	got := rcv.received()
	if len(got) != 1 {
		t.Fatalf("%d calls, want 1", len(got))
	}
	md := got[0].md
	if v := md.Get("x-api-key"); len(v) != 1 || v[0] != "k1" {
		t.Errorf("x-api-key %q", v)
	}
	if v := md.Get("x-caller"); len(v) != 1 || v[0] != "c" {
		t.Errorf("x-caller %q: the caller's metadata is kept", v)
	}
	if v := md.Get("user-agent"); len(v) != 1 || !strings.HasPrefix(v[0], "vantage-otlp-exporter") {
		t.Errorf("user-agent %q", v)
	}
	if v := md.Get("content-type"); len(v) != 1 || v[0] != "application/grpc+proto" && v[0] != "application/grpc" {
		t.Errorf("content-type %q", v)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.payloads) != 1 || rcv.payloads[0].CompressedLength >= rcv.payloads[0].Length/2 {
		t.Errorf("payloads %+v: want one, gzipped", rcv.payloads)
	}
}

func TestOTLPGRPCRetries(t *testing.T) {
	retryInfo := func(d time.Duration) error {
		st, err := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	for _, tc := range []struct {
		name      string
		first     error
		wantCalls int
		wantErr   string
		minGap    time.Duration
	}{
		{"unavailable", status.Error(codes.Unavailable, "restarting"), 2, "", 0},
		{"aborted", status.Error(codes.Aborted, "conflict"), 2, "", 0},
		{"resource exhausted with RetryInfo", retryInfo(500 * time.Millisecond), 2, "", 450 * time.Millisecond},
		{"resource exhausted without RetryInfo", status.Error(codes.ResourceExhausted, "over quota"), 1, "code = ResourceExhausted desc = over quota", 0},
		{"invalid argument", status.Error(codes.InvalidArgument, "bad span"), 1, "code = InvalidArgument desc = bad span", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv, addr := startGRPCCapture(t, func(n int) (*coltracepb.ExportTraceServiceResponse, error) {
				if n == 1 {
					return nil, tc.first
				}
				return &coltracepb.ExportTraceServiceResponse{}, nil
			})
			_, err := export(newTestGRPCExporter(t, addr, nil), variedSpans())
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
			got := rcv.received()
			if len(got) != tc.wantCalls {
				t.Fatalf("%d calls, want %d", len(got), tc.wantCalls)
			}
			if tc.minGap > 0 {
				if gap := got[1].at.Sub(got[0].at); gap < tc.minGap || gap > 3*time.Second {
					t.Errorf("retried after %v, want the receiver's delay", gap)
				}
			}
		})
	}
}

func TestOTLPGRPCGivesUpAtTheTimeout(t *testing.T) {
	rcv, addr := startGRPCCapture(t, func(int) (*coltracepb.ExportTraceServiceResponse, error) {
		return nil, status.Error(codes.Unavailable, "down")
	})
	e := newTestGRPCExporter(t, addr, func(c *otlpGRPCConfig) { c.Timeout = 700 * time.Millisecond })
	took, err := export(e, variedSpans()[:1])
	if err == nil || !strings.Contains(err.Error(), "code = Unavailable desc = down") {
		t.Fatalf("error %v", err)
	}
	if n := len(rcv.received()); n < 2 || took > 1500*time.Millisecond {
		t.Errorf("%d calls in %v: want retries within the timeout", n, took)
	}
}

func TestOTLPGRPCPartialSuccess(t *testing.T) {
	_, addr := startGRPCCapture(t, func(int) (*coltracepb.ExportTraceServiceResponse, error) {
		return &coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 2, ErrorMessage: "dupes"}}, nil
	})
	_, err := export(newTestGRPCExporter(t, addr, nil), variedSpans())
	var pe *partialSuccessError
	if !errors.As(err, &pe) || pe.rejected != 2 || !strings.Contains(err.Error(), "2 spans rejected: dupes") {
		t.Errorf("error %v", err)
	}
}

func TestOTLPGRPCShutdown(t *testing.T) {
	rcv, addr := startGRPCCapture(t, nil)
	e := newTestGRPCExporter(t, addr, nil)
	if _, err := export(e, variedSpans()); err != nil {
		t.Fatal(err)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := export(e, variedSpans()); !errors.Is(err, errShutdown) {
		t.Errorf("export after Shutdown: %v", err)
	}
	if n := len(rcv.received()); n != 1 {
		t.Errorf("%d calls", n)
	}
}

func TestNewExporterOTLPGRPC(t *testing.T) {
	rcv, addr := startGRPCCapture(t, nil)
	exp, err := NewExporter(config.TracingExporter{
		Name: "g", Type: config.ExporterOTLPGRPC, Endpoint: "http://" + addr, Compression: "gzip",
		Headers: map[string]string{"authorization": "Bearer t"}, Timeout: config.Duration(5 * time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	if _, err := export(exp, variedSpans()[:1]); err != nil {
		t.Fatal(err)
	}
	if got := rcv.received(); len(got) != 1 || got[0].md.Get("authorization")[0] != "Bearer t" {
		t.Errorf("received %+v", got)
	}
}
