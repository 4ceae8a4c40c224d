package alerts

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// State is an alert's state.
type State uint8

// The states.
const (
	// StateInactive: the condition does not hold.
	StateInactive State = iota
	// StatePending: the condition has held for less than the rule's for.
	StatePending
	// StateFiring: the condition has held for at least for (or stopped
	// holding less than keep_firing_for ago).
	StateFiring
	// StateResolved: the alert fired and its condition no longer holds.
	// A resolved alert is kept for ResolvedRetention, then forgotten.
	StateResolved
)

// ResolvedRetention is how long a resolved alert stays visible.
const ResolvedRetention = 15 * time.Minute

// maxExemplars bounds the exemplars an alert carries.
const maxExemplars = 5

// String returns the state's name.
func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateFiring:
		return "firing"
	case StateResolved:
		return "resolved"
	}
	return "inactive"
}

// MarshalText implements encoding.TextMarshaler.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Exemplar is the trace of one failing or slow request of an alert's
// window.
type Exemplar struct {
	TraceID string        `json:"trace_id"`
	Kind    string        `json:"kind"`
	Time    time.Time     `json:"time"`
	Latency time.Duration `json:"latency_ns"`
	Status  int           `json:"status,omitempty"`
	// URL is the trace's page on the admin API.
	URL string `json:"url,omitempty"`
}

// Alert is one alert: a rule applied to one series. Values returned by
// the package are copies the caller owns.
type Alert struct {
	// Rule is the rule's name (label alertname).
	Rule        string            `json:"rule"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	State       State             `json:"state"`
	// ActiveAt is when the condition started holding (the alert became
	// pending); FiredAt when it fired; ResolvedAt when it resolved.
	ActiveAt   time.Time `json:"active_at,omitzero"`
	FiredAt    time.Time `json:"fired_at,omitzero"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// EvaluatedAt is the time of the last evaluation.
	EvaluatedAt time.Time `json:"evaluated_at"`
	// Value is the last value; Threshold the one it is compared with (the
	// resolve threshold while firing).
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Op        string  `json:"op"`
	// Requests is the sample size: the requests of the window.
	Requests uint64 `json:"requests"`
	// Window is the span the value is computed over.
	Window time.Duration `json:"window_ns"`
	// Exemplars are the most recent failing or slow requests of the
	// window.
	Exemplars []Exemplar `json:"exemplars,omitempty"`
	// Inhibited is true while an inhibit rule holds the alert back: it is
	// shown but not delivered.
	Inhibited bool `json:"inhibited,omitempty"`
	// Incomplete says when the window reaches before the data the history
	// holds (after a restart): the value covers less than the window.
	Incomplete string `json:"incomplete,omitempty"`

	fp         uint64
	details    map[string]string
	keepSince  time.Time // when the condition stopped holding while firing
	generation uint64
}

// Fingerprint identifies the alert by its labels.
func (a *Alert) Fingerprint() string { return strconv.FormatUint(a.fp, 16) }

// Transition is one change of an alert's state.
type Transition struct {
	From, To State
	Alert    Alert
}

// Evaluator evaluates a Ruleset and keeps its alerts' state. It is not
// safe for concurrent use; the Manager serialises it.
type Evaluator struct {
	rules *Ruleset
	// DataSince, when set, is when the history's data starts (the
	// process start): windows reaching before it are marked incomplete.
	DataSince time.Time
	alerts    map[alertKey]*Alert
	gen       uint64
}

// alertKey identifies an alert by its rule and series (its labels are a
// function of both), so that a candidate whose condition does not hold
// costs no label set.
type alertKey struct{ rule, series string }

// NewEvaluator returns an Evaluator of rs with no alert active.
func NewEvaluator(rs *Ruleset) *Evaluator {
	return &Evaluator{rules: rs, alerts: map[alertKey]*Alert{}}
}

