package harness

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Sample is one measured wrk run against one target in one round.
type Sample struct {
	Target string
	Round  int
	Wrk    WrkResult
	// CPUSeconds is the CPU time (user+system) the measured process tree
	// used during the wrk run.
	CPUSeconds float64
	// Baseline is the baseline target's sample measured next to this one
	// in a paired run (nil otherwise, and for the baseline's own).
	Baseline *Sample
	// UpstreamConns is the number of connections the bench upstream
	// accepted during the wrk run; HasUpstreamConns says it was read.
	UpstreamConns    int64
	HasUpstreamConns bool
}

// CPUMicrosPerRequest is CPUSeconds*1e6 divided by the completed requests
// (NaN when there were none).
func (s Sample) CPUMicrosPerRequest() float64 {
	if s.Wrk.Requests <= 0 {
		return math.NaN()
	}
	return s.CPUSeconds * 1e6 / float64(s.Wrk.Requests)
}

// Summary is a target's medians over its rounds.
type Summary struct {
	Target string
	Rounds int
	// RequestsPerSec, P50, P99 and CPUMicrosPerRequest are medians over
	// rounds, each taken on its own.
	RequestsPerSec      float64
	P50, P99            time.Duration
	CPUMicrosPerRequest float64
	// Errors is the total of failed requests over all rounds.
	Errors int64
}

// Median returns the median of xs (the mean of the two middle values for an
// even count), ignoring NaNs; NaN when nothing is left. xs is not modified.
func Median(xs []float64) float64 {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// Summarize groups samples by target and takes medians, returning one
// Summary per target in the order of targets; targets without samples are
// left out.
func Summarize(samples []Sample, targets []string) []Summary {
	var out []Summary
	for _, t := range targets {
		var rps, p50, p99, cpu []float64
		var errs int64
		for _, s := range samples {
			if s.Target != t {
				continue
			}
			rps = append(rps, s.Wrk.RequestsPerSec)
			p50 = append(p50, float64(s.Wrk.P50))
			p99 = append(p99, float64(s.Wrk.P99))
			cpu = append(cpu, s.CPUMicrosPerRequest())
			errs += s.Wrk.Errors()
		}
		if len(rps) == 0 {
			continue
		}
		out = append(out, Summary{
			Target:              t,
			Rounds:              len(rps),
			RequestsPerSec:      Median(rps),
			P50:                 time.Duration(Median(p50)),
			P99:                 time.Duration(Median(p99)),
			CPUMicrosPerRequest: Median(cpu),
			Errors:              errs,
		})
	}
	return out
}

// Reference targets the table's ratio columns divide by.
const (
	RefHTTPUtil = "httputil"
	RefCaddy    = "caddy"
	RefNginx    = "nginx"
	// Direct is the no-proxy target: its CPU figure is the upstream's, so
	// it gets no ratios.
	Direct = "direct"
)

// MarkdownTable renders summaries as a Markdown table with the ratio
// columns CPU µs/req ÷ httputil, ÷ caddy, ÷ nginx and p99 ÷ caddy. A ratio
// whose reference target is absent, or which does not apply (the direct
// row), is shown as "–".
func MarkdownTable(sums []Summary) string {
	byName := make(map[string]Summary, len(sums))
	for _, s := range sums {
		byName[s.Target] = s
	}
	ratio := func(row Summary, ref string, get func(Summary) float64) string {
		r, ok := byName[ref]
		if !ok || row.Target == Direct {
			return "–"
		}
		den := get(r)
		if den == 0 || math.IsNaN(den) || math.IsNaN(get(row)) {
			return "–"
		}
		return fmt.Sprintf("%.2f", get(row)/den)
	}
	cpu := func(s Summary) float64 { return s.CPUMicrosPerRequest }
	p99 := func(s Summary) float64 { return float64(s.P99) }

	var b strings.Builder
	b.WriteString("| target | req/s | p50 | p99 | CPU µs/req | CPU ÷ httputil | CPU ÷ caddy | CPU ÷ nginx | p99 ÷ caddy | errors |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range sums {
		name := s.Target
		if name == Direct {
			name = "direct (no proxy; CPU is the upstream's)"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n",
			name, formatRate(s.RequestsPerSec), FormatLatency(s.P50), FormatLatency(s.P99),
			formatCPU(s.CPUMicrosPerRequest),
			ratio(s, RefHTTPUtil, cpu), ratio(s, RefCaddy, cpu), ratio(s, RefNginx, cpu),
			ratio(s, RefCaddy, p99), s.Errors)
	}
	return b.String()
}

func formatRate(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

func formatCPU(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.1f", v)
}

// FormatLatency prints d in µs below 1ms and in ms with two decimals above.
func FormatLatency(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// Paired is a target's CPU µs/req relative to the baseline measured next
// to it, over the pairs of a paired run.
type Paired struct {
	Target string
	Pairs  int
	// Median, Min and Max are of the per-pair CPU ratios target ÷
	// baseline.
	Median, Min, Max float64
	// P99Median, P99Min and P99Max are of the per-pair p99 ratios target ÷
	// baseline (0 when no pair has both p99s).
	P99Median, P99Min, P99Max float64
}

// SummarizePairs returns, for each target (in order) with paired samples,
// the distribution of its per-pair CPU ratios. Pairing cancels the slow
// drift of a shared machine that unpaired medians over rounds keep: the two
// runs of a pair are seconds apart.
func SummarizePairs(samples []Sample, targets []string) []Paired {
	var out []Paired
	for _, t := range targets {
		var rs, ps []float64
		for _, s := range samples {
			if s.Target != t || s.Baseline == nil {
				continue
			}
			r := s.CPUMicrosPerRequest() / s.Baseline.CPUMicrosPerRequest()
			if !math.IsNaN(r) && !math.IsInf(r, 0) {
				rs = append(rs, r)
			}
			if s.Wrk.P99 > 0 && s.Baseline.Wrk.P99 > 0 {
				ps = append(ps, float64(s.Wrk.P99)/float64(s.Baseline.Wrk.P99))
			}
		}
		if len(rs) == 0 {
			continue
		}
		p := Paired{Target: t, Pairs: len(rs), Median: Median(rs), Min: slices.Min(rs), Max: slices.Max(rs)}
		if len(ps) > 0 {
			p.P99Median, p.P99Min, p.P99Max = Median(ps), slices.Min(ps), slices.Max(ps)
		}
		out = append(out, p)
	}
	return out
}

// PairedTable renders paired ratios as a Markdown table, with the CPU
// median also as a percentage change, and the p99 ratios beside them.
func PairedTable(baseline string, ps []Paired) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| target | pairs | CPU ÷ %s (median) | change | min | max | p99 ÷ %s (median) | min | max |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n", baseline, baseline)
	for _, p := range ps {
		fmt.Fprintf(&b, "| %s | %d | %.3f | %+.1f%% | %.3f | %.3f | %.3f | %.3f | %.3f |\n", p.Target, p.Pairs, p.Median, (p.Median-1)*100, p.Min, p.Max,
			p.P99Median, p.P99Min, p.P99Max)
	}
	return b.String()
}
