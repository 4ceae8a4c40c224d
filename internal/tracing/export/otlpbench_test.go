package export

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/vantage-gateway/vantage/internal/config"
)

// benchResource and benchScope are those of the gateway's spans.
var (
	benchResource = resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0",
		attribute.String("service.name", "vantage"),
		attribute.String("service.version", "1.14.2"),
		attribute.String("service.instance.id", "6f1c2d0e-8a4b-4f7e-9c3d-2b1a0e9f8d7c"),
		attribute.String("host.name", "gw-eu-west-1a-7"),
		attribute.String("deployment.environment.name", "production"),
		attribute.String("telemetry.sdk.name", "opentelemetry"),
		attribute.String("telemetry.sdk.language", "go"),
		attribute.String("telemetry.sdk.version", "1.47.0"),
	)
	benchScope = instrumentation.Scope{Name: "github.com/vantage-gateway/vantage/internal/tracing", Version: "1.14.2"}
)

// benchSpans returns n spans like the gateway's: SERVER spans and their
// CLIENT children, nattrs (at most 20) attributes each, mostly strings.
func benchSpans(n, nattrs int) []sdktrace.ReadOnlySpan {
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", "GET"),
		attribute.String("url.path", "/api/v1/users/12345/orders"),
		attribute.String("url.scheme", "https"),
		attribute.String("url.query", "page=2&limit=50"),
		attribute.String("server.address", "api.example.com"),
		attribute.Int("server.port", 443),
		attribute.String("client.address", "203.0.113.42"),
		attribute.String("network.protocol.version", "1.1"),
		attribute.String("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"),
		attribute.String("http.route", "/api/v1/users/{id}/orders"),
		attribute.Int("http.response.status_code", 200),
		attribute.Int("http.request.body.size", 0),
		attribute.Int("http.response.body.size", 5321),
		attribute.String("vantage.route", "users-orders"),
		attribute.String("vantage.service", "orders"),
		attribute.String("vantage.upstream", "10.0.3.17:8080"),
		attribute.String("vantage.sampling.decision", "always"),
		attribute.Bool("vantage.retried", false),
		attribute.Float64("vantage.upstream.queue_seconds", 0.0123),
		attribute.String("network.peer.address", "10.0.3.17"),
	}[:nattrs]
	start := time.Now()
	spans := make([]sdktrace.ReadOnlySpan, n)
	for i := range spans {
		var tid trace.TraceID
		tid[0], tid[1], tid[15] = 0xab, byte(i>>8), byte(i)
		sid := trace.SpanID{0xcd, byte(i >> 8), byte(i)}
		kind, parent := trace.SpanKindServer, trace.SpanContext{}
		if i%2 == 1 {
			kind = trace.SpanKindClient
			parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{0xcd, byte((i - 1) >> 8), byte(i - 1)}, TraceFlags: trace.FlagsSampled})
		}
		spans[i] = tracetest.SpanStub{
			Name:                 "GET /api/v1/users/{id}/orders",
			SpanContext:          trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}),
			Parent:               parent,
			SpanKind:             kind,
			StartTime:            start.Add(time.Duration(i) * time.Millisecond),
			EndTime:              start.Add(time.Duration(i)*time.Millisecond + 3*time.Millisecond),
			Attributes:           attrs,
			Resource:             benchResource,
			InstrumentationScope: benchScope,
		}.Snapshot()
	}
	return spans
}

// reportPerSpan reports the time per span of a benchmark whose every
// iteration handles n spans.
func reportPerSpan(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/span")
}

// BenchmarkOTLPEncode measures encoding a batch of 512 spans of 20
// attributes: this package's encoder, and for comparison proto.Marshal of
// the same message held in the structs of go.opentelemetry.io/proto/otlp
// (what otlptrace does after tracetransform, which is internal to it,
// has built them).
func BenchmarkOTLPEncode(b *testing.B) {
	const n = 512
	spans := benchSpans(n, 20)
	b.Run("encoder", func(b *testing.B) {
		var enc traceEncoder
		buf := enc.appendTraceRequest(nil, spans)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			buf = enc.appendTraceRequest(buf[:0], spans)
		}
		reportPerSpan(b, n)
	})
	b.Run("proto.Marshal", func(b *testing.B) {
		var enc traceEncoder
		req := unmarshalRequest(b, enc.appendTraceRequest(nil, spans))
		b.SetBytes(int64(proto.Size(req)))
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := proto.Marshal(req); err != nil {
				b.Fatal(err)
			}
		}
		reportPerSpan(b, n)
	})
}

// BenchmarkOTLPExport measures ExportSpans of a batch of 512 spans of 20
// attributes to a local receiver that discards it, over OTLP/HTTP and
// OTLP/gRPC, plain and gzipped, with the official exporters and with this
// package's. The receivers' work, the same for both, is in the figures
// too; they discard the request without decoding it.
func BenchmarkOTLPExport(b *testing.B) {
	const n = 512
	spans := benchSpans(n, 20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", contentTypeProtobuf)
	}))
	defer srv.Close()
	grpcAddr := startDiscardGRPC(b)

	run := func(b *testing.B, exp sdktrace.SpanExporter, err error) {
		if err != nil {
			b.Fatal(err)
		}
		defer exp.Shutdown(context.Background())
		ctx := context.Background()
		if err := exp.ExportSpans(ctx, spans); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if err := exp.ExportSpans(ctx, spans); err != nil {
				b.Fatal(err)
			}
		}
		reportPerSpan(b, n)
	}
	for _, gz := range []bool{false, true} {
		compression := map[bool]string{false: "plain", true: "gzip"}[gz]
		b.Run("http/otlptracehttp/"+compression, func(b *testing.B) {
			opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(srv.URL + "/v1/traces")}
			if gz {
				opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
			}
			exp, err := otlptracehttp.New(context.Background(), opts...)
			run(b, exp, err)
		})
		b.Run("http/vantage/"+compression, func(b *testing.B) {
			cfg := config.TracingExporter{Name: "bench", Type: config.ExporterOTLPHTTP, Endpoint: srv.URL}
			if gz {
				cfg.Compression = "gzip"
			}
			exp, err := NewExporter(cfg)
			run(b, exp, err)
		})
		b.Run("grpc/otlptracegrpc/"+compression, func(b *testing.B) {
			opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure()}
			if gz {
				opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
			}
			exp, err := otlptracegrpc.New(context.Background(), opts...)
			run(b, exp, err)
		})
		b.Run("grpc/vantage/"+compression, func(b *testing.B) {
			cfg := config.TracingExporter{Name: "bench", Type: config.ExporterOTLPGRPC, Endpoint: "http://" + grpcAddr}
			if gz {
				cfg.Compression = "gzip"
			}
			exp, err := NewExporter(cfg)
			run(b, exp, err)
		})
	}
}

// startDiscardGRPC starts an OTLP/gRPC trace receiver on 127.0.0.1 that
// discards requests and answers with an empty response, until the
// benchmark ends, and returns its host:port.
func startDiscardGRPC(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(discardCodec{}))
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Export",
			Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				if err := dec(nil); err != nil {
					return nil, err
				}
				return nil, nil
			},
		}},
	}, struct{}{})
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// discardCodec is the gRPC codec of startDiscardGRPC: it reads nothing
// from requests and writes empty responses.
type discardCodec struct{}

func (discardCodec) Marshal(any) (mem.BufferSlice, error) { return nil, nil }
func (discardCodec) Unmarshal(mem.BufferSlice, any) error { return nil }
func (discardCodec) Name() string                         { return "proto" }
