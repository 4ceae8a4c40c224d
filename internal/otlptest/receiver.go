// Package otlptest runs real telemetry receivers for tests: OTLP gRPC and
// HTTP/protobuf servers for traces and for logs, built on the collector
// service definitions of go.opentelemetry.io/proto/otlp, and a Zipkin v2
// JSON endpoint. They listen on 127.0.0.1 and record what they receive.
package otlptest

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Span is a received span, flattened for assertions.
type Span struct {
	TraceID, SpanID, ParentSpanID string
	Name                          string
	Kind                          string // "server", "client", ...
	Start, End                    time.Time
	Attrs                         map[string]any
	Events                        []Event
	Links                         []Link
	StatusError                   bool
	StatusMessage                 string
	Resource                      map[string]any
	Scope                         string
}

// Event is a received span event.
type Event struct {
	Name  string
	Attrs map[string]any
}

// Link is a received span link.
type Link struct {
	TraceID, SpanID string
	Attrs           map[string]any
}

// Receiver records spans. It is safe for concurrent use.
type Receiver struct {
	mu       sync.Mutex
	spans    []Span
	requests int
	headers  []http.Header
	changed  chan struct{}
}

func newReceiver() *Receiver { return &Receiver{changed: make(chan struct{}, 1)} }

// Spans returns a copy of what was received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Requests returns the number of export requests received.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// Headers returns the headers (gRPC metadata) of every export request.
func (r *Receiver) Headers() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.headers...)
}

// WaitSpans waits until at least n spans arrived or the timeout passes, and
// returns what arrived.
func (r *Receiver) WaitSpans(t testing.TB, n int, timeout time.Duration) []Span {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if s := r.Spans(); len(s) >= n {
			return s
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			s := r.Spans()
			t.Fatalf("received %d spans, want %d", len(s), n)
			return s
		}
	}
}

func (r *Receiver) add(req *coltrace.ExportTraceServiceRequest, h http.Header) {
	var out []Span
	for _, rs := range req.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{
					TraceID:       hex.EncodeToString(s.GetTraceId()),
					SpanID:        hex.EncodeToString(s.GetSpanId()),
					ParentSpanID:  hex.EncodeToString(s.GetParentSpanId()),
					Name:          s.GetName(),
					Kind:          kindName(s.GetKind()),
					Start:         time.Unix(0, int64(s.GetStartTimeUnixNano())),
					End:           time.Unix(0, int64(s.GetEndTimeUnixNano())),
					Attrs:         attrs(s.GetAttributes()),
					StatusError:   s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
					StatusMessage: s.GetStatus().GetMessage(),
					Resource:      res,
					Scope:         ss.GetScope().GetName(),
				}
				for _, e := range s.GetEvents() {
					sp.Events = append(sp.Events, Event{Name: e.GetName(), Attrs: attrs(e.GetAttributes())})
				}
				for _, l := range s.GetLinks() {
					sp.Links = append(sp.Links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId()), Attrs: attrs(l.GetAttributes())})
				}
				out = append(out, sp)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, out...)
	r.requests++
	r.headers = append(r.headers, h)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func kindName(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_SERVER:
		return "server"
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "client"
	case tracepb.Span_SPAN_KIND_INTERNAL:
		return "internal"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "producer"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "consumer"
	}
	return "unspecified"
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = value(kv.GetValue())
	}
	return m
}

func value(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_ArrayValue:
		var out []any
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, value(e))
		}
		return out
	}
	return nil
}

type grpcService struct {
	coltrace.UnimplementedTraceServiceServer
	r *Receiver
}

func (g grpcService) Export(ctx context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	g.r.add(req, headerFromMetadata(ctx))
	return &coltrace.ExportTraceServiceResponse{}, nil
}

// headerFromMetadata returns a gRPC request's metadata as a header map.
func headerFromMetadata(ctx context.Context) http.Header {
	h := http.Header{}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for k, vs := range md {
			for _, v := range vs {
				h.Add(k, v)
			}
		}
	}
	return h
}

