package config

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// Rollout defaults and bounds.
const (
	defaultRolloutInterval      = 10 * time.Second
	defaultRolloutMinRequests   = 50
	defaultRolloutPass          = 1
	defaultRolloutFail          = 2
	defaultRolloutConfidence    = 0.95
	defaultRolloutErrorMargin   = 0.01
	defaultRolloutLatencyFactor = 1.2
	defaultRolloutLatencyQ      = "p99"
	defaultRolloutWebhookTO     = 5 * time.Second
	defaultRolloutBakeTime      = 5 * time.Minute
	defaultRolloutKPIRatio      = 0.9
	maxRolloutSteps             = 100
)

// Rollout is a progressive delivery of a route's split: the canary leg's
// weight goes up step by step while its requests, measured against the
// stable leg's over the same intervals, pass the checks; it is rolled back
// (all traffic to stable) when they fail. See docs/rollouts.md.
type Rollout struct {
	// Name identifies the rollout (required, unique). State is carried
	// across reloads and restarts by name.
	Name string `yaml:"name" json:"name"`
	// Route names a route that has a split (required).
	Route string `yaml:"route" json:"route"`
	// Canary and Stable name two different legs of the route's split
	// (required).
	Canary string `yaml:"canary" json:"canary"`
	Stable string `yaml:"stable" json:"stable"`
	// Mode is "canary" (default: the weight goes up by steps) or
	// "blue_green": the canary (the new version) first gets only test
	// traffic (TestTraffic), judged against the stable like a canary; then
	// all traffic in one switch; then BakeTime during which failing checks
	// switch back.
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// TestTraffic (blue_green) is "header": the requests the split's
	// override sends to the canary, or "mirror": the copies the route's
	// mirror sends to the canary. Default: header when the split has an
	// override value selecting the canary, else mirror.
	TestTraffic string `yaml:"test_traffic,omitempty" json:"test_traffic,omitempty"`
	// BakeTime (blue_green) is how long after the switch the checks keep
	// running, comparing the canary with the stable's last interval before
	// the switch, and switch back on failure (default 5m, whole seconds, at
	// least Interval).
	BakeTime Duration `yaml:"bake_time,omitempty" json:"bake_time,omitempty"`
	// Steps are the canary's weights in percent, strictly increasing,
	// each from 1 to 100. Exactly one of Steps and StepSize is set.
	Steps []int `yaml:"steps,omitempty" json:"steps,omitempty"`
	// StepSize and MaxWeight give the steps StepSize, 2·StepSize, … up to
	// MaxWeight (default 100), then 100.
	StepSize  int `yaml:"step_size,omitempty" json:"step_size,omitempty"`
	MaxWeight int `yaml:"max_weight,omitempty" json:"max_weight,omitempty"`
	// Interval is the analysis interval, a whole number of seconds
	// (default 10s).
	Interval Duration `yaml:"interval" json:"interval"`
	// MinRequests is the fewest requests each leg must have in an interval
	// before any check may pass or fail (default 50); below it the rollout
	// holds.
	MinRequests int `yaml:"min_requests" json:"min_requests"`
	// PassIntervals is how many consecutive passing intervals step the
	// weight up (default 1).
	PassIntervals int `yaml:"pass_intervals" json:"pass_intervals"`
	// FailIntervals is how many consecutive failing intervals roll back
	// (default 2).
	FailIntervals int `yaml:"fail_intervals" json:"fail_intervals"`
	// Confidence is the one-sided confidence a relative check needs to
	// call the canary worse (or not worse), from 0.5 to 0.9999 (default
	// 0.95).
	Confidence float64 `yaml:"confidence" json:"confidence"`
	// Checks are the analysis' checks.
	Checks RolloutChecks `yaml:"checks" json:"checks"`
	// Webhooks are the optional gates and the event hook.
	Webhooks RolloutWebhooks `yaml:"webhooks" json:"webhooks"`
	// Paused, when true, starts the rollout paused (resume through the
	// admin API).
	Paused bool `yaml:"paused,omitempty" json:"paused,omitempty"`
	// RetryToStable (default true): a request the split sent to the
	// canary that fails in a way the route's retry policy retries is
	// retried on the stable leg, not on another canary host, within the
	// policy's attempts and budget. The failure still counts against the
	// canary in the analysis. Without a route retry policy nothing is
	// retried.
	RetryToStable *bool `yaml:"retry_to_stable,omitempty" json:"retry_to_stable,omitempty"`
	// Synthetic, when set, is a probe the rollout sends to both legs while
	// their traffic is below MinRequests, so a quiet service still gets a
	// verdict.
	Synthetic *RolloutSynthetic `yaml:"synthetic,omitempty" json:"synthetic,omitempty"`
}

