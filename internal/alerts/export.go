package alerts

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vantage-gateway/vantage/internal/config"
)

// promRuleFile is a Prometheus rule file.
type promRuleFile struct {
	Groups []promGroup `yaml:"groups"`
}

type promGroup struct {
	Name     string     `yaml:"name"`
	Interval string     `yaml:"interval,omitempty"`
	Rules    []promRule `yaml:"rules"`
}

type promRule struct {
	Record        string            `yaml:"record,omitempty"`
	Alert         string            `yaml:"alert,omitempty"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for,omitempty"`
	KeepFiringFor string            `yaml:"keep_firing_for,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty"`
	Annotations   map[string]string `yaml:"annotations,omitempty"`
}

// promTestFile is a promtool unit-test file.
type promTestFile struct {
	RuleFiles          []string   `yaml:"rule_files"`
	EvaluationInterval string     `yaml:"evaluation_interval"`
	Tests              []promTest `yaml:"tests"`
}

type promTest struct {
	Name       string          `yaml:"name"`
	Interval   string          `yaml:"interval"`
	Input      []promSeries    `yaml:"input_series"`
	AlertTests []promAlertTest `yaml:"alert_rule_test"`
}

type promSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type promAlertTest struct {
	EvalTime  string         `yaml:"eval_time"`
	Alertname string         `yaml:"alertname"`
	ExpAlerts []promExpAlert `yaml:"exp_alerts"`
}

type promExpAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations,omitempty"`
}

