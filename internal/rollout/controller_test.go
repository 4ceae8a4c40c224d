package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/observe"
)

type fakeSetter struct {
	mu    sync.Mutex
	calls []map[string]int
}

func (f *fakeSetter) SetSplit(route string, w map[string]int, src observe.ChangeSource) ([]config.SplitService, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, w)
	return nil, nil
}

func (f *fakeSetter) canary() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return -1
	}
	return f.calls[len(f.calls)-1]["web-v2"]
}

type harness struct {
	t      *testing.T
	src    *fakeSource
	set    *fakeSetter
	clk    *clock.Fake
	c      *Controller
	events []observe.Event
	cfg    *config.Config
	mu     sync.Mutex
}

func newHarness(t *testing.T, extra, dir string) *harness {
	t.Helper()
	r := testRollout(t, extra)
	cfg := &config.Config{Routes: []config.Route{{Name: "web", Split: &config.Split{Services: []config.SplitService{{Service: "web", Weight: 100}, {Service: "web-v2"}}}}},
		Rollouts: []config.Rollout{*r}}
	h := &harness{t: t, src: &fakeSource{}, set: &fakeSetter{}, clk: clock.NewFake(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)), cfg: cfg}
	c, err := New(cfg, Options{Source: h.src, Setter: h.set, Clock: h.clk, StateDir: dir,
		Observer: observe.ObserverFunc(func(ev observe.Event) { h.mu.Lock(); h.events = append(h.events, ev); h.mu.Unlock() })})
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	return h
}

// run feeds traffic for d at total rps, split by the current canary
// weight, with the given canary error ratio and latency, ticking each
// second.
func (h *harness) run(d time.Duration, rps int, canaryErr float64, canaryLat time.Duration) {
	for range int(d / time.Second) {
		now := h.clk.Now()
		w := max(h.set.canary(), 0)
		nc := rps * w / 100
		h.src.put("web/web-v2", now.Truncate(time.Second), leg(nc, int(float64(nc)*canaryErr), canaryLat))
		h.src.put("web/web", now.Truncate(time.Second), leg(rps-nc, 0, 20*time.Millisecond))
		h.clk.Advance(time.Second)
		h.src.latest = h.clk.Now().Truncate(time.Second)
		h.c.Tick(context.Background(), h.clk.Now())
	}
}

func (h *harness) state() Status {
	st, _ := h.c.Get("web")
	return st
}

func TestControllerPromotesAHealthyCanary(t *testing.T) {
	h := newHarness(t, "", "")
	h.c.Tick(context.Background(), h.clk.Now())
	if st := h.state(); st.State != Progressing || st.Weight != 10 || h.set.canary() != 10 {
		t.Fatalf("after start: %+v", st)
	}
	h.run(10*time.Second, 2000, 0, 20*time.Millisecond)
	if st := h.state(); st.Weight != 50 || st.Step != 1 {
		t.Fatalf("after one interval: %s %d%% %+v", st.State, st.Weight, st.LastAnalysis)
	}
	h.run(11*time.Second, 2000, 0, 20*time.Millisecond)
	st := h.state()
	if st.State != Promoted || h.set.canary() != 100 {
		t.Fatalf("not promoted: %+v", st)
	}
	var actions []string
	for _, d := range st.Decisions {
		actions = append(actions, d.Action)
	}
	if fmt.Sprint(actions) != "[start step promote]" {
		t.Fatalf("decisions %v", actions)
	}
	if st.Decisions[1].Analysis == nil || len(st.Decisions[1].Analysis.Checks) == 0 {
		t.Fatalf("a step without its evidence: %+v", st.Decisions[1])
	}
	if len(h.events) != 3 || h.events[2].Kind != observe.EventRolloutTransition || !strings.Contains(h.events[2].Detail, "promote progressing → promoted") {
		t.Fatalf("events %+v", h.events)
	}
}

