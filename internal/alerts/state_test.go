package alerts

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/history"
)

// syncBuffer is a log sink the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newStateManager(t *testing.T, alerts, dir string, src history.Source, since time.Time) (*Manager, *syncBuffer) {
	t.Helper()
	if dir != "" {
		alerts = "  data_dir: " + dir + "\n" + alerts
	}
	cfg, err := parse(alerts)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	m, err := New(cfg, Options{Source: src, DataSince: since, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return m, logs
}

func alertOf(m *Manager, rule string) *Alert {
	for _, a := range m.Alerts() {
		if a.Rule == rule {
			return &a
		}
	}
	return nil
}

// TestStateAcrossRestart fires an alert, stops the manager and starts a
// new one over an empty history (the history is in memory: a restart
// loses it) at fixed times. With alerts.data_dir the alert is still
// firing since the same time, is not fired again, and is not resolved
// while its window reaches before the restart; once the window holds
// only new data without errors it resolves after keep_firing_for.
// Without data_dir the new manager starts with no alert.
func TestStateAcrossRestart(t *testing.T) {
	rules := `  rules:
    - {name: E, scope: route, target: api, metric: error_ratio, window: 10s, threshold: 0.1, for: 3s, keep_firing_for: 5s}
`
	dir := filepath.Join(t.TempDir(), "state")
	src := newFakeSource()
	for s := 0; s < 30; s++ {
		src.add(history.ScopeRoute, "api", t0.Add(time.Duration(s)*time.Second), 10, 5)
	}
	ctx := context.Background()
	m1, _ := newStateManager(t, rules, dir, src, t0)
	for s := 1; s <= 30; s++ {
		m1.TickAt(ctx, t0.Add(time.Duration(s)*time.Second))
	}
	a := alertOf(m1, "E")
	if a == nil || a.State != StateFiring {
		t.Fatalf("before the restart: %+v", a)
	}
	firedAt := a.FiredAt
	m1.Close()
	if _, err := os.Stat(filepath.Join(dir, StateFile)); err != nil {
		t.Fatalf("no state file: %v", err)
	}

	// The restart at 40s: the new history holds nothing before it, and
	// no request comes.
	restart := t0.Add(40 * time.Second)
	empty := newFakeSource()
	m2, logs := newStateManager(t, rules, dir, empty, restart)
	defer m2.Close()
	for s := 41; s <= 49; s++ {
		m2.TickAt(ctx, t0.Add(time.Duration(s)*time.Second))
		a := alertOf(m2, "E")
		if a == nil || a.State != StateFiring || !a.FiredAt.Equal(firedAt) {
			t.Fatalf("second %d after the restart: %+v, want firing since %s", s, a, firedAt)
		}
	}
	// At 50s the 10s window holds only data since the restart, without
	// errors: keep_firing_for (5s) runs from there, resolved at 55s.
	for s := 50; s <= 55; s++ {
		m2.TickAt(ctx, t0.Add(time.Duration(s)*time.Second))
		want := StateFiring
		if s == 55 {
			want = StateResolved
		}
		if a := alertOf(m2, "E"); a == nil || a.State != want {
			t.Fatalf("second %d: %+v, want %s", s, a, want)
		}
	}
	l := logs.String()
	if strings.Contains(l, "to=firing") || strings.Count(l, "to=resolved") != 1 || !strings.Contains(l, "state restored") {
		t.Fatalf("transitions after the restart:\n%s", l)
	}

	// Without data_dir the state starts afresh.
	m3, _ := newStateManager(t, rules, "", empty, restart)
	defer m3.Close()
	m3.TickAt(ctx, t0.Add(41*time.Second))
	if a := alertOf(m3, "E"); a != nil {
		t.Fatalf("without data_dir: %+v", a)
	}
}

// TestPendingAcrossRestart: a pending alert keeps its active-since time,
// so for counts across the restart when the condition still holds.
func TestPendingAcrossRestart(t *testing.T) {
	rules := `  rules:
    - {name: E, scope: route, target: api, metric: error_ratio, window: 5s, threshold: 0.1, for: 20s}
`
	dir := t.TempDir()
	src := newFakeSource()
	for s := 0; s < 60; s++ {
		src.add(history.ScopeRoute, "api", t0.Add(time.Duration(s)*time.Second), 10, 5)
	}
	ctx := context.Background()
	m1, _ := newStateManager(t, rules, dir, src, t0)
	for s := 1; s <= 10; s++ {
		m1.TickAt(ctx, t0.Add(time.Duration(s)*time.Second))
	}
	a := alertOf(m1, "E")
	if a == nil || a.State != StatePending || !a.ActiveAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("before the restart: %+v", a)
	}
	m1.Close()
	// Restart at 12s; the errors go on (the new history has them from
	// 12s on).
	restart := t0.Add(12 * time.Second)
	src2 := newFakeSource()
	for s := 12; s < 60; s++ {
		src2.add(history.ScopeRoute, "api", t0.Add(time.Duration(s)*time.Second), 10, 5)
	}
	m2, _ := newStateManager(t, rules, dir, src2, restart)
	defer m2.Close()
	for s := 13; s <= 21; s++ {
		m2.TickAt(ctx, t0.Add(time.Duration(s)*time.Second))
		want := StatePending
		if s == 21 { // 20s after 1s, not after the restart
			want = StateFiring
		}
		if a := alertOf(m2, "E"); a == nil || a.State != want || !a.ActiveAt.Equal(t0.Add(time.Second)) {
			t.Fatalf("second %d: %+v, want %s", s, a, want)
		}
	}
}