// Export writes cfg's alert rules as a Prometheus rule file (recording
// rules for each rule's value, alerting rules on them, over Vantage's
// metric names) and a promtool unit-test file (named testFileRef's rule
// file) with synthetic series on which the error-ratio and SLO alerts
// fire and stay quiet. Rules that the metrics cannot express (hosts
// available per service is approximated by vantage_upstream_healthy and
// vantage_upstream_ejected; a latency SLO exports its availability part)
// are said so in a comment annotation.
func Export(cfg *config.Config, ruleFileName string) (rules, tests []byte, err error) {
	rs, err := Compile(cfg)
	if err != nil {
		return nil, nil, err
	}
	// The groups take Prometheus' global evaluation interval: evaluating
	// every second, as Vantage does, is costly for a Prometheus server.
	rec := promGroup{Name: "vantage-recording"}
	alerting := promGroup{Name: "vantage-alerts"}
	tf := promTestFile{RuleFiles: []string{ruleFileName}, EvaluationInterval: "15s"}
	seenRec := map[string]bool{}
	addRec := func(r promRule) {
		if !seenRec[r.Record+r.Expr] {
			seenRec[r.Record+r.Expr] = true
			rec.Rules = append(rec.Rules, r)
		}
	}
	// A kpi_change rule over every KPI is exported once per configured
	// KPI (the metrics carry no KPI label to group by).
	var flat []*rule
	for _, r := range rs.rules {
		if r.metric == "kpi_change" && r.target == "" {
			for _, k := range cfg.Metrics.KPIs {
				c := *r
				c.target = k.Name
				flat = append(flat, &c)
			}
			continue
		}
		flat = append(flat, r)
	}
	for _, r := range flat {
		if r.slo != nil {
			continue
		}
		by, sel := promScope(r)
		w := fmtDur(r.window)
		expr, note := promExpr(r, by, sel, w)
		var baseline string
		if r.metric == "kpi_change" {
			expr, baseline, note = kpiExpr(cfg, r, w)
		}
		name := "vantage:" + r.scope.String() + ":" + r.metric
		if r.metric == "error_ratio" || r.metric == "latency" || r.metric == "overhead" {
			name += "_" + r.name
		}
		if r.metric == "kpi_change" {
			name += "_" + r.name + "_" + r.target
		}
		name += ":" + w
		name = promNameRE.ReplaceAllString(strings.ToLower(name), "_")
		addRec(promRule{Record: name, Expr: expr})
		cond := fmt.Sprintf("%s %s %s", name, r.op, formatFloat(r.fire))
		if r.minReq > 0 && (r.metric == "error_ratio" || r.metric == "latency" || r.metric == "overhead" || r.metric == "rate_limited_ratio") {
			cond = fmt.Sprintf("%s and on(%s) sum by (%s) (increase(vantage_requests_total%s[%s])) >= %d", cond, by, by, sel, w, r.minReq)
		}
		labels := map[string]string{}
		for k, v := range r.labels {
			labels[k] = v
		}
		if r.metric == "kpi_change" {
			cond = fmt.Sprintf("%s and on() %s >= %s", cond, baseline, formatFloat(r.kpi.min))
			labels["kpi"] = r.target
		}
		annots := promAnnotations(rs.cfg, r)
		annots["value"] = `{{ printf "%.6g" $value }}`
		annots["threshold"] = r.op + " " + formatFloat(r.fire)
		if note != "" {
			annots["export_note"] = note
		}
		pr := promRule{Alert: r.name, Expr: cond, Labels: labels, Annotations: annots}
		if r.forD > 0 {
			pr.For = fmtDur(r.forD)
		}
		if r.keep > 0 {
			pr.KeepFiringFor = fmtDur(r.keep)
		}
		if r.resolve != r.fire {
			pr.Annotations["export_note"] = strings.TrimSpace(pr.Annotations["export_note"] + " Prometheus has no resolve threshold: the alert resolves at the fire threshold.")
		}
		alerting.Rules = append(alerting.Rules, pr)
		tf.Tests = append(tf.Tests, ruleTests(rs, r, pr, by)...)
	}
	sloDone := map[string]bool{}
	sloAlerts := map[string][]promRule{}
	var sloOrder []*rule
	for _, r := range rs.rules {
		if r.slo == nil {
			continue
		}
		s := r.slo
		_, sel := promScope(r)
		by := "slo"
		if !sloDone[s.name] {
			sloDone[s.name] = true
			for _, w := range allBurnWindows() {
				addRec(promRule{Record: "vantage:slo_errors:ratio_rate" + fmtDur(w),
					Expr: fmt.Sprintf(`label_replace(sum(rate(vantage_requests_total%s[%s])) / sum(rate(vantage_requests_total%s[%s])), "slo", %q, "", "")`,
						withClass(sel), fmtDur(w), sel, fmtDur(w), s.name)})
			}
		}
		var parts []string
		for _, w := range s.windows {
			f := formatFloat(w.Factor * (1 - s.objective))
			parts = append(parts, fmt.Sprintf(`(vantage:slo_errors:ratio_rate%s{slo=%q} > %s and vantage:slo_errors:ratio_rate%s{slo=%q} > %s)`,
				fmtDur(w.Long), s.name, f, fmtDur(w.Short), s.name, f))
		}
		labels := map[string]string{}
		for k, v := range r.labels {
			labels[k] = v
		}
		labels["scope"] = r.scope.String()
		labels[r.scope.String()] = r.target
		annots := promAnnotations(rs.cfg, r)
		annots["objective"] = strconv.FormatFloat(s.objective, 'f', -1, 64)
		if s.latency > 0 {
			annots["export_note"] = "only the availability part of the latency objective is exported"
		}
		pr := promRule{Alert: r.name, Expr: strings.Join(parts, " or "), Labels: labels, Annotations: annots}
		alerting.Rules = append(alerting.Rules, pr)
		_ = by
		if len(sloAlerts[s.name]) == 0 {
			sloOrder = append(sloOrder, r)
		}
		sloAlerts[s.name] = append(sloAlerts[s.name], pr)
	}
	for _, r := range sloOrder {
		tf.Tests = append(tf.Tests, sloTests(rs, r, sloAlerts[r.slo.name])...)
	}
	out := promRuleFile{Groups: []promGroup{rec, alerting}}
	if rules, err = yaml.Marshal(out); err != nil {
		return nil, nil, err
	}
	if tests, err = yaml.Marshal(tf); err != nil {
		return nil, nil, err
	}
	header := []byte("# Generated by vantage alerts export from the config's alerts section.\n")
	return append(header, rules...), append(header, tests...), nil
}

