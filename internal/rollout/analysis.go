// Package rollout owns progressive delivery: analysing a split's legs —
// the canary against the stable, over the same interval, from the
// gateway's own history — and moving the split's weights step by step,
// rolling back or promoting on the analysis' verdict.
//
// Judging is a pure function of the history at a time (Analyze, Judge);
// acting goes through a WeightSetter (the gateway's SetSplit) so that a
// fleet lease can later decide which replica acts.
package rollout

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/history"
)

// Verdict is the outcome of one check or of one analysis.
type Verdict string

// The verdicts. An analysis passes when every check passes, fails when
// any check fails, and holds otherwise.
const (
	// Pass: enough requests, and the canary is within the threshold.
	Pass Verdict = "pass"
	// Fail: enough requests, and the canary is beyond the threshold with
	// the configured confidence.
	Fail Verdict = "fail"
	// Hold: too few requests for a confident verdict, or the canary looks
	// worse but not yet significantly so. The rollout stays at its step.
	Hold Verdict = "hold"
)

// LegSample is what the analysis saw of one leg over the interval.
type LegSample struct {
	Requests uint64 `json:"requests"`
	// Errors counts 5xx responses.
	Errors uint64 `json:"errors_5xx"`
	// Latency is the checked latency quantile, in milliseconds.
	LatencyMs float64 `json:"latency_ms"`
	// Rescued (canary only) counts the requests of Requests that the
	// split sent to the canary and the stable served after the canary's
	// attempt failed (retries to stable; see Tally).
	Rescued uint64 `json:"retried_to_stable,omitempty"`
	// Testers counts the override requests (testers forced to a version)
	// taken out of this leg's counts and latencies: a canary rollout
	// judges only the traffic the weights sent (see Tally).
	Testers uint64 `json:"testers_excluded,omitempty"`
	// Synthetic counts the synthetic probes added to this leg's requests
	// (see config.RolloutSynthetic).
	Synthetic uint64 `json:"synthetic,omitempty"`
}

// Check is the evidence of one check.
type Check struct {
	// Name is e.g. "error_ratio", "latency_p99", "error_kind:upstream_timeout",
	// "success_rate", "max_latency_p99".
	Name string `json:"name"`
	// Relative is true for checks of canary against stable.
	Relative bool `json:"relative"`
	// Canary and Stable are the legs' values (ratios, or milliseconds).
	Canary float64 `json:"canary"`
	Stable float64 `json:"stable"`
	// Threshold is the limit the canary was held to (for relative checks,
	// computed from the stable's value).
	Threshold float64 `json:"threshold"`
	// Verdict and Reason explain the outcome (the test statistic, or why
	// it holds).
	Verdict Verdict `json:"verdict"`
	Reason  string  `json:"reason"`
}

// Analysis is one interval's judgement of a rollout's canary.
type Analysis struct {
	// From and To bound the interval [From, To).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Canary and Stable are the legs' samples.
	Canary LegSample `json:"canary"`
	Stable LegSample `json:"stable"`
	// StableFrom and StableTo, when set, bound the stable's interval when
	// it is not [From, To): in a blue-green bake time the stable has no
	// traffic, and its last interval before the switch is the reference.
	StableFrom time.Time `json:"stable_from,omitzero"`
	StableTo   time.Time `json:"stable_to,omitzero"`
	// MinRequests is the per-leg minimum for any verdict.
	MinRequests int     `json:"min_requests"`
	Checks      []Check `json:"checks"`
	Verdict     Verdict `json:"verdict"`
	// Reason summarises the verdict.
	Reason string `json:"reason"`
	// Exemplars are trace ids of failing (and, on a latency failure,
	// slow) canary requests of the interval.
	Exemplars []string `json:"exemplars,omitempty"`
}

// Analyze reads the canary and stable legs of r's route over the interval
// ending at end (truncated to the second) and judges them. It is a pure
// function of the history at end.
func Analyze(ctx context.Context, src history.Source, r *config.Rollout, end time.Time) (Analysis, error) {
	return AnalyzeWith(ctx, src, nil, r, end)
}

