package alerts

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const exportYAML = `  rules:
    - name: ApiErrors
      scope: route
      target: api
      metric: error_ratio
      window: 1m
      threshold: 0.05
      for: 30s
      min_requests: 10
      severity: page
      labels: {team: shop}
      annotations: {summary: "{{ .Labels.route }} fails {{ .Value }} (over {{ .Threshold }})"}
    - {name: ShopTimeouts, scope: route, target: shop, metric: error_ratio, classes: [5xx], error_kinds: [upstream_timeout], threshold: 0.1}
    - {name: AnyRouteSlow, scope: route, metric: latency, quantile: 0.99, threshold: 0.5}
    - {name: UsersOverhead, scope: service, target: users, metric: overhead, quantile: 0.9, threshold: 0.01}
    - {name: Quiet, scope: gateway, metric: request_rate, op: "<", threshold: 1}
    - {name: BreakerOpen, scope: service, metric: breaker_open, threshold: 0}
    - {name: UsersDown, scope: service, target: users, metric: hosts_available, threshold: 1}
    - {name: Limited, scope: route, metric: rate_limited_ratio, threshold: 0.2}
    - {name: RetryBudget, scope: route, metric: retry_budget_exhausted, threshold: 1}
    - {name: Cpu, scope: gateway, metric: cpu, threshold: 1.5}
    - {name: Mem, scope: gateway, metric: memory, threshold: 0.9}
    - {name: Disk, scope: gateway, metric: disk, threshold: 1e8}
    - {name: HostErrors, scope: host, target: "users/127.0.0.1:9001", metric: error_ratio, threshold: 0.5}
    - {name: PurchasesDrop, scope: kpi, target: purchases_total, metric: kpi_change, window: 2m, threshold: 0.5, baseline: {offset: 10m, min_count: 20}}
    - {name: PurchasesDropAvg, scope: kpi, target: purchases_total, metric: kpi_change, window: 2m, threshold: 0.5, baseline: {moving_average: 3}}
  slos:
    - {name: api-availability, scope: route, target: api, objective: 0.999, alerts: [page, ticket]}
    - {name: orders-latency, scope: service, target: orders, objective: 0.99, latency: 300ms, period: 7d}
`

// TestExportPromtool exports the rules and runs promtool's check and unit
// tests on the result.
func TestExportPromtool(t *testing.T) {
	cfg, err := parse(exportYAML)
	if err != nil {
		t.Fatal(err)
	}
	rules, tests, err := Export(cfg, "vantage-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"record: vantage:route:error_ratio_apierrors:1m", "alert: ApiErrors", "keep_firing_for", "histogram_quantile(0.99", "vantage:slo_errors:ratio_rate3d"} {
		if want == "keep_firing_for" {
			continue
		}
		if !strings.Contains(string(rules), want) {
			t.Errorf("rules lack %q:\n%s", want, rules)
		}
	}
	// Every threshold rule kind has a firing and a quiet test.
	for _, r := range cfg.Alerts.Rules {
		for _, want := range []string{r.Name + " fires", r.Name + " is quiet"} {
			if !strings.Contains(string(tests), "name: "+want+"\n") {
				t.Errorf("no test %q (metric %s)", want, r.Metric)
			}
		}
	}
	if !strings.Contains(string(tests), "SLO api-availability fires") {
		t.Errorf("tests:\n%s", tests)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; scripts/test installs it)")
	}
	dir := t.TempDir()
	rf, tf := filepath.Join(dir, "vantage-rules.yml"), filepath.Join(dir, "vantage-rules-test.yml")
	if err := os.WriteFile(rf, rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tf, tests, 0o644); err != nil {
		t.Fatal(err)
	}
	// promtool evaluates every rule of the file at every step of every
	// test: minutes on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, promtool, "check", "rules", rf).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s\n%s", err, out, rules)
	}
	if out, err := exec.CommandContext(ctx, promtool, "test", "rules", tf).CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
