package metrics

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/memsize"
	"github.com/vantage-gateway/vantage/internal/metrics/series"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// estateRoutes builds the metrics stage of n routes, each with its own
// service, as a snapshot of a large estate does.
func estateRoutes(m *Metrics, n int) []http.Handler {
	hs := make([]http.Handler, n)
	for i := range hs {
		name := "svc" + strconv.Itoa(i)
		r := middleware.Route{Name: name, Template: "/" + name + "/items/{id}", Services: []string{name}}
		hs[i] = middleware.Chain(fillLikeProxy(200), ended(m, m.ForRoute(r)))
	}
	return hs
}

func serveOnce(h http.Handler) {
	rec := observe.GetRecord()
	defer observe.PutRecord(rec)
	rec.Start = time.Now()
	req := httptest.NewRequest("GET", "/x", nil).WithContext(observe.NewContext(context.Background(), rec))
	h.ServeHTTP(&nopWriter{h: http.Header{}}, req)
}

// TestRoutesWithoutTrafficCostNoSeries: building the stages of 10,000
// routes creates no series and keeps little memory per route; the series
// of a route appear with its first request.
func TestRoutesWithoutTrafficCostNoSeries(t *testing.T) {
	m := newTestMetrics(t, "  host: {enabled: false}\n  process: false\n", nil)
	before := memsize.LiveHeap()
	hs := estateRoutes(m, 10000)
	perRoute := float64(int64(memsize.LiveHeap())-int64(before)) / 10000
	t.Logf("%.0f bytes per route", perRoute)
	if n := m.f.duration.Len() + m.f.requests.Len() + m.f.overhead.Len(); n != 0 {
		t.Fatalf("%d series exist before any request", n)
	}
	// The stage of a route is its handler chain and a routeMetrics of a
	// few words; before the groups were lazy it was ~3 KB.
	if perRoute > 1024 {
		t.Errorf("%.0f bytes per route without traffic, want < 1 KiB", perRoute)
	}
	serveOnce(hs[7])
	if got := values(t, m, "vantage_requests_total"); len(got) != 1 || got[`class=2xx,code=200,method=GET,route=svc7,service=users`] != 1 {
		t.Errorf("after one request to svc7: %v", got)
	}
	runtime.KeepAlive(hs)
}

// TestRecordDoesNotAllocateAfterFirstUse: once a route's series exist,
// recording a request allocates nothing.
func TestRecordDoesNotAllocateAfterFirstUse(t *testing.T) {
	m := newTestMetrics(t, "  host: {enabled: false}\n  process: false\n  exemplars: {enabled: false}\n", nil)
	h := estateRoutes(m, 3)[1]
	rec := observe.GetRecord()
	req := httptest.NewRequest("GET", "/x", nil).WithContext(observe.NewContext(context.Background(), rec))
	w := &nopWriter{h: http.Header{}}
	run := func() {
		rec.Reset()
		rec.Start = time.Now()
		h.ServeHTTP(w, req)
	}
	run()
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Errorf("%v allocations per request after the first", n)
	}
}

// TestIdleRouteSeriesAreFreed: the series of a route that stops receiving
// traffic are expired and their memory freed while the route keeps
// serving; its next request records from zero.
func TestIdleRouteSeriesAreFreed(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	m := newTestMetrics(t, "  host: {enabled: false}\n  process: false\n  series_idle_timeout: 1m\n", clk)
	hs := estateRoutes(m, 2)
	serveOnce(hs[0])
	serveOnce(hs[1])
	watch := func(f *series.Family, values ...string) weak.Pointer[series.Child] {
		return weak.Make(f.With(values...))
	}
	idle := watch(m.f.duration, "svc0", "users", "GET", "2xx")
	busy := watch(m.f.duration, "svc1", "users", "GET", "2xx")
	for range 12 {
		clk.Advance(10 * time.Second)
		serveOnce(hs[1])
		m.sweep(clk.Now())
	}
	runtime.GC()
	runtime.GC()
	if idle.Value() != nil {
		t.Fatal("the idle route's duration histogram is still in memory after expiry")
	}
	if busy.Value() == nil {
		t.Fatal("the busy route's histogram was freed")
	}
	got := values(t, m, "vantage_request_duration_seconds")
	if len(got) != 1 || got["class=2xx,method=GET,route=svc1,service=users"] != 13 {
		t.Fatalf("after expiry: %v", got)
	}
	serveOnce(hs[0])
	if got := values(t, m, "vantage_request_duration_seconds")["class=2xx,method=GET,route=svc0,service=users"]; got != 1 {
		t.Errorf("the idle route's next request: count %v, want 1", got)
	}
}

// TestRouteHistogramsAreCoarse: histograms labelled by route take
// metrics.route_buckets (the overhead histogram overhead_buckets), the service-level
// ones metrics.buckets in full; a route that served one kind of request
// costs a few dozen samples on /metrics.
func TestRouteHistogramsAreCoarse(t *testing.T) {
	m := newTestMetrics(t, "  host: {enabled: false}\n  process: false\n", nil)
	hs := estateRoutes(m, 10)
	serveOnce(hs[7])
	serveOnce(hs[3])
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	buckets := map[string]int{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			if h := mt.GetHistogram(); h != nil {
				buckets[f.GetName()] = len(h.GetBucket())
				if h.GetSampleCount() == 0 {
					t.Errorf("%s: empty histogram", f.GetName())
				}
			}
		}
	}
	want := map[string]int{
		"vantage_request_duration_seconds":          4,
		"vantage_request_upstream_seconds":          4,
		"vantage_upstream_request_duration_seconds": 4,
		"vantage_request_overhead_seconds":          5,
		"vantage_service_request_duration_seconds":  14,
	}
	for name, n := range want {
		if buckets[name] != n {
			t.Errorf("%s: %d buckets, want %d", name, buckets[name], n)
		}
	}
	if got := values(t, m, "vantage_service_request_duration_seconds")["class=2xx,service=users"]; got != 2 {
		t.Errorf("service-level count %v, want 2 (two routes of one service)", got)
	}
	text := scrape(t, m, "")
	n := strings.Count(text, `route="svc7"`)
	t.Logf("%d samples of route svc7", n)
	if n == 0 || n > 40 {
		t.Errorf("%d samples for one route, want a few dozen at most", n)
	}
}
