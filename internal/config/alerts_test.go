package config

import (
	"strings"
	"testing"
	"time"
)

const alertsBase = `listeners: [{address: "127.0.0.1:0"}]
services:
  - name: users
    upstreams: [{url: "http://127.0.0.1:9001"}]
routes:
  - name: api
    match: {path_prefix: /}
    service: users
alerts:
`

func TestAlertsDefaults(t *testing.T) {
	cfg, err := Parse("a.yml", []byte(alertsBase+`  rules:
    - {name: ApiErrors, scope: route, target: api, metric: error_ratio, threshold: 0.05}
    - {name: UsersDown, scope: service, metric: hosts_available, threshold: 1}
  slos:
    - {name: api-availability, scope: route, target: api, objective: 0.999}
  receivers:
    - {name: am, type: alertmanager, url: "http://127.0.0.1:9093"}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Alerts
	if a.EvaluationInterval.D() != time.Second || a.ResendInterval.D() != 10*time.Second {
		t.Fatalf("intervals %+v", a)
	}
	if r := a.Rules[0]; r.Window.D() != time.Minute || r.Op != ">" || r.Severity != "warning" || len(r.Classes) != 1 || r.Classes[0] != "5xx" {
		t.Fatalf("rule defaults %+v", r)
	}
	if r := a.Rules[1]; r.Op != "<" {
		t.Fatalf("hosts_available op %q", r.Op)
	}
	if s := a.SLOs[0]; s.Period != "30d" || len(s.Alerts) != 1 || s.Alerts[0] != "page" || s.PeriodDuration() != 30*24*time.Hour {
		t.Fatalf("slo defaults %+v", s)
	}
	if r := a.Receivers[0]; r.Timeout.D() != 5*time.Second || r.QueueSize != 1000 || r.GroupBy[0] != "alertname" {
		t.Fatalf("receiver defaults %+v", r)
	}
}

func TestAlertsValidation(t *testing.T) {
	for yaml, want := range map[string]string{
		"  rules:\n    - {name: X, scope: route, target: api, metric: bogus, threshold: 1}\n":                            "a.yml:11: alerts.rules[0].metric: unknown metric \"bogus\"",
		"  rules:\n    - {name: X, scope: route, target: nope, metric: error_ratio, threshold: 1}\n":                     "a.yml:11: alerts.rules[0].target: unknown route \"nope\"",
		"  rules:\n    - {name: X, scope: service, target: nope, metric: error_ratio, threshold: 1}\n":                   "alerts.rules[0].target: unknown service \"nope\"",
		"  rules:\n    - {name: X, scope: route, target: api, metric: cpu, threshold: 1}\n":                              "alerts.rules[0].scope: metric cpu applies to scopes gateway",
		"  rules:\n    - {name: X, scope: route, metric: error_ratio, threshold: 1, for: 48h}\n":                         "alerts.rules[0].for: must be from 0 to the history's retention (24h0m0s)",
		"  rules:\n    - {name: X, scope: route, metric: error_ratio, threshold: 1, window: 2h}\n":                       "alerts.rules[0].window: must be a whole number of seconds",
		"  rules:\n    - {name: X, scope: route, metric: error_ratio, threshold: 0.1, resolve_threshold: 0.2}\n":         "alerts.rules[0].resolve_threshold: must be on the safe side",
		"  rules:\n    - {name: X, scope: route, metric: error_ratio, error_kinds: [nope], threshold: 1}\n":              "alerts.rules[0].error_kinds[0]: unknown error kind \"nope\"",
		"  rules:\n    - {name: X-Y, scope: route, metric: error_ratio, threshold: 1}\n":                                 "alerts.rules[0].name: must be letters, digits and '_'",
		"  rules:\n    - {name: X, scope: route, metric: error_ratio, threshold: 1, annotations: {s: \"{{ .Value \"}}\n": "alerts.rules[0].annotations.s: invalid template",
		"  slos:\n    - {name: s, scope: route, target: api, objective: 0.999, alerts: [ticket]}\n":                      "alerts.slos[0].alerts[0]: the ticket alert's 3d window does not fit the history's minute_retention",
		"  slos:\n    - {name: s, scope: route, target: api, objective: 1.5}\n":                                          "alerts.slos[0].objective: must be in (0, 1)",
		"  slos:\n    - {name: s, scope: route, target: api, objective: 0.99, period: 90d}\n":                            "alerts.slos[0].period: must be 7d, 28d or 30d",
		"  receivers:\n    - {name: r, type: alertmanager, url: \"http://u:secret@127.0.0.1:1\"}\n":                      "alerts.receivers[0].url: must not carry user info",
		"  receivers:\n    - {name: r, type: pager}\n":                                                                   "alerts.receivers[0].type: must be alertmanager, webhook or log",
		"  evaluation_interval: 500ms\n": "alerts.evaluation_interval: must be a whole number of seconds",
		"  data_dir: alerts_test.go\n":   "a.yml:10: alerts.data_dir: \"alerts_test.go\" is not a directory",
		"  rules:\n    - {name: K, scope: kpi, target: nope, metric: kpi_change, threshold: 0.5, baseline: {offset: 1h}}\n":      "a.yml:11: alerts.rules[0].target: unknown KPI \"nope\"",
		"  rules:\n    - {name: K, scope: kpi, metric: kpi_change, threshold: 0.5}\n":                                            "alerts.rules[0].baseline: is required for kpi_change",
		"  rules:\n    - {name: K, scope: kpi, metric: kpi_change, threshold: 0.5, baseline: {offset: 1h, moving_average: 3}}\n": "alerts.rules[0].baseline: give either offset or moving_average",
		"  rules:\n    - {name: K, scope: kpi, metric: kpi_change, threshold: 0.5, baseline: {offset: 48h}}\n":                   "alerts.rules[0].baseline.offset: must be a whole number of seconds",
		"  rules:\n    - {name: K, scope: kpi, metric: kpi_change, threshold: 0.5, baseline: {moving_average: 1}}\n":             "alerts.rules[0].baseline.moving_average: must be from 2 to 1440",
		"  rules:\n    - {name: K, scope: kpi, metric: kpi_change, op: \">\", threshold: 0.5, baseline: {offset: 1h}}\n":         "alerts.rules[0].op: kpi_change fires on a drop",
		"  rules:\n    - {name: K, scope: kpi, metric: kpi_change, threshold: 2, baseline: {offset: 1h}}\n":                      "alerts.rules[0].threshold: is the fraction of the baseline",
		"  rules:\n    - {name: K, scope: route, metric: error_ratio, threshold: 0.5, baseline: {offset: 1h}}\n":                 "alerts.rules[0].baseline: applies only to kpi_change",
		"  rules:\n    - {name: K, scope: route, metric: kpi_change, threshold: 0.5, baseline: {offset: 1h}}\n":                  "alerts.rules[0].scope: metric kpi_change applies to scopes kpi",
		"  bogus: 1\n": "bogus",
	} {
		_, err := Parse("a.yml", []byte(alertsBase+yaml), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: error shows the credential: %v", yaml, err)
		}
	}
}
