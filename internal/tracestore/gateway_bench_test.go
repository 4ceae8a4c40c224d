package tracestore

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"runtime"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/memsize"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/tracing/export"
)

// BenchmarkGatewaySpans measures what the store costs per proxied request
// at 100% sampling: a server and a client span with the gateway's
// attributes handed to a Sink (as the tracing pipeline does) and stored
// by the writer goroutine. Run with -cpu 1 so that the writer shares the
// one processor with the loop, as in a gateway pinned to one core: ns/op
// is then the CPU per request of the sink, the writer and the collector
// together, with the request's own garbage (cpu-ns/op is the same from the process's CPU time, which a
// busy machine does not inflate). The stores are filled before the timer
// starts, so that what is measured is a full store evicting as it stores,
// with the heap at the size it keeps then, not the heap's growth to it;
// the 128 MiB one is the default budget. The accesslog run also stores
// each request's JSON access-log record (Sink.TakeLog), as the gateway
// does with its access log on, the default.
//
//	go test ./internal/tracestore -run XXX -bench GatewaySpans -cpu 1 -benchtime 400000x -count 4
func BenchmarkGatewaySpans(b *testing.B) {
	for _, c := range []struct {
		budget int64
		log    bool
	}{{0, false}, {16 << 20, false}, {128 << 20, false}, {128 << 20, true}} {
		budget := c.budget
		name := fmt.Sprintf("budget=%dMiB", budget>>20)
		if budget == 0 {
			// The loop without the store: what the others add to it is
			// the store's cost.
			name = "nostore"
		}
		if c.log {
			name += "/accesslog"
		}
		b.Run(name, func(b *testing.B) {
			s, err := New(Options{Budget: max(budget, MinBudget)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			res := resource.NewSchemaless(attribute.String("service.name", "vantage"), attribute.String("host.name", "h1"))
			k := s.NewSink(res, 0)
			scope := instrumentation.Scope{Name: "vantage"}
			spans := make([]export.SpanData, 2)
			start := time.Unix(1_700_000_000, 0)
			// The attributes are built once, so that the loop allocates
			// only what the store does.
			clientAttrs := []attribute.KeyValue{
				attribute.String("http.request.method", "GET"), attribute.String("server.address", "127.0.0.1"),
				attribute.Int("server.port", 8081), attribute.String("url.full", "http://127.0.0.1:8081/"),
				attribute.String("network.peer.address", "127.0.0.1"), attribute.Int("network.peer.port", 8081),
				attribute.Int("http.response.status_code", 200), attribute.Int("http.response.body.size", 64),
			}
			serverAttrs := make([][]attribute.KeyValue, 16) // one per client connection
			for c := range serverAttrs {
				serverAttrs[c] = []attribute.KeyValue{
					attribute.String("http.request.method", "GET"), attribute.String("http.route", "/"),
					attribute.String("url.path", "/"), attribute.String("url.scheme", "http"),
					attribute.String("server.address", "127.0.0.1"), attribute.Int("server.port", 8080),
					attribute.String("network.peer.address", "127.0.0.1"), attribute.Int("network.peer.port", 40000+c),
					attribute.String("network.protocol.version", "1.1"), attribute.String("user_agent.original", "wrk"),
					attribute.Int("http.response.status_code", 200), attribute.Int("http.response.body.size", 64),
					attribute.String("vantage.listener", "bench"), attribute.String("vantage.route", "all"),
					attribute.String("vantage.service", "upstream"), attribute.String("vantage.upstream", "127.0.0.1:8081"),
					attribute.String("vantage.sampling.decision", "ratio"),
				}
			}
			// The gateway runs with gc_percent 400 and allocates about 5 KB
			// per request of its own, which sets how often the collector
			// runs and so how often it scans what the store holds.
			defer debug.SetGCPercent(debug.SetGCPercent(400))
			var garbage [16][]byte
			// An access-log line as the gateway writes it for these
			// spans (its trace id changes with the request).
			line := []byte(`{"timestamp":"2026-03-14T15:09:26.535897932Z","trace_id":"00000000000000000000000000000000",` +
				`"span_id":"0100000000000000","trace_sampled":true,"listener":"bench","http.request.method":"GET",` +
				`"url.path":"/","http.route":"/","network.protocol.version":"1.1","server.address":"127.0.0.1:8080",` +
				`"client.address":"127.0.0.1","user_agent.original":"wrk","http.response.status_code":200,` +
				`"route":"all","service":"upstream","upstream":"127.0.0.1:8081","attempts":1,` +
				`"http.request.body.size":0,"http.response.body.size":64,"duration_seconds":0.000350000,` +
				`"upstream_duration_seconds":0.000280000,"overhead_seconds":0.000070000}` + "\n")
			var rec observe.Record
			request := func(i int) {
				var tid trace.TraceID
				binary.BigEndian.PutUint64(tid[8:], uint64(i+1))
				tid[0] = 1
				server := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1, byte(i)}, TraceFlags: trace.FlagsSampled})
				client := server.WithSpanID(trace.SpanID{2, byte(i)})
				t := start.Add(time.Duration(i) * 50 * time.Microsecond)
				spans[0] = export.SpanData{
					SpanContext: client, Parent: server, Name: "GET", Kind: trace.SpanKindClient,
					Start: t.Add(20 * time.Microsecond), End: t.Add(300 * time.Microsecond), Attributes: clientAttrs,
				}
				spans[1] = export.SpanData{
					SpanContext: server, Name: "GET /", Kind: trace.SpanKindServer, Start: t, End: t.Add(350 * time.Microsecond),
					Attributes: serverAttrs[i%len(serverAttrs)],
				}
				if budget > 0 {
					k.TakeSpans(res, scope, spans)
					if c.log {
						rec.Trace = observe.TraceContext{TraceID: tid, SpanID: server.SpanID(), Sampled: true, Valid: true}
						rec.Start, rec.Status = t, 200
						hex.Encode(line[58:90], tid[:])
						k.TakeLog(&rec, line)
					}
				}
				garbage[i%len(garbage)] = make([]byte, 5<<10)
				if i%pendMax == 0 {
					// The gateway's requests take far longer than this
					// loop's, and the writer keeps up with them: let it
					// catch up rather than measure a queue that drops.
					for len(s.queue) > 0 {
						runtime.Gosched()
					}
				}
			}
			// Fill the store (and turn it over), then give the heap the
			// gateway's automatic memory limit: the live heap plus the
			// larger of 128 MiB and itself (cmd/vantage's autoLimit,
			// without the runtime's own memory, so a little tighter).
			i0 := 0
			if budget > 0 {
				for ; s.Stats().Bytes < s.Budget()*9/10 || i0 < 4*int(s.Stats().Traces); i0++ {
					request(i0)
				}
				if err := s.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			runtime.GC()
			live := int64(memsize.LiveHeap())
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(live + max(128<<20, live)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU(b)
			for i := 0; i < b.N; i++ {
				request(i0 + i)
			}
			if err := s.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			// Spans the queue refused were not stored: a run that drops
			// measures less work, and says so.
			b.ReportMetric(testutil.ToFloat64(s.m.spansDropped[dropQueueFull])/float64(b.N), "dropped/op")
			st := s.Stats()
			b.ReportMetric(float64(st.Bytes)/float64(max(st.Spans, 1)), "B/span")
		})
	}
}

// processCPU returns the user and system CPU time the process has used,
// in ns: on a shared machine the wall time per op counts the time other
// processes held the core, the CPU time does not.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkCollectFullStore measures what a garbage collection costs with
// a full store of gateway traces (a server and a client span each): the
// time of a forced collection on one processor, per stored trace. The
// store holds no pointers in its traces, so the collector marks each
// trace's block without reading it; a trace whose entry held pointers
// (and a buffer besides) cost several times as much.
//
//	go test ./internal/tracestore -run XXX -bench CollectFullStore -cpu 1 -benchtime 20x
func BenchmarkCollectFullStore(b *testing.B) {
	s, err := New(Options{Budget: 128 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	res := resource.NewSchemaless(attribute.String("service.name", "vantage"))
	k := s.NewSink(res, 0)
	scope := instrumentation.Scope{Name: "vantage"}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", "GET"), attribute.String("server.address", "127.0.0.1"),
		attribute.Int("server.port", 8081), attribute.String("url.full", "http://127.0.0.1:8081/"),
		attribute.String("network.peer.address", "127.0.0.1"), attribute.Int("network.peer.port", 8081),
		attribute.Int("http.response.status_code", 200), attribute.Int("http.response.body.size", 64),
		attribute.String("vantage.listener", "bench"), attribute.String("vantage.route", "all"),
		attribute.String("vantage.service", "upstream"), attribute.String("url.path", "/"),
	}
	start := time.Unix(1_700_000_000, 0)
	spans := make([]export.SpanData, 2)
	for i := 0; s.Stats().Bytes < s.Budget()*9/10 || i < 2*int(s.Stats().Traces); i++ {
		var tid trace.TraceID
		binary.BigEndian.PutUint64(tid[8:], uint64(i+1))
		tid[0] = 1
		server := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1, byte(i)}, TraceFlags: trace.FlagsSampled})
		t := start.Add(time.Duration(i) * 50 * time.Microsecond)
		spans[0] = export.SpanData{SpanContext: server.WithSpanID(trace.SpanID{2, byte(i)}), Parent: server, Name: "GET",
			Kind: trace.SpanKindClient, Start: t, End: t.Add(300 * time.Microsecond), Attributes: attrs[:8]}
		spans[1] = export.SpanData{SpanContext: server, Name: "GET /", Kind: trace.SpanKindServer,
			Start: t, End: t.Add(350 * time.Microsecond), Attributes: attrs}
		k.TakeSpans(res, scope, spans)
		if i%pendMax == 0 {
			for len(s.queue) > 0 {
				runtime.Gosched()
			}
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	traces := s.Stats().Traces
	runtime.GC()
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(traces), "ns/trace")
	b.ReportMetric(float64(traces), "traces")
	runtime.KeepAlive(s)
}
