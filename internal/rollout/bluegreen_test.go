package rollout

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

func newBlueGreenHarness(t *testing.T, extra string) *harness {
	t.Helper()
	return newBlueGreenHarnessIn(t, extra, "")
}

// newBlueGreenHarnessIn keeps the controller's state in dir.
func newBlueGreenHarnessIn(t *testing.T, extra, dir string) *harness {
	t.Helper()
	cfg, err := config.Parse("bg.yml", []byte(`listeners: [{address: "127.0.0.1:0"}]
services:
  - {name: web, upstreams: [{url: "http://127.0.0.1:9"}]}
  - {name: web-v2, upstreams: [{url: "http://127.0.0.1:9"}]}
routes:
  - name: web
    match: {path_prefix: /}
    split:
      services: [{service: web, weight: 100}, {service: web-v2, weight: 0}]
      override: {header: X-Version, values: {v2: web-v2}}
rollouts:
  - {name: web, route: web, canary: web-v2, stable: web, mode: blue_green, interval: 10s, bake_time: 30s, min_requests: 100`+extra+`}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, src: &fakeSource{}, set: &fakeSetter{}, clk: clock.NewFake(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)), cfg: cfg}
	c, err := New(cfg, Options{Source: h.src, Setter: h.set, Clock: h.clk, StateDir: dir,
		Observer: observe.ObserverFunc(func(ev observe.Event) { h.mu.Lock(); h.events = append(h.events, ev); h.mu.Unlock() })})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	return h
}

// runBlueGreen feeds d of traffic, ticking each second: rps requests to
// whichever leg has the weight, and testers requests a second that the
// override sends to the new version; the new version fails newErr of its
// requests.
func (h *harness) runBlueGreen(d time.Duration, rps, testers int, newErr float64) {
	for range int(d / time.Second) {
		now := h.clk.Now().Truncate(time.Second)
		nNew, nOld := testers, rps
		if h.set.canary() == 100 {
			nNew, nOld = rps+testers, 0
		}
		h.src.put("web/web-v2", now, leg(nNew, int(float64(nNew)*newErr), 20*time.Millisecond))
		h.src.put("web/web", now, leg(nOld, 0, 20*time.Millisecond))
		h.clk.Advance(time.Second)
		h.src.latest = h.clk.Now().Truncate(time.Second)
		h.c.Tick(context.Background(), h.clk.Now())
	}
}

func (h *harness) actions() string {
	var out []string
	for _, d := range h.state().Decisions {
		out = append(out, d.Action)
	}
	return fmt.Sprint(out)
}

func TestBlueGreenSwitchesAndBakes(t *testing.T) {
	h := newBlueGreenHarness(t, "")
	h.c.Tick(context.Background(), h.clk.Now())
	if st := h.state(); st.State != Progressing || st.Weight != 0 || st.Step != -1 || h.set.canary() != 0 {
		t.Fatalf("after start: %+v", st)
	}
	// Test traffic only: 20 testers a second, 200 an interval.
	h.runBlueGreen(10*time.Second, 1000, 20, 0)
	st := h.state()
	if st.State != Baking || st.Weight != 100 || h.set.canary() != 100 || st.SwitchedAt.IsZero() {
		t.Fatalf("after one interval of test traffic: %s %d%% %+v", st.State, st.Weight, st.LastAnalysis)
	}
	if a := st.Decisions[len(st.Decisions)-1].Analysis; a == nil || a.Canary.Requests != 200 || a.Stable.Requests != 10000 {
		t.Fatalf("the switch's evidence: %+v", a)
	}
	// Baking: the stable's reference is its last interval before the switch.
	h.runBlueGreen(11*time.Second, 1000, 0, 0)
	st = h.state()
	if st.State != Baking || st.LastAnalysis == nil || st.LastAnalysis.Stable.Requests != 10000 || st.LastAnalysis.StableTo.After(st.SwitchedAt) {
		t.Fatalf("baking: %s %+v", st.State, st.LastAnalysis)
	}
	h.runBlueGreen(25*time.Second, 1000, 0, 0)
	st = h.state()
	if st.State != Promoted || h.set.canary() != 100 {
		t.Fatalf("not promoted after the bake time: %s %+v", st.State, st.LastAnalysis)
	}
	if got := h.actions(); got != "[start switch pass pass promote]" {
		t.Fatalf("decisions %s", got)
	}
	if d := st.Decisions[len(st.Decisions)-1].Time.Sub(st.SwitchedAt); d < 30*time.Second || d > 32*time.Second {
		t.Fatalf("promoted %s after the switch, want the bake time (30s)", d)
	}
}

func TestBlueGreenFailingTestTrafficNeverSwitches(t *testing.T) {
	h := newBlueGreenHarness(t, ", fail_intervals: 1")
	h.c.Tick(context.Background(), h.clk.Now())
	h.runBlueGreen(11*time.Second, 1000, 50, 0.2)
	st := h.state()
	if st.State != RolledBack || h.set.canary() != 0 || !st.SwitchedAt.IsZero() {
		t.Fatalf("%s %d%% %+v", st.State, st.Weight, st.LastAnalysis)
	}
}

func TestBlueGreenTooFewTestersHolds(t *testing.T) {
	h := newBlueGreenHarness(t, "")
	h.c.Tick(context.Background(), h.clk.Now())
	h.runBlueGreen(31*time.Second, 1000, 5, 0) // 50 an interval < 100
	if st := h.state(); st.State != Holding || h.set.canary() != 0 {
		t.Fatalf("%s %+v", st.State, st.LastAnalysis)
	}
}

func TestBlueGreenSwitchesBackWhenTheBakeFails(t *testing.T) {
	h := newBlueGreenHarness(t, ", fail_intervals: 2")
	h.c.Tick(context.Background(), h.clk.Now())
	h.runBlueGreen(10*time.Second, 1000, 20, 0)
	if st := h.state(); st.State != Baking {
		t.Fatalf("did not switch: %+v", st)
	}
	// One bad interval holds (1 of 2), the second switches back.
	h.runBlueGreen(11*time.Second, 1000, 0, 0.05)
	if st := h.state(); st.State != Baking || st.Failures != 1 {
		t.Fatalf("after one failing interval: %s %d", st.State, st.Failures)
	}
	h.runBlueGreen(10*time.Second, 1000, 0, 0.05)
	st := h.state()
	if st.State != RolledBack || h.set.canary() != 0 {
		t.Fatalf("not switched back: %s %+v", st.State, st.LastAnalysis)
	}
	if got := h.actions(); got != "[start switch fail switch_back]" {
		t.Fatalf("decisions %s", got)
	}
	// Resume: back to test traffic, all traffic on the stable.
	if _, err := h.c.Act("web", "resume"); err != nil {
		t.Fatal(err)
	}
	if st := h.state(); st.State != Progressing || st.Step != -1 || h.set.canary() != 0 || !st.SwitchedAt.IsZero() {
		t.Fatalf("after resume: %+v", st)
	}
}

// TestBlueGreenRestartWhileBakingResumesTheBake: a restart during the bake
// time keeps all traffic on the new version and the same bake deadline,
// never switching back or promoting early.
func TestBlueGreenRestartWhileBakingResumesTheBake(t *testing.T) {
	dir := t.TempDir()
	h := newBlueGreenHarnessIn(t, "", dir)
	h.c.Tick(context.Background(), h.clk.Now())
	h.runBlueGreen(10*time.Second, 1000, 20, 0)
	h.runBlueGreen(5*time.Second, 1000, 0, 0)
	before := h.state()
	if before.State != Baking {
		t.Fatalf("not baking: %+v", before)
	}
	// A new process: the gateway has the file's weights (new version 0).
	set := &fakeSetter{}
	c2, err := New(h.cfg, Options{Source: h.src, Setter: set, Clock: h.clk, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	h.c, h.set = c2, set
	after := h.state()
	if after.State != Baking || set.canary() != 100 || !after.SwitchedAt.Equal(before.SwitchedAt) || !after.BakeUntil.Equal(before.BakeUntil) || after.Mode != "blue_green" {
		t.Fatalf("after restart: %+v (weights %v), before %+v", after, set.calls, before)
	}
	h.runBlueGreen(30*time.Second, 1000, 0, 0)
	if st := h.state(); st.State != Promoted {
		t.Fatalf("not promoted after the bake: %s %+v", st.State, st.LastAnalysis)
	}
}
