package history

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// testKPIs: a counter of checkout's successful POSTs labelled by plan, a
// histogram of order amounts from a response header, and a histogram of
// request durations on every route.
func testKPIs() []config.KPI {
	return []config.KPI{
		{Name: "purchases_total", Type: "counter",
			Match: config.KPIMatch{Routes: []string{"checkout"}, Methods: []string{"POST"}, Status: []string{"2xx"}},
			Label: &config.KPILabel{Name: "plan", Header: "X-Plan", Values: []string{"free", "pro"}}},
		{Name: "order_amount", Type: "histogram", ValueHeader: "X-Amount", Buckets: []float64{10, 100},
			Match: config.KPIMatch{Routes: []string{"checkout"}}},
		{Name: "request_seconds", Type: "histogram", Buckets: []float64{0.1, 1}},
	}
}

func newKPIHistory(tb testing.TB) (*History, *clock.Fake) {
	tb.Helper()
	clk := clock.NewFake(t0)
	h, err := New(config.History{}, Options{Clock: clk, NoMachine: true, KPIs: testKPIs()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.Close)
	return h, clk
}

func checkoutStage(h *History) *stage {
	rc := &config.Route{Name: "checkout", Split: &config.Split{Services: []config.SplitService{{Service: "stable", Weight: 90}, {Service: "canary", Weight: 10}}}}
	return h.stageFor(middleware.Route{Name: "checkout", Services: []string{"stable", "canary"}, Config: rc})
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func sum(tb testing.TB, h *History, name string, from, to time.Time) Point {
	tb.Helper()
	var p Point
	for _, x := range rangeOf(tb, h, ScopeKPI, name, from, to, to.Sub(from)) {
		p.Add(&x)
	}
	return p
}

func TestKPISeries(t *testing.T) {
	h, clk := newKPIHistory(t)
	co := checkoutStage(h)
	other := h.stageFor(middleware.Route{Name: "other", Services: []string{"users"}})
	h.stageFor(middleware.Route{}) // unmatched
	h.Tick(clk.Now())

	send := func(st *stage, method, svc string, status int, lat time.Duration, hd http.Header) {
		rec := req(svc, status, lat, observe.ErrNone)
		st.Record(rec)
		st.RecordKPIs(method, hd, rec)
	}
	// Second 0.
	send(co, "POST", "stable", 201, 100*time.Millisecond, hdr("X-Plan", "pro", "X-Amount", "49.5"))
	send(co, "POST", "stable", 200, 300*time.Millisecond, hdr("X-Plan", "gold", "X-Amount", "-10")) // other; a refund
	send(co, "POST", "canary", 200, 200*time.Millisecond, hdr("X-Amount", "100"))                   // none
	send(co, "POST", "canary", 500, 200*time.Millisecond, hdr("X-Plan", "pro", "X-Amount", "x"))    // status and value do not match
	send(co, "GET", "stable", 200, 100*time.Millisecond, hdr("X-Plan", "pro"))                      // method does not match
	send(other, "POST", "users", 200, 500*time.Millisecond, hdr("X-Plan", "pro", "X-Amount", "7"))  // route does not match
	clk.Advance(time.Second)
	h.Tick(clk.Now())
	// Second 1: one more pro purchase on the canary.
	send(co, "POST", "canary", 201, 100*time.Millisecond, hdr("X-Plan", "pro"))
	clk.Advance(time.Second)
	h.Tick(clk.Now())

	s0, s1, s2 := t0, t0.Add(time.Second), t0.Add(2*time.Second)
	for _, tc := range []struct {
		name  string
		from  time.Time
		count uint64
		sum   float64
	}{
		{"purchases_total", s0, 3, 0},
		{"purchases_total", s1, 1, 0},
		{"purchases_total:plan=pro", s0, 1, 0},
		{"purchases_total:plan=other", s0, 1, 0},
		{"purchases_total:plan=none", s0, 1, 0},
		{"purchases_total:plan=free", s0, 0, 0},
		{"purchases_total@checkout/stable", s0, 2, 0},
		{"purchases_total@checkout/canary", s0, 1, 0},
		{"purchases_total@checkout/canary", s1, 1, 0},
		{"order_amount", s0, 3, 139.5},
		{"order_amount@checkout/canary", s0, 1, 100},
		{"request_seconds", s0, 6, 1.4},
		{"request_seconds@checkout/stable", s0, 3, 0.5},
	} {
		p := sum(t, h, tc.name, tc.from, tc.from.Add(time.Second))
		if p.V[KPICount] != tc.count || math.Abs(p.KPISum()-tc.sum) > 1e-9 {
			t.Errorf("%s at %s: count %d sum %g, want %d and %g", tc.name, tc.from.Format("05"), p.V[KPICount], p.KPISum(), tc.count, tc.sum)
		}
	}
	if p := sum(t, h, "order_amount", s0, s2); math.Abs(p.KPIMean()-46.5) > 1e-9 {
		m := p.KPIMean()
		t.Errorf("order_amount mean %g, want 46.5", m)
	}
	names := h.Names(ScopeKPI)
	want := []string{
		"order_amount", "order_amount@checkout/canary", "order_amount@checkout/stable",
		"purchases_total", "purchases_total:plan=free", "purchases_total:plan=none", "purchases_total:plan=other", "purchases_total:plan=pro",
		"purchases_total@checkout/canary", "purchases_total@checkout/stable",
		"request_seconds", "request_seconds@checkout/canary", "request_seconds@checkout/stable",
	}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("kpi names\n got %q\nwant %q", names, want)
	}

	// The minute rolls up the KPI fields like every other counter.
	clk.Set(t0.Add(time.Minute + 20*time.Millisecond))
	h.Tick(clk.Now())
	res, err := h.Range(context.Background(), Query{Scope: ScopeKPI, Name: "order_amount", From: t0, To: t0.Add(time.Minute), Step: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Points[0]; p.V[KPICount] != 3 || math.Abs(p.KPISum()-139.5) > 1e-9 {
		t.Errorf("minute of order_amount: %d, %g", p.V[KPICount], p.KPISum())
	}
	h.mu.Lock()
	var mins int
	for _, s := range h.series {
		if s.key == (seriesKey{ScopeKPI, "order_amount"}) {
			s.mu.RLock()
			mins = s.mins.bytes()
			s.mu.RUnlock()
		}
	}
	h.mu.Unlock()
	if mins == 0 {
		t.Error("no per-minute record of order_amount")
	}
}

func TestKPIsThroughTheStageHandler(t *testing.T) {
	h, clk := newKPIHistory(t)
	mw := h.ForRoute(middleware.Route{Name: "checkout", Services: []string{"stable"}})
	hd := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.FromContext(r.Context())
		rec.Service, rec.Status = "stable", 201
		w.Header().Set("X-Plan", "free")
		w.Header().Set("X-Amount", "12.25")
		w.WriteHeader(201)
		rec.Finish(rec.Start.Add(time.Millisecond))
	}))
	h.Tick(clk.Now())
	for range 4 {
		rec := observe.GetRecord()
		rec.Start = t0
		r := httptest.NewRequest("POST", "/buy", nil)
		r = r.WithContext(observe.NewContext(r.Context(), rec))
		hd.ServeHTTP(httptest.NewRecorder(), r)
		observe.PutRecord(rec)
	}
	clk.Advance(time.Second)
	h.Tick(clk.Now())
	if p := sum(t, h, "purchases_total:plan=free", t0, t0.Add(time.Second)); p.V[KPICount] != 4 {
		t.Errorf("free purchases %d, want 4", p.V[KPICount])
	}
	if p := sum(t, h, "order_amount", t0, t0.Add(time.Second)); p.KPISum() != 49 {
		t.Errorf("order amounts %g, want 49", p.KPISum())
	}
}

