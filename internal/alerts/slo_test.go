package alerts

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/history"
)

func TestBurnRateHandComputed(t *testing.T) {
	var p history.Point
	p.V[history.Requests] = 100
	p.V[history.Class5xx] = 2
	if got := BurnRate(&p, 0.99, 0); math.Abs(got-2) > 1e-9 {
		t.Fatalf("2%% errors at 99%%: burn %v, want 2", got)
	}
	for i := 0; i < 95; i++ {
		p.Latency.Observe(50 * time.Millisecond)
	}
	for i := 0; i < 5; i++ {
		p.Latency.Observe(time.Second)
	}
	// 5 slow requests (the 2 errors may be among them): 5 bad of 100.
	if got := BurnRate(&p, 0.99, 300*time.Millisecond); math.Abs(got-5) > 1e-9 {
		t.Fatalf("burn with latency %v, want 5", got)
	}
	if got := BurnRate(&history.Point{}, 0.99, 0); got != 0 {
		t.Fatalf("empty window burn %v", got)
	}
}

// sloHistory writes 6h of 100 requests a minute, of which 20 fail in the
// last badMinutes minutes, and returns the end.
func sloHistory(src *fakeSource, badMinutes int) time.Time {
	start := t0
	for m := 0; m < 360; m++ {
		bad := uint64(0)
		if m >= 360-badMinutes {
			bad = 20
		}
		src.add(history.ScopeRoute, "api", start.Add(time.Duration(m)*time.Minute), 100, bad)
	}
	return start.Add(360 * time.Minute)
}

func TestSLOPageBurn(t *testing.T) {
	rs := compile(t, `  slos:
    - {name: api-avail, scope: route, target: api, objective: 0.99, alerts: [page]}
`)
	// 10 bad minutes: 5m burns 20x (over 14.4) but 1h only 3.33x; 30m
	// burns 6.67x (over 6) but 6h only 0.56x. No alert.
	src := newFakeSource()
	end := sloHistory(src, 10)
	e := NewEvaluator(rs)
	as, _, err := e.Evaluate(context.Background(), src, end)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 0 {
		t.Fatalf("10 bad minutes: alerts %+v", as)
	}

	// 50 bad minutes: 1h burns 50/60*20% / 1% = 16.67x, 5m 20x: page.
	src = newFakeSource()
	end = sloHistory(src, 50)
	e = NewEvaluator(rs)
	as, _, err = e.Evaluate(context.Background(), src, end)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].State != StateFiring {
		t.Fatalf("50 bad minutes: alerts %+v", as)
	}
	a := as[0]
	if math.Abs(a.Value-50.0/60*20) > 1e-9 || a.Labels["severity"] != "page" || a.Labels["slo"] != "api-avail" || a.Rule != "SLOBurnRate" {
		t.Fatalf("alert %+v", a)
	}
	for k, want := range map[string]string{
		"burn_rate_1h": "16.67", "burn_rate_5m": "20.00", "burn_rate_6h": "2.78", "burn_rate_30m": "20.00",
		// 1000 bad of 36000 over the data held: 2.78 budgets spent.
		"error_budget_remaining": "-1.7778",
	} {
		if a.Annotations[k] != want {
			t.Errorf("%s = %q, want %q (annotations %v)", k, a.Annotations[k], want, a.Annotations)
		}
	}

	// After a restart an hour ago, the 6h window is incomplete: said so.
	e = NewEvaluator(rs)
	e.DataSince = end.Add(-time.Hour)
	as, _, _ = e.Evaluate(context.Background(), src, end)
	if len(as) != 1 || as[0].Annotations["incomplete"] == "" {
		t.Fatalf("incomplete window not reported: %+v", as)
	}
}

func TestSLOTicketBurn(t *testing.T) {
	rs := compile(t, `  slos:
    - {name: api-avail, scope: route, target: api, objective: 0.99, alerts: [ticket]}
`)
	// 6h of 20% errors over 6h of data: 1d burns 20x over the data held
	// (the window reaches before it), 2h burns 20x: ticket.
	src := newFakeSource()
	end := sloHistory(src, 360)
	e := NewEvaluator(rs)
	as, _, err := e.Evaluate(context.Background(), src, end)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 1 || as[0].Labels["severity"] != "ticket" || as[0].State != StateFiring {
		t.Fatalf("alerts %+v", as)
	}
}
