// Package alerts owns alert rules, their evaluation and their delivery.
//
// Rules come from the config's alerts section: threshold rules on what
// the history records (request rate, error ratio, latency and overhead
// quantiles, breaker state, hosts available, rate-limit rejections,
// retry-budget refusals, the machine's CPU, memory and disk, a business
// KPI's drop against its baseline) and SLOs with multi-window
// multi-burn-rate alerts. Compile turns them into a
// Ruleset once per config snapshot.
//
// Judging is a pure function of the history at a given time: an
// Evaluator's Evaluate(ctx, src, t) reads windows ending at t from a
// history.Source and moves each alert through inactive → pending →
// firing → resolved as Prometheus does, with for, keep_firing_for,
// separate fire and resolve thresholds, a minimum request count and
// inhibition. It holds the alerts' state between calls and nothing else;
// tests drive it at fixed times over synthetic series.
//
// Acting is a separate step: a Manager evaluates on a ticker, logs each
// transition, keeps Prometheus-style metrics, serves the state (Reader,
// Handler) and hands notifications to a Dispatcher, whose bounded
// per-receiver queues deliver to Alertmanager (v2 API), webhooks
// (Alertmanager's webhook JSON) and the log off the evaluation path.
package alerts

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Ruleset is the compiled alerts section of one config snapshot. It is
// immutable and safe for concurrent use.
type Ruleset struct {
	rules    []*rule
	byKey    map[string]*rule
	inhibit  []config.InhibitRule
	external string // the admin's base URL, without a trailing slash
	interval time.Duration
	resend   time.Duration
	// routeService maps a route to its single service (for the service
	// label of route alerts, which inhibition matches on).
	routeService map[string]string
	cfg          config.Alerts
	// secRetention is the history's per-second retention.
	secRetention time.Duration
}

// rule is one compiled threshold rule or SLO alert.
type rule struct {
	name     string
	key      string // unique in the ruleset: the name, or SLOBurnRate/slo/kind
	scope    history.Scope
	target   string // "" for every series of the scope
	metric   string
	quantile float64
	errs     []history.Field // error_ratio's numerator fields
	window   time.Duration
	op       string
	fire     float64
	resolve  float64
	forD     time.Duration
	keep     time.Duration
	minReq   uint64
	labels   map[string]string
	annots   map[string]*template.Template
	// hosts lists, per service, the "service/host:port" names of its
	// configured hosts (hosts_available).
	hosts map[string][]string

	slo *sloRule // set for an SLO's burn-rate alert
	kpi *kpiRule // set for kpi_change
}

// kpiRule is a kpi_change rule's baseline: the window offset earlier, or
// the mean of n windows before it; min is the baseline count it needs.
type kpiRule struct {
	offset time.Duration
	n      int
	min    float64
}

// baselineWindows returns the two trailing windows whose difference is
// the baseline's span: [end-big, end-small).
func (k *kpiRule) baselineWindows(w time.Duration) (big, small time.Duration) {
	if k.offset > 0 {
		return k.offset + w, k.offset
	}
	return time.Duration(k.n+1) * w, w
}

// sloRule is an SLO's burn-rate alert (page or ticket).
type sloRule struct {
	name      string
	objective float64
	latency   time.Duration
	period    time.Duration
	kind      string
	windows   []config.BurnWindow
}