// AnalyzeWith is Analyze with the rollout's own per-request counts: the
// canary requests the stable served over the interval (see Tally) are
// added to the canary's leg — as its requests, as 5xx when their canary
// attempt failed, and by the attempt's error kind — so that a canary whose
// failures are retried on the stable is still judged by them. They stay
// on the stable's leg too, which did serve them. tally may be nil.
func AnalyzeWith(ctx context.Context, src history.Source, tally *Tally, r *config.Rollout, end time.Time) (Analysis, error) {
	from, to := end.Truncate(time.Second).Add(-r.Interval.D()), end.Truncate(time.Second)
	if r.BlueGreen() && r.TestTraffic == config.TestTrafficMirror {
		// The test traffic is the mirrored copies, which only the tally sees.
		stable, err := history.Window(ctx, src, history.ScopeLeg, r.Route+"/"+r.Stable, end, r.Interval.D())
		if err != nil {
			return Analysis{}, fmt.Errorf("rollout %q: reading leg %q of route %q: %w", r.Name, r.Stable, r.Route, err)
		}
		canary := tally.MirrorWindow(r.Name, from, to)
		// Mirrored answers are discarded, so they have no business KPIs:
		// the KPI checks are judged in the bake time.
		noKPIs := *r
		noKPIs.Checks.KPIs = nil
		a := Judge(&noKPIs, &canary, &stable)
		a.From, a.To = from, to
		return a, nil
	}
	canary, stable, err := history.Legs(ctx, src, r.Route, r.Canary, r.Stable, end, r.Interval.D())
	rescued := tally.Window(r.Name, from, to)
	sc, ss := tally.SyntheticWindow(r.Name, from, to)
	if errors.Is(err, history.ErrNotFound) && sc.V[history.Requests] > 0 && ss.V[history.Requests] > 0 {
		// A quiet route: one leg has had no request yet, the probes did.
		canary, stable, err = history.Point{}, history.Point{}, nil
		if p, e := history.Window(ctx, src, history.ScopeLeg, r.Route+"/"+r.Canary, end, r.Interval.D()); e == nil {
			canary = p
		}
		if p, e := history.Window(ctx, src, history.ScopeLeg, r.Route+"/"+r.Stable, end, r.Interval.D()); e == nil {
			stable = p
		}
	}
	var tc, ts history.Point
	if !r.BlueGreen() {
		tc, ts = tally.Testers(r.Name, from, to)
	}
	if errors.Is(err, history.ErrNotFound) && rescued.Requests > 0 {
		// The canary never served a request: only its rescued ones count.
		canary, err = history.Point{}, nil
		if stable, err = history.Window(ctx, src, history.ScopeLeg, r.Route+"/"+r.Stable, end, r.Interval.D()); errors.Is(err, history.ErrNotFound) {
			stable, err = history.Point{}, nil
		}
	}
	if err != nil {
		return Analysis{}, fmt.Errorf("rollout %q: reading the legs of route %q: %w", r.Name, r.Route, err)
	}
	subtract(&canary, &tc)
	subtract(&stable, &ts)
	rescued.apply(&canary)
	canary.Add(&sc)
	stable.Add(&ss)
	kpis, err := readKPIs(ctx, src, r, end)
	if err != nil {
		return Analysis{}, err
	}
	a := JudgeKPIs(r, &canary, &stable, kpis)
	a.Canary.Rescued = rescued.Requests
	a.Canary.Testers, a.Stable.Testers = tc.V[history.Requests], ts.V[history.Requests]
	a.Canary.Synthetic, a.Stable.Synthetic = sc.V[history.Requests], ss.V[history.Requests]
	if a.Verdict == Fail {
		for i := len(rescued.Exemplars) - 1; i >= 0 && len(a.Exemplars) < maxExemplars; i-- {
			a.Exemplars = append(a.Exemplars, hex.EncodeToString(rescued.Exemplars[i][:]))
		}
	}
	a.From, a.To = from, to
	return a, nil
}

// readKPIs reads r's KPI checks' legs over the interval ending at end.
func readKPIs(ctx context.Context, src history.Source, r *config.Rollout, end time.Time) ([]KPISample, error) {
	var out []KPISample
	for _, k := range r.Checks.KPIs {
		c, s, err := history.KPILegs(ctx, src, k.Name, r.Route, r.Canary, r.Stable, end, r.Interval.D())
		if errors.Is(err, history.ErrNotFound) {
			continue // a leg without traffic: the check holds
		}
		if err != nil {
			return nil, fmt.Errorf("rollout %q: reading KPI %q: %w", r.Name, k.Name, err)
		}
		out = append(out, KPISample{Name: k.Name, Canary: c, Stable: s})
	}
	return out, nil
}

