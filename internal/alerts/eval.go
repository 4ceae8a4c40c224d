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
	restored   bool // read back from the state file (see restore)
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
	store     *windowStore
	// evalAll makes the next Evaluate judge every series, changed or not
	// (after the rules changed).
	evalAll bool
	// keepSLO keeps the SLOs' hourly counts (for the state file).
	keepSLO bool
	slo     sloCounts
}

// alertKey identifies an alert by its rule and series (its labels are a
// function of both), so that a candidate whose condition does not hold
// costs no label set.
type alertKey struct{ rule, series string }

// NewEvaluator returns an Evaluator of rs with no alert active.
func NewEvaluator(rs *Ruleset) *Evaluator {
	return &Evaluator{rules: rs, alerts: map[alertKey]*Alert{}, store: newWindowStore(rs, false)}
}

// newFullEvaluator returns an Evaluator that reads every window whole at
// every evaluation and judges every series: the reference the
// incremental path is tested and measured against.
func newFullEvaluator(rs *Ruleset) *Evaluator {
	e := NewEvaluator(rs)
	e.store.full = true
	return e
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
	e.store.setRules(rs)
	e.evalAll = true
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

type evalCtx struct {
	ctx   context.Context
	src   history.Source
	end   time.Time
	sec   int64
	store *windowStore
	names map[history.Scope][]string
	// scopes holds the series of each scope's names, advanced.
	scopes map[history.Scope][]*seriesWin
	// all: judge every series, changed or not.
	all bool
}

// window returns the window of d ending at c.end of one series, and its
// state (nil for a window no rule planned, read whole).
func (c *evalCtx) window(scope history.Scope, name string, d time.Duration) (*history.Point, *winState, error) {
	sw, err := c.store.get(c.ctx, c.src, seriesKey{scope, name}, c.sec)
	if err != nil {
		return nil, nil, err
	}
	return c.windowOf(sw, d)
}

// windowOf is window on a series already looked up.
func (c *evalCtx) windowOf(sw *seriesWin, d time.Duration) (*history.Point, *winState, error) {
	scope, name := sw.key.scope, sw.key.name
	if w := sw.window(int64(d / time.Second)); w != nil {
		return sw.pointOf(w, c.sec), w, nil
	}
	p, err := history.Window(c.ctx, c.src, scope, name, c.end, d)
	if errors.Is(err, history.ErrNotFound) {
		p, err = history.Point{Time: c.end.Add(-d)}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return &p, nil, nil
}

// changed reports whether w changed in this tick (a window read whole
// always counts as changed).
func (c *evalCtx) changed(w *winState) bool { return w == nil || w.full || w.changed == c.store.gen }

// scopeSeries returns the series of names (a scope's, from scopeNames),
// advanced to c.end, looked up once per tick.
func (c *evalCtx) scopeSeries(scope history.Scope, names []string) ([]*seriesWin, error) {
	if s, ok := c.scopes[scope]; ok {
		return s, nil
	}
	out := make([]*seriesWin, len(names))
	for i, n := range names {
		sw, err := c.store.get(c.ctx, c.src, seriesKey{scope, n}, c.sec)
		if err != nil {
			return nil, err
		}
		out[i] = sw
	}
	c.scopes[scope] = out
	return out, nil
}

func (c *evalCtx) scopeNames(scope history.Scope) ([]string, error) {
	if n, ok := c.names[scope]; ok {
		return n, nil
	}
	n, err := c.src.Names(c.ctx, scope)
	if err != nil {
		return nil, err
	}
	c.names[scope] = n
	return n, nil
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
	e.store.gen++
	c := &evalCtx{ctx: ctx, src: src, end: t, sec: t.Unix(), store: e.store, names: map[history.Scope][]string{},
		scopes: map[history.Scope][]*seriesWin{}, all: e.evalAll || e.store.full}
	e.evalAll = false
	// The rules that have alerts: only their series are looked up.
	withAlerts := make(map[string]bool, len(e.alerts))
	seriesAlerts := make(map[seriesKey]bool, len(e.alerts))
	for k := range e.alerts {
		withAlerts[k.rule] = true
	}
	var trans []Transition
	var errs []error
	// The rules over every series of a scope are judged series by
	// series (each series' windows stay in cache across its rules); the
	// others rule by rule.
	byScope := map[history.Scope][]*rule{}
	var scopes []history.Scope
	for _, r := range e.rules.rules {
		if !r.wide() {
			continue
		}
		if byScope[r.scope] == nil {
			scopes = append(scopes, r.scope)
		}
		byScope[r.scope] = append(byScope[r.scope], r)
	}
	for k := range e.alerts {
		if r := e.rules.byKey[k.rule]; r != nil && r.wide() {
			seriesAlerts[seriesKey{r.scope, k.series}] = true
		}
	}
	for _, sc := range scopes {
		rules := byScope[sc]
		has, failed := make([]bool, len(rules)), make([]bool, len(rules))
		for j, r := range rules {
			has[j] = withAlerts[r.key]
		}
		names, err := c.scopeNames(sc)
		var sws []*seriesWin
		if err == nil {
			sws, err = c.scopeSeries(sc, names)
		}
		if err != nil {
			for _, r := range rules {
				errs = append(errs, fmt.Errorf("rule %s: %w", r.name, err))
			}
			continue
		}
		for i, name := range names {
			if sc == history.ScopeRoute && name == history.UnmatchedRoute {
				continue
			}
			// A series none of whose windows changed, and that has no
			// alert, stays inactive under every rule.
			if !c.all && sws[i].changed != c.store.gen && !seriesAlerts[seriesKey{sc, name}] {
				continue
			}
			for j, r := range rules {
				if failed[j] {
					continue
				}
				if err := e.judgeSeries(c, r, name, sws[i], has[j], t, &trans); err != nil {
					errs = append(errs, fmt.Errorf("rule %s: %w", r.name, err))
					failed[j] = true
				}
			}
		}
	}
	for _, r := range e.rules.rules {
		if r.wide() {
			continue
		}
		names, err := e.seriesOf(c, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %w", r.name, err))
			continue
		}
		for _, name := range names {
			if r.scope == history.ScopeRoute && name == history.UnmatchedRoute && r.target == "" {
				continue
			}
			if err := e.judgeSeries(c, r, name, nil, withAlerts[r.key], t, &trans); err != nil {
				errs = append(errs, fmt.Errorf("rule %s: %w", r.name, err))
				break
			}
		}
	}
	e.store.prune()
	// Alerts of series that vanished: not evaluated this round.
	for fp, a := range e.alerts {
		if a.generation == e.gen {
			continue
		}
		if r := e.rules.byKey[fp.rule]; r != nil && e.heldOver(a, r, t) {
			continue // no data for it yet since the restart
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
	if e.keepSLO {
		if err := e.slo.record(c, e); err != nil {
			errs = append(errs, fmt.Errorf("slo hours: %w", err))
		}
	}
	e.applyInhibition()
	return e.list(), trans, errors.Join(errs...)
}

// wide reports whether r is a threshold rule over every series of its
// scope.
func (r *rule) wide() bool {
	return r.slo == nil && r.target == "" && r.scope != history.ScopeGateway && r.metric != "hosts_available"
}

// judgeSeries evaluates r on one series (sw: its windows, when looked up
// already) and appends the transition made to trans. has says whether r
// has any alert.
func (e *Evaluator) judgeSeries(c *evalCtx, r *rule, name string, sw *seriesWin, has bool, t time.Time, trans *[]Transition) error {
	fp := alertKey{r.key, name}
	var a *Alert
	if has {
		a = e.alerts[fp]
	}
	s, ok, err := e.sample(c, r, name, sw, c.all || a != nil)
	if err != nil || !ok {
		return err // !ok: nothing changed and no alert, still inactive
	}
	if tr, moved := e.judge(r, fp, a, &s, t); moved {
		*trans = append(*trans, tr)
	}
	return nil
}

// judge moves the alert of r on one series by its sample s at t; a is
// the alert (nil when inactive). It returns the transition made, if any.
func (e *Evaluator) judge(r *rule, fp alertKey, a *Alert, s *sample, t time.Time) (Transition, bool) {
	firing := a != nil && a.State == StateFiring
	thr := r.fire
	if firing {
		thr = r.resolve
	}
	holds := s.valid && compare(r.op, s.value, thr)
	if s.hold != nil {
		holds = *s.hold
	}
	if a != nil && !holds && e.heldOver(a, r, t) {
		a.EvaluatedAt, a.generation = t, e.gen
		return Transition{}, false
	}
	if a == nil {
		if !holds {
			return Transition{}, false
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
			a.Exemplars = e.exemplars(r, s.point, t)
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
	var tr Transition
	moved := a.State != from
	if moved {
		tr = Transition{From: from, To: a.State, Alert: a.clone()}
	}
	if a.State == StateInactive {
		delete(e.alerts, fp)
	}
	return tr, moved
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

// seriesOf returns the series r judges.
func (e *Evaluator) seriesOf(c *evalCtx, r *rule) ([]string, error) {
	switch {
	case r.scope == history.ScopeGateway:
		return []string{""}, nil
	case r.target != "":
		return []string{r.target}, nil
	case r.metric == "hosts_available":
		names := make([]string, 0, len(r.hosts))
		for svc := range r.hosts {
			names = append(names, svc)
		}
		sort.Strings(names)
		return names, nil
	}
	return c.scopeNames(r.scope)
}

// sample computes r's value on one series. Unless must is set, it
// returns ok false, and computes nothing, when no window the rule reads
// changed since the previous evaluation (the alert, absent, stays so).
func (e *Evaluator) sample(c *evalCtx, r *rule, name string, sw *seriesWin, must bool) (s sample, ok bool, err error) {
	switch {
	case r.slo != nil:
		s, ok, err = e.burn(c, r, name, must)
	case r.metric == "hosts_available":
		s, err = e.hostsAvailable(c, r, name)
		ok = true
	default:
		s, ok, err = e.value(c, r, name, sw, must)
	}
	s.series = name
	return s, ok, err
}

func (e *Evaluator) incomplete(end time.Time, d time.Duration) string {
	if e.DataSince.IsZero() || !end.Add(-d).Before(e.DataSince) {
		return ""
	}
	have := max(end.Sub(e.DataSince), 0).Truncate(time.Second)
	return fmt.Sprintf("the %s window holds only %s of data (the history starts at %s)", d, have, e.DataSince.UTC().Format(time.RFC3339))
}

func (e *Evaluator) value(c *evalCtx, r *rule, name string, sw *seriesWin, must bool) (sample, bool, error) {
	var p *history.Point
	var w *winState
	var err error
	if sw != nil {
		p, w, err = c.windowOf(sw, r.window)
	} else {
		p, w, err = c.window(r.scope, name, r.window)
	}
	if err != nil {
		return sample{}, false, err
	}
	if !must && !c.changed(w) {
		return sample{}, false, nil
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
		s.value, judged = c.quantile(w, false, r.quantile, p).Seconds(), true
	case "overhead":
		s.value, judged = c.quantile(w, true, r.quantile, p).Seconds(), true
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
	case "kpi_change":
		return e.kpiChange(c, r, sw, name, p, w, must)
	default:
		return sample{}, false, fmt.Errorf("unknown metric %q", r.metric)
	}
	if judged && (req == 0 || req < r.minReq) {
		s.valid = false
	}
	return s, true, nil
}

// kpiChange judges a KPI's count over the window against its baseline:
// the same window offset earlier, or the mean of the n windows before
// it, both read as the difference of two trailing windows. The value is
// the ratio now / baseline; the rule does not judge below the baseline's
// minimum count.
func (e *Evaluator) kpiChange(c *evalCtx, r *rule, sw *seriesWin, name string, p *history.Point, w *winState, must bool) (sample, bool, error) {
	big, small := r.kpi.baselineWindows(r.window)
	read := func(d time.Duration) (*history.Point, *winState, error) {
		if sw != nil {
			return c.windowOf(sw, d)
		}
		return c.window(r.scope, name, d)
	}
	bp, bw, err := read(big)
	if err != nil {
		return sample{}, false, err
	}
	sp, smw, err := read(small)
	if err != nil {
		return sample{}, false, err
	}
	if !must && !c.changed(w) && !c.changed(bw) && !c.changed(smw) {
		return sample{}, false, nil
	}
	now := p.V[history.KPICount]
	base := float64(bp.V[history.KPICount] - min(sp.V[history.KPICount], bp.V[history.KPICount]))
	if r.kpi.n > 0 {
		base /= float64(r.kpi.n)
	}
	s := sample{point: p, requests: now, valid: base > 0 && base >= r.kpi.min, note: e.incomplete(c.end, big)}
	if base > 0 {
		s.value = float64(now) / base
	}
	s.details = map[string]string{"current": strconv.FormatUint(now, 10), "baseline": strconv.FormatFloat(base, 'f', -1, 64)}
	return s, true, nil
}

// quantile returns a quantile of p's latency (ovh: overhead) histogram,
// computed once per tick and window.
func (c *evalCtx) quantile(w *winState, ovh bool, q float64, p *history.Point) time.Duration {
	if w != nil && !w.full {
		return w.quantile(c.store.gen, ovh, q, p)
	}
	if ovh {
		return p.Overhead.Quantile(q)
	}
	return p.Latency.Quantile(q)
}

// hostsAvailable counts a service's configured hosts that were neither
// unhealthy nor ejected in any second of the window.
func (e *Evaluator) hostsAvailable(c *evalCtx, r *rule, svc string) (sample, error) {
	hosts := r.hosts[svc]
	var agg history.Point
	n := 0
	for _, h := range hosts {
		p, _, err := c.window(history.ScopeHost, h, r.window)
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

func (e *Evaluator) exemplars(r *rule, p *history.Point, end time.Time) []Exemplar {
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
	// The window's exemplars, newest first (p's are shared: copy).
	ex := make([]history.Exemplar, 0, len(p.Exemplars))
	for _, x := range p.Exemplars {
		if !x.Time.Before(p.Time) && x.Time.Before(end) {
			ex = append(ex, x)
		}
	}
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
	case history.ScopeKPI:
		l["kpi"] = name
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