// TestSLOBudgetAcrossRestart runs 6h of an SLO's traffic (1,000 bad of
// 36,000 requests, all in the last 50 minutes), restarts with an empty
// history and 5 more minutes of 20 % errors, and checks the error budget
// against hand-computed values: with data_dir it counts the 6 kept hours
// (1,100 bad of 36,500: 1 - 3.0137 = -2.0137), without it only the 5
// minutes (100 of 500: 1 - 20 = -19).
func TestSLOBudgetAcrossRestart(t *testing.T) {
	rules := `  slos:
    - {name: api-avail, scope: route, target: api, objective: 0.99, alerts: [page]}
`
	dir := t.TempDir()
	src := newFakeSource()
	end := sloHistory(src, 50)
	ctx := context.Background()
	m1, _ := newStateManager(t, rules, dir, src, t0)
	for s := 0; s < 6; s++ { // one hour counted per tick
		m1.TickAt(ctx, end.Add(time.Duration(s)*time.Second))
	}
	a := alertOf(m1, "SLOBurnRate")
	if a == nil || a.State != StateFiring || a.Annotations["error_budget_remaining"] != "-1.7778" {
		t.Fatalf("before the restart: %+v", a)
	}
	firedAt := a.FiredAt
	m1.Close()

	restart := end.Add(time.Minute)
	src2 := newFakeSource()
	for m := 0; m < 5; m++ {
		src2.add(history.ScopeRoute, "api", restart.Add(time.Duration(m)*time.Minute), 100, 20)
	}
	at := restart.Add(5 * time.Minute)
	for _, c := range []struct {
		dir, budget string
	}{{dir, "-2.0137"}, {"", "-19.0000"}} {
		m2, _ := newStateManager(t, rules, c.dir, src2, restart)
		m2.TickAt(ctx, at)
		a := alertOf(m2, "SLOBurnRate")
		m2.Close()
		if a == nil || a.State != StateFiring {
			t.Fatalf("data_dir %q: %+v", c.dir, a)
		}
		if got := a.Annotations["error_budget_remaining"]; got != c.budget {
			t.Errorf("data_dir %q: error_budget_remaining %s, want %s", c.dir, got, c.budget)
		}
		if c.dir != "" && !a.FiredAt.Equal(firedAt) {
			t.Errorf("fired at %s, want %s (fired again)", a.FiredAt, firedAt)
		}
		if c.dir != "" && !strings.Contains(a.Annotations["error_budget_window"], "plus 6h kept across the restart") {
			t.Errorf("error_budget_window %q", a.Annotations["error_budget_window"])
		}
	}
}

// TestStateFileBad: a state file that does not parse is reported and the
// manager starts afresh.
func TestStateFileBad(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, logs := newStateManager(t, "  rules: []\n", dir, newFakeSource(), t0)
	m.Close()
	if !strings.Contains(logs.String(), "cannot be read") {
		t.Fatalf("log: %s", logs.String())
	}
}