// AnalyzeBake judges an interval of a blue-green rollout's bake time:
// the new version (r.Canary) now takes all traffic, so the stable has none
// over the same interval; its reference is its last interval before the
// switch, [switched-interval, switched) in whole seconds. The canary's
// requests the stable served (retries to stable) count against it as in
// AnalyzeWith. Analysis.StableFrom and StableTo give the reference
// interval.
func AnalyzeBake(ctx context.Context, src history.Source, tally *Tally, r *config.Rollout, end, switched time.Time) (Analysis, error) {
	d := r.Interval.D()
	from, to := end.Truncate(time.Second).Add(-d), end.Truncate(time.Second)
	sTo := switched.Truncate(time.Second)
	canary, err := history.Window(ctx, src, history.ScopeLeg, r.Route+"/"+r.Canary, end, d)
	if errors.Is(err, history.ErrNotFound) {
		canary, err = history.Point{}, nil
	}
	if err != nil {
		return Analysis{}, fmt.Errorf("rollout %q: reading leg %q of route %q: %w", r.Name, r.Canary, r.Route, err)
	}
	stable, err := history.Window(ctx, src, history.ScopeLeg, r.Route+"/"+r.Stable, sTo, d)
	if errors.Is(err, history.ErrNotFound) {
		stable, err = history.Point{}, nil
	}
	if err != nil {
		return Analysis{}, fmt.Errorf("rollout %q: reading leg %q of route %q before the switch: %w", r.Name, r.Stable, r.Route, err)
	}
	rescued := tally.Window(r.Name, from, to)
	rescued.apply(&canary)
	var kpis []KPISample
	for _, k := range r.Checks.KPIs {
		c, err := history.KPIOfLeg(ctx, src, k.Name, r.Route, r.Canary, end, d)
		if err != nil && !errors.Is(err, history.ErrNotFound) {
			return Analysis{}, fmt.Errorf("rollout %q: reading KPI %q: %w", r.Name, k.Name, err)
		}
		s, err := history.KPIOfLeg(ctx, src, k.Name, r.Route, r.Stable, sTo, d)
		if err != nil && !errors.Is(err, history.ErrNotFound) {
			return Analysis{}, fmt.Errorf("rollout %q: reading KPI %q before the switch: %w", r.Name, k.Name, err)
		}
		kpis = append(kpis, KPISample{Name: k.Name, Canary: c, Stable: s})
	}
	a := JudgeKPIs(r, &canary, &stable, kpis)
	a.Canary.Rescued = rescued.Requests
	a.From, a.To = from, to
	a.StableFrom, a.StableTo = sTo.Add(-d), sTo
	return a, nil
}

// maxExemplars bounds the trace ids an analysis keeps.
const maxExemplars = 8

// Judge applies r's checks to the canary and stable windows.
//
// The statistical guard: no check passes or fails before each leg has
// r.MinRequests requests. Ratios (5xx, error kinds) use a one-sided
// two-proportion z-test with the Agresti–Caffo adjustment (one success
// and one failure added to each leg, so zero counts have a variance): the
// check fails only when the canary's ratio exceeds the stable's plus the
// margin at the configured confidence; it passes when the observed
// difference is within the margin; in between it holds. Latency compares
// distribution-free confidence bounds of the quantile taken from the
// histograms (the order statistics at the binomial ranks n·q ∓ z·√(n·q·(1−q))):
// it fails when the lower confidence bound of the canary's quantile is
// above factor × the stable's estimate (the stable is the reference: at
// small canary weights it has many times the canary's requests), passes
// when the canary's estimate is within factor × the stable's, and holds
// otherwise — including while the canary has too few requests for the
// bound (fewer than 2/(1−q): 200 for p99). Absolute checks fail only when the canary fails them and
// the stable passes, so a shared dependency's outage never blames the
// canary.
func Judge(r *config.Rollout, canary, stable *history.Point) Analysis {
	return JudgeKPIs(r, canary, stable, nil)
}

