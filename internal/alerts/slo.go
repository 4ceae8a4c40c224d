package alerts

import (
	"fmt"
	"strconv"
	"time"

	"github.com/vantage-gateway/vantage/internal/history"
)

// BurnRate returns the error budget's burn rate of a window: the share of
// bad requests over the share the objective allows (1 spends the budget
// exactly over the SLO period). A bad request is a 5xx, or, with a
// latency objective, also one slower than latency. It returns 0 for an
// empty window.
func BurnRate(p *history.Point, objective float64, latency time.Duration) float64 {
	return burnOf(p.V[history.Requests], badRequests(p, latency), objective)
}

func burnOf(total, bad uint64, objective float64) float64 {
	if total == 0 || objective >= 1 {
		return 0
	}
	return float64(min(bad, total)) / float64(total) / (1 - objective)
}

// counts returns the requests and bad requests of the window of d ending
// at c.end on one series: the history's, plus, for a window reaching
// before the data the history holds (a restart), the hours the state
// file kept. kept is the hours added.
func (e *Evaluator) sloCounts(c *evalCtx, r *rule, name string, p *history.Point, d time.Duration) (req, bad uint64, kept int) {
	req, bad = p.V[history.Requests], badRequests(p, r.slo.latency)
	if start := c.end.Add(-d); !e.DataSince.IsZero() && start.Before(e.DataSince) && len(e.slo.hours) > 0 {
		kr, kb, n := e.slo.before(sloKey{r.slo.name, r.scope, name}, start, e.DataSince)
		req, bad, kept = req+kr, bad+kb, n
	}
	return req, bad, kept
}

func badRequests(p *history.Point, latency time.Duration) uint64 {
	bad := p.V[history.Class5xx]
	if latency > 0 {
		// A slow 5xx counts once: take the larger of the two, a lower
		// bound of their union that is exact when either is a subset.
		bad = max(bad, p.Latency.CountAbove(latency))
	}
	return min(bad, p.V[history.Requests])
}

// burn evaluates an SLO's burn-rate alert on one series: it holds when,
// for any of its windows, the burn rate over both the long and the short
// window exceeds the factor and the short window holds at least
// min_requests. The value is the burn rate over the first long window
// (1h for page, 1d for ticket); every window's burn rate is in the
// annotations.
func (e *Evaluator) burn(c *evalCtx, r *rule, name string, must bool) (sample, bool, error) {
	// Nothing to judge when no window changed and no alert is active.
	if !must {
		changed := false
		for _, w := range r.slo.windows {
			for _, d := range []time.Duration{w.Long, w.Short} {
				_, ws, err := c.window(r.scope, name, d)
				if err != nil {
					return sample{}, false, err
				}
				changed = changed || c.changed(ws)
			}
		}
		if !changed {
			return sample{}, false, nil
		}
	}
	s := sample{valid: true, details: map[string]string{}}
	holds := false
	var notes []string
	for i, w := range r.slo.windows {
		lp, _, err := c.window(r.scope, name, w.Long)
		if err != nil {
			return sample{}, false, err
		}
		sp, _, err := c.window(r.scope, name, w.Short)
		if err != nil {
			return sample{}, false, err
		}
		lreq, lbad, kept := e.sloCounts(c, r, name, lp, w.Long)
		sreq, sbad, _ := e.sloCounts(c, r, name, sp, w.Short)
		bl := burnOf(lreq, lbad, r.slo.objective)
		bs := burnOf(sreq, sbad, r.slo.objective)
		s.details["burn_rate_"+fmtDur(w.Long)] = strconv.FormatFloat(bl, 'f', 2, 64)
		s.details["burn_rate_"+fmtDur(w.Short)] = strconv.FormatFloat(bs, 'f', 2, 64)
		if i == 0 {
			s.value, s.requests, s.point = bl, lreq, sp
		}
		if bl > w.Factor && bs > w.Factor && sreq >= max(r.minReq, 1) {
			holds = true
			s.point = sp
		}
		if n := e.incomplete(c.end, w.Long); n != "" {
			if kept > 0 {
				n += fmt.Sprintf(", plus %dh kept across the restart", kept)
			}
			notes = append(notes, n)
		}
	}
	s.hold = &holds
	if len(notes) > 0 {
		s.note = notes[0]
	}
	// The budget over the SLO period, as far as the history reaches.
	pp, _, err := c.window(r.scope, name, r.slo.period)
	if err != nil {
		return sample{}, false, err
	}
	preq, pbad, kept := e.sloCounts(c, r, name, pp, r.slo.period)
	s.details["error_budget_remaining"] = strconv.FormatFloat(1-burnOf(preq, pbad, r.slo.objective), 'f', 4, 64)
	s.details["objective"] = strconv.FormatFloat(r.slo.objective, 'f', -1, 64)
	if n := e.incomplete(c.end, r.slo.period); n != "" {
		if kept > 0 {
			n += fmt.Sprintf(", plus %dh kept across the restart", kept)
		}
		s.details["error_budget_window"] = n
	}
	return s, true, nil
}

// fmtDur formats a burn window as the workbook writes it: 5m, 1h, 3d.
func fmtDur(d time.Duration) string {
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
