package history

import (
	"context"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// t0 is a minute boundary.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestHistory(tb testing.TB, cfg config.History) (*History, *clock.Fake) {
	tb.Helper()
	clk := clock.NewFake(t0)
	h, err := New(cfg, Options{Clock: clk, NoMachine: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.Close)
	return h, clk
}

// req builds a finished record of route's service.
func req(service string, status int, latency time.Duration, ek observe.ErrorKind) *observe.Record {
	rec := &observe.Record{}
	rec.Reset()
	rec.Start = t0
	rec.End = t0.Add(latency)
	rec.Service = service
	rec.Status = status
	rec.ErrorKind = ek
	rec.BytesIn, rec.BytesOut = 10, 100
	if service != "" {
		a := rec.AddAttempt(observe.Attempt{Service: service, Upstream: "10.0.0.1:80", Duration: latency * 3 / 4, Status: status})
		a.ErrorKind = ek
	}
	return rec
}

func rangeOf(tb testing.TB, h *History, sc Scope, name string, from, to time.Time, step time.Duration) []Point {
	tb.Helper()
	res, err := h.Range(context.Background(), Query{Scope: sc, Name: name, From: from, To: to, Step: step})
	if err != nil {
		tb.Fatal(err)
	}
	return res.Points
}

func TestRotationAtFixedTimes(t *testing.T) {
	h, clk := newTestHistory(t, config.History{})
	st := h.stageFor(middleware.Route{Name: "shop", Services: []string{"users"}})
	h.Tick(clk.Now()) // starts the rotation at t0

	// Second t0: 3 requests; second t0+1: none (a quiet second); t0+2: 2.
	clk.Advance(300 * time.Millisecond)
	for i := 0; i < 3; i++ {
		st.Record(req("users", 200, 10*time.Millisecond, observe.ErrNone))
	}
	clk.Set(t0.Add(time.Second + 20*time.Millisecond))
	h.Tick(clk.Now())
	clk.Set(t0.Add(2*time.Second + 20*time.Millisecond))
	h.Tick(clk.Now())
	st.Record(req("users", 502, 30*time.Millisecond, observe.ErrUpstreamConnect))
	st.Record(req("users", 200, 20*time.Millisecond, observe.ErrNone))
	clk.Set(t0.Add(3*time.Second + 20*time.Millisecond))
	h.Tick(clk.Now())
	h.Tick(clk.Now()) // a second Tick in the same second does nothing

	if got := h.Latest(); !got.Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("Latest %v, want %v", got, t0.Add(3*time.Second))
	}
	pts := rangeOf(t, h, ScopeRoute, "shop", t0, t0.Add(3*time.Second), time.Second)
	want := []struct{ req, c5 uint64 }{{3, 0}, {0, 0}, {2, 1}}
	for i, w := range want {
		p := pts[i]
		if !p.Time.Equal(t0.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("point %d at %v", i, p.Time)
		}
		if p.V[Requests] != w.req || p.V[Class5xx] != w.c5 || p.Latency.Count() != w.req {
			t.Fatalf("second %d: requests %d 5xx %d latency count %d, want %d and %d", i, p.V[Requests], p.V[Class5xx], p.Latency.Count(), w.req, w.c5)
		}
	}
	if pts[2].V[ErrorField(observe.ErrUpstreamConnect)] != 1 || pts[2].V[BytesOut] != 200 {
		t.Fatalf("second 2: %v", pts[2].V)
	}
	// The service, gateway and host series saw the same requests.
	for _, s := range []struct {
		sc   Scope
		name string
	}{{ScopeService, "users"}, {ScopeGateway, ""}, {ScopeHost, "users/10.0.0.1:80"}} {
		p, err := Window(context.Background(), h.Source(), s.sc, s.name, t0.Add(3*time.Second), 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if p.V[Requests] != 5 || p.V[Class5xx] != 1 {
			t.Fatalf("%s %q: requests %d 5xx %d, want 5 and 1", s.sc, s.name, p.V[Requests], p.V[Class5xx])
		}
	}
}

func TestRotationGapsAndClockJumps(t *testing.T) {
	h, clk := newTestHistory(t, config.History{})
	st := h.stageFor(middleware.Route{Name: "shop", Services: []string{"users"}})
	h.Tick(clk.Now())
	clk.Advance(500 * time.Millisecond)
	st.Record(req("users", 200, time.Millisecond, observe.ErrNone))
	// The clock jumps 10 s: the data is sealed as the second before the
	// Tick, the seconds between stay empty.
	clk.Set(t0.Add(10*time.Second + 500*time.Millisecond))
	h.Tick(clk.Now())
	pts := rangeOf(t, h, ScopeRoute, "shop", t0, t0.Add(10*time.Second), time.Second)
	for i, p := range pts {
		want := uint64(0)
		if i == 9 {
			want = 1
		}
		if p.V[Requests] != want {
			t.Fatalf("second %d: %d requests, want %d", i, p.V[Requests], want)
		}
	}

	// A small step back: data waits until the clock passes the last sealed
	// second again.
	clk.Set(t0.Add(5 * time.Second))
	st.Record(req("users", 200, time.Millisecond, observe.ErrNone))
	h.Tick(clk.Now())
	if got := h.Latest(); !got.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("Latest moved back to %v", got)
	}
	clk.Set(t0.Add(11*time.Second + 100*time.Millisecond))
	h.Tick(clk.Now())
	if p := rangeOf(t, h, ScopeRoute, "shop", t0.Add(10*time.Second), t0.Add(11*time.Second), time.Second); p[0].V[Requests] != 1 {
		t.Fatalf("the waiting request was not sealed at the next second: %v", p[0].V[Requests])
	}

	// A jump forward past the per-second retention leaves the old seconds
	// only in their minute.
	clk.Set(t0.Add(2 * time.Hour))
	h.Tick(clk.Now())
	p, err := Window(context.Background(), h.Source(), ScopeRoute, "shop", t0.Add(2*time.Hour), 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if p.V[Requests] != 2 {
		t.Fatalf("after the jump the 2-hour window holds %d requests, want 2 (from the minute roll-up)", p.V[Requests])
	}
	if pts := rangeOf(t, h, ScopeRoute, "shop", t0, t0.Add(time.Minute), time.Second); pts[9].V[Requests] != 0 {
		t.Fatal("per-second data older than the retention is still served per second")
	}
	pts = rangeOf(t, h, ScopeRoute, "shop", t0, t0.Add(time.Minute), time.Minute)
	if pts[0].V[Requests] != 2 {
		t.Fatalf("minute t0 holds %d requests, want 2", pts[0].V[Requests])
	}

	// A big step back drops the history and starts again.
	clk.Set(t0.Add(time.Hour))
	st.Record(req("users", 200, time.Millisecond, observe.ErrNone))
	h.Tick(clk.Now())
	if got := h.Latest(); !got.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Latest %v after the reset, want %v", got, t0.Add(time.Hour))
	}
	p, err = Window(context.Background(), h.Source(), ScopeRoute, "shop", t0.Add(time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if p.V[Requests] != 1 {
		t.Fatalf("after the reset the day holds %d requests, want 1", p.V[Requests])
	}
}

// TestMinuteRollupIsTheSumOfItsSeconds records a varied minute, second by
// second, and checks that the per-minute record equals the sum of the
// per-second records, histograms included.
func TestMinuteRollupIsTheSumOfItsSeconds(t *testing.T) {
	h, clk := newTestHistory(t, config.History{})
	st := h.stageFor(middleware.Route{Name: "shop", Services: []string{"users", "canary"}})
	h.Tick(clk.Now())
	for s := 0; s < 130; s++ {
		for i := 0; i < s%7; i++ {
			svc := "users"
			if i%3 == 0 {
				svc = "canary"
			}
			status := 200
			if (s+i)%11 == 0 {
				status = 503
			}
			st.Record(req(svc, status, time.Duration(1+s*i)*time.Millisecond, observe.ErrNone))
		}
		clk.Set(t0.Add(time.Duration(s+1)*time.Second + 10*time.Millisecond))
		h.Tick(clk.Now())
	}
	for _, sc := range []struct {
		sc   Scope
		name string
	}{{ScopeRoute, "shop"}, {ScopeService, "canary"}, {ScopeGateway, ""}, {ScopeHost, "users/10.0.0.1:80"}} {
		for m := 0; m < 2; m++ {
			start := t0.Add(time.Duration(m) * time.Minute)
			secs := rangeOf(t, h, sc.sc, sc.name, start, start.Add(time.Minute), time.Second)
			var sum Point
			for i := range secs {
				sum.Add(&secs[i])
			}
			var mins []Point
			s := h.lookup(sc.sc, sc.name)
			var acc accum
			s.mu.RLock()
			err := s.mins.each(h.codec, 0, start.Unix()/60, start.Unix()/60+1, func(_ int64, rec []byte) error { mins = append(mins, Point{}); return acc.addRecord(rec) })
			s.mu.RUnlock()
			if err != nil || len(mins) != 1 {
				t.Fatalf("%s minute %d: %d records, err %v", sc.sc, m, len(mins), err)
			}
			got := acc.point(start)
			// The minute's overhead is the seconds' coarsened.
			var ovh denseHist
			ovh.addHist(sum.Overhead)
			ovh.coarsen()
			if got.V != sum.V || !equalHist(got.Latency, sum.Latency) || !equalHist(got.Overhead, ovh.hist()) {
				t.Fatalf("%s %q minute %d: roll-up %v\nsum of seconds %v", sc.sc, sc.name, m, got.V, sum.V)
			}
			if sum.V[Requests] == 0 {
				t.Fatalf("%s minute %d is empty", sc.sc, m)
			}
		}
	}
}

func equalHist(a, b Histogram) bool {
	var da, db denseHist
	da.addHist(a)
	db.addHist(b)
	return da == db
}

func TestLegsAndSplitWeights(t *testing.T) {
	h, clk := newTestHistory(t, config.History{})
	rc := &config.Route{Name: "shop", Split: &config.Split{Services: []config.SplitService{{Service: "stable", Weight: 90}, {Service: "canary", Weight: 10}}}}
	st := h.stageFor(middleware.Route{Name: "shop", Services: []string{"stable", "canary"}, Config: rc})
	h.Tick(clk.Now())
	for i := 0; i < 10; i++ {
		svc, status := "stable", 200
		if i < 3 {
			svc = "canary"
			if i == 0 {
				status = 500
			}
		}
		st.Record(req(svc, status, time.Duration(10+i)*time.Millisecond, observe.ErrNone))
	}
	h.Observe(observe.Event{Kind: observe.EventSplitUpdated, Route: "shop",
		Weights: []observe.SplitLeg{{Service: "stable", Weight: 50}, {Service: "canary", Weight: 50}}})
	clk.Advance(time.Second)
	h.Tick(clk.Now())
	a, b, err := Legs(context.Background(), h.Source(), "shop", "canary", "stable", clk.Now().Truncate(time.Second), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a.V[Requests] != 3 || b.V[Requests] != 7 || a.V[Class5xx] != 1 || a.V[Weight] != 50 || b.V[Weight] != 50 {
		t.Fatalf("canary %v\nstable %v", a.V, b.V)
	}
	if r := a.ErrorRatio(); r < 0.33 || r > 0.34 {
		t.Fatalf("canary error ratio %g", r)
	}
}

func TestDecisionEvents(t *testing.T) {
	h, clk := newTestHistory(t, config.History{})
	h.stageFor(middleware.Route{Name: "shop", Services: []string{"users"}})
	h.Tick(clk.Now())
	h.Observe(observe.Event{Kind: observe.EventBreakerTransition, Service: "users",
		Breaker: observe.BreakerChange{From: observe.BreakerClosed, To: observe.BreakerOpen, Reason: observe.BreakerConsecutiveFailures}})
	h.Observe(observe.Event{Kind: observe.EventHostEjected, Service: "users", Upstream: "10.0.0.1:80"})
	h.Observe(observe.Event{Kind: observe.EventRetryBudgetExhausted, Route: "shop", Service: "users"})
	h.Observe(observe.Event{Kind: observe.EventConfigReloaded})
	clk.Advance(time.Second)
	h.Tick(clk.Now())
	clk.Advance(time.Second)
	h.Observe(observe.Event{Kind: observe.EventBreakerTransition, Service: "users",
		Breaker: observe.BreakerChange{From: observe.BreakerOpen, To: observe.BreakerHalfOpen, Reason: observe.BreakerCooldown}})
	h.Tick(clk.Now())
	end := clk.Now().Truncate(time.Second)
	svc := rangeOf(t, h, ScopeService, "users", end.Add(-2*time.Second), end, time.Second)
	if svc[0].V[BreakerState] != 2 || svc[1].V[BreakerState] != 1 || svc[0].V[BreakerTransitions]+svc[1].V[BreakerTransitions] != 2 {
		t.Fatalf("breaker series %v / %v", svc[0].V, svc[1].V)
	}
	host := rangeOf(t, h, ScopeHost, "users/10.0.0.1:80", end.Add(-2*time.Second), end, time.Second)
	if host[0].V[Ejections] != 1 || host[0].V[Ejected] != 1 || host[1].V[Ejected] != 1 {
		t.Fatalf("host series %v / %v", host[0].V, host[1].V)
	}
	route := rangeOf(t, h, ScopeRoute, "shop", end.Add(-2*time.Second), end, time.Second)
	gw := rangeOf(t, h, ScopeGateway, "", end.Add(-2*time.Second), end, time.Second)
	if route[0].V[RetryBudgetExhausted] != 1 || gw[0].V[Reloads] != 1 || gw[1].V[Reloads] != 0 {
		t.Fatalf("route %v gateway %v", route[0].V, gw[0].V)
	}
}

func TestExemplars(t *testing.T) {
	h, clk := newTestHistory(t, config.History{})
	st := h.stageFor(middleware.Route{Name: "shop", Services: []string{"users"}})
	h.Tick(clk.Now())
	for i := 0; i < 5; i++ {
		r := req("users", 200, time.Duration(i+1)*time.Millisecond, observe.ErrNone)
		if i == 2 {
			r = req("users", 504, 2*time.Millisecond, observe.ErrUpstreamTimeout)
		}
		r.Trace = observe.TraceContext{TraceID: [16]byte{byte(i + 1)}, Valid: true, Sampled: true}
		st.Record(r)
	}
	clk.Advance(time.Second)
	h.Tick(clk.Now())
	p, err := Window(context.Background(), h.Source(), ScopeRoute, "shop", clk.Now().Truncate(time.Second), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var errID, slowID byte
	for _, e := range p.Exemplars {
		switch e.Kind {
		case ExemplarError:
			errID = e.TraceID[0]
		case ExemplarSlow:
			slowID = e.TraceID[0]
		}
	}
	if errID != 3 || slowID != 5 || len(p.Exemplars) != 2 {
		t.Fatalf("exemplars %+v: want the failing request (3) and the slowest (5)", p.Exemplars)
	}
}

func TestQueryValidation(t *testing.T) {
	h, _ := newTestHistory(t, config.History{})
	for _, q := range []Query{
		{Scope: ScopeRoute, From: t0, To: t0.Add(time.Second)},
		{Scope: ScopeGateway, Name: "x", From: t0, To: t0.Add(time.Second)},
		{Scope: ScopeGateway, From: t0, To: t0},
		{Scope: ScopeGateway, From: t0, To: t0.Add(time.Hour), Step: 1500 * time.Millisecond},
		{Scope: ScopeGateway, From: t0, To: t0.Add(24 * time.Hour), Step: time.Second},
		{Scope: 9, From: t0, To: t0.Add(time.Second)},
	} {
		if _, err := h.Range(context.Background(), q); err == nil {
			t.Errorf("%+v: no error", q)
		}
	}
	if _, err := h.Range(context.Background(), Query{Scope: ScopeRoute, Name: "nope", From: t0, To: t0.Add(time.Second)}); err == nil {
		t.Error("unknown series: no error")
	}
}

func TestUnmatchedListedOnlyWithTraffic(t *testing.T) {
	h, clk := newTestHistory(t, config.History{})
	h.stageFor(middleware.Route{Name: "shop", Services: []string{"users"}})
	un := h.stageFor(middleware.Route{})
	h.Tick(clk.Now())
	clk.Advance(time.Second)
	h.Tick(clk.Now())
	if got := h.Names(ScopeRoute); len(got) != 1 || got[0] != "shop" {
		t.Fatalf("routes before unmatched traffic: %q", got)
	}
	rec := req("", 404, time.Millisecond, observe.ErrNoRoute)
	un.Record(rec)
	clk.Advance(time.Second)
	h.Tick(clk.Now())
	if got := h.Names(ScopeRoute); len(got) != 2 || got[1] != UnmatchedRoute {
		t.Fatalf("routes after unmatched traffic: %q", got)
	}
}
