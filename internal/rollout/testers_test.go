package rollout

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/split"
)

// testerRecord is an override request served by service, with status and
// total latency lat, ending at end.
func testerRecord(end time.Time, service string, status int, lat time.Duration) *observe.Record {
	rec := observe.GetRecord()
	rec.Route, rec.Service, rec.Status = "web", service, status
	rec.Split = observe.SplitChoice{Rule: "web", Service: service, Reason: observe.SplitOverride.String()}
	rec.Start, rec.End = end.Add(-lat), end
	rec.AddAttempt(observe.Attempt{Service: service, Status: status})
	return rec
}

// TestAnalyzeExcludesTesters: testers forced to the canary by the split's
// override are counted apart and taken out of the canary's counts and
// latencies, so a tester hitting a broken or slow path neither rolls back
// a healthy canary nor hides a broken one.
func TestAnalyzeExcludesTesters(t *testing.T) {
	r := testRollout(t, "")
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	src := &fakeSource{}
	tl := tallyFor(t, r)
	ms := time.Millisecond
	for i := range 10 {
		sec := t0.Add(time.Duration(i) * time.Second)
		src.put("web/web", sec, leg(900, 0, 20*ms))
		// The canary's leg in the history: 100 users' requests (healthy)
		// plus 20 testers' (all 500, 400 ms), as the history counts them.
		c := leg(100, 0, 20*ms)
		var tp history.Point
		tp.V[history.Requests], tp.V[history.Class5xx] = 20, 20
		for range 20 {
			tp.Latency.Observe(400 * ms)
		}
		c.Add(&tp)
		src.put("web/web-v2", sec, c)
		for range 20 {
			rec := testerRecord(sec.Add(500*ms), "web-v2", 500, 400*ms)
			tl.ReadRecord(rec)
			observe.PutRecord(rec)
		}
	}
	ctx := context.Background()
	end := t0.Add(10 * time.Second)
	unfair, err := Analyze(ctx, src, r, end)
	if err != nil || unfair.Verdict != Fail {
		t.Fatalf("with the testers in, the healthy canary should look broken: %v %s %s", err, unfair.Verdict, unfair.Reason)
	}
	a, err := AnalyzeWith(ctx, src, tl, r, end)
	if err != nil {
		t.Fatal(err)
	}
	if a.Verdict != Pass || a.Canary.Requests != 1000 || a.Canary.Errors != 0 || a.Canary.Testers != 200 || a.Canary.LatencyMs > 30 {
		t.Fatalf("testers not excluded: %s %s %+v", a.Verdict, a.Reason, a.Canary)
	}
}

// TestStickyUsersMoveToTheCanaryAtMostOnce: with a sticky split, as a
// rollout's steps raise the canary's weight, a user on the canary stays
// on it, and a user on the stable moves to the canary at most once — no
// user flips back and forth during the rollout.
func TestStickyUsersMoveToTheCanaryAtMostOnce(t *testing.T) {
	for _, order := range [][]config.SplitService{
		{{Service: "web", Weight: 100}, {Service: "web-v2"}},
		{{Service: "web-v2"}, {Service: "web", Weight: 100}},
	} {
		sp, err := split.New("web", &config.Split{Services: order, Sticky: &config.HashKey{Header: "X-User"}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		const users = 2000
		onCanary := make([]bool, users)
		moves := make([]int, users)
		req, _ := http.NewRequest("GET", "/", nil)
		for _, w := range []int{0, 1, 5, 25, 50, 100} {
			if err := sp.SetWeights(map[string]int{"web-v2": w, "web": 100 - w}, observe.SourceRollout); err != nil {
				t.Fatal(err)
			}
			n := 0
			for u := range users {
				req.Header.Set("X-User", "user-"+strconv.Itoa(u))
				leg, _ := sp.Pick(req, nil)
				c := sp.Services()[leg] == "web-v2"
				if c != onCanary[u] {
					if !c {
						t.Fatalf("weight %d%%: user %d went back from the canary to the stable", w, u)
					}
					moves[u]++
				}
				onCanary[u] = c
				if c {
					n++
				}
			}
			// The canary's share of users follows its weight.
			if got := 100 * float64(n) / users; got < float64(w)-3 || got > float64(w)+3 {
				t.Fatalf("weight %d%%: %.1f%% of users on the canary", w, got)
			}
		}
		for u, m := range moves {
			if m > 1 {
				t.Fatalf("user %d moved %d times", u, m)
			}
		}
	}
}
