package config

import (
	"net/url"
	"os"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// Alert defaults and bounds.
const (
	defaultAlertEvaluationInterval = time.Second
	defaultAlertWindow             = time.Minute
	defaultAlertReceiverTimeout    = 5 * time.Second
	defaultAlertResendInterval     = 10 * time.Second
	defaultAlertQueueSize          = 1000
	maxAlertRules                  = 1000
)

// Alerts configures alert rules evaluated in the gateway on its own
// history, and where their alerts are delivered. Rules, SLOs, inhibit
// rules and receivers are hot-reloaded with the rest of the config.
type Alerts struct {
	// EvaluationInterval is how often every rule is evaluated (default 1s,
	// from 1s to 1m).
	EvaluationInterval Duration `yaml:"evaluation_interval" json:"evaluation_interval"`
	// ResendInterval is how often a firing alert is sent again to
	// Alertmanager receivers, with endsAt pushed ahead (default 10s).
	ResendInterval Duration `yaml:"resend_interval" json:"resend_interval"`
	// ExternalURL is the admin API's base URL as people reach it, used in
	// links to exemplar traces and as the generator URL (default
	// "http://" + admin.address).
	ExternalURL string `yaml:"external_url,omitempty" json:"external_url,omitempty"`
	// DataDir, when set, is a directory where the alerts' state (pending
	// and firing since, keep_firing_for, the SLOs' hourly good and bad
	// counts) is kept across restarts, in the file alerts-state.json
	// (created when missing; default: none, the state starts afresh).
	DataDir string `yaml:"data_dir,omitempty" json:"data_dir,omitempty"`
	// Rules are threshold rules on what the history records.
	Rules []AlertRule `yaml:"rules" json:"rules"`
	// SLOs are service level objectives with multi-window multi-burn-rate
	// alerts.
	SLOs []SLO `yaml:"slos" json:"slos"`
	// InhibitRules hold alerts back while others fire.
	InhibitRules []InhibitRule `yaml:"inhibit_rules" json:"inhibit_rules"`
	// Receivers are where alerts are delivered (none: alerts are only
	// shown at /api/alerts, in metrics and in the log).
	Receivers []AlertReceiver `yaml:"receivers" json:"receivers"`
}

// The alert scopes.
const (
	AlertScopeGateway = "gateway"
	AlertScopeRoute   = "route"
	AlertScopeService = "service"
	AlertScopeHost    = "host"
	AlertScopeLeg     = "leg"
	AlertScopeKPI     = "kpi"
)

// The alert metrics.
const (
	MetricRequestRate          = "request_rate"
	MetricErrorRatio           = "error_ratio"
	MetricLatency              = "latency"
	MetricOverhead             = "overhead"
	MetricBreakerOpen          = "breaker_open"
	MetricHostsAvailable       = "hosts_available"
	MetricRateLimitedRatio     = "rate_limited_ratio"
	MetricRetryBudgetExhausted = "retry_budget_exhausted"
	MetricCPU                  = "cpu"
	MetricMemory               = "memory"
	MetricDisk                 = "disk"
	MetricKPIChange            = "kpi_change"
)

// alertMetricScopes lists the scopes each metric applies to.
var alertMetricScopes = map[string][]string{
	MetricRequestRate:          {AlertScopeGateway, AlertScopeRoute, AlertScopeService, AlertScopeHost, AlertScopeLeg},
	MetricErrorRatio:           {AlertScopeGateway, AlertScopeRoute, AlertScopeService, AlertScopeHost, AlertScopeLeg},
	MetricLatency:              {AlertScopeGateway, AlertScopeRoute, AlertScopeService, AlertScopeHost, AlertScopeLeg},
	MetricOverhead:             {AlertScopeGateway, AlertScopeRoute, AlertScopeService, AlertScopeLeg},
	MetricBreakerOpen:          {AlertScopeService, AlertScopeHost},
	MetricHostsAvailable:       {AlertScopeService},
	MetricRateLimitedRatio:     {AlertScopeGateway, AlertScopeRoute},
	MetricRetryBudgetExhausted: {AlertScopeGateway, AlertScopeRoute},
	MetricCPU:                  {AlertScopeGateway},
	MetricMemory:               {AlertScopeGateway},
	MetricDisk:                 {AlertScopeGateway},
	MetricKPIChange:            {AlertScopeKPI},
}

// AlertMetricScopes returns the scopes a metric applies to (nil for an
// unknown metric).
func AlertMetricScopes(metric string) []string { return alertMetricScopes[metric] }

// AlertRule is one threshold rule. Each series the rule selects is its
// own alert (labels alertname, scope and the series' route, service,
// host or leg).
type AlertRule struct {
	// Name is the alert's name (label alertname). Required, unique,
	// letters, digits and '_' (a Prometheus metric name).
	Name string `yaml:"name" json:"name"`
	// Scope is gateway, route, service, host or leg. Required.
	Scope string `yaml:"scope" json:"scope"`
	// Target names the series: a route, a service, "service/host:port" or
	// "route/service" for a leg ("" or "*": every series of the scope; no
	// target for the gateway).
	Target string `yaml:"target,omitempty" json:"target,omitempty"`
	// Metric is what is compared: request_rate (requests per second),
	// error_ratio (share of requests in Classes or failing with
	// ErrorKinds), latency and overhead (the Quantile, in seconds),
	// breaker_open (1 while open), hosts_available (hosts neither
	// unhealthy nor ejected), rate_limited_ratio, retry_budget_exhausted
	// (refused retries per second), cpu (busy CPUs), memory (used share,
	// 0-1), disk (bytes read and written per second). Required.
	Metric string `yaml:"metric" json:"metric"`
	// Classes are the status classes counted as errors by error_ratio
	// (default ["5xx"]).
	Classes []string `yaml:"classes,omitempty" json:"classes,omitempty"`
	// ErrorKinds are error kinds (e.g. upstream_timeout) also counted as
	// errors by error_ratio; when set without Classes only they count.
	ErrorKinds []string `yaml:"error_kinds,omitempty" json:"error_kinds,omitempty"`
	// Quantile of latency and overhead (default 0.99).
	Quantile float64 `yaml:"quantile,omitempty" json:"quantile,omitempty"`
	// Window is the span the value is computed over, ending at the
	// evaluation time (default 1m; 1s to the per-second retention).
	Window Duration `yaml:"window" json:"window"`
	// Op compares the value with the threshold: ">" (default, "<" for
	// hosts_available and request_rate drops), ">=", "<", "<=".
	Op string `yaml:"op,omitempty" json:"op,omitempty"`
	// Threshold the value must pass to fire.
	Threshold float64 `yaml:"threshold" json:"threshold"`
	// ResolveThreshold, when set, is the value a firing alert must come
	// back past to resolve (hysteresis); default Threshold.
	ResolveThreshold *float64 `yaml:"resolve_threshold,omitempty" json:"resolve_threshold,omitempty"`
	// For is how long the condition must hold before the alert fires
	// (pending until then; default 0: fire at once).
	For Duration `yaml:"for" json:"for"`
	// KeepFiringFor keeps a firing alert firing this long after its
	// condition stopped holding (default 0).
	KeepFiringFor Duration `yaml:"keep_firing_for" json:"keep_firing_for"`
	// MinRequests is the requests the window must hold for a ratio,
	// latency or overhead condition to hold (default 0).
	MinRequests int `yaml:"min_requests,omitempty" json:"min_requests,omitempty"`
	// Severity is the severity label (default "warning").
	Severity string `yaml:"severity" json:"severity"`
	// Labels are added to the alert's labels.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// Annotations are text/template strings over .Value, .Threshold,
	// .Labels and .Requests (e.g. "{{ .Labels.route }} fails {{ .Value }}").
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
	// Baseline is what kpi_change compares a KPI's count over the window
	// with (required for kpi_change, refused otherwise).
	Baseline *KPIBaseline `yaml:"baseline,omitempty" json:"baseline,omitempty"`
}

// KPIBaseline is a KPI's baseline for kpi_change: the same window Offset
// earlier (an hour, a day), or the mean of the MovingAverage windows
// before it. Exactly one of the two.
type KPIBaseline struct {
	// Offset compares with [now-offset-window, now-offset).
	Offset Duration `yaml:"offset,omitempty" json:"offset,omitempty"`
	// MovingAverage compares with the mean count of that many windows
	// just before the current one (2 to 1440).
	MovingAverage int `yaml:"moving_average,omitempty" json:"moving_average,omitempty"`
	// MinCount is the baseline count below which the rule does not judge
	// (a quiet night does not page; default 10).
	MinCount int `yaml:"min_count,omitempty" json:"min_count,omitempty"`
}

// SLO is a service level objective on a route or service with
// multi-window multi-burn-rate alerts.
type SLO struct {
	// Name identifies the SLO (label slo; the alerts are named
	// SLOBurnRate). Required, unique.
	Name string `yaml:"name" json:"name"`
	// Scope is route or service; Target names it. Required.
	Scope  string `yaml:"scope" json:"scope"`
	Target string `yaml:"target" json:"target"`
	// Objective is the share of good requests, e.g. 0.999. Required, in
	// (0, 1).
	Objective float64 `yaml:"objective" json:"objective"`
	// Latency, when set, makes a good request one answered without a 5xx
	// within Latency (availability and latency); otherwise a good request
	// is one answered without a 5xx.
	Latency Duration `yaml:"latency,omitempty" json:"latency,omitempty"`
	// Period is the SLO period: 7d, 28d or 30d (default 30d).
	Period string `yaml:"period" json:"period"`
	// Alerts lists the burn-rate alerts: page (14.4x over 1h and 5m, 6x
	// over 6h and 30m) and ticket (3x over 1d and 2h, 1x over 3d and 6h).
	// Default [page]. Every window must fit the history's retention.
	Alerts []string `yaml:"alerts,omitempty" json:"alerts,omitempty"`
	// MinRequests is the requests the short window must hold for a burn
	// alert (default 10).
	MinRequests int `yaml:"min_requests,omitempty" json:"min_requests,omitempty"`
	// Labels and Annotations as for rules.
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

// PeriodDuration returns the SLO's period.
func (s *SLO) PeriodDuration() time.Duration {
	switch s.Period {
	case "7d":
		return 7 * 24 * time.Hour
	case "28d":
		return 28 * 24 * time.Hour
	}
	return 30 * 24 * time.Hour
}

// BurnWindow is one multi-window burn-rate condition: the burn rate must
// exceed Factor over both Long and Short.
type BurnWindow struct {
	Factor      float64
	Long, Short time.Duration
}

// BurnWindows are the SRE workbook's multi-window multi-burn-rate
// conditions, by alert.
var BurnWindows = map[string][]BurnWindow{
	"page":   {{14.4, time.Hour, 5 * time.Minute}, {6, 6 * time.Hour, 30 * time.Minute}},
	"ticket": {{3, 24 * time.Hour, 2 * time.Hour}, {1, 72 * time.Hour, 6 * time.Hour}},
}

// InhibitRule holds back alerts matching TargetMatchers while an alert
// matching SourceMatchers fires with the same values of the Equal labels
// (as Alertmanager's inhibit_rules, with equality matchers).
type InhibitRule struct {
	SourceMatchers map[string]string `yaml:"source_matchers" json:"source_matchers"`
	TargetMatchers map[string]string `yaml:"target_matchers" json:"target_matchers"`
	Equal          []string          `yaml:"equal,omitempty" json:"equal,omitempty"`
}

// The receiver types.
const (
	ReceiverAlertmanager = "alertmanager"
	ReceiverWebhook      = "webhook"
	ReceiverLog          = "log"
)

// AlertReceiver is one delivery target.
type AlertReceiver struct {
	// Name identifies the receiver (webhook JSON's receiver). Required,
	// unique.
	Name string `yaml:"name" json:"name"`
	// Type is alertmanager (POST /api/v2/alerts), webhook (Alertmanager's
	// webhook JSON) or log (one line per notification in the gateway's
	// log). Required.
	Type string `yaml:"type" json:"type"`
	// URL is the Alertmanager's base URL or the webhook's URL (http or
	// https; required except for log). Userinfo is not allowed.
	URL string `yaml:"url,omitempty" json:"url,omitempty"`
	// Timeout bounds one delivery attempt (default 5s).
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// QueueSize bounds the notifications waiting (default 1000); when
	// full, the oldest is dropped and counted.
	QueueSize int `yaml:"queue_size" json:"queue_size"`
	// GroupBy are the labels webhook notifications are grouped by
	// (default [alertname]).
	GroupBy []string `yaml:"group_by,omitempty" json:"group_by,omitempty"`
}

func (a *Alerts) setDefaults() {
	if a.EvaluationInterval == 0 {
		a.EvaluationInterval = Duration(defaultAlertEvaluationInterval)
	}
	if a.ResendInterval == 0 {
		a.ResendInterval = Duration(defaultAlertResendInterval)
	}
	for i := range a.Rules {
		r := &a.Rules[i]
		if r.Window == 0 {
			r.Window = Duration(defaultAlertWindow)
		}
		if r.Severity == "" {
			r.Severity = "warning"
		}
		if r.Op == "" {
			r.Op = ">"
			if r.Metric == MetricHostsAvailable || r.Metric == MetricKPIChange {
				r.Op = "<"
			}
		}
		if r.Baseline != nil && r.Baseline.MinCount == 0 {
			r.Baseline.MinCount = 10
		}
		if (r.Metric == MetricLatency || r.Metric == MetricOverhead) && r.Quantile == 0 {
			r.Quantile = 0.99
		}
		if r.Metric == MetricErrorRatio && len(r.Classes) == 0 && len(r.ErrorKinds) == 0 {
			r.Classes = []string{"5xx"}
		}
	}
	for i := range a.SLOs {
		s := &a.SLOs[i]
		if s.Period == "" {
			s.Period = "30d"
		}
		if len(s.Alerts) == 0 {
			s.Alerts = []string{"page"}
		}
		if s.MinRequests == 0 {
			s.MinRequests = 10
		}
	}
	for i := range a.Receivers {
		r := &a.Receivers[i]
		if r.Timeout == 0 {
			r.Timeout = Duration(defaultAlertReceiverTimeout)
		}
		if r.QueueSize == 0 {
			r.QueueSize = defaultAlertQueueSize
		}
		if len(r.GroupBy) == 0 {
			r.GroupBy = []string{"alertname"}
		}
	}
}

var (
	alertNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	alertLabelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	errorClassRE = regexp.MustCompile(`^[1-5]xx$`)
)

// validErrorKind reports whether k names an observe.ErrorKind.
func validErrorKind(k string) bool {
	for _, e := range observe.ErrorKinds() {
		if e.String() == k {
			return true
		}
	}
	return false
}

func (a *Alerts) validate(v *validator, path string, c *Config) {
	ev := a.EvaluationInterval.D()
	if ev < time.Second || ev > time.Minute || ev%time.Second != 0 {
		v.errorf(path+".evaluation_interval", "must be a whole number of seconds from 1s to 1m, got %s", a.EvaluationInterval)
	}
	if a.ResendInterval.D() < ev {
		v.errorf(path+".resend_interval", "must be at least evaluation_interval (%s), got %s", a.EvaluationInterval, a.ResendInterval)
	}
	if a.ExternalURL != "" {
		if u, err := url.Parse(a.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			v.errorf(path+".external_url", "must be an http(s) URL without user info, got %q", redactURL(a.ExternalURL))
		}
	}
	if d := a.DataDir; d != "" {
		if len(d) > 4096 {
			v.errorf(path+".data_dir", "is longer than 4096 bytes")
		} else if fi, err := os.Stat(d); err == nil && !fi.IsDir() {
			v.errorf(path+".data_dir", "%q is not a directory", d)
		}
	}
	if len(a.Rules)+len(a.SLOs) > maxAlertRules {
		v.errorf(path+".rules", "at most %d rules and SLOs in all, got %d", maxAlertRules, len(a.Rules)+len(a.SLOs))
	}
	secRet, minRet := c.History.SecondRetention.D(), c.History.MinuteRetention.D()
	histOn := c.History.IsEnabled()
	names := map[string]bool{}
	for i := range a.Rules {
		r := &a.Rules[i]
		p := indexPath(path+".rules", i)
		switch {
		case !alertNameRE.MatchString(r.Name):
			v.errorf(p+".name", "must be letters, digits and '_' (not starting with a digit), got %q", r.Name)
		case names[r.Name]:
			v.errorf(p+".name", "duplicate rule name %q", r.Name)
		}
		names[r.Name] = true
		if !histOn {
			v.errorf(p, "alert rules read the history; history.enabled must be true")
		}
		scopes, ok := alertMetricScopes[r.Metric]
		if !ok {
			v.errorf(p+".metric", "unknown metric %q (want request_rate, error_ratio, latency, overhead, breaker_open, hosts_available, rate_limited_ratio, retry_budget_exhausted, cpu, memory, disk or kpi_change)", r.Metric)
		} else if !contains(scopes, r.Scope) {
			v.errorf(p+".scope", "metric %s applies to scopes %s, got %q", r.Metric, strings.Join(scopes, ", "), r.Scope)
		}
		validateAlertTarget(v, p, c, r.Scope, r.Target, true)
		switch r.Op {
		case ">", ">=", "<", "<=":
		default:
			v.errorf(p+".op", "must be >, >=, < or <=, got %q", r.Op)
		}
		if r.Metric == MetricLatency || r.Metric == MetricOverhead {
			if r.Quantile <= 0 || r.Quantile > 1 {
				v.errorf(p+".quantile", "must be in (0, 1], got %g", r.Quantile)
			}
		} else if r.Quantile != 0 {
			v.errorf(p+".quantile", "applies only to latency and overhead")
		}
		for j, cl := range r.Classes {
			if !errorClassRE.MatchString(cl) {
				v.errorf(indexPath(p+".classes", j), "must be 1xx to 5xx, got %q", cl)
			}
		}
		for j, k := range r.ErrorKinds {
			if !validErrorKind(k) {
				v.errorf(indexPath(p+".error_kinds", j), "unknown error kind %q", k)
			}
		}
		if (len(r.Classes) > 0 || len(r.ErrorKinds) > 0) && r.Metric != MetricErrorRatio {
			v.errorf(p+".classes", "classes and error_kinds apply only to error_ratio")
		}
		w := r.Window.D()
		validateKPIChange(v, p, c, r)
		if w < time.Second || w%time.Second != 0 || (histOn && w > secRet) {
			v.errorf(p+".window", "must be a whole number of seconds from 1s to history.second_retention (%s), got %s", c.History.SecondRetention, r.Window)
		}
		if r.For < 0 || (histOn && r.For.D() > minRet) {
			v.errorf(p+".for", "must be from 0 to the history's retention (%s), got %s", c.History.MinuteRetention, r.For)
		}
		if r.KeepFiringFor < 0 || (histOn && r.KeepFiringFor.D() > minRet) {
			v.errorf(p+".keep_firing_for", "must be from 0 to the history's retention (%s), got %s", c.History.MinuteRetention, r.KeepFiringFor)
		}
		if r.MinRequests < 0 {
			v.errorf(p+".min_requests", "must not be negative")
		}
		if r.ResolveThreshold != nil {
			rt := *r.ResolveThreshold
			if (strings.HasPrefix(r.Op, ">") && rt > r.Threshold) || (strings.HasPrefix(r.Op, "<") && rt < r.Threshold) {
				v.errorf(p+".resolve_threshold", "must be on the safe side of threshold %g for op %s, got %g", r.Threshold, r.Op, rt)
			}
		}
		validateLabels(v, p, r.Labels, r.Annotations)
	}
	for i := range a.SLOs {
		s := &a.SLOs[i]
		p := indexPath(path+".slos", i)
		switch {
		case s.Name == "" || !validName(s.Name):
			v.errorf(p+".name", "must be letters, digits, '-', '_' or '.', got %q", s.Name)
		case names["slo:"+s.Name]:
			v.errorf(p+".name", "duplicate SLO name %q", s.Name)
		}
		names["slo:"+s.Name] = true
		if s.Scope != AlertScopeRoute && s.Scope != AlertScopeService {
			v.errorf(p+".scope", "must be route or service, got %q", s.Scope)
		} else {
			validateAlertTarget(v, p, c, s.Scope, s.Target, false)
		}
		if s.Objective <= 0 || s.Objective >= 1 {
			v.errorf(p+".objective", "must be in (0, 1), e.g. 0.999, got %g", s.Objective)
		}
		if s.Latency < 0 {
			v.errorf(p+".latency", "must not be negative")
		}
		switch s.Period {
		case "7d", "28d", "30d":
		default:
			v.errorf(p+".period", "must be 7d, 28d or 30d, got %q", s.Period)
		}
		if s.MinRequests < 0 {
			v.errorf(p+".min_requests", "must not be negative")
		}
		for j, al := range s.Alerts {
			ws, ok := BurnWindows[al]
			if !ok {
				v.errorf(indexPath(p+".alerts", j), "must be page or ticket, got %q", al)
				continue
			}
			for _, w := range ws {
				if histOn && w.Long > minRet {
					v.errorf(indexPath(p+".alerts", j), "the %s alert's %s window does not fit the history's minute_retention (%s); raise history.minute_retention or drop the %s alert", al, fmtWindow(w.Long), c.History.MinuteRetention, al)
					break
				}
			}
		}
		if !histOn {
			v.errorf(p, "SLOs read the history; history.enabled must be true")
		}
		validateLabels(v, p, s.Labels, s.Annotations)
	}
	for i, ir := range a.InhibitRules {
		p := indexPath(path+".inhibit_rules", i)
		if len(ir.SourceMatchers) == 0 {
			v.errorf(p+".source_matchers", "at least one matcher is required")
		}
		if len(ir.TargetMatchers) == 0 {
			v.errorf(p+".target_matchers", "at least one matcher is required")
		}
		for k := range ir.SourceMatchers {
			if !alertLabelRE.MatchString(k) {
				v.errorf(p+".source_matchers."+k, "invalid label name")
			}
		}
		for k := range ir.TargetMatchers {
			if !alertLabelRE.MatchString(k) {
				v.errorf(p+".target_matchers."+k, "invalid label name")
			}
		}
		for j, k := range ir.Equal {
			if !alertLabelRE.MatchString(k) {
				v.errorf(indexPath(p+".equal", j), "invalid label name %q", k)
			}
		}
	}
	rnames := map[string]bool{}
	for i := range a.Receivers {
		r := &a.Receivers[i]
		p := indexPath(path+".receivers", i)
		if r.Name == "" || !validName(r.Name) {
			v.errorf(p+".name", "must be letters, digits, '-', '_' or '.', got %q", r.Name)
		} else if rnames[r.Name] {
			v.errorf(p+".name", "duplicate receiver name %q", r.Name)
		}
		rnames[r.Name] = true
		switch r.Type {
		case ReceiverAlertmanager, ReceiverWebhook:
			u, err := url.Parse(r.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				v.errorf(p+".url", "must be an http(s) URL, got %q", redactURL(r.URL))
			} else if u.User != nil {
				v.errorf(p+".url", "must not carry user info (credentials are never kept in URLs)")
			}
		case ReceiverLog:
			if r.URL != "" {
				v.errorf(p+".url", "a log receiver takes no url")
			}
		default:
			v.errorf(p+".type", "must be alertmanager, webhook or log, got %q", r.Type)
		}
		if r.Timeout <= 0 || r.Timeout.D() > time.Minute {
			v.errorf(p+".timeout", "must be from 1ms to 1m, got %s", r.Timeout)
		}
		if r.QueueSize < 1 || r.QueueSize > 100000 {
			v.errorf(p+".queue_size", "must be from 1 to 100000, got %d", r.QueueSize)
		}
		for j, k := range r.GroupBy {
			if !alertLabelRE.MatchString(k) {
				v.errorf(indexPath(p+".group_by", j), "invalid label name %q", k)
			}
		}
	}
}

// validateKPIChange checks a kpi_change rule's baseline, and that no
// other rule has one.
func validateKPIChange(v *validator, p string, c *Config, r *AlertRule) {
	b := r.Baseline
	if r.Metric != MetricKPIChange {
		if b != nil {
			v.errorf(p+".baseline", "applies only to kpi_change")
		}
		return
	}
	if b == nil {
		v.errorf(p+".baseline", "is required for kpi_change (offset: 1h, offset: 24h or moving_average: N)")
		return
	}
	w, minRet := r.Window.D(), c.History.MinuteRetention.D()
	switch {
	case b.Offset != 0 && b.MovingAverage != 0:
		v.errorf(p+".baseline", "give either offset or moving_average, not both")
	case b.Offset == 0 && b.MovingAverage == 0:
		v.errorf(p+".baseline", "give offset (e.g. 1h, 24h) or moving_average (a number of windows)")
	case b.Offset != 0:
		if o := b.Offset.D(); o < w || o%time.Second != 0 || o+w > minRet {
			v.errorf(p+".baseline.offset", "must be a whole number of seconds, at least window (%s), with window fitting history.minute_retention (%s), got %s", r.Window, c.History.MinuteRetention, b.Offset)
		}
	default:
		if b.MovingAverage < 2 || b.MovingAverage > 1440 {
			v.errorf(p+".baseline.moving_average", "must be from 2 to 1440 windows, got %d", b.MovingAverage)
		} else if time.Duration(b.MovingAverage+1)*w > minRet {
			v.errorf(p+".baseline.moving_average", "%d windows of %s before the current one do not fit history.minute_retention (%s)", b.MovingAverage, r.Window, c.History.MinuteRetention)
		}
	}
	if b.MinCount < 0 {
		v.errorf(p+".baseline.min_count", "must not be negative")
	}
	if !strings.HasPrefix(r.Op, "<") {
		v.errorf(p+".op", "kpi_change fires on a drop: < or <=, got %q", r.Op)
	}
	if r.Threshold <= 0 || r.Threshold > 1 {
		v.errorf(p+".threshold", "is the fraction of the baseline below which the rule fires, in (0, 1], got %g", r.Threshold)
	}
}

func validateAlertTarget(v *validator, p string, c *Config, scope, target string, wildcard bool) {
	if target == "*" && wildcard {
		target = ""
	}
	route := func(n string) bool {
		for i := range c.Routes {
			if c.Routes[i].Name == n {
				return true
			}
		}
		return false
	}
	switch scope {
	case AlertScopeGateway:
		if target != "" {
			v.errorf(p+".target", "the gateway scope takes no target, got %q", target)
		}
		return
	case AlertScopeKPI:
		// A KPI's series: k, k:label=value or k@route/service.
		if target == "" {
			return
		}
		k := target
		if i := strings.IndexAny(k, ":@"); i >= 0 {
			k = k[:i]
		}
		for i := range c.Metrics.KPIs {
			if c.Metrics.KPIs[i].Name == k {
				return
			}
		}
		v.errorf(p+".target", "unknown KPI %q (metrics.kpis; a series is kpi, kpi:label=value or kpi@route/service)", k)
		return
	case AlertScopeRoute, AlertScopeService, AlertScopeHost, AlertScopeLeg:
	default:
		v.errorf(p+".scope", "must be gateway, route, service, host, leg or kpi, got %q", scope)
		return
	}
	if target == "" {
		if !wildcard {
			v.errorf(p+".target", "is required")
		}
		return
	}
	switch scope {
	case AlertScopeRoute:
		if !route(target) {
			v.errorf(p+".target", "unknown route %q", target)
		}
	case AlertScopeService:
		if c.Service(target) == nil {
			v.errorf(p+".target", "unknown service %q", target)
		}
	case AlertScopeHost:
		svc, host, ok := strings.Cut(target, "/")
		s := c.Service(svc)
		if !ok || s == nil {
			v.errorf(p+".target", "a host is named service/host:port of a known service, got %q", target)
			return
		}
		found := false
		for _, u := range s.Upstreams {
			if pu, err := url.Parse(u.URL); err == nil && pu.Host == host {
				found = true
			}
		}
		if !found {
			v.errorf(p+".target", "service %q has no upstream %q", svc, host)
		}
	case AlertScopeLeg:
		rt, svc, ok := strings.Cut(target, "/")
		if !ok || !route(rt) {
			v.errorf(p+".target", "a leg is named route/service of a known route, got %q", target)
			return
		}
		for i := range c.Routes {
			if r := &c.Routes[i]; r.Name == rt && r.Split != nil {
				for _, s := range r.Split.Services {
					if s.Service == svc {
						return
					}
				}
			}
		}
		v.errorf(p+".target", "route %q has no split leg %q", rt, svc)
	}
}

func validateLabels(v *validator, p string, labels, annotations map[string]string) {
	for k := range labels {
		if !alertLabelRE.MatchString(k) || strings.HasPrefix(k, "__") {
			v.errorf(p+".labels."+k, "invalid label name")
		}
	}
	for k, t := range annotations {
		if !alertLabelRE.MatchString(k) {
			v.errorf(p+".annotations."+k, "invalid annotation name")
		}
		if _, err := template.New(k).Option("missingkey=zero").Parse(t); err != nil {
			v.errorf(p+".annotations."+k, "invalid template: %v", err)
		}
	}
}

func fmtWindow(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return strings.TrimSuffix(time.Duration(d/(24*time.Hour)).String(), "ns") + "d"
	}
	return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// redactURL drops a URL's user info for an error message.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = url.User("REDACTED")
		return u.String()
	}
	return s
}
