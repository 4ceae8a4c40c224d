package config

import (
	"strings"
	"testing"
	"time"
)

const rolloutBase = `listeners: [{address: "127.0.0.1:0"}]
services:
  - {name: web, upstreams: [{url: "http://127.0.0.1:9"}]}
  - {name: web-v2, upstreams: [{url: "http://127.0.0.1:9"}]}
routes:
  - name: web
    match: {path_prefix: /}
    split: {services: [{service: web, weight: 100}, {service: web-v2, weight: 0}]}
  - {name: plain, match: {path_prefix: /plain}, service: web}
rollouts:
`

func TestRolloutDefaults(t *testing.T) {
	cfg, err := Parse("r.yml", []byte(rolloutBase+"  - {name: web, route: web, canary: web-v2, stable: web, step_size: 20, max_weight: 50}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Rollouts[0]
	if r.Interval.D() != 10*time.Second || r.MinRequests != 50 || r.PassIntervals != 1 || r.FailIntervals != 2 ||
		r.Confidence != 0.95 || *r.Checks.ErrorRatioMargin != 0.01 || r.Checks.LatencyQuantile != "p99" ||
		*r.Checks.LatencyFactor != 1.2 || len(r.Checks.ErrorKinds) != 2 || r.Webhooks.Timeout.D() != 5*time.Second {
		t.Fatalf("defaults %+v", r)
	}
	if got := r.StepWeights(); len(got) != 3 || got[0] != 20 || got[1] != 40 || got[2] != 100 {
		t.Fatalf("step weights %v", got)
	}
	r.StepSize, r.Steps = 0, []int{1, 5, 100}
	if got := r.StepWeights(); len(got) != 3 || got[2] != 100 {
		t.Fatalf("step weights %v", got)
	}
}

func TestRolloutValidation(t *testing.T) {
	for yaml, want := range map[string]string{
		"  - {name: a, route: plain, canary: web-v2, stable: web, steps: [1]}\n":                                                                   `r.yml:11: rollouts[0].route: route "plain" has no split`,
		"  - {name: a, route: nope, canary: web-v2, stable: web, steps: [1]}\n":                                                                    `rollouts[0].route: unknown route "nope"`,
		"  - {name: a, route: web, canary: other, stable: web, steps: [1]}\n":                                                                      `rollouts[0].canary: "other" is not a leg of route "web"'s split`,
		"  - {name: a, route: web, canary: web, stable: web, steps: [1]}\n":                                                                        `rollouts[0].stable: must differ from canary`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [5, 5]}\n":                                                                  `rollouts[0].steps[1]: steps must increase: 5 follows 5`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [0, 101]}\n":                                                                `rollouts[0].steps[0]: weight must be from 1 to 100, got 0`,
		"  - {name: a, route: web, canary: web-v2, stable: web, step_size: 120}\n":                                                                 `rollouts[0].step_size: must be from 1 to 100, got 120`,
		"  - {name: a, route: web, canary: web-v2, stable: web}\n":                                                                                 `rollouts[0].steps: set steps`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [1], step_size: 2}\n":                                                       `rollouts[0].step_size: set either steps or step_size`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [1], interval: 1500ms}\n":                                                   `rollouts[0].interval: must be a whole number of seconds`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [1], checks: {latency_quantile: p42}}\n":                                    `rollouts[0].checks.latency_quantile: unknown metric "p42"`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [1], checks: {error_kinds: [oops]}}\n":                                      `rollouts[0].checks.error_kinds[0]: unknown metric "oops"`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [1], checks: {orders: 1}}\n":                                                `orders`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [1], webhooks: {before_step: ftp://x}}\n":                                   `rollouts[0].webhooks.before_step: must be an http or https URL`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [1], confidence: 2}\n":                                                      `rollouts[0].confidence: must be from 0.5 to 0.9999`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [1]}\n  - {name: a, route: web, canary: web-v2, stable: web, steps: [1]}\n": `r.yml:12: rollouts[1].name: duplicate rollout name "a"`,
	} {
		_, err := Parse("r.yml", []byte(rolloutBase+yaml), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
}

const blueGreenBase = `listeners: [{address: "127.0.0.1:0"}]
services:
  - {name: web, upstreams: [{url: "http://127.0.0.1:9"}]}
  - {name: web-v2, upstreams: [{url: "http://127.0.0.1:9"}]}
routes:
  - name: web
    match: {path_prefix: /}
    split:
      services: [{service: web, weight: 100}, {service: web-v2, weight: 0}]
      override: {header: X-Version, values: {v2: web-v2}}
  - name: mirrored
    match: {path_prefix: /m}
    mirror: {service: web-v2}
    split: {services: [{service: web, weight: 100}, {service: web-v2, weight: 0}]}
  - name: bare
    match: {path_prefix: /b}
    split: {services: [{service: web, weight: 100}, {service: web-v2, weight: 0}]}
rollouts:
`

func TestRolloutBlueGreen(t *testing.T) {
	cfg, err := Parse("r.yml", []byte(blueGreenBase+
		"  - {name: a, route: web, canary: web-v2, stable: web, mode: blue_green}\n"+
		"  - {name: b, route: mirrored, canary: web-v2, stable: web, mode: blue_green, bake_time: 30s}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Rollouts[0], cfg.Rollouts[1]
	if !a.BlueGreen() || a.TestTraffic != TestTrafficHeader || a.BakeTime.D() != 5*time.Minute || len(a.StepWeights()) != 1 {
		t.Fatalf("a: %+v", a)
	}
	if b.TestTraffic != TestTrafficMirror || b.BakeTime.D() != 30*time.Second {
		t.Fatalf("b: %+v", b)
	}
	for yaml, want := range map[string]string{
		"  - {name: a, route: web, canary: web-v2, stable: web, mode: red_black}\n":                              `r.yml:19: rollouts[0].mode: unknown mode "red_black"`,
		"  - {name: a, route: web, canary: web-v2, stable: web, mode: blue_green, steps: [50]}\n":                `rollouts[0].steps: a blue_green rollout switches all traffic at once`,
		"  - {name: a, route: bare, canary: web-v2, stable: web, mode: blue_green}\n":                            `rollouts[0].test_traffic: mirror test traffic needs route "bare" to mirror to "web-v2"`,
		"  - {name: a, route: bare, canary: web-v2, stable: web, mode: blue_green, test_traffic: header}\n":      `rollouts[0].test_traffic: header test traffic needs route "bare"'s split.override`,
		"  - {name: a, route: web, canary: web-v2, stable: web, mode: blue_green, test_traffic: shadow}\n":       `rollouts[0].test_traffic: unknown test traffic "shadow"`,
		"  - {name: a, route: web, canary: web-v2, stable: web, mode: blue_green, bake_time: 5s}\n":              `rollouts[0].bake_time: must be a whole number of seconds from the interval (10s)`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [5], bake_time: 5m}\n":                    `rollouts[0].bake_time: only a blue_green rollout has a bake time`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [5], retry_to_stable: maybe}\n":           `retry_to_stable`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [5], synthetic: {path: healthz}}\n":       `rollouts[0].synthetic.path: must be a request path beginning with "/"`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [5], synthetic: {path: /h, rate: 500}}\n": `rollouts[0].synthetic.rate: must be from 1 to 100`,
	} {
		_, err := Parse("r.yml", []byte(blueGreenBase+yaml), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
}

func TestRolloutKPIChecks(t *testing.T) {
	base := strings.Replace(rolloutBase, "rollouts:\n", `metrics:
  kpis:
    - {name: purchases_total, match: {routes: [web], methods: [POST], status: ["201"]}}
    - {name: signups_total, match: {routes: [plain]}}
rollouts:
`, 1)
	cfg, err := Parse("r.yml", []byte(base+"  - {name: a, route: web, canary: web-v2, stable: web, steps: [5], checks: {kpis: [{name: purchases_total}]}}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if k := cfg.Rollouts[0].Checks.KPIs; len(k) != 1 || k[0].MinRatio != 0.9 {
		t.Fatalf("kpis %+v", k)
	}
	for yaml, want := range map[string]string{
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [5], checks: {kpis: [{name: orders_total}]}}\n":                    `rollouts[0].checks.kpis[0].name: unknown metric "orders_total"`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [5], checks: {kpis: [{name: signups_total}]}}\n":                   `rollouts[0].checks.kpis[0].name: KPI "signups_total" never matches route "web"`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [5], checks: {kpis: [{name: purchases_total, min_ratio: 1.5}]}}\n": `rollouts[0].checks.kpis[0].min_ratio: must be above 0 and at most 1, got 1.5`,
		"  - {name: a, route: web, canary: web-v2, stable: web, steps: [5], checks: {kpis: [{name: purchases_total, ratio: 1}]}}\n":       `ratio`,
	} {
		_, err := Parse("r.yml", []byte(base+yaml), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
}
