package otlpreceiver

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/vantage-gateway/vantage/internal/clock"
)

// benchBatch is what an SDK's batch processor sends: n spans of one
// service, each with a dozen attributes of the HTTP semantic conventions
// and one event.
func benchBatch(n int) *coltracepb.ExportTraceServiceRequest {
	kv := func(k, v string) *commonpb.KeyValue { return &commonpb.KeyValue{Key: k, Value: strValue(v)} }
	kvi := func(k string, v int64) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
	}
	spans := make([]*tracepb.Span, n)
	for i := range spans {
		tid := []byte(fmt.Sprintf("%016d", i/8+1))
		sid := []byte(fmt.Sprintf("%08d", i+1))
		end := testNow.Add(-time.Duration(i) * time.Millisecond)
		spans[i] = &tracepb.Span{
			TraceId: tid, SpanId: sid, ParentSpanId: []byte("00000001"), Name: "GET /api/catalog/products/{id}",
			Kind:              tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: uint64(end.Add(-3 * time.Millisecond).UnixNano()), EndTimeUnixNano: uint64(end.UnixNano()),
			Attributes: []*commonpb.KeyValue{
				kv("http.request.method", "GET"), kv("url.path", "/api/catalog/products/42"), kv("url.scheme", "http"),
				kv("http.route", "/api/catalog/products/{id}"), kvi("http.response.status_code", 200),
				kv("server.address", "catalog.internal"), kvi("server.port", 8080), kv("client.address", "10.0.3.17"),
				kv("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"), kv("network.protocol.version", "1.1"),
				kvi("http.response.body.size", 1834), kv("db.system", "postgresql"),
			},
			Events: []*tracepb.Span_Event{{Name: "cache miss", TimeUnixNano: uint64(end.Add(-2 * time.Millisecond).UnixNano()),
				Attributes: []*commonpb.KeyValue{kv("cache.key", "product:42")}}},
			Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_UNSET},
		}
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			kv("service.name", "catalog"), kv("service.version", "1.4.2"), kv("deployment.environment", "prod"),
			kv("telemetry.sdk.name", "opentelemetry"), kv("telemetry.sdk.language", "go"), kv("host.name", "catalog-7d9f"),
		}},
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"}, Spans: spans}},
	}}}
}

// BenchmarkIngest measures OTLP/HTTP protobuf ingest of 512-span batches
// with a consumer that keeps nothing, on one goroutine (one core):
// "handler" is the receiver's whole request path (read, gunzip, decode,
// validate, answer) without the network, "decode-only" the protobuf
// decoding alone as the yardstick, "loopback" a real HTTP round trip on
// 127.0.0.1 (client and server both counted).
func BenchmarkIngest(b *testing.B) {
	const n = 512
	body, err := proto.Marshal(benchBatch(n))
	if err != nil {
		b.Fatal(err)
	}
	r, err := New(Options{Traces: Discard{}, Clock: clock.NewFake(testNow), MaxInFlight: 64})
	if err != nil {
		b.Fatal(err)
	}
	// spans/cpu-s divides by the CPU time the process used (user and
	// system), which a shared, loaded machine distorts far less than wall
	// time: it is the per-core rate.
	var cpu0 time.Duration
	start := func(b *testing.B) { b.ReportAllocs(); cpu0 = cpuTime(b) }
	report := func(b *testing.B) {
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "spans/s")
		b.ReportMetric(float64(n*b.N)/(cpuTime(b)-cpu0).Seconds(), "spans/cpu-s")
		b.ReportMetric(float64(len(body))/n, "bytes/span")
	}
	b.Run("decode-only", func(b *testing.B) {
		start(b)
		for b.Loop() {
			var m coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(body, &m); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	for _, gzipped := range []bool{false, true} {
		name, payload, ce := "handler", body, ""
		if gzipped {
			name, payload, ce = "handler-gzip", gz(body), "gzip"
		}
		b.Run(name, func(b *testing.B) {
			w := &discardWriter{h: http.Header{}}
			start(b)
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, TracesPath, bytes.NewReader(payload))
				req.Header.Set("Content-Type", "application/x-protobuf")
				if ce != "" {
					req.Header.Set("Content-Encoding", ce)
				}
				clear(w.h)
				w.code = 0
				r.ServeHTTP(w, req)
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
			report(b)
		})
	}
	b.Run("loopback", func(b *testing.B) {
		srv := httptest.NewServer(r)
		defer srv.Close()
		start(b)
		for b.Loop() {
			resp, err := http.Post(srv.URL+TracesPath, "application/x-protobuf", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
		report(b)
	})
}

// cpuTime is the CPU time the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