func TestControllerHoldsOnLowTraffic(t *testing.T) {
	h := newHarness(t, "", "")
	h.c.Tick(context.Background(), h.clk.Now())
	h.run(60*time.Second, 50, 0, 20*time.Millisecond) // 5 canary requests a second: 50 an interval < 100
	st := h.state()
	if st.State != Holding || st.Weight != 10 || st.LastAnalysis.Verdict != Hold {
		t.Fatalf("%+v", st)
	}
}

func TestControllerRollsBackOnErrors(t *testing.T) {
	h := newHarness(t, "", "")
	h.c.Tick(context.Background(), h.clk.Now())
	h.run(10*time.Second, 2000, 0.05, 20*time.Millisecond)
	if st := h.state(); st.State != Holding || st.Failures != 1 || st.Weight != 10 {
		t.Fatalf("after one failing interval (fail_intervals 2): %+v", st)
	}
	h.run(10*time.Second, 2000, 0.05, 20*time.Millisecond)
	st := h.state()
	if st.State != RolledBack || h.set.canary() != 0 {
		t.Fatalf("not rolled back: %+v", st)
	}
	last := st.Decisions[len(st.Decisions)-1]
	if last.Action != "rollback" || last.Analysis == nil || len(last.Analysis.Exemplars) == 0 {
		t.Fatalf("rollback without evidence: %+v", last)
	}
	// It stays rolled back until resumed.
	h.run(30*time.Second, 2000, 0, 20*time.Millisecond)
	if st := h.state(); st.State != RolledBack {
		t.Fatalf("left rollback on its own: %s", st.State)
	}
	if _, err := h.c.Act("web", "resume"); err != nil {
		t.Fatal(err)
	}
	if st := h.state(); st.State != Progressing || h.set.canary() != 10 {
		t.Fatalf("resume: %+v", st)
	}
}

func TestControllerRollsBackOnLatency(t *testing.T) {
	h := newHarness(t, ", fail_intervals: 1", "")
	h.c.Tick(context.Background(), h.clk.Now())
	h.run(10*time.Second, 2000, 0, 26*time.Millisecond)
	if st := h.state(); st.State != RolledBack {
		t.Fatalf("%+v", st.LastAnalysis)
	}
}

func TestControllerNoRollbackWhenBothDegrade(t *testing.T) {
	h := newHarness(t, ", fail_intervals: 1", "")
	h.c.Tick(context.Background(), h.clk.Now())
	for range 10 {
		now := h.clk.Now().Truncate(time.Second)
		h.src.put("web/web-v2", now, leg(200, 40, 80*time.Millisecond))
		h.src.put("web/web", now, leg(1800, 360, 80*time.Millisecond))
		h.clk.Advance(time.Second)
		h.src.latest = h.clk.Now()
		h.c.Tick(context.Background(), h.clk.Now())
	}
	if st := h.state(); st.State != Progressing || st.Weight != 50 {
		t.Fatalf("%s %d%%: %+v", st.State, st.Weight, st.LastAnalysis)
	}
}

func TestControllerActions(t *testing.T) {
	h := newHarness(t, "", "")
	h.c.Tick(context.Background(), h.clk.Now())
	if _, err := h.c.Act("web", "pause"); err != nil {
		t.Fatal(err)
	}
	h.run(30*time.Second, 2000, 0, 20*time.Millisecond)
	if st := h.state(); st.State != Paused || st.Weight != 10 {
		t.Fatalf("paused rollout moved: %+v", st)
	}
	if _, err := h.c.Act("web", "pause"); !errors.Is(err, ErrConflict) {
		t.Fatalf("pause twice: %v", err)
	}
	if _, err := h.c.Act("web", "promote"); err != nil || h.set.canary() != 100 {
		t.Fatal(err)
	}
	if _, err := h.c.Act("web", "abort"); err != nil || h.set.canary() != 0 || h.state().State != RolledBack {
		t.Fatal(err)
	}
	if _, err := h.c.Act("web", "restart"); err != nil || h.state().State != Pending || h.state().Step != -1 {
		t.Fatal(err)
	}
	if _, err := h.c.Act("nope", "pause"); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if _, err := h.c.Act("web", "explode"); err == nil {
		t.Fatal("unknown action accepted")
	}
}

