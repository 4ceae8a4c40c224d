package accesslog

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// BenchmarkEncode measures encoding one typical record (allow-listed
// headers, a redacted query and Referer) into a reused buffer.
func BenchmarkEncode(b *testing.B) {
	for _, format := range []string{config.AccessLogJSON, config.AccessLogCommon, config.AccessLogCombined} {
		b.Run(format, func(b *testing.B) {
			enc := newEncoder(goldenConfig(format))
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
// plus the writer goroutine's share (batching, writing to io.Discard). The
// loop yields while the queue is more than half full, so the writer keeps
// up and no record is dropped: the time per op includes the writer's work.
// "off" is the same request without the middleware.
func BenchmarkMiddleware(b *testing.B) {
	noop := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	newReq := func() *http.Request {
		r := sampleRequest()
		return r.WithContext(observe.NewContext(r.Context(), sampleRecord()))
	}
	b.Run("off", func(b *testing.B) {
		r, w := newReq(), httptest.NewRecorder()
		b.ReportAllocs()
		for b.Loop() {
			noop.ServeHTTP(w, r)
		}
	})
	for _, format := range []string{config.AccessLogJSON, config.AccessLogCommon} {
		b.Run(format, func(b *testing.B) {
			l, err := New(goldenConfig(format), Options{Stdout: io.Discard})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			// Steady state: every buffer allocated once.
			var bufs []*buffer
			for buf := l.getBuffer(); buf != nil; buf = l.getBuffer() {
				bufs = append(bufs, buf)
			}
			for _, buf := range bufs {
				l.putBuffer(buf)
			}
			h := l.ForRoute(routeOf("users"))(noop)
			r, w := newReq(), httptest.NewRecorder()
			half := cap(l.queue) / 2
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
				for len(l.queue) > half {
					runtime.Gosched()
				}
			}
			b.ReportMetric(float64(l.Stats().DroppedQueueFull), "dropped")
		})
	}
}