var promNameRE = regexp.MustCompile(`[^a-zA-Z0-9_:]`)

func allBurnWindows() []time.Duration {
	seen := map[time.Duration]bool{}
	var out []time.Duration
	for _, ws := range config.BurnWindows {
		for _, w := range ws {
			for _, d := range []time.Duration{w.Long, w.Short} {
				if !seen[d] {
					seen[d] = true
					out = append(out, d)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// promScope returns the by-labels and the selector of a rule's series.
func promScope(r *rule) (by, sel string) {
	var m []string
	switch r.scope {
	case 1: // gateway
		return "", ""
	case 2: // route
		by = "route"
		if r.target != "" {
			m = append(m, fmt.Sprintf("route=%q", r.target))
		}
	case 3: // leg
		by = "route, service"
		if rt, svc, ok := strings.Cut(r.target, "/"); ok {
			m = append(m, fmt.Sprintf("route=%q", rt), fmt.Sprintf("service=%q", svc))
		}
	case 4: // service
		by = "service"
		if r.target != "" {
			m = append(m, fmt.Sprintf("service=%q", r.target))
		}
	case 5: // host
		by = "service, upstream"
		if svc, host, ok := strings.Cut(r.target, "/"); ok {
			m = append(m, fmt.Sprintf("service=%q", svc), fmt.Sprintf("upstream=%q", host))
		}
	}
	if len(m) > 0 {
		sel = "{" + strings.Join(m, ", ") + "}"
	}
	return by, sel
}

func withClass(sel string) string {
	if sel == "" {
		return `{class="5xx"}`
	}
	return sel[:len(sel)-1] + `, class="5xx"}`
}

func addMatcher(sel, m string) string {
	if sel == "" {
		return "{" + m + "}"
	}
	return sel[:len(sel)-1] + ", " + m + "}"
}

func sumBy(by, inner string) string {
	if by == "" {
		return "sum(" + inner + ")"
	}
	return "sum by (" + by + ") (" + inner + ")"
}

// kpiExpr returns the PromQL of a kpi_change rule's value (the KPI's
// increase over the window over its baseline's), of its baseline, and a
// note when the export is an approximation. The KPI metrics carry only
// the KPI's own label: a per-leg series exports the whole KPI.
func kpiExpr(cfg *config.Config, r *rule, w string) (value, baseline, note string) {
	k, rest := r.target, ""
	if i := strings.IndexAny(k, ":@"); i >= 0 {
		k, rest = k[:i], k[i:]
	}
	m := "vantage_kpi_" + k
	for _, c := range cfg.Metrics.KPIs {
		if c.Name == k && c.Type == "histogram" {
			m += "_count"
		}
	}
	sel := ""
	switch {
	case strings.HasPrefix(rest, ":"):
		if l, v, ok := strings.Cut(rest[1:], "="); ok {
			sel = fmt.Sprintf("{%s=%q}", l, v)
		}
	case strings.HasPrefix(rest, "@"):
		note = "the metrics have no per-leg KPI: the whole KPI is exported"
	}
	cur := fmt.Sprintf("sum(increase(%s%s[%s]))", m, sel, w)
	if r.kpi.offset > 0 {
		baseline = fmt.Sprintf("sum(increase(%s%s[%s] offset %s))", m, sel, w, fmtDur(r.kpi.offset))
	} else {
		baseline = fmt.Sprintf("(sum(increase(%s%s[%s] offset %s)) / %d)", m, sel, fmtDur(time.Duration(r.kpi.n)*r.window), w, r.kpi.n)
	}
	return cur + " / " + baseline, baseline, note
}

// promExpr returns the PromQL of a rule's value and a note when it is an
// approximation.
func promExpr(r *rule, by, sel, w string) (string, string) {
	reqs, dur, ovh := "vantage_requests_total", "vantage_request_duration_seconds_bucket", "vantage_request_overhead_seconds_bucket"
	if r.scope == 5 {
		reqs, dur = "vantage_upstream_requests_total", "vantage_upstream_request_duration_seconds_bucket"
	}
	total := sumBy(by, fmt.Sprintf("rate(%s%s[%s])", reqs, sel, w))
	switch r.metric {
	case "request_rate":
		return total, ""
	case "error_ratio":
		var classes, kinds []string
		for _, f := range r.errs {
			if n := f.String(); strings.HasSuffix(n, "xx") {
				classes = append(classes, n)
			} else {
				kinds = append(kinds, strings.TrimPrefix(n, "error_"))
			}
		}
		var num []string
		if len(classes) > 0 {
			num = append(num, sumBy(by, fmt.Sprintf("rate(%s%s[%s])", reqs, addMatcher(sel, fmt.Sprintf("class=~%q", strings.Join(classes, "|"))), w)))
		}
		if len(kinds) > 0 {
			errs := "vantage_request_errors_total"
			if r.scope == 5 {
				errs = "vantage_upstream_errors_total"
			}
			num = append(num, sumBy(by, fmt.Sprintf("rate(%s%s[%s])", errs, addMatcher(sel, fmt.Sprintf("error_kind=~%q", strings.Join(kinds, "|"))), w)))
		}
		n := num[0]
		if len(num) == 2 {
			// A sum of vectors is empty where either is: keep each alone too.
			n = fmt.Sprintf("(%s + %s) or %s or %s", num[0], num[1], num[0], num[1])
		}
		return "(" + n + ") / " + total, ""
	case "latency", "overhead":
		h := dur
		if r.metric == "overhead" {
			h = ovh
		}
		le := "le"
		if by != "" {
			le = by + ", le"
		}
		return fmt.Sprintf("histogram_quantile(%s, sum by (%s) (rate(%s%s[%s])))", formatFloat(r.quantile), le, h, sel, w), ""
	case "breaker_open":
		up := `upstream="none"`
		if r.scope == 5 {
			up = `upstream!="none"`
		}
		return fmt.Sprintf("max by (%s) (vantage_circuit_breaker_state%s)", by, addMatcher(addMatcher(sel, `state="open"`), up)), ""
	case "hosts_available":
		return fmt.Sprintf("sum by (service) (vantage_upstream_healthy%s * on (service, upstream) (1 - vantage_upstream_ejected%s))", sel, sel),
			"hosts are counted from the current health and ejection gauges, not over the window"
	case "rate_limited_ratio":
		return sumBy(by, fmt.Sprintf("rate(vantage_rate_limit_rejections_total%s[%s])", sel, w)) + " / " + total, ""
	case "retry_budget_exhausted":
		return sumBy(by, fmt.Sprintf("rate(vantage_retry_budget_exhausted_total%s[%s])", sel, w)), ""
	case "cpu":
		return fmt.Sprintf(`sum(rate(vantage_host_cpu_seconds_total{mode!~"idle|iowait"}[%s]))`, w), ""
	case "memory":
		return "1 - vantage_host_memory_available_bytes / vantage_host_memory_total_bytes", ""
	case "disk":
		return fmt.Sprintf("sum(rate(vantage_host_disk_read_bytes_total[%s])) + sum(rate(vantage_host_disk_written_bytes_total[%s]))", w, w), ""
	}
	return "vector(0)", "unknown metric"
}

var tmplFieldRE = regexp.MustCompile(`\.(Value|Threshold|Requests|Labels|State)\b`)

// promAnnotations rewrites a rule's annotation templates for Prometheus:
// .Value → $value, .Labels → $labels, .Threshold → the fire threshold.
func promAnnotations(a config.Alerts, r *rule) map[string]string {
	var src map[string]string
	for i := range a.Rules {
		if a.Rules[i].Name == r.name {
			src = a.Rules[i].Annotations
		}
	}
	if r.slo != nil {
		for i := range a.SLOs {
			if a.SLOs[i].Name == r.slo.name {
				src = a.SLOs[i].Annotations
			}
		}
	}
	out := map[string]string{}
	for k, v := range src {
		v = tmplFieldRE.ReplaceAllStringFunc(v, func(m string) string {
			switch m {
			case ".Value":
				return "$value"
			case ".Labels":
				return "$labels"
			case ".Threshold":
				return formatFloat(r.fire)
			case ".State":
				return `"firing"`
			}
			return "0"
		})
		out[k] = v
	}
	return out
}

// ruleTests returns two promtool tests of one threshold rule: input
// series on which its value is far on the firing side of the threshold
// (the alert fires with its labels and annotations) and far on the other
// side (quiet). Each metric has its synthetic series: counters rising at
// a chosen rate (request, retry-budget, CPU and disk rates), failing or
// refused requests (ratios 1 and 0), a latency or overhead histogram
// with every observation in its +Inf bucket (histogram_quantile answers
// the highest finite bound) or in its first one, gauges (breaker state,
// host health and ejection, memory). A rule whose threshold leaves no
// room on one side (a ratio above 1, a rate below 0), or whose
// annotations use .Requests (Prometheus has no such value), gets none.
func ruleTests(rs *Ruleset, r *rule, pr promRule, by string) []promTest {
	if strings.Contains(strings.Join(mapValues(r.annotsSrc(rs)), ""), ".Requests") {
		return nil
	}
	_, sel := promScope(r)
	T := r.fire
	up := r.op[0] == '>' // fires on a high value
	// labels: the series' identity, from the selector, then defaults.
	labels := map[string]string{}
	for _, m := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(sel, "{"), "}"), ", ") {
		if k, v, ok := strings.Cut(m, "="); ok {
			labels[k] = strings.Trim(v, `"`)
		}
	}
	for _, l := range []string{"route", "service", "upstream"} {
		if labels[l] == "" {
			labels[l] = map[string]string{"route": "r", "service": "s", "upstream": "127.0.0.1:1"}[l]
		}
	}
	if r.scope != 5 && r.metric != "hosts_available" && r.metric != "breaker_open" {
		delete(labels, "upstream")
	}
	series := func(name string, extra ...string) string {
		m := make([]string, 0, len(labels)+len(extra)/2)
		keys := make([]string, 0, len(labels))
		for k := range labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			m = append(m, fmt.Sprintf("%s=%q", k, labels[k]))
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m = append(m, fmt.Sprintf("%s=%q", extra[i], extra[i+1]))
		}
		return name + "{" + strings.Join(m, ", ") + "}"
	}
	eval := r.forD + r.window + 2*time.Minute
	n := int(eval/(15*time.Second)) + 4
	counter := func(name string, perSec float64, extra ...string) promSeries {
		return promSeries{Series: series(name, extra...), Values: fmt.Sprintf("0+%sx%d", formatFloat(perSec*15), n)}
	}
	gauge := func(name string, v float64, extra ...string) promSeries {
		return promSeries{Series: series(name, extra...), Values: fmt.Sprintf("%sx%d", formatFloat(v), n)}
	}
	reqs := "vantage_requests_total"
	if r.scope == 5 {
		reqs = "vantage_upstream_requests_total"
	}
	// Requests enough for min_requests over the window.
	rate := float64(r.minReq)/r.window.Seconds() + 10
	ok := func(perSec float64) promSeries {
		if r.scope == 5 {
			return counter(reqs, perSec, "class", "2xx")
		}
		return counter(reqs, perSec, "class", "2xx", "code", "200", "method", "GET")
	}
	// hi and lo: the inputs and value of a high and a low reading.
	var hi, lo []promSeries
	var hiV, loV float64
	exact := true // the value is exact, not subject to rate()'s arithmetic
	switch r.metric {
	case "request_rate", "retry_budget_exhausted", "cpu", "disk":
		if T <= 0 || T > 1e12 {
			return nil
		}
		hiV, loV, exact = math.Ceil(2*T+1), 0, false
		mk := func(v float64) []promSeries {
			switch r.metric {
			case "request_rate":
				return []promSeries{ok(v)}
			case "retry_budget_exhausted":
				return []promSeries{counter("vantage_retry_budget_exhausted_total", v)}
			case "cpu":
				return []promSeries{counter("vantage_host_cpu_seconds_total", v, "mode", "user")}
			}
			return []promSeries{counter("vantage_host_disk_read_bytes_total", v, "device", "sda"), counter("vantage_host_disk_written_bytes_total", 0, "device", "sda")}
		}
		if r.metric == "cpu" || r.metric == "disk" {
			labels = map[string]string{}
		}
		hi, lo = mk(hiV), mk(loV)
	case "error_ratio", "rate_limited_ratio", "memory":
		if T < 0 || T >= 1 {
			return nil
		}
		hiV, loV = 1, 0
		switch r.metric {
		case "error_ratio":
			bad := "5xx"
			classes := map[string]bool{}
			for _, f := range r.errs {
				classes[f.String()] = true
			}
			if !classes["5xx"] {
				for c := range classes {
					bad = c
				}
			}
			if strings.HasSuffix(bad, "xx") {
				if r.scope == 5 {
					hi = []promSeries{counter(reqs, rate, "class", bad)}
				} else {
					hi = []promSeries{counter(reqs, rate, "class", bad, "code", bad[:1]+"00", "method", "GET")}
				}
			} else {
				errs := "vantage_request_errors_total"
				if r.scope == 5 {
					errs = "vantage_upstream_errors_total"
				}
				hi = []promSeries{ok(rate), counter(errs, rate, "error_kind", strings.TrimPrefix(bad, "error_"))}
			}
			lo = []promSeries{ok(rate)}
		case "rate_limited_ratio":
			hi = []promSeries{ok(rate), counter("vantage_rate_limit_rejections_total", rate, "key", "route", "policy", "p")}
			lo = []promSeries{ok(rate), counter("vantage_rate_limit_rejections_total", 0, "key", "route", "policy", "p")}
			if r.scope == 1 {
				labels = map[string]string{}
				hi[0], lo[0] = ok(rate), ok(rate)
			}
		case "memory":
			labels = map[string]string{}
			hi = []promSeries{gauge("vantage_host_memory_total_bytes", 1e9), gauge("vantage_host_memory_available_bytes", 0)}
			lo = []promSeries{gauge("vantage_host_memory_total_bytes", 1e9), gauge("vantage_host_memory_available_bytes", 1e9)}
		}
	case "latency", "overhead":
		if T <= 0 {
			return nil
		}
		h := "vantage_request_duration_seconds_bucket"
		switch {
		case r.metric == "overhead":
			h = "vantage_request_overhead_seconds_bucket"
		case r.scope == 5:
			h = "vantage_upstream_request_duration_seconds_bucket"
		}
		low, high := T/2, T*4
		hist := func(first, inf float64) []promSeries {
			return []promSeries{counter(h, first, "le", formatFloat(low)), counter(h, first, "le", formatFloat(high)), counter(h, inf, "le", "+Inf"), ok(rate)}
		}
		// All in +Inf: the quantile is the highest finite bound, exactly.
		hiV, hi = high, hist(0, rate)
		loV, lo, exact = low*r.quantile, hist(rate, rate), false
	case "breaker_open":
		if T < 0 || T >= 1 {
			return nil
		}
		u := "none"
		if r.scope == 5 {
			u = labels["upstream"]
		}
		labels["upstream"] = u
		hiV, loV = 1, 0
		hi = []promSeries{gauge("vantage_circuit_breaker_state", 1, "state", "open")}
		lo = []promSeries{gauge("vantage_circuit_breaker_state", 0, "state", "open")}
		delete(labels, "route")
	case "kpi_change":
		return kpiTests(rs, r, pr)
	case "hosts_available":
		if T <= 0 || T > 1 {
			return nil
		}
		delete(labels, "route")
		hiV, loV = 1, 0
		hi = []promSeries{gauge("vantage_upstream_healthy", 1), gauge("vantage_upstream_ejected", 0)}
		lo = []promSeries{gauge("vantage_upstream_healthy", 0), gauge("vantage_upstream_ejected", 0)}
	default:
		return nil
	}
	fireIn, quietIn, v := hi, lo, hiV
	if !up {
		fireIn, quietIn, v = lo, hi, loV
	}
	// The alert's labels: the rule's, and the by labels of its series.
	exp := map[string]string{"alertname": r.name}
	for k, val := range r.labels {
		exp[k] = val
	}
	for _, l := range strings.Split(by, ", ") {
		if l == "upstream" && r.scope == 5 {
			exp["upstream"] = labels["upstream"]
		} else if l != "" {
			exp[l] = labels[l]
		}
	}
	ann := map[string]string{}
	for k, t := range r.annots {
		if !exact && strings.Contains(r.annotsSrc(rs)[k], ".Value") {
			return nil // rate() arithmetic may print the value otherwise
		}
		var b strings.Builder
		if err := t.Execute(&b, templateData{Value: v, Threshold: r.fire, Labels: exp}); err == nil {
			ann[k] = b.String()
		}
	}
	ann["value"] = fmt.Sprintf("%.6g", v)
	ann["threshold"] = pr.Annotations["threshold"]
	if note, ok := pr.Annotations["export_note"]; ok {
		ann["export_note"] = note
	}
	at := fmtDur(eval)
	return []promTest{
		{Name: r.name + " fires", Interval: "15s", Input: fireIn,
			AlertTests: []promAlertTest{{EvalTime: at, Alertname: r.name, ExpAlerts: []promExpAlert{{ExpLabels: exp, ExpAnnotations: ann}}}}},
		{Name: r.name + " is quiet", Interval: "15s", Input: quietIn,
			AlertTests: []promAlertTest{{EvalTime: at, Alertname: r.name, ExpAlerts: []promExpAlert{}}}},
	}
}

// kpiTests: the KPI rises steadily through the baseline and stops for
// the window (value 0: fires), or rises steadily throughout (value 1:
// quiet).
func kpiTests(rs *Ruleset, r *rule, pr promRule) []promTest {
	if r.fire >= 1 || strings.Contains(r.target, "@") || strings.Contains(strings.Join(mapValues(r.annotsSrc(rs)), ""), ".Requests") {
		return nil
	}
	k, sel := r.target, ""
	if i := strings.IndexByte(k, ':'); i >= 0 {
		if l, v, ok := strings.Cut(k[i+1:], "="); ok {
			sel = fmt.Sprintf("{%s=%q}", l, v)
		}
		k = k[:i]
	}
	m := "vantage_kpi_" + k
	if strings.Contains(pr.Expr, m+"_count") {
		m += "_count"
	}
	big, _ := r.kpi.baselineWindows(r.window)
	eval := r.forD + big + 2*time.Minute
	n := int(eval/(15*time.Second)) + 4
	perStep := math.Ceil(r.kpi.min/r.window.Seconds()+1) * 15
	// Flat from a minute before the window and for began.
	a := int((eval-r.window-r.forD-time.Minute)/(15*time.Second)) - 1
	fire := fmt.Sprintf("0+%sx%d %sx%d", formatFloat(perStep), a, formatFloat(perStep*float64(a)), n-a)
	exp := map[string]string{"alertname": r.name, "kpi": r.target}
	for key, v := range r.labels {
		exp[key] = v
	}
	ann := map[string]string{}
	for key, t := range r.annots {
		var b strings.Builder
		if err := t.Execute(&b, templateData{Value: 0, Threshold: r.fire, Labels: exp}); err == nil {
			ann[key] = b.String()
		}
	}
	ann["value"], ann["threshold"] = "0", pr.Annotations["threshold"]
	if note, ok := pr.Annotations["export_note"]; ok {
		ann["export_note"] = note
	}
	at := fmtDur(eval)
	return []promTest{
		{Name: r.name + " fires", Interval: "15s", Input: []promSeries{{Series: m + sel, Values: fire}},
			AlertTests: []promAlertTest{{EvalTime: at, Alertname: r.name, ExpAlerts: []promExpAlert{{ExpLabels: exp, ExpAnnotations: ann}}}}},
		{Name: r.name + " is quiet", Interval: "15s", Input: []promSeries{{Series: m + sel, Values: fmt.Sprintf("0+%sx%d", formatFloat(perStep), n)}},
			AlertTests: []promAlertTest{{EvalTime: at, Alertname: r.name, ExpAlerts: []promExpAlert{}}}},
	}
}

func (r *rule) annotsSrc(rs *Ruleset) map[string]string {
	for i := range rs.cfg.Rules {
		if rs.cfg.Rules[i].Name == r.name {
			return rs.cfg.Rules[i].Annotations
		}
	}
	return nil
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// sloTests: 20% of requests failing for the long window burns far faster
// than every factor of the workbook; a clean series is quiet.
func sloTests(rs *Ruleset, r *rule, prs []promRule) []promTest {
	_, sel := promScope(r)
	var long time.Duration
	var exps []promExpAlert
	for _, pr := range prs {
		for _, v := range pr.Annotations {
			if strings.Contains(v, "{{") {
				return nil
			}
		}
		exp := map[string]string{"alertname": pr.Alert}
		for k, v := range pr.Labels {
			exp[k] = v
		}
		exps = append(exps, promExpAlert{ExpLabels: exp, ExpAnnotations: pr.Annotations})
	}
	for _, x := range rs.rules {
		if x.slo != nil && x.slo.name == r.slo.name {
			for _, w := range x.slo.windows {
				long = max(long, w.Long)
			}
		}
	}
	// With a constant burn from the start, rate() over a window longer
	// than the data is the burn over the data: at 2h10m every alert of
	// the workbook fires (page on 1h and 5m, ticket on 1d and 2h), which
	// keeps promtool's run short.
	eval := min(long, 2*time.Hour) + 10*time.Minute
	n := int(eval/time.Minute) + 2
	inner := strings.TrimSuffix(strings.TrimPrefix(sel, "{"), "}")
	base := []string{`method="GET"`}
	if inner != "" {
		base = append(base, inner)
	}
	if !strings.Contains(inner, "route=") {
		base = append(base, `route="r"`)
	}
	if !strings.Contains(inner, "service=") {
		base = append(base, `service="s"`)
	}
	s := func(class, code string) string {
		return "vantage_requests_total{" + strings.Join(append([]string{fmt.Sprintf("class=%q", class), fmt.Sprintf("code=%q", code)}, base...), ", ") + "}"
	}
	// Failing share: 20%, or half when the objective leaves more room.
	badPerMin := 20
	if need := r.slo.windows[0].Factor * (1 - r.slo.objective); need >= 0.2 {
		badPerMin = 100
	}
	fire := promTest{Name: "SLO " + r.slo.name + " fires on a fast burn", Interval: "1m",
		Input: []promSeries{
			{Series: s("5xx", "502"), Values: fmt.Sprintf("0+%dx%d", badPerMin, n)},
			{Series: s("2xx", "200"), Values: fmt.Sprintf("0+%dx%d", 100-badPerMin, n)},
		},
		AlertTests: []promAlertTest{{EvalTime: fmtDur(eval), Alertname: r.name, ExpAlerts: exps}}}
	quiet := promTest{Name: "SLO " + r.slo.name + " is quiet without errors", Interval: "1m",
		Input:      []promSeries{{Series: s("2xx", "200"), Values: fmt.Sprintf("0+100x%d", n)}},
		AlertTests: []promAlertTest{{EvalTime: fmtDur(eval), Alertname: r.name, ExpAlerts: []promExpAlert{}}}}
	if badPerMin == 100 {
		fire.Input = fire.Input[:1]
	}
	return []promTest{fire, quiet}
}