// SetRules swaps the ruleset, keeping the state of the alerts of rules
// that remain (by name; their labels follow the new rule); a removed
// rule's alerts are dropped, and its firing ones returned as resolved.
func (e *Evaluator) SetRules(rs *Ruleset) []Transition {
	byKey := map[string]*rule{}
	for _, r := range rs.rules {
		byKey[r.key] = r
	}
	var out []Transition
	e.rules = rs
	for fp, a := range e.alerts {
		if r := byKey[fp.rule]; r != nil {
			// Labels may have changed with the rule; the state carries over.
			a.Labels = e.labels(r, fp.series)
			a.fp = fingerprint(a.Labels)
			continue
		}
		if a.State == StateFiring {
			c := a.clone()
			c.State = StateResolved
			c.ResolvedAt = a.EvaluatedAt
			out = append(out, Transition{From: StateFiring, To: StateResolved, Alert: c})
		}
		delete(e.alerts, fp)
	}
	return out
}

// Rules returns the ruleset.
func (e *Evaluator) Rules() *Ruleset { return e.rules }

// window is a cached window of one series.
type windowKey struct {
	scope history.Scope
	name  string
	d     time.Duration
}

type evalCtx struct {
	ctx   context.Context
	src   history.Source
	end   time.Time
	cache map[windowKey]*history.Point
}

func (c *evalCtx) window(scope history.Scope, name string, d time.Duration) (*history.Point, error) {
	k := windowKey{scope, name, d}
	if p, ok := c.cache[k]; ok {
		return p, nil
	}
	p, err := history.Window(c.ctx, c.src, scope, name, c.end, d)
	if errors.Is(err, history.ErrNotFound) {
		p, err = history.Point{Time: c.end.Add(-d)}, nil
	}
	if err != nil {
		return nil, err
	}
	c.cache[k] = &p
	return &p, nil
}

// sample is one series' evaluation.
type sample struct {
	series   string
	value    float64
	requests uint64
	valid    bool // enough requests to judge
	point    *history.Point
	note     string
	hold     *bool             // set: the condition holds or not, whatever the value
	details  map[string]string // extra annotations
}

