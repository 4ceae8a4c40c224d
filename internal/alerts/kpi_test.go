package alerts

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/history"
)

// kpiHistory writes perMin(m) purchases at the start of each minute m
// of [0, minutes) after t0.
func kpiHistory(src *fakeSource, minutes int, perMin func(m int) uint64) {
	for m := 0; m < minutes; m++ {
		if n := perMin(m); n > 0 {
			src.set(history.ScopeKPI, "purchases_total", t0.Add(time.Duration(m)*time.Minute), history.KPICount, n)
		}
	}
}

func kpiAlert(t *testing.T, e *Evaluator, src history.Source, at time.Duration) *Alert {
	t.Helper()
	as, _, err := e.Evaluate(context.Background(), src, t0.Add(at))
	if err != nil {
		t.Fatal(err)
	}
	for i := range as {
		if as[i].Rule == "Drop" {
			return &as[i]
		}
	}
	return nil
}

// TestKPIChangeOffset: purchases against the same 10 minutes an hour
// earlier. 6 a minute for 90 minutes, then 2 a minute: at 1h40m the
// window holds 20 against 60 an hour before (1/3 < 0.5: fires); at
// 1h20m 60 against 60 (quiet). At night (1 a minute an hour before,
// none now) the baseline's 10 is under min_count 20: no page.
func TestKPIChangeOffset(t *testing.T) {
	rs := compile(t, `  rules:
    - {name: Drop, scope: kpi, target: purchases_total, metric: kpi_change, window: 10m, threshold: 0.5, baseline: {offset: 1h, min_count: 20}}
`)
	src := newFakeSource()
	kpiHistory(src, 180, func(m int) uint64 {
		switch {
		case m < 90:
			return 6
		case m < 120:
			return 2
		case m < 150:
			return 1 // night
		}
		return 0
	})
	e := NewEvaluator(rs)
	if a := kpiAlert(t, e, src, 80*time.Minute); a != nil {
		t.Fatalf("1h20m (60 against 60): %+v", a)
	}
	a := kpiAlert(t, e, src, 100*time.Minute)
	if a == nil || a.State != StateFiring || math.Abs(a.Value-1.0/3) > 1e-12 || a.Requests != 20 ||
		a.Annotations["baseline"] != "60" || a.Annotations["current"] != "20" || a.Labels["kpi"] != "purchases_total" {
		t.Fatalf("1h40m: %+v", a)
	}
	// From 2h30m nothing. At 2h55m the window [2h45m, 2h55m) holds 0
	// and the baseline [1h45m, 1h55m) 20 (2 a minute): fires, value 0.
	// At 3h25m the baseline [2h15m, 2h25m) is 10 (1 a minute), under
	// min_count: quiet.
	e = NewEvaluator(rs)
	if a := kpiAlert(t, e, src, 175*time.Minute); a == nil || a.Value != 0 || a.Annotations["baseline"] != "20" {
		t.Fatalf("2h55m: %+v", a)
	}
	e = NewEvaluator(rs)
	if a := kpiAlert(t, e, src, 205*time.Minute); a != nil {
		t.Fatalf("3h25m (quiet night): %+v", a)
	}
}

// TestKPIChangeMovingAverage: the mean of the 3 windows of 5 minutes
// before the current one. 4 a minute, then 1 a minute from minute 30:
// at 35m the baseline is (20+20+20)/3 = 20 and now 5 (0.25 < 0.5:
// fires); at 50m the baseline (5+5+5)/3 = 5 is under min_count 10.
func TestKPIChangeMovingAverage(t *testing.T) {
	rs := compile(t, `  rules:
    - {name: Drop, scope: kpi, metric: kpi_change, window: 5m, threshold: 0.5, baseline: {moving_average: 3}}
`)
	src := newFakeSource()
	kpiHistory(src, 60, func(m int) uint64 {
		if m < 30 {
			return 4
		}
		return 1
	})
	e := NewEvaluator(rs)
	a := kpiAlert(t, e, src, 35*time.Minute)
	if a == nil || a.State != StateFiring || a.Value != 0.25 || a.Annotations["baseline"] != "20" {
		t.Fatalf("35m: %+v", a)
	}
	e = NewEvaluator(rs)
	if a := kpiAlert(t, e, src, 50*time.Minute); a != nil {
		t.Fatalf("50m (baseline 5 < 10): %+v", a)
	}
}

// TestKPIChangeIncrementalMatchesWhole evaluates kpi_change rules every
// 7 seconds for two hours, incrementally and reading every window whole,
// and checks that both give the same alerts.
func TestKPIChangeIncrementalMatchesWhole(t *testing.T) {
	rs := compile(t, `  rules:
    - {name: Drop, scope: kpi, metric: kpi_change, window: 10m, threshold: 0.5, baseline: {offset: 1h, min_count: 20}}
    - {name: DropAvg, scope: kpi, target: purchases_total, metric: kpi_change, window: 5m, threshold: 0.6, for: 1m, baseline: {moving_average: 4}}
`)
	src := newFakeSource()
	kpiHistory(src, 240, func(m int) uint64 { return uint64((m*7)%13) * uint64(1+m/60) % 9 })
	inc, whole := NewEvaluator(rs), newFullEvaluator(rs)
	fired := 0
	for s := 3600; s < 4*3600; s += 7 {
		at := t0.Add(time.Duration(s) * time.Second)
		got, _, err := inc.Evaluate(context.Background(), src, at)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := whole.Evaluate(context.Background(), src, at)
		if err != nil {
			t.Fatal(err)
		}
		if err := equalAlerts(got, want); err != nil {
			t.Fatalf("%s: %v", at.Sub(t0), err)
		}
		for _, a := range got {
			if a.State == StateFiring {
				fired++
			}
		}
	}
	if fired == 0 {
		t.Fatal("no alert ever fired: the comparison is of empties")
	}
}
