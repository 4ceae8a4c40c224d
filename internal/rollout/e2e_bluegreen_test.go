package rollout_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/rollout"
)

// switchable answers 200 after 2 ms, or 500 while broken is set.
func switchable(t *testing.T, broken *atomic.Bool) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		if broken.Load() {
			w.WriteHeader(500)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

// TestE2EBlueGreenMirroredIsSwitchedAndBaked: the new version gets the
// route's mirrored copies as test traffic, is judged on them against the
// stable, takes all traffic in one switch, bakes and is promoted.
func TestE2EBlueGreenMirroredIsSwitchedAndBaked(t *testing.T) {
	var never atomic.Bool
	st, nv := switchable(t, &never), switchable(t, &never)
	s := startRoute(t, st.URL, nv.URL, "mirror: {service: canary}",
		"mode: blue_green, interval: 1s, bake_time: 2s, min_requests: 20, checks: {latency_factor: 0}", "")
	began := time.Now()
	sent, failed := load(s, 4, 2*time.Millisecond, 20*time.Second, 100000, func() bool { return s.status().State == rollout.Promoted })
	got := s.status()
	if got.State != rollout.Promoted {
		t.Fatalf("not promoted after %d requests: %s; last %+v", sent, got.State, got.LastAnalysis)
	}
	if failed != 0 {
		t.Fatalf("%d failed responses", failed)
	}
	var sw *rollout.Decision
	for i, d := range got.Decisions {
		if d.Action == "switch" {
			sw = &got.Decisions[i]
		}
	}
	if sw == nil || sw.Analysis == nil || sw.Analysis.Canary.Requests < 20 {
		t.Fatalf("no switch on mirrored evidence: %+v", got.Decisions)
	}
	ws, _ := s.g.SplitWeights("shop")
	if ws[1].Weight != 100 || ws[0].Weight != 0 {
		t.Fatalf("weights %+v", ws)
	}
	last := got.Decisions[len(got.Decisions)-1]
	t.Logf("switched %s after start on %d mirrored requests against %d; promoted %s after the switch; %d requests, 0 failed",
		sw.Time.Sub(began).Round(time.Millisecond), sw.Analysis.Canary.Requests, sw.Analysis.Stable.Requests,
		last.Time.Sub(got.SwitchedAt).Round(time.Millisecond), sent)
}

// TestE2EBlueGreenBadAfterSwitchIsSwitchedBack: testers (a header the
// split's override reads) find the new version healthy; it breaks once it
// takes all traffic, and the bake time switches back.
func TestE2EBlueGreenBadAfterSwitchIsSwitchedBack(t *testing.T) {
	var ok, broken atomic.Bool
	st, nv := switchable(t, &ok), switchable(t, &broken)
	s := startFull(t, st.URL, nv.URL,
		"{services: [{service: stable, weight: 100}, {service: canary, weight: 0}], override: {header: X-Version, values: {next: canary}}}", "",
		"mode: blue_green, interval: 1s, bake_time: 10s, min_requests: 20, fail_intervals: 1, checks: {latency_factor: 0}", "")
	var wg sync.WaitGroup
	var tSent atomic.Int64
	stop := func() bool { st := s.status(); return st.State == rollout.RolledBack || st.State == rollout.Promoted }
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, _ := loadWith(s, http.Header{"X-Version": {"next"}}, 2, 5*time.Millisecond, 20*time.Second, 100000, stop)
		tSent.Store(n)
	}()
	sent, failed := load(s, 4, 2*time.Millisecond, 20*time.Second, 100000, func() bool {
		if s.status().State == rollout.Baking {
			broken.Store(true) // the new version breaks under full traffic
		}
		return stop()
	})
	wg.Wait()
	got := s.status()
	if got.State != rollout.RolledBack {
		t.Fatalf("not switched back: %s; last %+v", got.State, got.LastAnalysis)
	}
	last := got.Decisions[len(got.Decisions)-1]
	if last.Action != "switch_back" || last.Analysis == nil || last.Analysis.StableTo.IsZero() {
		t.Fatalf("last decision %+v", last)
	}
	ws, _ := s.g.SplitWeights("shop")
	if ws[1].Weight != 0 || ws[0].Weight != 100 {
		t.Fatalf("weights %+v", ws)
	}
	t.Logf("switched back %s after the switch (bake time 10s); %d of %d requests failed (%d tester requests); %s",
		last.Time.Sub(got.SwitchedAt).Round(time.Millisecond), failed, sent, tSent.Load(), last.Reason)
}