// Evaluate evaluates every rule over the windows ending at t (truncated
// to the second) and returns the alerts that are not inactive, sorted by
// rule and labels, and the transitions made. The result depends only on
// the history at t and the previous calls' state. A failing series query
// is returned as an error after every other rule was evaluated.
func (e *Evaluator) Evaluate(ctx context.Context, src history.Source, t time.Time) ([]Alert, []Transition, error) {
	t = t.Truncate(time.Second)
	e.gen++
	c := &evalCtx{ctx: ctx, src: src, end: t, cache: map[windowKey]*history.Point{}}
	var trans []Transition
	var errs []error
	for _, r := range e.rules.rules {
		samples, err := e.samples(c, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %w", r.name, err))
			continue
		}
		for i := range samples {
			s := &samples[i]
			fp := alertKey{r.key, s.series}
			a := e.alerts[fp]
			firing := a != nil && a.State == StateFiring
			thr := r.fire
			if firing {
				thr = r.resolve
			}
			holds := s.valid && compare(r.op, s.value, thr)
			if s.hold != nil {
				holds = *s.hold
			}
			if a == nil {
				if !holds {
					continue
				}
				labels := e.labels(r, s.series)
				a = &Alert{Rule: r.name, Labels: labels, fp: fingerprint(labels)}
				e.alerts[fp] = a
			}
			a.generation = e.gen
			from := a.State
			a.EvaluatedAt, a.Op, a.Window = t, r.op, r.window
			if holds || from == StatePending || from == StateFiring {
				a.Value, a.Threshold, a.Requests, a.Incomplete, a.details = s.value, thr, s.requests, s.note, s.details
				if holds {
					a.Exemplars = e.exemplars(r, s.point)
				}
			}
			switch {
			case holds && (from == StateInactive || from == StateResolved):
				a.ActiveAt, a.FiredAt, a.ResolvedAt, a.keepSince = t, time.Time{}, time.Time{}, time.Time{}
				a.State = StatePending
				if r.forD <= 0 {
					a.State, a.FiredAt = StateFiring, t
				}
			case holds && from == StatePending:
				if t.Sub(a.ActiveAt) >= r.forD {
					a.State, a.FiredAt = StateFiring, t
				}
			case holds && from == StateFiring:
				a.keepSince = time.Time{}
			case !holds && from == StatePending:
				a.State = StateInactive
			case !holds && from == StateFiring:
				if a.keepSince.IsZero() {
					a.keepSince = t
				}
				if t.Sub(a.keepSince) >= r.keep {
					a.State, a.ResolvedAt = StateResolved, t
				}
			}
			if a.State == StateFiring {
				a.Threshold = r.resolve
			} else {
				a.Threshold = r.fire
			}
			a.Annotations = e.annotate(r, a)
			if a.State != from {
				trans = append(trans, Transition{From: from, To: a.State, Alert: a.clone()})
			}
			if a.State == StateInactive {
				delete(e.alerts, fp)
			}
		}
	}
	// Alerts of series that vanished: not evaluated this round.
	for fp, a := range e.alerts {
		if a.generation == e.gen {
			continue
		}
		switch a.State {
		case StatePending:
			trans = append(trans, Transition{From: StatePending, To: StateInactive, Alert: a.clone()})
			delete(e.alerts, fp)
		case StateFiring:
			a.State, a.ResolvedAt, a.EvaluatedAt = StateResolved, t, t
			trans = append(trans, Transition{From: StateFiring, To: StateResolved, Alert: a.clone()})
		case StateResolved:
		}
	}
	for fp, a := range e.alerts {
		if a.State == StateResolved && t.Sub(a.ResolvedAt) >= ResolvedRetention {
			delete(e.alerts, fp)
		}
	}
	e.applyInhibition()
	return e.list(), trans, errors.Join(errs...)
}

// Alerts returns the current alerts (not inactive), sorted.
func (e *Evaluator) Alerts() []Alert { return e.list() }

func (e *Evaluator) list() []Alert {
	out := make([]Alert, 0, len(e.alerts))
	for _, a := range e.alerts {
		out = append(out, a.clone())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Rule != out[j].Rule {
			return out[i].Rule < out[j].Rule
		}
		return labelString(out[i].Labels) < labelString(out[j].Labels)
	})
	return out
}

// applyInhibition marks the firing alerts an inhibit rule holds back.
func (e *Evaluator) applyInhibition() {
	for _, a := range e.alerts {
		a.Inhibited = false
	}
	for _, ir := range e.rules.inhibit {
		for _, src := range e.alerts {
			if src.State != StateFiring || !matches(src.Labels, ir.SourceMatchers) {
				continue
			}
			for _, tgt := range e.alerts {
				if tgt == src || tgt.State == StateResolved || !matches(tgt.Labels, ir.TargetMatchers) {
					continue
				}
				eq := true
				for _, l := range ir.Equal {
					if tgt.Labels[l] != src.Labels[l] {
						eq = false
						break
					}
				}
				if eq {
					tgt.Inhibited = true
				}
			}
		}
	}
}

