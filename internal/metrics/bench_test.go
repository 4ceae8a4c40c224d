package metrics

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

// fillLikeProxy is the innermost handler of the benchmarks: it fills the
// record the way the proxy does for one successful attempt.
func fillLikeProxy(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := observe.FromContext(r.Context())
		rec.Service = "users"
		a := rec.AddAttempt(observe.Attempt{Service: "users", Upstream: "10.0.0.1:8080", Start: rec.Start})
		a.Duration = 3 * time.Millisecond
		a.BodyDuration = 200 * time.Microsecond
		a.Status = status
		rec.Upstream = a.Upstream
		rec.Status = status
		rec.BytesIn, rec.BytesOut = 120, 2048
	}
}

func benchRoute(b *testing.B, metricsYAML string, sampled, kpis bool) {
	m := newTestMetrics(b, metricsYAML+"  host: {enabled: false}\n  process: false\n", nil)
	route := middleware.Route{Name: "checkout", Template: "/checkout", Services: []string{"users"}}
	h := middleware.Chain(fillLikeProxy(201), ended(m, m.ForRoute(route)))
	rec := observe.GetRecord()
	req := httptest.NewRequest("POST", "/checkout", nil).WithContext(observe.NewContext(context.Background(), rec))
	w := &nopWriter{h: http.Header{}}
	if kpis {
		w.h.Set("X-Payment-Method", "card")
		w.h.Set("X-Order-Amount", "42.5")
	}
	run := func() {
		rec.Reset()
		rec.Start = time.Now()
		if sampled {
			rec.Trace = observe.TraceContext{TraceID: [16]byte{1, 2, 3}, Valid: true, Sampled: true}
		}
		h.ServeHTTP(w, req)
	}
	run() // resolve the series
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		run()
	}
}

// BenchmarkRecord measures the metrics stage per request: in-flight gauge,
// the gateway's end stage (one clock read, Record.Finish), then
// requests/latency/overhead/bytes and one upstream attempt.
func BenchmarkRecord(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchRoute(b, "", false, false) })
	b.Run("sampled-trace", func(b *testing.B) { benchRoute(b, "", true, false) })
	b.Run("with-kpis", func(b *testing.B) { benchRoute(b, kpiYAML, false, true) })
	b.Run("native-histograms", func(b *testing.B) { benchRoute(b, "  native_histograms: {enabled: true}\n", false, false) })
}

// BenchmarkRecordBaseline is the same handler without the metrics stage,
// to subtract.
func BenchmarkRecordBaseline(b *testing.B) {
	h := fillLikeProxy(201)
	rec := observe.GetRecord()
	req := httptest.NewRequest("POST", "/checkout", nil).WithContext(observe.NewContext(context.Background(), rec))
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		rec.Reset()
		rec.Start = time.Now()
		h.ServeHTTP(w, req)
	}
}

// BenchmarkRecordParallel records from every P at once into the same
// route's series.
func BenchmarkRecordParallel(b *testing.B) {
	m := newTestMetrics(b, "  host: {enabled: false}\n  process: false\n", nil)
	h := middleware.Chain(fillLikeProxy(200), ended(m, m.ForRoute(middleware.Route{Name: "api", Services: []string{"users"}})))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rec := observe.GetRecord()
		req := httptest.NewRequest("GET", "/api", nil).WithContext(observe.NewContext(context.Background(), rec))
		w := &nopWriter{h: http.Header{}}
		for pb.Next() {
			rec.Reset()
			rec.Start = time.Now()
			h.ServeHTTP(w, req)
		}
	})
}

// BenchmarkObserve measures a per-request decision event whose series
// exists.
func BenchmarkObserve(b *testing.B) {
	m := newTestMetrics(b, "  host: {enabled: false}\n  process: false\n", nil)
	ev := observe.Event{Kind: observe.EventSplitChosen, Route: "shop", Service: "canary", Split: observe.SplitWeight}
	m.Observe(ev)
	b.ReportAllocs()
	for b.Loop() {
		m.Observe(ev)
	}
}

// BenchmarkScrape serves /metrics (text format) over 10,000 series.
func BenchmarkScrape(b *testing.B) {
	for _, tc := range []struct {
		name    string
		fill    func(m *Metrics)
		formats []string
	}{
		{"10k-counters", func(m *Metrics) {
			for i := 0; i < 10000; i++ {
				m.f.requests.With("route-"+strconv.Itoa(i/20), "svc", "GET", strconv.Itoa(200+i%20), "2xx").Inc()
			}
		}, []string{"", openMetrics}},
		{"1k-histograms", func(m *Metrics) { // 1,000 label sets, 17,000 samples
			for i := 0; i < 1000; i++ {
				m.f.duration.With("route-"+strconv.Itoa(i/10), "svc", "GET", strconv.Itoa(i%10)).Observe(0.01)
			}
		}, []string{""}},
	} {
		for _, accept := range tc.formats {
			name := tc.name + "/text"
			if accept != "" {
				name = tc.name + "/openmetrics"
			}
			b.Run(name, func(b *testing.B) {
				m := newTestMetrics(b, "  max_series_per_metric: 20000\n  host: {enabled: false}\n  process: false\n", nil)
				tc.fill(m)
				r := httptest.NewRequest("GET", "/metrics", nil)
				r.Header.Set("Accept", accept)
				b.ReportAllocs()
				for b.Loop() {
					w := &nopWriter{h: http.Header{}}
					m.Handler().ServeHTTP(w, r)
				}
			})
		}
	}
}