// TestE2ETestersDoNotSwayTheCanary: testers forced to the canary by the
// split's override hit a broken path (every one of their requests fails),
// while the users the weights send there are served well. The testers are
// counted apart, and the canary is promoted on its users' requests.
func TestE2ETestersDoNotSwayTheCanary(t *testing.T) {
	var never atomic.Bool
	st := switchable(t, &never)
	ca := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		if r.Header.Get("X-Version") != "" {
			w.WriteHeader(500) // the testers' feature is broken
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(ca.Close)
	s := startFull(t, st.URL, ca.URL,
		"{services: [{service: stable, weight: 100}, {service: canary, weight: 0}], override: {header: X-Version, values: {next: canary}}}", "",
		"steps: [30, 100], interval: 1s, min_requests: 20, fail_intervals: 1, checks: {latency_factor: 0}", "")
	done := func() bool { st := s.status(); return st.State == rollout.Promoted || st.State == rollout.RolledBack }
	var wg sync.WaitGroup
	var tSent, tFailed atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, f := loadWith(s, http.Header{"X-Version": {"next"}}, 2, 5*time.Millisecond, 20*time.Second, 100000, done)
		tSent.Store(n)
		tFailed.Store(f)
	}()
	sent, failed := load(s, 4, 2*time.Millisecond, 20*time.Second, 100000, done)
	wg.Wait()
	got := s.status()
	if got.State != rollout.Promoted || failed != 0 {
		t.Fatalf("%s after %d user requests (%d failed); last %+v", got.State, sent, failed, got.LastAnalysis)
	}
	var testers uint64
	for _, d := range got.Decisions {
		if d.Analysis != nil {
			testers += d.Analysis.Canary.Testers
		}
	}
	if testers == 0 || tFailed.Load() == 0 {
		t.Fatalf("no testers counted apart (%d), %d tester failures", testers, tFailed.Load())
	}
	t.Logf("promoted on users' requests: %d user requests, 0 failed; %d tester requests, %d failed, %d counted apart in the analyses",
		sent, tSent.Load(), tFailed.Load(), testers)
}

// buyer answers 201 (a purchase) to one request in every `every`, else
// 200.
func buyer(t *testing.T, every int64) *httptest.Server {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		if n.Add(1)%every == 0 {
			w.WriteHeader(201)
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

// TestE2EKPIDropRollsBack: the canary answers every request without an
// error, but only a third as many of them are purchases; the KPI check
// (purchases per request at least 0.8 × the stable's) rolls it back.
func TestE2EKPIDropRollsBack(t *testing.T) {
	st, ca := buyer(t, 5), buyer(t, 15) // 20% against 6.7% of requests buy
	s := startYAML(t, fmt.Sprintf(`
listeners: [{name: public, address: "127.0.0.1:0"}]
metrics:
  kpis: [{name: purchases_total, match: {routes: [shop], status: ["201"]}}]
services:
  - {name: stable, upstreams: [{url: %q}]}
  - {name: canary, upstreams: [{url: %q}]}
routes:
  - name: shop
    match: {path_prefix: /}
    split: {services: [{service: stable, weight: 100}, {service: canary, weight: 0}]}
rollouts:
  - {name: shop, route: shop, canary: canary, stable: stable, steps: [50, 100], interval: 2s, min_requests: 50, fail_intervals: 1,
     checks: {latency_factor: 0, kpis: [{name: purchases_total, min_ratio: 0.8}]}}
`, st.URL, ca.URL), "")
	sent, failed := load(s, 4, 2*time.Millisecond, 20*time.Second, 100000, func() bool { return s.status().State == rollout.RolledBack })
	got := s.status()
	if got.State != rollout.RolledBack || failed != 0 {
		t.Fatalf("%s after %d requests (%d failed); last %+v", got.State, sent, failed, got.LastAnalysis)
	}
	last := got.Decisions[len(got.Decisions)-1]
	var kpi *rollout.Check
	for i, c := range last.Analysis.Checks {
		if c.Name == "kpi:purchases_total" {
			kpi = &last.Analysis.Checks[i]
		}
	}
	if kpi == nil || kpi.Verdict != rollout.Fail {
		t.Fatalf("rolled back without a failing KPI check: %+v", last.Analysis.Checks)
	}
	t.Logf("rolled back on the KPI: canary %.3f purchases per request against the stable's %.3f (threshold %.3f) over %d and %d requests; %s",
		kpi.Canary, kpi.Stable, kpi.Threshold, last.Analysis.Canary.Requests, last.Analysis.Stable.Requests, kpi.Reason)
}
