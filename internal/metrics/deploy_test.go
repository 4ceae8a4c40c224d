package metrics

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The deploy files and docs live at the repository root.
const (
	rulesFile     = "../../deploy/prometheus/vantage-rules.yml"
	rulesTestFile = "../../deploy/prometheus/vantage-rules.test.yml"
	dashboardFile = "../../deploy/grafana/vantage-dashboard.json"
	docsFile      = "../../docs/metrics.md"
)

// externalMetrics are registered on our registry by other packages and
// only documented here.
var externalMetrics = map[string]bool{
	"vantage_tracing_spans_dropped_total":     true,
	"vantage_tracing_queue_length":            true,
	"vantage_accesslog_records_dropped_total": true,
}

func TestPromtoolRules(t *testing.T) {
	promtool := requireBinary(t, "promtool")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", filepath.Base(rulesTestFile)}} {
		cmd := exec.CommandContext(ctx, promtool, args...)
		if args[0] == "test" {
			cmd.Dir = filepath.Dir(rulesTestFile)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// dashboardExprs returns the PromQL of every dashboard panel target.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	if len(out) < 20 {
		t.Fatalf("dashboard has only %d queries", len(out))
	}
	return out
}

func ruleExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

var tokenRE = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)

// vantageNames returns the vantage_* metric names an expression uses
// (recording-rule names, which hold ':', excluded), histogram suffixes
// stripped.
func vantageNames(expr string) []string {
	var out []string
	for _, tok := range tokenRE.FindAllString(expr, -1) {
		if !strings.HasPrefix(tok, "vantage_") || strings.Contains(tok, ":") || tok == "vantage_kpi_" {
			continue
		}
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			if strings.HasSuffix(tok, suf) && !strings.HasSuffix(tok, "_total") {
				tok = strings.TrimSuffix(tok, suf)
			}
		}
		out = append(out, tok)
	}
	return out
}

// familyNames returns every metric family a fully exercised gateway
// exposes.
func familyNames(t *testing.T) map[string]bool {
	t.Helper()
	m := populated(t)
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
	}
	return names
}

func TestDashboardAndRulesUseRealMetrics(t *testing.T) {
	names := familyNames(t)
	check := func(what string, exprs []string) {
		for _, e := range exprs {
			for _, n := range vantageNames(e) {
				if !names[n] && !externalMetrics[n] {
					t.Errorf("%s uses %s, which the gateway does not expose: %s", what, n, e)
				}
			}
		}
	}
	check("dashboard", dashboardExprs(t))
	check("rules", ruleExprs(t))
}

func TestDocsListEveryMetric(t *testing.T) {
	b, err := os.ReadFile(docsFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var missing []string
	for n := range familyNames(t) {
		if strings.HasPrefix(n, "go_") || strings.HasPrefix(n, "process_") || strings.HasPrefix(n, "vantage_kpi_") {
			continue
		}
		if !strings.Contains(doc, "`"+n+"`") {
			missing = append(missing, n)
		}
	}
	for n := range externalMetrics {
		if !strings.Contains(doc, "`"+n+"`") {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("docs/metrics.md does not document:\n  %s", strings.Join(missing, "\n  "))
	}
}
