package rollout

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// leg builds a synthetic window: n requests, e of them 5xx, latencies
// spread evenly over [lat, 1.2·lat].
func leg(n, e int, lat time.Duration) history.Point {
	var p history.Point
	p.V[history.Requests] = uint64(n)
	p.V[history.Class5xx] = uint64(e)
	p.V[history.Class2xx] = uint64(n - e)
	for i := range n {
		p.Latency.Observe(lat + time.Duration(i%100)*lat/500)
	}
	if e > 0 {
		p.Exemplars = append(p.Exemplars, history.Exemplar{Kind: history.ExemplarError, TraceID: [16]byte{0xab, 1}})
	}
	return p
}

func testRollout(t *testing.T, extra string) *config.Rollout {
	t.Helper()
	cfg, err := config.Parse("r.yml", []byte(`listeners: [{address: "127.0.0.1:0"}]
services:
  - {name: web, upstreams: [{url: "http://127.0.0.1:9"}]}
  - {name: web-v2, upstreams: [{url: "http://127.0.0.1:9"}]}
routes:
  - {name: web, match: {path_prefix: /}, split: {services: [{service: web, weight: 100}, {service: web-v2, weight: 0}]}}
rollouts:
  - {name: web, route: web, canary: web-v2, stable: web, steps: [10, 50, 100], interval: 10s, min_requests: 100`+extra+`}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &cfg.Rollouts[0]
}

func TestJudge(t *testing.T) {
	r := testRollout(t, "")
	ms := time.Millisecond
	for _, tt := range []struct {
		name           string
		canary, stable history.Point
		want           Verdict
		failing        string
	}{
		{"healthy", leg(500, 0, 20*ms), leg(4500, 0, 20*ms), Pass, ""},
		{"too few canary requests", leg(50, 0, 20*ms), leg(4500, 0, 20*ms), Hold, ""},
		{"3% errors, not yet significant", leg(100, 3, 20*ms), leg(900, 0, 20*ms), Hold, ""},
		{"5% errors against 0%", leg(600, 30, 20*ms), leg(5400, 0, 20*ms), Fail, "error_ratio"},
		{"both legs degrade together", leg(600, 60, 20*ms), leg(5400, 540, 20*ms), Pass, ""},
		{"30% slower at p99", leg(600, 0, 26*ms), leg(5400, 0, 20*ms), Fail, "latency_p99"},
		{"both slower together", leg(600, 0, 40*ms), leg(5400, 0, 40*ms), Pass, ""},
		{"slower but too few for the p99 bound", leg(150, 0, 26*ms), leg(5400, 0, 20*ms), Hold, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := Judge(r, &tt.canary, &tt.stable)
			if a.Verdict != tt.want {
				t.Fatalf("verdict %s (%s), want %s; checks %+v", a.Verdict, a.Reason, tt.want, a.Checks)
			}
			if tt.failing != "" {
				if !strings.Contains(a.Reason, tt.failing) {
					t.Fatalf("reason %q does not name %s", a.Reason, tt.failing)
				}
				if tt.failing == "error_ratio" && (len(a.Exemplars) == 0 || a.Exemplars[0] != "ab010000000000000000000000000000") {
					t.Fatalf("exemplars %v", a.Exemplars)
				}
			}
			for _, c := range a.Checks {
				if c.Verdict == "" || c.Reason == "" {
					t.Fatalf("check without evidence: %+v", c)
				}
			}
		})
	}
}

func TestJudgeErrorKindsAndAbsolute(t *testing.T) {
	r := testRollout(t, ", checks: {min_success_rate: 0.99, max_latency: 100ms}")
	c, s := leg(1000, 0, 20*time.Millisecond), leg(1000, 0, 20*time.Millisecond)
	c.V[history.ErrorField(observe.ErrUpstreamTimeout)] = 40
	a := Judge(r, &c, &s)
	if a.Verdict != Fail || !strings.Contains(a.Reason, "error_kind:upstream_timeout") {
		t.Fatalf("timeouts: %s %s", a.Verdict, a.Reason)
	}
	// An absolute limit both legs break is a shared cause: no failure.
	c, s = leg(1000, 50, 200*time.Millisecond), leg(1000, 50, 200*time.Millisecond)
	a = Judge(r, &c, &s)
	for _, ch := range a.Checks {
		if ch.Verdict == Fail {
			t.Fatalf("shared degradation failed %s: %s", ch.Name, ch.Reason)
		}
	}
	// The canary alone below the success rate fails it.
	c, s = leg(1000, 50, 20*time.Millisecond), leg(1000, 0, 20*time.Millisecond)
	a = Judge(r, &c, &s)
	if a.Verdict != Fail || !strings.Contains(a.Reason, "success_rate") {
		t.Fatalf("success rate: %s %s", a.Verdict, a.Reason)
	}
}

// fakeSource is a synthetic per-leg history: one point per (leg, second).
type fakeSource struct {
	points map[string]map[int64]history.Point
	latest time.Time
}

func (f *fakeSource) put(name string, sec time.Time, p history.Point) {
	if f.points == nil {
		f.points = map[string]map[int64]history.Point{}
	}
	if f.points[name] == nil {
		f.points[name] = map[int64]history.Point{}
	}
	f.points[name][sec.Unix()] = p
}

func (f *fakeSource) Range(_ context.Context, q history.Query) (history.Result, error) {
	s, ok := f.points[q.Name]
	if !ok {
		return history.Result{}, fmt.Errorf("%w: %q", history.ErrNotFound, q.Name)
	}
	step := max(q.Step, time.Second)
	res := history.Result{Scope: q.Scope, Name: q.Name, Step: step}
	for t := q.From; t.Before(q.To); t = t.Add(step) {
		var p history.Point
		p.Time = t
		for sec := t; sec.Before(t.Add(step)) && sec.Before(q.To); sec = sec.Add(time.Second) {
			if o, ok := s[sec.Unix()]; ok {
				p.Add(&o)
			}
		}
		res.Points = append(res.Points, p)
	}
	return res, nil
}

func (f *fakeSource) Names(context.Context, history.Scope) ([]string, error) { return nil, nil }
func (f *fakeSource) Latest(context.Context) (time.Time, error)              { return f.latest, nil }

func TestAnalyzeReadsBothLegsOverTheSameInterval(t *testing.T) {
	r := testRollout(t, "")
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	src := &fakeSource{}
	for i := range 20 {
		sec := t0.Add(time.Duration(i) * time.Second)
		src.put("web/web", sec, leg(90, 0, 20*time.Millisecond))
		e := 0
		if i >= 10 {
			e = 2 // the canary breaks in the second interval
		}
		src.put("web/web-v2", sec, leg(10, e, 20*time.Millisecond))
	}
	a, err := Analyze(context.Background(), src, r, t0.Add(10*time.Second))
	if err != nil || a.Verdict != Pass || a.Canary.Requests != 100 || a.Stable.Requests != 900 {
		t.Fatalf("first interval: %v %+v", err, a)
	}
	a, err = Analyze(context.Background(), src, r, t0.Add(20*time.Second))
	if err != nil || a.Verdict != Fail || a.Canary.Errors != 20 || !a.From.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("second interval: %v %+v", err, a)
	}
}