// RolloutSynthetic is a rollout's synthetic load: GET Path on a host of
// each leg's service, Rate times a second per leg, only while the last
// analysis had too few requests. Its outcomes count as requests of the
// leg in the analysis.
type RolloutSynthetic struct {
	// Path is the request path (and query), beginning with "/" (required).
	Path string `yaml:"path" json:"path"`
	// Rate is the probes per second per leg, 1 to 100 (default 5).
	Rate int `yaml:"rate" json:"rate"`
}

// RetriesToStable reports whether the canary's retries go to the stable
// leg (RetryToStable, default true).
func (r *Rollout) RetriesToStable() bool { return r.RetryToStable == nil || *r.RetryToStable }

// RolloutChecks are the checks of a rollout's analysis. The relative
// checks compare the canary with the stable leg over the same interval.
type RolloutChecks struct {
	// ErrorRatioMargin: the canary's 5xx ratio may exceed the stable's by
	// at most this much (default 0.01); a negative value turns the check
	// off.
	ErrorRatioMargin *float64 `yaml:"error_ratio_margin,omitempty" json:"error_ratio_margin,omitempty"`
	// Latency: the canary's quantile (p50, p90, p95, p99, p999; default
	// p99) at most Factor (default 1.2; 0 turns it off) times the stable's.
	LatencyQuantile string   `yaml:"latency_quantile" json:"latency_quantile"`
	LatencyFactor   *float64 `yaml:"latency_factor,omitempty" json:"latency_factor,omitempty"`
	// ErrorKinds are gateway error kinds whose ratio on the canary may not
	// be above the stable's (default upstream_timeout, upstream_reset).
	ErrorKinds []string `yaml:"error_kinds" json:"error_kinds"`
	// MinSuccessRate, when above 0, is an absolute check: the canary's
	// share of non-5xx responses is at least this (e.g. 0.99).
	MinSuccessRate float64 `yaml:"min_success_rate,omitempty" json:"min_success_rate,omitempty"`
	// MaxLatency, when set, is an absolute check: the canary's latency
	// quantile (LatencyQuantile) is at most this.
	MaxLatency Duration `yaml:"max_latency,omitempty" json:"max_latency,omitempty"`
	// KPIs are business KPI checks: the canary's KPI events per request
	// at least MinRatio times the stable's over the same interval.
	KPIs []RolloutKPI `yaml:"kpis,omitempty" json:"kpis,omitempty"`
}

// RolloutKPI is a KPI check of a rollout.
type RolloutKPI struct {
	// Name is a KPI of metrics.kpis that can match the rollout's route
	// (required).
	Name string `yaml:"name" json:"name"`
	// MinRatio is the least share of the stable's events per request the
	// canary must keep, above 0 and at most 1 (default 0.9).
	MinRatio float64 `yaml:"min_ratio" json:"min_ratio"`
}

