package rollout_test

import (
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
	var switchedAt time.Time
	sent, failed := load(s, 4, 2*time.Millisecond, 20*time.Second, 100000, func() bool {
		if switchedAt.IsZero() && s.status().State == rollout.Baking {
			switchedAt = time.Now()
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