func TestRecordKPIsDoesNotAllocate(t *testing.T) {
	h, _ := newKPIHistory(t)
	st := checkoutStage(h)
	rec := benchRecord()
	rec.Service = "canary"
	hd := hdr("X-Plan", "pro", "X-Amount", "19.99")
	st.RecordKPIs("POST", hd, rec)
	if n := testing.AllocsPerRun(1000, func() {
		st.Record(rec)
		st.RecordKPIs("POST", hd, rec)
	}); n != 0 {
		t.Fatalf("Record with KPIs allocates %v times per request", n)
	}
}

func TestKPIHelpers(t *testing.T) {
	h, clk := newKPIHistory(t)
	st := checkoutStage(h)
	h.Tick(clk.Now())
	src := h.Source()
	ctx := context.Background()
	// 10 minutes: each second the stable leg serves 9 requests, 3 of them
	// purchases; the canary 1 request, a purchase every second second.
	// From minute 5 on the stable leg sells twice as much.
	for s := 0; s < 600; s++ {
		for i := 0; i < 10; i++ {
			svc, buy := "stable", i < 3
			if s >= 300 {
				buy = i < 6
			}
			if i == 9 {
				svc, buy = "canary", s%2 == 0
			}
			status := 404
			if buy {
				status = 201
			}
			rec := req(svc, status, 10*time.Millisecond, observe.ErrNone)
			st.Record(rec)
			st.RecordKPIs("POST", hdr("X-Plan", "pro", "X-Amount", "10"), rec)
		}
		clk.Advance(time.Second)
		h.Tick(clk.Now())
	}
	end := h.Latest()
	canary, stable, err := KPILegs(ctx, src, "purchases_total", "checkout", "canary", "stable", end, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if canary.Requests != 60 || canary.Count != 30 || canary.PerRequest() != 0.5 || stable.Requests != 540 || stable.Count != 360 {
		t.Fatalf("canary %+v stable %+v", canary, stable)
	}
	oc, _, err := KPILegs(ctx, src, "order_amount", "checkout", "canary", "stable", end, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// order_amount counts every POST with an amount, whatever its status.
	if oc.Count != 60 || oc.Sum != 600 || oc.ValuePerRequest() != 10 || oc.Mean() != 10 {
		t.Fatalf("order amounts on the canary %+v", oc)
	}
	now, then, err := Shifted(ctx, src, ScopeKPI, "purchases_total", end, time.Minute, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if now.Rate(KPICount, time.Minute) != 6.5 || then.Rate(KPICount, time.Minute) != 3.5 {
		t.Fatalf("rate now %g, 5 min earlier %g", now.Rate(KPICount, time.Minute), then.Rate(KPICount, time.Minute))
	}
	cur, avg, err := MovingAverage(ctx, src, ScopeKPI, "purchases_total", KPICount, end, time.Minute, 6)
	if err != nil {
		t.Fatal(err)
	}
	// The six minutes before the last (minutes 3 to 8): two at 3.5/s,
	// four at 6.5/s.
	if cur != 6.5 || math.Abs(avg-(2*3.5+4*6.5)/6) > 1e-9 {
		t.Fatalf("moving average: current %g, average %g", cur, avg)
	}
	// A window before the history began is empty, not an error.
	_, then, err = Shifted(ctx, src, ScopeKPI, "purchases_total", end, time.Minute, 24*time.Hour)
	if err != nil || then.V[KPICount] != 0 {
		t.Fatalf("a day earlier: %v, %v", then.V[KPICount], err)
	}
	if _, _, err := Shifted(ctx, src, ScopeKPI, "purchases_total", end, time.Minute, 0); err == nil {
		t.Fatal("a zero offset is accepted")
	}
	if _, err := KPIOfLeg(ctx, src, "purchases_total", "checkout", "nope", end, time.Minute); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown leg: %v", err)
	}
}

func TestKPIQueryAPI(t *testing.T) {
	h, clk := newKPIHistory(t)
	st := checkoutStage(h)
	h.Tick(clk.Now())
	rec := req("canary", 201, 10*time.Millisecond, observe.ErrNone)
	st.Record(rec)
	st.RecordKPIs("POST", hdr("X-Plan", "pro", "X-Amount", "2.5"), rec)
	clk.Advance(time.Second)
	h.Tick(clk.Now())
	q, err := parseQuery(url.Values{"scope": {"kpi"}, "name": {"order_amount@checkout/canary"}, "window": {"1s"}}, h.Latest())
	if err != nil {
		t.Fatal(err)
	}
	if !q.series["kpi"] || len(q.series) != 1 {
		t.Fatalf("kpi scope's default series %v", q.series)
	}
	res, err := h.Range(context.Background(), q.Query)
	if err != nil {
		t.Fatal(err)
	}
	m := pointJSON(&res.Points[0], q.series)["kpi"].(map[string]any)
	if m["count"] != uint64(1) || m["sum"] != 2.5 || m["mean"] != 2.5 {
		t.Fatalf("kpi JSON %v", m)
	}
}

// BenchmarkRecordKPIs is the cost of the three test KPIs at request end
// (a labelled counter, a value-header histogram, a duration histogram), on
// top of BenchmarkRecord's.
func BenchmarkRecordKPIs(b *testing.B) {
	h, _ := newKPIHistory(b)
	st := checkoutStage(h)
	rec := benchRecord()
	rec.Service = "canary"
	hd := hdr("X-Plan", "pro", "X-Amount", "19.99")
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		st.RecordKPIs("POST", hd, rec)
	}
	reportCPU(b, cpu)
}