func matches(labels, m map[string]string) bool {
	for k, v := range m {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func compare(op string, v, thr float64) bool {
	if math.IsNaN(v) {
		return false
	}
	switch op {
	case ">=":
		return v >= thr
	case "<":
		return v < thr
	case "<=":
		return v <= thr
	}
	return v > thr
}

// samples computes r's value for each series it selects.
func (e *Evaluator) samples(c *evalCtx, r *rule) ([]sample, error) {
	var names []string
	switch {
	case r.scope == history.ScopeGateway:
		names = []string{""}
	case r.target != "":
		names = []string{r.target}
	case r.metric == "hosts_available":
		for svc := range r.hosts {
			names = append(names, svc)
		}
		sort.Strings(names)
	default:
		var err error
		if names, err = c.src.Names(c.ctx, r.scope); err != nil {
			return nil, err
		}
	}
	out := make([]sample, 0, len(names))
	for _, n := range names {
		if r.scope == history.ScopeRoute && n == history.UnmatchedRoute && r.target == "" {
			continue
		}
		var s sample
		var err error
		if r.slo != nil {
			s, err = e.burn(c, r, n)
		} else {
			s, err = e.value(c, r, n)
		}
		if err != nil {
			return nil, err
		}
		s.series = n
		out = append(out, s)
	}
	return out, nil
}

func (e *Evaluator) incomplete(end time.Time, d time.Duration) string {
	if e.DataSince.IsZero() || !end.Add(-d).Before(e.DataSince) {
		return ""
	}
	have := max(end.Sub(e.DataSince), 0).Truncate(time.Second)
	return fmt.Sprintf("the %s window holds only %s of data (the history starts at %s)", d, have, e.DataSince.UTC().Format(time.RFC3339))
}

func (e *Evaluator) value(c *evalCtx, r *rule, name string) (sample, error) {
	if r.metric == "hosts_available" {
		return e.hostsAvailable(c, r, name)
	}
	p, err := c.window(r.scope, name, r.window)
	if err != nil {
		return sample{}, err
	}
	v := &p.V
	req := v[history.Requests]
	s := sample{point: p, requests: req, valid: true, note: e.incomplete(c.end, r.window)}
	secs := r.window.Seconds()
	ratio := func(n uint64) float64 {
		if req == 0 {
			return 0
		}
		return float64(min(n, req)) / float64(req)
	}
	judged := false
	switch r.metric {
	case "request_rate":
		s.value = float64(req) / secs
	case "error_ratio":
		var n uint64
		for _, f := range r.errs {
			n += v[f]
		}
		s.value, judged = ratio(n), true
	case "latency":
		s.value, judged = p.Latency.Quantile(r.quantile).Seconds(), true
	case "overhead":
		s.value, judged = p.Overhead.Quantile(r.quantile).Seconds(), true
	case "breaker_open":
		if v[history.BreakerState] == 2 {
			s.value = 1
		}
	case "rate_limited_ratio":
		s.value, judged = ratio(v[history.ErrorField(observe.ErrRateLimited)]), true
	case "retry_budget_exhausted":
		s.value = float64(v[history.RetryBudgetExhausted]) / secs
	case "cpu":
		s.value = float64(v[history.CPUMillis]) / 1000 / secs
	case "memory":
		if v[history.MemTotal] > 0 {
			s.value = float64(v[history.MemUsed]) / float64(v[history.MemTotal])
		}
	case "disk":
		s.value = float64(v[history.DiskRead]+v[history.DiskWritten]) / secs
	default:
		return sample{}, fmt.Errorf("unknown metric %q", r.metric)
	}
	if judged && (req == 0 || req < r.minReq) {
		s.valid = false
	}
	return s, nil
}

// hostsAvailable counts a service's configured hosts that were neither
// unhealthy nor ejected in any second of the window.
func (e *Evaluator) hostsAvailable(c *evalCtx, r *rule, svc string) (sample, error) {
	hosts := r.hosts[svc]
	var agg history.Point
	n := 0
	for _, h := range hosts {
		p, err := c.window(history.ScopeHost, h, r.window)
		if err != nil {
			return sample{}, err
		}
		if p.V[history.Unhealthy] == 0 && p.V[history.Ejected] == 0 {
			n++
		}
		agg.Add(p)
	}
	return sample{value: float64(n), requests: agg.V[history.Requests], valid: true, point: &agg}, nil
}

func (e *Evaluator) exemplars(r *rule, p *history.Point) []Exemplar {
	if p == nil || len(p.Exemplars) == 0 {
		return nil
	}
	want := history.ExemplarKind(0)
	switch r.metric {
	case "error_ratio", "burn_rate", "rate_limited_ratio", "hosts_available", "breaker_open":
		want = history.ExemplarError
	case "latency", "overhead":
		want = history.ExemplarSlow
	}
	ex := p.Exemplars
	sort.SliceStable(ex, func(i, j int) bool { return ex[i].Time.After(ex[j].Time) })
	var out []Exemplar
	seen := map[[16]byte]bool{}
	for _, x := range ex {
		if (want != 0 && x.Kind != want) || seen[x.TraceID] || x.TraceID == ([16]byte{}) {
			continue
		}
		seen[x.TraceID] = true
		id := hex.EncodeToString(x.TraceID[:])
		out = append(out, Exemplar{TraceID: id, Kind: x.Kind.String(), Time: x.Time, Latency: x.Latency, Status: x.Status, URL: e.traceURL(id)})
		if len(out) == maxExemplars {
			break
		}
	}
	return out
}

func (e *Evaluator) traceURL(id string) string {
	if e.rules.external == "" {
		return ""
	}
	return e.rules.external + "/traces/" + id
}

// labels returns the alert's labels for series name.
func (e *Evaluator) labels(r *rule, name string) map[string]string {
	l := make(map[string]string, len(r.labels)+4)
	l["alertname"] = r.name
	l["scope"] = r.scope.String()
	switch r.scope {
	case history.ScopeRoute:
		l["route"] = name
		if s, ok := e.rules.routeService[name]; ok {
			l["service"] = s
		}
	case history.ScopeService:
		l["service"] = name
	case history.ScopeHost:
		svc, host, _ := strings.Cut(name, "/")
		l["service"], l["host"] = svc, host
	case history.ScopeLeg:
		rt, svc, _ := strings.Cut(name, "/")
		l["route"], l["service"] = rt, svc
	}
	if r.metric == "hosts_available" {
		l["scope"] = "service"
	}
	for k, v := range r.labels {
		l[k] = v
	}
	return l
}

// templateData is what annotation templates see.
type templateData struct {
	Value     float64
	Threshold float64
	Requests  uint64
	Labels    map[string]string
	State     string
}

func (e *Evaluator) annotate(r *rule, a *Alert) map[string]string {
	out := make(map[string]string, len(r.annots)+6)
	d := templateData{Value: a.Value, Threshold: a.Threshold, Requests: a.Requests, Labels: a.Labels, State: a.State.String()}
	for k, t := range r.annots {
		var b strings.Builder
		if err := t.Execute(&b, d); err != nil {
			out[k] = "template error: " + err.Error()
			continue
		}
		out[k] = b.String()
	}
	for k, v := range a.details {
		out[k] = v
	}
	out["value"] = strconv.FormatFloat(a.Value, 'g', 6, 64)
	out["threshold"] = a.Op + " " + strconv.FormatFloat(a.Threshold, 'g', 6, 64)
	out["requests"] = strconv.FormatUint(a.Requests, 10)
	out["window"] = a.Window.String()
	if len(a.Exemplars) > 0 {
		ids := make([]string, len(a.Exemplars))
		for i, x := range a.Exemplars {
			ids[i] = x.TraceID
		}
		out["exemplar_trace_ids"] = strings.Join(ids, " ")
		if a.Exemplars[0].URL != "" {
			out["exemplar_url"] = a.Exemplars[0].URL
		}
	}
	if a.Incomplete != "" {
		out["incomplete"] = a.Incomplete
	}
	return out
}

func (a *Alert) clone() Alert {
	c := *a
	c.Labels = cloneMap(a.Labels)
	c.Annotations = cloneMap(a.Annotations)
	c.Exemplars = append([]Exemplar(nil), a.Exemplars...)
	return c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(l[k])
		b.WriteByte(0)
	}
	return b.String()
}

func fingerprint(l map[string]string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(labelString(l)))
	return h.Sum64()
}