// KPISample is one KPI on both legs over the analysis interval.
type KPISample struct {
	Name           string
	Canary, Stable history.KPILeg
}

// minKPIEvents is the fewest KPI events the stable must have, and the
// canary be expected to have at the stable's rate, before a KPI check
// passes or fails.
const minKPIEvents = 10

// JudgeKPIs is Judge with the rollout's KPI checks, kpis in the order of
// r.Checks.KPIs (a missing one holds).
//
// A KPI check compares events per request: the canary's rate pc must be
// at least min_ratio × the stable's ps. A counter KPI counts matching
// requests, so each rate is a proportion, judged like the error ratio
// with a one-sided Agresti–Caffo z-test: the check fails only when pc is
// below min_ratio × ps at the configured confidence, passes when the
// observed pc is at least the threshold, and holds otherwise — and, as
// its own guard, holds until the stable has minKPIEvents events and the
// canary is expected to have as many at the stable's rate.
func JudgeKPIs(r *config.Rollout, canary, stable *history.Point, kpis []KPISample) Analysis {
	z := zQuantile(r.Confidence)
	q := config.RolloutQuantiles[r.Checks.LatencyQuantile]
	a := Analysis{
		Canary:      sample(canary, q),
		Stable:      sample(stable, q),
		MinRequests: r.MinRequests,
	}
	enough := a.Canary.Requests >= uint64(r.MinRequests) && a.Stable.Requests >= uint64(r.MinRequests)
	nc, ns := canary.V[history.Requests], stable.V[history.Requests]

	if m := r.Checks.ErrorRatioMargin; m != nil && *m >= 0 {
		a.Checks = append(a.Checks, ratioCheck("error_ratio", canary.V[history.Class5xx], nc, stable.V[history.Class5xx], ns, *m, z, enough))
	}
	for _, name := range r.Checks.ErrorKinds {
		f := history.ErrorField(config.ErrorKindByName(name))
		a.Checks = append(a.Checks, ratioCheck("error_kind:"+name, canary.V[f], nc, stable.V[f], ns, 0, z, enough))
	}
	qname := r.Checks.LatencyQuantile
	if f := r.Checks.LatencyFactor; f != nil && *f > 0 {
		a.Checks = append(a.Checks, latencyCheck("latency_"+qname, canary, stable, q, *f, z, enough))
	}
	if x := r.Checks.MinSuccessRate; x > 0 {
		a.Checks = append(a.Checks, successCheck(x, canary, stable, z, enough))
	}
	if y := r.Checks.MaxLatency.D(); y > 0 {
		a.Checks = append(a.Checks, maxLatencyCheck("max_latency_"+qname, y, canary, stable, q, z, enough))
	}
	for _, k := range r.Checks.KPIs {
		var s *KPISample
		for i := range kpis {
			if kpis[i].Name == k.Name {
				s = &kpis[i]
			}
		}
		a.Checks = append(a.Checks, kpiCheck(k, s, z, enough))
	}

	a.Verdict = Pass
	var failed, held []string
	for _, c := range a.Checks {
		switch c.Verdict {
		case Fail:
			failed = append(failed, c.Name)
		case Hold:
			held = append(held, c.Name)
		}
	}
	switch {
	case len(failed) > 0:
		a.Verdict = Fail
		a.Reason = fmt.Sprintf("failed: %v", failed)
	case !enough:
		a.Verdict = Hold
		a.Reason = fmt.Sprintf("too few requests for a verdict: canary %d, stable %d, need %d each", a.Canary.Requests, a.Stable.Requests, r.MinRequests)
	case len(held) > 0:
		a.Verdict = Hold
		a.Reason = fmt.Sprintf("not yet conclusive: %v", held)
	default:
		a.Reason = fmt.Sprintf("all %d checks passed", len(a.Checks))
	}
	if a.Verdict == Fail {
		slowToo := false
		for _, n := range failed {
			if n == "latency_"+qname || n == "max_latency_"+qname {
				slowToo = true
			}
		}
		for i := len(canary.Exemplars) - 1; i >= 0 && len(a.Exemplars) < maxExemplars; i-- {
			e := canary.Exemplars[i]
			if e.Kind == history.ExemplarError || (slowToo && e.Kind == history.ExemplarSlow) {
				a.Exemplars = append(a.Exemplars, hex.EncodeToString(e.TraceID[:]))
			}
		}
	}
	return a
}