// RolloutWebhooks are a rollout's HTTP hooks. A gate is POSTed the
// rollout's state as JSON; a 2xx answer confirms, anything else (or no
// answer within Timeout) refuses and the rollout holds.
type RolloutWebhooks struct {
	// BeforeStart, BeforeStep and BeforePromotion are gate URLs.
	BeforeStart     string `yaml:"before_start,omitempty" json:"before_start,omitempty"`
	BeforeStep      string `yaml:"before_step,omitempty" json:"before_step,omitempty"`
	BeforePromotion string `yaml:"before_promotion,omitempty" json:"before_promotion,omitempty"`
	// Events receives every transition as JSON (best effort, through a
	// bounded queue).
	Events string `yaml:"events,omitempty" json:"events,omitempty"`
	// Timeout bounds each call (default 5s).
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// RolloutSettings are settings shared by all rollouts.
type RolloutSettings struct {
	// StateDir, when set, is a directory where each rollout's state is
	// written (atomically) so that a restart resumes at the same step.
	StateDir string `yaml:"state_dir,omitempty" json:"state_dir,omitempty"`
}

// RolloutQuantiles are the latency quantiles a check may name.
var RolloutQuantiles = map[string]float64{"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}

// The rollout modes and blue-green test traffic sources.
const (
	RolloutCanary     = "canary"
	RolloutBlueGreen  = "blue_green"
	TestTrafficHeader = "header"
	TestTrafficMirror = "mirror"
)

// BlueGreen reports whether the rollout is a blue-green one.
func (r *Rollout) BlueGreen() bool { return r.Mode == RolloutBlueGreen }

// StepWeights returns the rollout's canary weights in percent, the last
// always 100 (after defaults). A blue-green rollout has the one step 100
// (the switch).
func (r *Rollout) StepWeights() []int {
	if r.BlueGreen() {
		return []int{100}
	}
	var ws []int
	if len(r.Steps) > 0 {
		ws = append(ws, r.Steps...)
	} else if r.StepSize > 0 {
		for w := r.StepSize; w <= r.MaxWeight && len(ws) < maxRolloutSteps; w += r.StepSize {
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 || ws[len(ws)-1] != 100 {
		ws = append(ws, 100)
	}
	return ws
}

func (r *Rollout) setDefaults(cfg *Config) {
	if r.Interval == 0 {
		r.Interval = Duration(defaultRolloutInterval)
	}
	if r.Mode == "" {
		r.Mode = RolloutCanary
	}
	if r.BlueGreen() {
		if r.BakeTime == 0 {
			r.BakeTime = Duration(defaultRolloutBakeTime)
		}
		if r.TestTraffic == "" {
			r.TestTraffic = TestTrafficMirror
			for i := range cfg.Routes {
				rt := &cfg.Routes[i]
				if rt.Name != r.Route || rt.Split == nil || rt.Split.Override == nil {
					continue
				}
				for _, svc := range rt.Split.Override.Values {
					if svc == r.Canary {
						r.TestTraffic = TestTrafficHeader
					}
				}
			}
		}
	}
	if r.MinRequests == 0 {
		r.MinRequests = defaultRolloutMinRequests
	}
	if r.PassIntervals == 0 {
		r.PassIntervals = defaultRolloutPass
	}
	if r.FailIntervals == 0 {
		r.FailIntervals = defaultRolloutFail
	}
	if r.Confidence == 0 {
		r.Confidence = defaultRolloutConfidence
	}
	if r.StepSize > 0 && r.MaxWeight == 0 {
		r.MaxWeight = 100
	}
	c := &r.Checks
	if c.ErrorRatioMargin == nil {
		m := defaultRolloutErrorMargin
		c.ErrorRatioMargin = &m
	}
	if c.LatencyQuantile == "" {
		c.LatencyQuantile = defaultRolloutLatencyQ
	}
	if c.LatencyFactor == nil {
		f := defaultRolloutLatencyFactor
		c.LatencyFactor = &f
	}
	if c.ErrorKinds == nil {
		c.ErrorKinds = []string{"upstream_timeout", "upstream_reset"}
	}
	if s := r.Synthetic; s != nil && s.Rate == 0 {
		s.Rate = 5
	}
	for i := range c.KPIs {
		if c.KPIs[i].MinRatio == 0 {
			c.KPIs[i].MinRatio = defaultRolloutKPIRatio
		}
	}
	if r.Webhooks.Timeout == 0 {
		r.Webhooks.Timeout = Duration(defaultRolloutWebhookTO)
	}
}

func validateRollouts(v *validator, c *Config) {
	names := map[string]bool{}
	for i := range c.Rollouts {
		r := &c.Rollouts[i]
		p := indexPath("rollouts", i)
		switch {
		case r.Name == "":
			v.errorf(p+".name", "is required")
		case names[r.Name]:
			v.errorf(p+".name", "duplicate rollout name %q", r.Name)
		}
		names[r.Name] = true
		r.validate(v, p, c)
	}
	if len(c.Rollouts) > 0 && !c.History.IsEnabled() {
		v.errorf("rollouts", "rollouts analyse the history: history.enabled must not be false")
	}
	if d := c.Rollout.StateDir; d != "" && len(d) > 4096 {
		v.errorf("rollout.state_dir", "is too long")
	}
}

func (r *Rollout) validate(v *validator, p string, c *Config) {
	var route *Route
	for i := range c.Routes {
		if c.Routes[i].Name == r.Route {
			route = &c.Routes[i]
		}
	}
	switch {
	case r.Route == "":
		v.errorf(p+".route", "is required")
	case route == nil:
		v.errorf(p+".route", "unknown route %q", r.Route)
	case route.Split == nil:
		v.errorf(p+".route", "route %q has no split; a rollout moves a split's weights", r.Route)
	default:
		legs := map[string]bool{}
		for _, s := range route.Split.Services {
			legs[s.Service] = true
		}
		for field, name := range map[string]string{"canary": r.Canary, "stable": r.Stable} {
			if name == "" {
				v.errorf(p+"."+field, "is required")
			} else if !legs[name] {
				v.errorf(p+"."+field, "%q is not a leg of route %q's split", name, r.Route)
			}
		}
		if r.Canary != "" && r.Canary == r.Stable {
			v.errorf(p+".stable", "must differ from canary (%q)", r.Canary)
		}
	}
	switch r.Mode {
	case RolloutCanary:
		if r.TestTraffic != "" {
			v.errorf(p+".test_traffic", "only a blue_green rollout has test traffic")
		}
		if r.BakeTime != 0 {
			v.errorf(p+".bake_time", "only a blue_green rollout has a bake time")
		}
	case RolloutBlueGreen:
		r.validateBlueGreen(v, p, route)
	default:
		v.errorf(p+".mode", "unknown mode %q (canary or blue_green)", r.Mode)
	}
	if !r.BlueGreen() {
		r.validateSteps(v, p)
	}
	r.validateAnalysis(v, p)
	r.validateKPIs(v, p, c)
	if s := r.Synthetic; s != nil {
		if u, err := url.Parse(s.Path); err != nil || !strings.HasPrefix(s.Path, "/") || u.Host != "" || len(s.Path) > 2048 {
			v.errorf(p+".synthetic.path", "must be a request path beginning with \"/\", got %q", s.Path)
		}
		if s.Rate < 1 || s.Rate > 100 {
			v.errorf(p+".synthetic.rate", "must be from 1 to 100 probes per second, got %d", s.Rate)
		}
	}
}

// validateKPIs checks that each KPI check names a KPI of metrics.kpis
// that can match the rollout's route.
func (r *Rollout) validateKPIs(v *validator, p string, c *Config) {
	seen := map[string]bool{}
	for i, k := range r.Checks.KPIs {
		kp := indexPath(p+".checks.kpis", i)
		var def *KPI
		for j := range c.Metrics.KPIs {
			if c.Metrics.KPIs[j].Name == k.Name {
				def = &c.Metrics.KPIs[j]
			}
		}
		switch {
		case k.Name == "":
			v.errorf(kp+".name", "is required")
		case def == nil:
			v.errorf(kp+".name", "unknown metric %q (not a KPI of metrics.kpis)", k.Name)
		case len(def.Match.Routes) > 0 && !slices.Contains(def.Match.Routes, r.Route):
			v.errorf(kp+".name", "KPI %q never matches route %q (its match.routes)", k.Name, r.Route)
		case seen[k.Name]:
			v.errorf(kp+".name", "duplicate KPI check %q", k.Name)
		}
		seen[k.Name] = true
		if k.MinRatio <= 0 || k.MinRatio > 1 {
			v.errorf(kp+".min_ratio", "must be above 0 and at most 1, got %g", k.MinRatio)
		}
	}
}

// validateBlueGreen checks a blue-green rollout's test traffic and bake
// time; route is nil when unknown.
func (r *Rollout) validateBlueGreen(v *validator, p string, route *Route) {
	if len(r.Steps) > 0 || r.StepSize != 0 {
		v.errorf(p+".steps", "a blue_green rollout switches all traffic at once: set no steps or step_size")
	}
	if d := r.BakeTime.D(); d%time.Second != 0 || d < r.Interval.D() || d > 24*time.Hour {
		v.errorf(p+".bake_time", "must be a whole number of seconds from the interval (%s) to 24h, got %s", r.Interval, r.BakeTime)
	}
	if route == nil || route.Split == nil {
		return
	}
	switch r.TestTraffic {
	case TestTrafficHeader:
		found := false
		if o := route.Split.Override; o != nil {
			for _, svc := range o.Values {
				found = found || svc == r.Canary
			}
		}
		if !found {
			v.errorf(p+".test_traffic", "header test traffic needs route %q's split.override to have a value selecting %q", r.Route, r.Canary)
		}
	case TestTrafficMirror:
		if route.Mirror == nil || route.Mirror.Service != r.Canary {
			v.errorf(p+".test_traffic", "mirror test traffic needs route %q to mirror to %q (mirror.service)", r.Route, r.Canary)
		}
	default:
		v.errorf(p+".test_traffic", "unknown test traffic %q (header or mirror)", r.TestTraffic)
	}
}

// validateSteps checks a canary rollout's steps.
func (r *Rollout) validateSteps(v *validator, p string) {
	switch {
	case len(r.Steps) > 0 && r.StepSize != 0:
		v.errorf(p+".step_size", "set either steps or step_size, not both")
	case len(r.Steps) == 0 && r.StepSize == 0:
		v.errorf(p+".steps", "set steps (e.g. [1, 5, 25, 50, 100]) or step_size")
	case len(r.Steps) > maxRolloutSteps:
		v.errorf(p+".steps", "at most %d steps, got %d", maxRolloutSteps, len(r.Steps))
	case len(r.Steps) > 0:
		for i, w := range r.Steps {
			if w < 1 || w > 100 {
				v.errorf(indexPath(p+".steps", i), "weight must be from 1 to 100, got %d", w)
			} else if i > 0 && w <= r.Steps[i-1] {
				v.errorf(indexPath(p+".steps", i), "steps must increase: %d follows %d", w, r.Steps[i-1])
			}
		}
	default:
		if r.StepSize < 1 || r.StepSize > 100 {
			v.errorf(p+".step_size", "must be from 1 to 100, got %d", r.StepSize)
		}
		if r.MaxWeight < 1 || r.MaxWeight > 100 {
			v.errorf(p+".max_weight", "must be from 1 to 100, got %d", r.MaxWeight)
		} else if r.MaxWeight < r.StepSize {
			v.errorf(p+".max_weight", "must be at least step_size (%d), got %d", r.StepSize, r.MaxWeight)
		}
	}
}

// validateAnalysis checks the analysis settings, checks and webhooks.
func (r *Rollout) validateAnalysis(v *validator, p string) {
	if d := r.Interval.D(); d < time.Second || d%time.Second != 0 || d > time.Hour {
		v.errorf(p+".interval", "must be a whole number of seconds from 1s to 1h, got %s", r.Interval)
	}
	if r.MinRequests < 1 {
		v.errorf(p+".min_requests", "must be at least 1, got %d", r.MinRequests)
	}
	if r.PassIntervals < 1 || r.PassIntervals > 1000 {
		v.errorf(p+".pass_intervals", "must be from 1 to 1000, got %d", r.PassIntervals)
	}
	if r.FailIntervals < 1 || r.FailIntervals > 1000 {
		v.errorf(p+".fail_intervals", "must be from 1 to 1000, got %d", r.FailIntervals)
	}
	if r.Confidence < 0.5 || r.Confidence > 0.9999 {
		v.errorf(p+".confidence", "must be from 0.5 to 0.9999, got %g", r.Confidence)
	}
	ch := &r.Checks
	cp := p + ".checks"
	if _, ok := RolloutQuantiles[ch.LatencyQuantile]; !ok {
		v.errorf(cp+".latency_quantile", "unknown metric %q (use p50, p90, p95, p99 or p999)", ch.LatencyQuantile)
	}
	if f := ch.LatencyFactor; f != nil && *f < 0 {
		v.errorf(cp+".latency_factor", "must not be negative, got %g", *f)
	} else if f != nil && *f > 0 && *f < 1 {
		v.errorf(cp+".latency_factor", "must be at least 1 (0 turns the check off), got %g", *f)
	}
	if m := ch.ErrorRatioMargin; m != nil && *m > 1 {
		v.errorf(cp+".error_ratio_margin", "must be at most 1, got %g", *m)
	}
	for i, k := range ch.ErrorKinds {
		if ErrorKindByName(k) == 0 {
			v.errorf(indexPath(cp+".error_kinds", i), "unknown metric %q (an error kind such as upstream_timeout)", k)
		}
	}
	if ch.MinSuccessRate < 0 || ch.MinSuccessRate > 1 {
		v.errorf(cp+".min_success_rate", "must be from 0 to 1, got %g", ch.MinSuccessRate)
	}
	if ch.MaxLatency < 0 {
		v.errorf(cp+".max_latency", "must not be negative, got %s", ch.MaxLatency)
	}
	w := &r.Webhooks
	for field, u := range map[string]string{"before_start": w.BeforeStart, "before_step": w.BeforeStep,
		"before_promotion": w.BeforePromotion, "events": w.Events} {
		if u == "" {
			continue
		}
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			v.errorf(p+".webhooks."+field, "must be an http or https URL, got %q", u)
		}
	}
	if w.Timeout.D() <= 0 || w.Timeout.D() > time.Minute {
		v.errorf(p+".webhooks.timeout", "must be from 1ms to 1m, got %s", w.Timeout)
	}
}

// ErrorKindByName returns the error kind named s, or observe.ErrNone.
func ErrorKindByName(s string) observe.ErrorKind {
	for _, k := range observe.ErrorKinds() {
		if k.String() == s {
			return k
		}
	}
	return observe.ErrNone
}
