package accesslog

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// BenchmarkEncode measures encoding one typical record (allow-listed
// headers, a redacted query and Referer) into a reused buffer.
func BenchmarkEncode(b *testing.B) {
	for _, format := range []string{config.AccessLogJSON, config.AccessLogCommon, config.AccessLogCombined} {
		b.Run(format, func(b *testing.B) {
			enc := newEncoder(goldenConfig(format), nil)
			rec, r := sampleRecord(), sampleRequest()
			resp := http.Header{"Content-Type": {"application/json"}}
			buf := make([]byte, 0, 2048)
			b.ReportAllocs()
			for b.Loop() {
				buf = enc.encode(buf[:0], rec, r, resp)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// BenchmarkMiddleware measures the access log's whole cost per request:
// the middleware around a no-op handler (finish, filter, encode, enqueue)
// plus the writer goroutine's share (batching, writing to io.Discard).
// cpu-ns/op is the process's CPU time (user+system, from getrusage) per
// request, which counts the writer and is not inflated by other load on
// the machine; ns/op is wall time and includes pauses that let the writer
// keep up (so nothing is dropped). "off" is the request without the
// middleware.
func BenchmarkMiddleware(b *testing.B) {
	noop := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	newReq := func() *http.Request {
		r := sampleRequest()
		return r.WithContext(observe.NewContext(r.Context(), sampleRecord()))
	}
	b.Run("off", func(b *testing.B) {
		r, w := newReq(), httptest.NewRecorder()
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			noop.ServeHTTP(w, r)
		}
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	})
	for _, c := range []struct {
		format string
		tap    bool
	}{{config.AccessLogJSON, false}, {config.AccessLogCommon, false}, {config.AccessLogJSON, true}} {
		format, name := c.format, c.format
		var tap Tap
		if c.tap {
			// The trace store's tap on every record: it copies each line.
			tap, name = &copyingTap{}, name+"+tap"
		}
		b.Run(name, func(b *testing.B) {
			l, err := New(goldenConfig(format), Options{Stdout: io.Discard, Tap: tap})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			// Steady state: every buffer allocated once.
			var bufs []*buffer
			for buf, ok := l.bufs.Get(); ok; buf, ok = l.bufs.Get() {
				bufs = append(bufs, buf)
			}
			for _, buf := range bufs {
				l.putBuffer(buf)
			}
			h := ended(l, l.ForRoute(routeOf("users")))(noop)
			r, w := newReq(), httptest.NewRecorder()
			high := l.queue.Cap() * 3 / 4
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				h.ServeHTTP(w, r)
				for l.queue.Len() > high {
					time.Sleep(100 * time.Microsecond)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(l.Stats().DroppedQueueFull), "dropped")
		})
	}
}

// copyingTap wants every record and copies its line, as the trace store's
// sink does.
type copyingTap struct{ last []byte }

func (t *copyingTap) WantsLog(*observe.Record) bool { return true }
func (t *copyingTap) TakeLog(_ *observe.Record, line []byte) {
	t.last = append(t.last[:0], line...)
}

// cpuTime returns the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// discardExporter accepts every batch and keeps nothing.
type discardExporter struct{}

func (discardExporter) Export(context.Context, []sdklog.Record) error { return nil }
func (discardExporter) Shutdown(context.Context) error                { return nil }
func (discardExporter) ForceFlush(context.Context) error              { return nil }

// BenchmarkMiddlewareOTLP measures the access log with OTLP export on: the
// request path (finish, filter, copy into a recycled entry, enqueue) plus
// the export goroutine's share (building the SDK log records; the exporter
// discards them, so no protobuf or network cost is included). allocs/op
// counts both goroutines; "capture" is the request path alone.
func BenchmarkMiddlewareOTLP(b *testing.B) {
	noop := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	newReq := func() *http.Request {
		r := sampleRequest()
		return r.WithContext(observe.NewContext(r.Context(), sampleRecord()))
	}
	withOTLP := func(output string) config.AccessLog {
		c := goldenConfig(config.AccessLogJSON)
		c.Output = output
		c.OTLP = &config.AccessLogOTLP{Exporter: "x", QueueSize: 4096, BatchSize: 512, FlushInterval: config.Duration(time.Second)}
		return c
	}
	b.Run("capture", func(b *testing.B) {
		l, err := New(withOTLP(config.OutputNone), Options{LogExporter: discardExporter{}, FlushInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		rec, r, resp := sampleRecord(), sampleRequest(), http.Header{"Content-Type": {"application/json"}}
		b.ReportAllocs()
		for b.Loop() {
			l.otlp.capture(rec, r, resp, t0)
			if l.otlp.queue.Len() >= 1024 {
				// Empty the queue off the clock: the export is not the
				// request path's.
				b.StopTimer()
				_ = l.otlp.queue.Flush(context.Background())
				b.StartTimer()
			}
		}
	})
	for _, output := range []string{config.OutputNone, config.OutputStdout} {
		name := "otlp-only"
		if output == config.OutputStdout {
			name = "json+otlp"
		}
		b.Run(name, func(b *testing.B) {
			l, err := New(withOTLP(output), Options{Stdout: io.Discard, LogExporter: discardExporter{}})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			h := ended(l, l.ForRoute(routeOf("users")))(noop)
			r, w := newReq(), httptest.NewRecorder()
			high := l.otlp.queue.Cap() * 3 / 4
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				h.ServeHTTP(w, r)
				for l.otlp.queue.Len() > high || queueLen(l.queue) > high {
					time.Sleep(100 * time.Microsecond)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			st := l.Stats()
			b.ReportMetric(float64(st.DroppedQueueFull+st.OTLPDroppedQueueFull), "dropped")
		})
	}
}
