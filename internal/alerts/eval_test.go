package alerts

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/history"
)

const baseYAML = `listeners: [{address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:9901"}
services:
  - name: users
    upstreams: [{url: "http://127.0.0.1:9001"}, {url: "http://127.0.0.1:9002"}]
  - name: orders
    upstreams: [{url: "http://127.0.0.1:9003"}]
routes:
  - {name: api, match: {path_prefix: /api}, service: users}
  - {name: shop, match: {path_prefix: /shop}, service: orders}
metrics: {kpis: [{name: purchases_total, match: {routes: [shop], methods: [POST]}}]}
history: {minute_retention: 96h}
alerts:
`

func parse(alerts string) (*config.Config, error) {
	return config.Parse("a.yml", []byte(baseYAML+alerts), nil)
}

func compile(t testing.TB, alerts string) *Ruleset {
	t.Helper()
	cfg, err := parse(alerts)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// step evaluates at t0+sec and returns the state of the alert of rule on
// series route (inactive when absent).
func step(t *testing.T, e *Evaluator, src history.Source, sec int, rule, route string) (State, *Alert) {
	t.Helper()
	as, _, err := e.Evaluate(context.Background(), src, t0.Add(time.Duration(sec)*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for i := range as {
		if as[i].Rule == rule && as[i].Labels["route"] == route {
			return as[i].State, &as[i]
		}
	}
	return StateInactive, nil
}

// TestPendingFiringResolved walks one alert through its states at fixed
// times: errors start at second 10, the rule needs 3s, errors stop at 20.
func TestPendingFiringResolved(t *testing.T) {
	rs := compile(t, `  rules:
    - name: ApiErrors
      scope: route
      target: api
      metric: error_ratio
      window: 5s
      threshold: 0.1
      for: 3s
      severity: page
      annotations: {summary: "{{ .Labels.route }} fails {{ printf \"%.2f\" .Value }} > {{ .Threshold }}"}
`)
	src := newFakeSource()
	for s := 0; s < 40; s++ {
		bad := uint64(0)
		if s >= 10 && s < 20 {
			bad = 5
		}
		src.add(history.ScopeRoute, "api", t0.Add(time.Duration(s)*time.Second), 10, bad)
	}
	e := NewEvaluator(rs)
	// Windows are [t-5s, t): at 11 the window holds 5 bad of 50 (0.1, not
	// above), at 12 10 of 50.
	want := map[int]State{5: StateInactive, 11: StateInactive, 12: StatePending, 14: StatePending, 15: StateFiring, 20: StateFiring, 23: StateFiring, 24: StateResolved, 30: StateResolved}
	var fired *Alert
	for s := 0; s <= 30; s++ {
		st, a := step(t, e, src, s, "ApiErrors", "api")
		if w, ok := want[s]; ok && st != w {
			t.Fatalf("second %d: state %s, want %s", s, st, w)
		}
		if st == StateFiring && fired == nil {
			fired = a
		}
	}
	if fired == nil {
		t.Fatal("never fired")
	}
	// At second 15 the window [10,15) is all bad seconds: 25/50.
	if fired.Value != 0.5 || fired.Requests != 50 || fired.Threshold != 0.1 {
		t.Fatalf("fired value %v requests %d threshold %v", fired.Value, fired.Requests, fired.Threshold)
	}
	if !fired.FiredAt.Equal(t0.Add(15*time.Second)) || !fired.ActiveAt.Equal(t0.Add(12*time.Second)) {
		t.Fatalf("active %s fired %s", fired.ActiveAt, fired.FiredAt)
	}
	if fired.Labels["severity"] != "page" || fired.Labels["service"] != "users" || fired.Labels["alertname"] != "ApiErrors" {
		t.Fatalf("labels %v", fired.Labels)
	}
	if got := fired.Annotations["summary"]; got != "api fails 0.50 > 0.1" {
		t.Fatalf("summary %q", got)
	}
	if len(fired.Exemplars) == 0 || fired.Exemplars[0].URL != "http://127.0.0.1:9901/traces/"+fired.Exemplars[0].TraceID {
		t.Fatalf("exemplars %+v", fired.Exemplars)
	}
	if !strings.Contains(fired.Annotations["exemplar_trace_ids"], fired.Exemplars[0].TraceID) {
		t.Fatalf("annotations %v", fired.Annotations)
	}
}

func TestKeepFiringFor(t *testing.T) {
	rs := compile(t, `  rules:
    - {name: E, scope: route, target: api, metric: error_ratio, window: 2s, threshold: 0.1, keep_firing_for: 5s}
`)
	src := newFakeSource()
	for s := 0; s < 30; s++ {
		bad := uint64(0)
		if s == 5 || s == 9 {
			bad = 10
		}
		src.add(history.ScopeRoute, "api", t0.Add(time.Duration(s)*time.Second), 10, bad)
	}
	e := NewEvaluator(rs)
	var trans []Transition
	for s := 0; s <= 25; s++ {
		_, tr, err := e.Evaluate(context.Background(), src, t0.Add(time.Duration(s)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range tr {
			x.Alert.EvaluatedAt = t0.Add(time.Duration(s) * time.Second)
		}
		trans = append(trans, tr...)
	}
	// Fires at 6 (window [4,6) holds second 5); the condition stops at 8,
	// holds again at 10-11 (keep_firing_for bridges the gap), stops at 12
	// and resolves 5s later, at 17: one firing, one resolve.
	var got []string
	for _, x := range trans {
		got = append(got, x.From.String()+">"+x.To.String()+"@"+x.Alert.EvaluatedAt.Sub(t0).String())
	}
	if strings.Join(got, " ") != "inactive>firing@6s firing>resolved@17s" {
		t.Fatalf("transitions %v", got)
	}
}

func TestMinRequests(t *testing.T) {
	rs := compile(t, `  rules:
    - {name: E, scope: route, metric: error_ratio, window: 10s, threshold: 0.1, min_requests: 20}
`)
	src := newFakeSource()
	// A two-request blip: 1 of 2 fail.
	src.add(history.ScopeRoute, "api", t0.Add(3*time.Second), 2, 1)
	// shop: 30 requests, 10 failing.
	src.add(history.ScopeRoute, "shop", t0.Add(3*time.Second), 30, 10)
	e := NewEvaluator(rs)
	if st, _ := step(t, e, src, 5, "E", "api"); st != StateInactive {
		t.Fatalf("api (2 requests): %s", st)
	}
	if st, a := step(t, e, src, 6, "E", "shop"); st != StateFiring || math.Abs(a.Value-1.0/3) > 1e-9 {
		t.Fatalf("shop: %s %+v", st, a)
	}
}

func TestHysteresis(t *testing.T) {
	rs := compile(t, `  rules:
    - {name: E, scope: route, target: api, metric: error_ratio, window: 1s, threshold: 0.2, resolve_threshold: 0.05}
`)
	src := newFakeSource()
	ratios := []uint64{0, 3, 1, 1, 1, 0, 1}
	for s, bad := range ratios {
		src.add(history.ScopeRoute, "api", t0.Add(time.Duration(s)*time.Second), 10, bad)
	}
	e := NewEvaluator(rs)
	// Evaluated at s+1, the window is second s alone.
	want := []State{StateInactive, StateFiring, StateFiring, StateFiring, StateFiring, StateResolved, StateResolved}
	for s := range ratios {
		if st, _ := step(t, e, src, s+1, "E", "api"); st != want[s] {
			t.Fatalf("second %d (ratio %d/10): %s, want %s", s, ratios[s], st, want[s])
		}
	}
	// 0.1 does not fire again from resolved: it is below the fire threshold.
}

func TestInhibition(t *testing.T) {
	rs := compile(t, `  rules:
    - {name: RouteErrors, scope: route, metric: error_ratio, window: 5s, threshold: 0.1}
    - {name: AllHostsDown, scope: service, metric: hosts_available, window: 2s, threshold: 1, severity: page}
  inhibit_rules:
    - source_matchers: {alertname: AllHostsDown}
      target_matchers: {alertname: RouteErrors}
      equal: [service]
`)
	src := newFakeSource()
	for s := 0; s < 10; s++ {
		at := t0.Add(time.Duration(s) * time.Second)
		src.add(history.ScopeRoute, "api", at, 10, 10)
		src.add(history.ScopeRoute, "shop", at, 10, 10)
		// users' hosts are both unhealthy; orders' is fine.
		src.set(history.ScopeHost, "users/127.0.0.1:9001", at, history.Unhealthy, 1)
		src.set(history.ScopeHost, "users/127.0.0.1:9002", at, history.Ejected, 1)
	}
	e := NewEvaluator(rs)
	as, _, err := e.Evaluate(context.Background(), src, t0.Add(8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range as {
		k := a.Rule + "/" + a.Labels["route"] + a.Labels["service"]
		got[k] = a.State.String()
		if a.Inhibited {
			got[k] += ",inhibited"
		}
	}
	want := map[string]string{"RouteErrors/apiusers": "firing,inhibited", "RouteErrors/shoporders": "firing", "AllHostsDown/users": "firing"}
	if len(got) != len(want) {
		t.Fatalf("alerts %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("alerts %v, want %v", got, want)
		}
	}
}

func TestLatencyAndRateRules(t *testing.T) {
	rs := compile(t, `  rules:
    - {name: Slow, scope: route, target: api, metric: latency, quantile: 0.5, window: 10s, threshold: 0.1, min_requests: 1}
    - {name: Quiet, scope: route, target: api, metric: request_rate, op: "<", window: 10s, threshold: 2}
`)
	src := newFakeSource()
	for s := 0; s < 10; s++ {
		p := src.add(history.ScopeRoute, "api", t0.Add(time.Duration(s)*time.Second), 1, 0)
		p.Latency.Observe(200 * time.Millisecond)
	}
	e := NewEvaluator(rs)
	as, _, err := e.Evaluate(context.Background(), src, t0.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 {
		t.Fatalf("alerts %+v", as)
	}
	for _, a := range as {
		switch a.Rule {
		case "Quiet":
			if a.Value != 1 {
				t.Fatalf("rate %v", a.Value)
			}
		case "Slow":
			if math.Abs(a.Value-0.2) > 0.2/32 {
				t.Fatalf("p50 %v", a.Value)
			}
		}
	}
}

func TestSeriesVanishResolves(t *testing.T) {
	rs := compile(t, `  rules:
    - {name: E, scope: route, target: api, metric: error_ratio, window: 2s, threshold: 0.1}
`)
	src := newFakeSource()
	src.add(history.ScopeRoute, "api", t0, 10, 10)
	e := NewEvaluator(rs)
	if st, _ := step(t, e, src, 1, "E", "api"); st != StateFiring {
		t.Fatalf("state %s", st)
	}
	// A reload that drops the rule resolves its firing alert.
	tr := e.SetRules(compile(t, "  rules: []\n"))
	if len(tr) != 1 || tr[0].To != StateResolved {
		t.Fatalf("transitions %+v", tr)
	}
}