// StartGRPC starts an OTLP gRPC receiver on 127.0.0.1 and returns it and its
// "host:port". It stops when the test ends.
func StartGRPC(t testing.TB) (*Receiver, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := newReceiver()
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, grpcService{r: r})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return r, ln.Addr().String()
}

// StartHTTP starts an OTLP HTTP/protobuf receiver and returns it and its
// base URL (spans are posted to <url>/v1/traces). It stops when the test
// ends.
func StartHTTP(t testing.TB) (*Receiver, string) {
	t.Helper()
	r := newReceiver()
	url := serveOTLPHTTP(t, "/v1/traces", &coltrace.ExportTraceServiceResponse{}, func(body []byte, h http.Header) error {
		var msg coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &msg); err != nil {
			return err
		}
		r.add(&msg, h)
		return nil
	})
	return r, url
}

// serveOTLPHTTP serves one OTLP/HTTP protobuf path on 127.0.0.1 until the
// test ends: it decompresses each POSTed body, hands it to accept with the
// request headers (a decode error answers 400), and answers resp. It
// returns the server's base URL.
func serveOTLPHTTP(t testing.TB, path string, resp proto.Message, accept func(body []byte, h http.Header) error) string {
	out, _ := proto.Marshal(resp)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != path || req.Method != http.MethodPost {
			http.NotFound(w, req)
			return
		}
		body, err := readBody(req)
		if err == nil {
			err = accept(body, req.Header.Clone())
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// ZipkinSpan is a span as Zipkin v2 JSON carries it.
type ZipkinSpan struct {
	TraceID       string            `json:"traceId"`
	ID            string            `json:"id"`
	ParentID      string            `json:"parentId"`
	Name          string            `json:"name"`
	Kind          string            `json:"kind"`
	Tags          map[string]string `json:"tags"`
	LocalEndpoint struct {
		ServiceName string `json:"serviceName"`
	} `json:"localEndpoint"`
}

// ZipkinReceiver records Zipkin v2 spans. It is safe for concurrent use.
type ZipkinReceiver struct {
	mu      sync.Mutex
	spans   []ZipkinSpan
	changed chan struct{}
}

// Spans returns a copy of what was received so far.
func (z *ZipkinReceiver) Spans() []ZipkinSpan {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]ZipkinSpan(nil), z.spans...)
}

// WaitSpans waits until at least n spans arrived, or fails the test.
func (z *ZipkinReceiver) WaitSpans(t testing.TB, n int, timeout time.Duration) []ZipkinSpan {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if s := z.Spans(); len(s) >= n {
			return s
		}
		select {
		case <-z.changed:
		case <-deadline.C:
			t.Fatalf("received %d zipkin spans, want %d", len(z.Spans()), n)
		}
	}
}

// StartZipkin starts a Zipkin v2 JSON endpoint and returns it and the URL to
// post spans to.
func StartZipkin(t testing.TB) (*ZipkinReceiver, string) {
	t.Helper()
	z := &ZipkinReceiver{changed: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := readBody(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var spans []ZipkinSpan
		if err := json.Unmarshal(body, &spans); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		z.mu.Lock()
		z.spans = append(z.spans, spans...)
		z.mu.Unlock()
		select {
		case z.changed <- struct{}{}:
		default:
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return z, srv.URL + "/api/v2/spans"
}

func readBody(req *http.Request) ([]byte, error) {
	var rd io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			return nil, err
		}
		defer gz.Close()
		rd = gz
	}
	return io.ReadAll(io.LimitReader(rd, 64<<20))
}

// StartBlackHole accepts TCP connections and never answers: an exporter
// pointed at it hangs until its timeout. It returns "host:port".
func StartBlackHole(t testing.TB) string {
	t.Helper()
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
		_ = ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}