func TestControllerStateSurvivesReloadAndRestart(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, "", dir)
	h.c.Tick(context.Background(), h.clk.Now())
	h.run(10*time.Second, 2000, 0, 20*time.Millisecond)
	if h.state().Weight != 50 {
		t.Fatalf("%+v", h.state())
	}
	// A reload (same split) carries the state and re-applies the weight.
	h.set.calls = nil
	h.c.Update(h.cfg)
	if st := h.state(); st.Weight != 50 || st.Step != 1 || h.set.canary() != 50 {
		t.Fatalf("after reload: %+v", st)
	}
	// A restart resumes at the same step from the state directory.
	set := &fakeSetter{}
	c2, err := New(h.cfg, Options{Source: h.src, Setter: set, Clock: h.clk, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := c2.Get("web")
	if st.State != Progressing || st.Step != 1 || set.canary() != 50 {
		t.Fatalf("after restart: %+v, weights %v", st, set.calls)
	}
	// A reload that changes the file's split starts over.
	cfg := *h.cfg
	cfg.Routes = []config.Route{{Name: "web", Split: &config.Split{Services: []config.SplitService{{Service: "web", Weight: 90}, {Service: "web-v2", Weight: 10}}}}}
	c2.Update(&cfg)
	if st, _ := c2.Get("web"); st.State != Pending || st.Step != -1 {
		t.Fatalf("after a split change: %+v", st)
	}
}

type refusingGate struct{ kinds []string }

func (g *refusingGate) Confirm(_ context.Context, _ *config.Rollout, kind string, _ Status) error {
	g.kinds = append(g.kinds, kind)
	if kind == "before_promotion" {
		return errors.New("refused: 409")
	}
	return nil
}
func (g *refusingGate) Notify(*config.Rollout, Decision) {}

func TestControllerGateRefusalHolds(t *testing.T) {
	h := newHarness(t, "", "")
	g := &refusingGate{}
	h.c.o.Gates = g
	h.c.Tick(context.Background(), h.clk.Now())
	h.run(25*time.Second, 2000, 0, 20*time.Millisecond)
	st := h.state()
	if st.State != Holding || st.Weight != 50 {
		t.Fatalf("%+v", st)
	}
	last := st.Decisions[len(st.Decisions)-1]
	if last.Action != "gate_refused" || fmt.Sprint(g.kinds[:3]) != "[before_start before_step before_promotion]" {
		t.Fatalf("%+v %v", last, g.kinds)
	}
}

var _ history.Source = (*fakeSource)(nil)

// countingHandler counts the log records with a given message.
type countingHandler struct {
	mu  sync.Mutex
	n   map[string]int
	msg string
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == nil {
		h.n = map[string]int{}
	}
	h.n[r.Message]++
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// TestEveryTransitionIsALogLine: each decision of a rollout (canary and
// blue-green) is one "rollout decision" log line.
func TestEveryTransitionIsALogLine(t *testing.T) {
	for _, bg := range []bool{false, true} {
		var h *harness
		if bg {
			h = newBlueGreenHarness(t, ", fail_intervals: 1")
		} else {
			h = newHarness(t, "", "")
		}
		logs := &countingHandler{}
		h.c.o.Logger = slog.New(logs)
		h.c.Tick(context.Background(), h.clk.Now())
		if bg {
			h.runBlueGreen(10*time.Second, 1000, 20, 0)
			h.runBlueGreen(11*time.Second, 1000, 0, 0.2)
		} else {
			h.run(10*time.Second, 2000, 0, 20*time.Millisecond)
			h.run(21*time.Second, 2000, 0.2, 20*time.Millisecond)
		}
		if _, err := h.c.Act("web", "restart"); err != nil {
			t.Fatal(err)
		}
		st := h.state()
		if len(st.Decisions) < 4 || logs.n["rollout decision"] != len(st.Decisions) {
			t.Fatalf("blue-green %v: %d decisions %s, %d log lines", bg, len(st.Decisions), h.actions(), logs.n["rollout decision"])
		}
	}
}
