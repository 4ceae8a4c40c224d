package rollout

import (
	"context"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/history"
)

func kpiLeg(requests, events uint64) history.KPILeg {
	return history.KPILeg{Requests: requests, Count: events}
}

func TestJudgeKPIs(t *testing.T) {
	r := testRollout(t, ", checks: {latency_factor: 0}")
	r.Checks.KPIs = append(r.Checks.KPIs, config.RolloutKPI{Name: "purchases_total", MinRatio: 0.9})
	ms := time.Millisecond
	c, s := leg(1000, 0, 20*ms), leg(9000, 0, 20*ms)
	for _, tt := range []struct {
		name           string
		canary, stable history.KPILeg
		want           Verdict
	}{
		{"same conversion", kpiLeg(1000, 50), kpiLeg(9000, 450), Pass},
		{"a little lower, within the ratio", kpiLeg(1000, 46), kpiLeg(9000, 450), Pass},
		{"too few events", kpiLeg(1000, 0), kpiLeg(9000, 9), Hold},
		{"too few canary events expected", kpiLeg(100, 0), kpiLeg(9000, 450), Hold},
		{"lower but not significant", kpiLeg(1000, 38), kpiLeg(9000, 450), Hold},
		{"conversion down 40%", kpiLeg(1000, 30), kpiLeg(9000, 450), Fail},
		{"conversion zero", kpiLeg(1000, 0), kpiLeg(9000, 450), Fail},
		{"both legs down together", kpiLeg(1000, 25), kpiLeg(9000, 225), Pass},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cc, ss := c, s
			if tt.canary.Requests < 1000 {
				cc = leg(int(tt.canary.Requests), 0, 20*ms)
			}
			a := JudgeKPIs(r, &cc, &ss, []KPISample{{Name: "purchases_total", Canary: tt.canary, Stable: tt.stable}})
			ch := a.Checks[len(a.Checks)-1]
			if ch.Name != "kpi:purchases_total" || ch.Verdict != tt.want {
				t.Fatalf("%s: %s (%s) canary %.4g stable %.4g threshold %.4g", ch.Name, ch.Verdict, ch.Reason, ch.Canary, ch.Stable, ch.Threshold)
			}
		})
	}
	// Without KPI data the check holds (and so does the analysis).
	if a := JudgeKPIs(r, &c, &s, nil); a.Verdict != Hold || a.Checks[len(a.Checks)-1].Verdict != Hold {
		t.Fatalf("no data: %s %s", a.Verdict, a.Reason)
	}
}

// TestAnalyzeReadsKPIsOfBothLegs: the analysis reads each leg's KPI
// series (kpi@route/service) and requests over the same interval.
func TestAnalyzeReadsKPIsOfBothLegs(t *testing.T) {
	r := testRollout(t, ", checks: {latency_factor: 0}")
	r.Checks.KPIs = append(r.Checks.KPIs, config.RolloutKPI{Name: "purchases_total", MinRatio: 0.9})
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	src := &fakeSource{}
	for i := range 20 {
		sec := t0.Add(time.Duration(i) * time.Second)
		src.put("web/web", sec, leg(900, 0, 20*time.Millisecond))
		src.put("web/web-v2", sec, leg(100, 0, 20*time.Millisecond))
		var ks, kc history.Point
		ks.V[history.KPICount] = 45 // 5% of the stable's requests buy
		kc.V[history.KPICount] = 5
		if i >= 10 {
			kc.V[history.KPICount] = 2 // the canary's checkout breaks in the second interval
		}
		src.put(history.KPILegName("purchases_total", "web", "web"), sec, ks)
		src.put(history.KPILegName("purchases_total", "web", "web-v2"), sec, kc)
	}
	ctx := context.Background()
	a, err := Analyze(ctx, src, r, t0.Add(10*time.Second))
	if err != nil || a.Verdict != Pass {
		t.Fatalf("first interval: %v %s %s", err, a.Verdict, a.Reason)
	}
	a, err = Analyze(ctx, src, r, t0.Add(20*time.Second))
	ch := a.Checks[len(a.Checks)-1]
	if err != nil || a.Verdict != Fail || ch.Name != "kpi:purchases_total" || ch.Verdict != Fail || ch.Canary != 0.02 || ch.Stable != 0.05 {
		t.Fatalf("second interval: %v %s %+v", err, a.Verdict, ch)
	}
}