// Compile builds the Ruleset of cfg (after SetDefaults and Validate).
func Compile(cfg *config.Config) (*Ruleset, error) {
	a := cfg.Alerts
	rs := &Ruleset{inhibit: a.InhibitRules, interval: a.EvaluationInterval.D(), resend: a.ResendInterval.D(),
		routeService: map[string]string{}, cfg: a}
	if rs.interval <= 0 {
		rs.interval = time.Second
	}
	if rs.resend <= 0 {
		rs.resend = 10 * time.Second
	}
	rs.secRetention = cfg.History.SecondRetention.D()
	if rs.secRetention <= 0 {
		rs.secRetention = time.Hour
	}
	rs.external = strings.TrimSuffix(a.ExternalURL, "/")
	if rs.external == "" && cfg.Admin.Address != "" && cfg.Admin.Address != "off" {
		rs.external = "http://" + cfg.Admin.Address
	}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		if r.Service != "" {
			rs.routeService[r.Name] = r.Service
		}
	}
	hosts := map[string][]string{}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		for _, u := range s.Upstreams {
			if pu, err := url.Parse(u.URL); err == nil {
				hosts[s.Name] = append(hosts[s.Name], s.Name+"/"+pu.Host)
			}
		}
	}
	for i := range a.Rules {
		c := &a.Rules[i]
		p := fmt.Sprintf("alerts.rules[%d]", i)
		scope, err := history.ParseScope(c.Scope)
		if err != nil {
			return nil, fmt.Errorf("%s.scope: %w", p, err)
		}
		r := &rule{name: c.Name, key: c.Name, scope: scope, target: c.Target, metric: c.Metric, quantile: c.Quantile,
			window: c.Window.D(), op: c.Op, fire: c.Threshold, resolve: c.Threshold, forD: c.For.D(),
			keep: c.KeepFiringFor.D(), minReq: uint64(max(c.MinRequests, 0)), hosts: hosts}
		if r.target == "*" {
			r.target = ""
		}
		if c.ResolveThreshold != nil {
			r.resolve = *c.ResolveThreshold
		}
		if r.window <= 0 {
			r.window = time.Minute
		}
		if b := c.Baseline; c.Metric == config.MetricKPIChange && b != nil {
			r.kpi = &kpiRule{offset: b.Offset.D(), n: b.MovingAverage, min: float64(b.MinCount)}
		}
		if c.Metric == config.MetricErrorRatio {
			r.errs, err = errorFields(c.Classes, c.ErrorKinds)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
		}
		r.labels = map[string]string{"severity": c.Severity}
		for k, v := range c.Labels {
			r.labels[k] = v
		}
		if r.annots, err = parseAnnotations(c.Annotations); err != nil {
			return nil, fmt.Errorf("%s.annotations: %w", p, err)
		}
		rs.rules = append(rs.rules, r)
	}
	for i := range a.SLOs {
		s := &a.SLOs[i]
		p := fmt.Sprintf("alerts.slos[%d]", i)
		scope, err := history.ParseScope(s.Scope)
		if err != nil {
			return nil, fmt.Errorf("%s.scope: %w", p, err)
		}
		for _, kind := range s.Alerts {
			ws, ok := config.BurnWindows[kind]
			if !ok {
				return nil, fmt.Errorf("%s.alerts: unknown alert %q", p, kind)
			}
			r := &rule{name: "SLOBurnRate", key: "SLOBurnRate/" + s.Name + "/" + kind, scope: scope, target: s.Target, metric: "burn_rate", op: ">",
				fire: ws[0].Factor, resolve: ws[0].Factor, window: ws[0].Long, minReq: uint64(max(s.MinRequests, 0)),
				slo: &sloRule{name: s.Name, objective: s.Objective, latency: s.Latency.D(), period: s.PeriodDuration(), kind: kind, windows: ws}}
			r.labels = map[string]string{"severity": kind, "slo": s.Name}
			for k, v := range s.Labels {
				r.labels[k] = v
			}
			if r.annots, err = parseAnnotations(s.Annotations); err != nil {
				return nil, fmt.Errorf("%s.annotations: %w", p, err)
			}
			rs.rules = append(rs.rules, r)
		}
	}
	rs.byKey = make(map[string]*rule, len(rs.rules))
	for _, r := range rs.rules {
		rs.byKey[r.key] = r
	}
	return rs, nil
}

// Interval returns how often the rules are evaluated.
func (rs *Ruleset) Interval() time.Duration { return rs.interval }

// Len returns the number of compiled rules (an SLO counts once per alert).
func (rs *Ruleset) Len() int { return len(rs.rules) }

func parseAnnotations(m map[string]string) (map[string]*template.Template, error) {
	out := make(map[string]*template.Template, len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t, err := template.New(k).Option("missingkey=zero").Parse(m[k])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = t
	}
	return out, nil
}

func errorFields(classes, kinds []string) ([]history.Field, error) {
	var fs []history.Field
	for _, c := range classes {
		switch c {
		case "1xx":
			fs = append(fs, history.Class1xx)
		case "2xx":
			fs = append(fs, history.Class2xx)
		case "3xx":
			fs = append(fs, history.Class3xx)
		case "4xx":
			fs = append(fs, history.Class4xx)
		case "5xx":
			fs = append(fs, history.Class5xx)
		default:
			return nil, fmt.Errorf("classes: unknown class %q", c)
		}
	}
	for _, k := range kinds {
		found := false
		for _, e := range observe.ErrorKinds() {
			if e.String() == k {
				fs = append(fs, history.ErrorField(e))
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("error_kinds: unknown error kind %q", k)
		}
	}
	return fs, nil
}