func sample(p *history.Point, q float64) LegSample {
	return LegSample{Requests: p.V[history.Requests], Errors: p.V[history.Class5xx], LatencyMs: ms(p.Latency.Quantile(q))}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ratioCheck judges canary ratio xc/nc against stable's xs/ns + margin.
func ratioCheck(name string, xc, nc, xs, ns uint64, margin, z float64, enough bool) Check {
	c := Check{Name: name, Relative: true, Canary: ratio(xc, nc), Stable: ratio(xs, ns)}
	c.Threshold = c.Stable + margin
	if !enough {
		c.Verdict, c.Reason = Hold, "too few requests"
		return c
	}
	// Agresti–Caffo adjusted proportions.
	pc := (float64(xc) + 1) / (float64(nc) + 2)
	ps := (float64(xs) + 1) / (float64(ns) + 2)
	se := math.Sqrt(pc*(1-pc)/(float64(nc)+2) + ps*(1-ps)/(float64(ns)+2))
	stat := (pc - ps - margin) / se
	switch {
	case stat > z:
		c.Verdict = Fail
		c.Reason = fmt.Sprintf("canary above stable+%.4g with z=%.2f > %.2f", margin, stat, z)
	case c.Canary <= c.Threshold:
		c.Verdict = Pass
		c.Reason = fmt.Sprintf("within stable+%.4g (z=%.2f)", margin, stat)
	default:
		c.Verdict = Hold
		c.Reason = fmt.Sprintf("above stable+%.4g but not significant (z=%.2f <= %.2f)", margin, stat, z)
	}
	return c
}

// kpiCheck judges the canary's KPI events per request against min_ratio
// × the stable's (see JudgeKPIs).
func kpiCheck(k config.RolloutKPI, s *KPISample, z float64, enough bool) Check {
	c := Check{Name: "kpi:" + k.Name, Relative: true}
	if s == nil {
		c.Verdict, c.Reason = Hold, "no KPI data"
		return c
	}
	nc, ns := s.Canary.Requests, s.Stable.Requests
	xc, xs := min(s.Canary.Count, nc), min(s.Stable.Count, ns)
	c.Canary, c.Stable = ratio(xc, nc), ratio(xs, ns)
	c.Threshold = k.MinRatio * c.Stable
	if !enough {
		c.Verdict, c.Reason = Hold, "too few requests"
		return c
	}
	if xs < minKPIEvents || float64(nc)*c.Stable < minKPIEvents {
		c.Verdict = Hold
		c.Reason = fmt.Sprintf("too few KPI events for a verdict: stable %d, canary expects %.1f at the stable's rate, need %d", xs, float64(nc)*c.Stable, minKPIEvents)
		return c
	}
	pc := (float64(xc) + 1) / (float64(nc) + 2)
	ps := (float64(xs) + 1) / (float64(ns) + 2)
	m := k.MinRatio
	se := math.Sqrt(pc*(1-pc)/(float64(nc)+2) + m*m*ps*(1-ps)/(float64(ns)+2))
	stat := (m*ps - pc) / se
	switch {
	case stat > z:
		c.Verdict = Fail
		c.Reason = fmt.Sprintf("canary's %.4g per request below %.3g × stable's %.4g with z=%.2f > %.2f", c.Canary, m, c.Stable, stat, z)
	case c.Canary >= c.Threshold:
		c.Verdict = Pass
		c.Reason = fmt.Sprintf("at least %.3g × stable's (z=%.2f)", m, stat)
	default:
		c.Verdict = Hold
		c.Reason = fmt.Sprintf("below %.3g × stable's but not significant (z=%.2f <= %.2f)", m, stat, z)
	}
	return c
}

func ratio(x, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return float64(x) / float64(n)
}

// quantileBounds returns the lower and upper confidence bounds of the
// q-quantile of h at one-sided z (ok false when the histogram has too few
// samples for the upper bound's rank).
func quantileBounds(h history.Histogram, q, z float64) (lo, hi time.Duration, ok bool) {
	n := float64(h.Count())
	if n == 0 {
		return 0, 0, false
	}
	sd := math.Sqrt(n * q * (1 - q))
	rlo := math.Floor(n*q - z*sd)
	rhi := math.Ceil(n*q+z*sd) + 1
	if rlo < 1 {
		rlo = 1
	}
	if rhi > n {
		return h.Quantile((rlo - 0.5) / n), 0, false
	}
	return h.Quantile((rlo - 0.5) / n), h.Quantile((rhi - 0.5) / n), true
}

func latencyCheck(name string, canary, stable *history.Point, q, factor, z float64, enough bool) Check {
	cq, sq := canary.Latency.Quantile(q), stable.Latency.Quantile(q)
	c := Check{Name: name, Relative: true, Canary: ms(cq), Stable: ms(sq), Threshold: factor * ms(sq)}
	if !enough {
		c.Verdict, c.Reason = Hold, "too few requests"
		return c
	}
	clo, _, _ := quantileBounds(canary.Latency, q, z)
	// The lower bound is trusted once about two samples are expected
	// above the quantile (200 for p99).
	cok := float64(canary.Latency.Count())*(1-q) >= 2
	switch {
	case cok && float64(clo) > factor*float64(sq):
		c.Verdict = Fail
		c.Reason = fmt.Sprintf("canary's lower confidence bound %.3gms above %.3g × stable's %.3gms", ms(clo), factor, ms(sq))
	case c.Canary <= c.Threshold:
		c.Verdict = Pass
		c.Reason = fmt.Sprintf("within %.3g × stable", factor)
	case !cok:
		c.Verdict = Hold
		c.Reason = "above the threshold, too few requests for a confident quantile bound"
	default:
		c.Verdict = Hold
		c.Reason = fmt.Sprintf("above the threshold but not significant (canary's lower confidence bound %.3gms)", ms(clo))
	}
	return c
}

// successCheck judges each leg's success rate against x: a leg fails when
// the upper confidence bound of its rate is below x, passes when its
// estimate is at least x.
func successCheck(x float64, canary, stable *history.Point, z float64, enough bool) Check {
	one := func(p *history.Point) (est float64, v Verdict) {
		n := p.V[history.Requests]
		ok := n - min(n, p.V[history.Class5xx])
		est = ratio(ok, n)
		pa := (float64(ok) + 1) / (float64(n) + 2)
		upper := pa + z*math.Sqrt(pa*(1-pa)/(float64(n)+2))
		switch {
		case upper < x:
			return est, Fail
		case est >= x:
			return est, Pass
		}
		return est, Hold
	}
	cv, cver := one(canary)
	sv, sver := one(stable)
	c := Check{Name: "success_rate", Canary: cv, Stable: sv, Threshold: x}
	return absolute(c, cver, sver, enough)
}

func maxLatencyCheck(name string, y time.Duration, canary, stable *history.Point, q, z float64, enough bool) Check {
	one := func(p *history.Point) (float64, Verdict) {
		est := p.Latency.Quantile(q)
		lo, _, _ := quantileBounds(p.Latency, q, z)
		switch {
		case lo > y:
			return ms(est), Fail
		case est <= y:
			return ms(est), Pass
		}
		return ms(est), Hold
	}
	cv, cver := one(canary)
	sv, sver := one(stable)
	c := Check{Name: name, Canary: cv, Stable: sv, Threshold: ms(y)}
	return absolute(c, cver, sver, enough)
}

func absolute(c Check, canary, stable Verdict, enough bool) Check {
	switch {
	case !enough:
		c.Verdict, c.Reason = Hold, "too few requests"
	case canary == Fail && stable == Fail:
		c.Verdict, c.Reason = Hold, "both legs fail the limit: a shared cause, not the canary"
	case canary == Fail:
		c.Verdict, c.Reason = Fail, "canary beyond the limit with confidence; stable is not"
	case canary == Pass:
		c.Verdict, c.Reason = Pass, "canary within the limit"
	default:
		c.Verdict, c.Reason = Hold, "canary beyond the limit but not significantly"
	}
	return c
}

// zQuantile returns the standard normal quantile at p (0.5 < p < 1).
func zQuantile(p float64) float64 { return math.Sqrt2 * math.Erfinv(2*p-1) }
