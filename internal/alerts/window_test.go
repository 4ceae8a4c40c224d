package alerts

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// liveHistory is a real History driven by a fake clock, with one handler
// per route that records what the test asks for.
type liveHistory struct {
	h     *history.History
	clk   *clock.Fake
	route map[string]http.Handler
}

func newLiveHistory(tb testing.TB, cfg config.History, start time.Time, routes ...string) *liveHistory {
	tb.Helper()
	clk := clock.NewFake(start)
	h, err := history.New(cfg, history.Options{Clock: clk, NoMachine: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.Close)
	lh := &liveHistory{h: h, clk: clk, route: map[string]http.Handler{}}
	for _, r := range routes {
		svc := "users"
		if r == "shop" {
			svc = "orders"
		}
		mw := h.ForRoute(middleware.Route{Name: r, Services: []string{svc}})
		lh.route[r] = mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	}
	h.Tick(clk.Now())
	return lh
}

var traceSeq uint64

// serve records one request of route with status and latency.
func (lh *liveHistory) serve(route string, status int, latency time.Duration) {
	rec := &observe.Record{}
	rec.Reset()
	rec.Start = lh.clk.Now()
	rec.End = rec.Start.Add(latency)
	rec.Route, rec.Service, rec.Status = route, "users", status
	if route == "shop" {
		rec.Service = "orders"
	}
	switch {
	case status == 429:
		rec.ErrorKind = observe.ErrRateLimited
	case status >= 500:
		rec.ErrorKind = observe.ErrUpstreamConnect
	}
	traceSeq++
	rec.Trace.TraceID[0], rec.Trace.TraceID[15] = byte(traceSeq>>8)|1, byte(traceSeq)
	rec.Trace.Valid, rec.Trace.Sampled = true, true
	rec.AddAttempt(observe.Attempt{Service: rec.Service, Upstream: "127.0.0.1:9001", Duration: latency / 2, Status: status})
	r := httptest.NewRequest("GET", "/", nil)
	lh.route[route].ServeHTTP(httptest.NewRecorder(), r.WithContext(observe.NewContext(r.Context(), rec)))
}

// second ends the current second: the history seals it.
func (lh *liveHistory) second() {
	lh.clk.Advance(time.Second)
	lh.h.Tick(lh.clk.Now())
}

// equalAlerts compares two evaluations, exemplars by trace id.
func equalAlerts(a, b []Alert) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d alerts, want %d", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Rule != y.Rule || !reflect.DeepEqual(x.Labels, y.Labels) || x.State != y.State || x.Value != y.Value ||
			x.Requests != y.Requests || !x.ActiveAt.Equal(y.ActiveAt) || !x.FiredAt.Equal(y.FiredAt) ||
			!reflect.DeepEqual(x.Annotations, y.Annotations) || len(x.Exemplars) != len(y.Exemplars) {
			return fmt.Errorf("alert %d:\n got %+v\nwant %+v", i, x, y)
		}
		for j := range x.Exemplars {
			if x.Exemplars[j].TraceID != y.Exemplars[j].TraceID {
				return fmt.Errorf("alert %d exemplar %d: %s, want %s", i, j, x.Exemplars[j].TraceID, y.Exemplars[j].TraceID)
			}
		}
	}
	return nil
}

// TestIncrementalMatchesWhole drives a real History (2 minutes of
// seconds, then minutes, so that long windows cross from per-second to
// per-minute data) with random bursts of failing and slow requests, and
// checks at every second that the incremental evaluation gives exactly
// what reading every window whole gives: states, values, sample sizes,
// annotations (burn rates, budget) and exemplars. It includes quiet
// stretches, a gap of a minute without evaluation and one of six
// minutes (read whole again), and a reload that adds an SLO.
func TestIncrementalMatchesWhole(t *testing.T) {
	rules := `  rules:
    - {name: Err, scope: route, metric: error_ratio, window: 10s, threshold: 0.2, resolve_threshold: 0.1, for: 3s, keep_firing_for: 2s, min_requests: 3}
    - {name: Err2m, scope: route, target: api, metric: error_ratio, window: 150s, threshold: 0.1}
    - {name: Slow, scope: route, metric: latency, quantile: 0.9, window: 30s, threshold: 0.2, min_requests: 1}
    - {name: SlowLong, scope: route, metric: latency, quantile: 0.9, window: 7m, threshold: 0.1}
    - {name: Ovh, scope: service, metric: overhead, quantile: 0.99, window: 20s, threshold: 0.00001}
    - {name: Quiet, scope: route, target: shop, metric: request_rate, op: "<", window: 5s, threshold: 1}
    - {name: Gw, scope: gateway, metric: request_rate, window: 1m, threshold: 3}
    - {name: Limited, scope: route, metric: rate_limited_ratio, window: 20s, threshold: 0.5}
  slos:
    - {name: api-avail, scope: route, target: api, objective: 0.99, latency: 300ms, alerts: [page]}
`
	hc := config.History{SecondRetention: config.Duration(2 * time.Minute), MinuteRetention: config.Duration(2 * time.Hour)}
	rs := compile(t, rules)
	rs.secRetention = hc.SecondRetention.D()
	lh := newLiveHistory(t, hc, t0, "api", "shop")
	inc, whole := NewEvaluator(rs), newFullEvaluator(rs)
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(1, 2))
	src := lh.h.Source()
	fired := map[string]bool{}
	for sec := 0; sec < 1500; sec++ {
		phase := (sec / 40) % 4 // 0 calm, 1 failing, 2 slow, 3 quiet
		for _, route := range []string{"api", "shop"} {
			n := rnd.IntN(6)
			if phase == 3 {
				n = rnd.IntN(2)
			}
			for i := 0; i < n; i++ {
				status, lat := 200, time.Duration(5+rnd.IntN(50))*time.Millisecond
				if phase == 1 && rnd.IntN(3) == 0 {
					status = 502
				}
				if phase == 2 && rnd.IntN(2) == 0 {
					lat = time.Duration(200+rnd.IntN(800)) * time.Millisecond
				}
				if phase == 3 && route == "api" {
					status = 429
				}
				lh.serve(route, status, lat)
			}
		}
		lh.second()
		switch {
		case sec >= 600 && sec < 660: // not evaluated for a minute
			continue
		case sec >= 700 && sec < 1060: // six minutes: read whole again
			continue
		}
		if sec == 1100 {
			rs2 := compile(t, rules+"    - {name: api-avail2, scope: route, target: shop, objective: 0.95, alerts: [page]}\n")
			rs2.secRetention = hc.SecondRetention.D()
			inc.SetRules(rs2)
			whole.SetRules(rs2)
		}
		at := lh.h.Latest()
		got, _, err := inc.Evaluate(ctx, src, at)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := whole.Evaluate(ctx, src, at)
		if err != nil {
			t.Fatal(err)
		}
		if err := equalAlerts(got, want); err != nil {
			t.Fatalf("second %d: %v", sec, err)
		}
		for _, a := range got {
			if a.State == StateFiring {
				fired[a.Rule] = true
			}
		}
	}
	// The traffic made the rules fire: the comparison is not of empties.
	for _, r := range []string{"Err", "Err2m", "Slow", "SlowLong", "Quiet", "Gw", "Limited", "SLOBurnRate"} {
		if !fired[r] {
			t.Errorf("rule %s never fired (fired: %v)", r, fired)
		}
	}
}
