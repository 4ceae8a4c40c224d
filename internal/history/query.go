package history

import (
	"context"
	"fmt"
	"time"
)

// Source is the history as its readers (the dashboard, alerts, rollouts)
// see it. The local History implements it; a fleet can put aggregates of
// several replicas behind it (histograms merge bucket-wise, counters add,
// gauges take the maximum). Implementations must be safe for concurrent
// use and must return data the caller owns.
type Source interface {
	// Range returns the points of one series over [q.From, q.To), one per
	// q.Step.
	Range(ctx context.Context, q Query) (Result, error)
	// Names lists the series of a scope.
	Names(ctx context.Context, scope Scope) ([]string, error)
	// Latest is the end of the newest complete second: a window ending
	// there holds complete data.
	Latest(ctx context.Context) (time.Time, error)
}

// Query selects one series over a time range.
type Query struct {
	Scope Scope
	// Name is the series' name ("" for the gateway; "route/service" for a
	// leg; "service/host:port" for a host).
	Name string
	// From and To bound the range [From, To); they are truncated to whole
	// seconds.
	From, To time.Time
	// Step is the length of each point, a whole number of seconds (1s when
	// zero). Data older than the per-second retention exists per minute
	// only: each minute counts in the step its start falls in.
	Step time.Duration
}

// MaxPoints bounds the points of one query.
const MaxPoints = 10000

// Result is a query's answer.
type Result struct {
	Scope Scope
	Name  string
	Step  time.Duration
	// Points has one point per step from From, with zero values where no
	// data was recorded.
	Points []Point
}

// Validate checks q's shape (not whether the series exists).
func (q Query) Validate() error {
	switch {
	case q.Scope < ScopeGateway || q.Scope > ScopeRateLimit:
		return fmt.Errorf("unknown scope %d", q.Scope)
	case q.Scope == ScopeGateway && q.Name != "":
		return fmt.Errorf("the gateway scope takes no name, got %q", q.Name)
	case q.Scope != ScopeGateway && q.Name == "":
		return fmt.Errorf("scope %s needs a name", q.Scope)
	case q.Step < 0 || q.Step%time.Second != 0:
		return fmt.Errorf("step must be a positive whole number of seconds, got %s", q.Step)
	case !q.From.Before(q.To):
		return fmt.Errorf("from (%s) must be before to (%s)", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	step := max(q.Step, time.Second)
	if n := (q.To.Sub(q.From) + step - 1) / step; n > MaxPoints {
		return fmt.Errorf("the range holds %d steps of %s; at most %d are allowed (use a larger step)", n, step, MaxPoints)
	}
	return nil
}

// Range implements Source.
func (h *History) Range(ctx context.Context, q Query) (Result, error) {
	if !h.enabled {
		return Result{}, ErrDisabled
	}
	if err := q.Validate(); err != nil {
		return Result{}, err
	}
	s := h.lookup(q.Scope, q.Name)
	if s == nil {
		return Result{}, fmt.Errorf("%w: %s %q", ErrNotFound, q.Scope, q.Name)
	}
	step := int64(max(q.Step, time.Second) / time.Second)
	from, to := q.From.Unix(), q.To.Unix()
	if q.To.Nanosecond() != 0 {
		to++
	}
	n := (to - from + step - 1) / step
	res := Result{Scope: q.Scope, Name: q.Name, Step: time.Duration(step) * time.Second, Points: make([]Point, n)}
	for i := range res.Points {
		res.Points[i].Time = time.Unix(from+int64(i)*step, 0)
	}

	secOldest, minOldest := h.oldest()
	var acc accum
	cur := int64(-1)
	flush := func() {
		if cur >= 0 {
			p := &res.Points[cur]
			p.V = acc.v
			if acc.hasLat {
				p.Latency = acc.lat.hist()
			}
			if acc.hasOvh {
				p.Overhead = acc.ovh.hist()
			}
			acc.reset()
		}
	}
	add := func(sec int64, rec []byte) error {
		i := (sec - from) / step
		if i != cur {
			flush()
			cur = i
		}
		return acc.addRecord(rec)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	// Minutes older than the per-second data, then seconds.
	if from < secOldest {
		lo := (from + 59) / 60 // minutes starting at or after from
		hi := (min(to, secOldest) + 59) / 60
		err := s.mins.each(h.codec, minOldest, lo, hi, func(m int64, rec []byte) error { return add(m*60, rec) })
		if err != nil {
			return Result{}, err
		}
	}
	if err := s.secs.each(h.codec, secOldest, from, to, add); err != nil {
		return Result{}, err
	}
	flush()
	for _, se := range s.ex {
		if t := se.sec; t >= from && t < to {
			p := &res.Points[(t-from)/step]
			p.Exemplars = append(p.Exemplars, se.exemplar())
		}
	}
	return res, nil
}

// oldest returns the first second of the retained per-second data and the
// first minute of the per-minute data. Per-second data always starts on a
// minute, so that the two never overlap.
func (h *History) oldest() (sec, minute int64) {
	last := h.lastSealed.Load()
	sec = chunkBase(last) - int64(h.secChunks-1)*slotsPerChunk
	// Keep exactly the retention's worth of whole minutes of seconds.
	if keep := chunkBase(last+1) - h.secSlots; keep > sec {
		sec = chunkBase(keep)
	}
	lm := h.lastRolled.Load()
	minute = chunkBase(lm) - int64(h.minChunks-1)*slotsPerChunk
	if keep := lm + 1 - h.minSlots; keep > minute {
		minute = keep
	}
	return max(sec, h.secFloor.Load()), max(minute, h.minFloor.Load())
}

// Names implements Source.
func (h *History) NamesOf(ctx context.Context, scope Scope) ([]string, error) {
	if !h.enabled {
		return nil, ErrDisabled
	}
	return h.Names(scope), nil
}

// source adapts History to Source (Names and Latest take a context there).
type source struct{ h *History }

func (s source) Range(ctx context.Context, q Query) (Result, error) { return s.h.Range(ctx, q) }
func (s source) Names(ctx context.Context, sc Scope) ([]string, error) {
	return s.h.NamesOf(ctx, sc)
}
func (s source) Latest(context.Context) (time.Time, error) { return s.h.Latest(), nil }

// Source returns h as a Source.
func (h *History) Source() Source { return source{h} }

// Window returns one point aggregating [end-d, end) of a series: the
// input of a judgement made at time end (alerts evaluate rules as a pure
// function of the history at a time).
func Window(ctx context.Context, src Source, scope Scope, name string, end time.Time, d time.Duration) (Point, error) {
	d = d.Truncate(time.Second)
	if d <= 0 {
		return Point{}, fmt.Errorf("window must be at least 1s, got %s", d)
	}
	end = end.Truncate(time.Second)
	res, err := src.Range(ctx, Query{Scope: scope, Name: name, From: end.Add(-d), To: end, Step: d})
	if err != nil {
		return Point{}, err
	}
	var p Point
	p.Time = end.Add(-d)
	for i := range res.Points {
		p.Add(&res.Points[i])
	}
	return p, nil
}

// Legs returns the windows [end-d, end) of two legs of one route's split
// over the same interval, for judging one against the other (a canary
// against its stable).
func Legs(ctx context.Context, src Source, route, a, b string, end time.Time, d time.Duration) (Point, Point, error) {
	pa, err := Window(ctx, src, ScopeLeg, route+"/"+a, end, d)
	if err != nil {
		return Point{}, Point{}, err
	}
	pb, err := Window(ctx, src, ScopeLeg, route+"/"+b, end, d)
	if err != nil {
		return Point{}, Point{}, err
	}
	return pa, pb, nil
}

// Rate returns f's count per second over a window of length d.
func (p *Point) Rate(f Field, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(p.V[f]) / d.Seconds()
}

// Ratio returns the sum of the num fields over the den field (0 when den
// is 0), e.g. p.Ratio(Requests, Class5xx) for the 5xx ratio.
func (p *Point) Ratio(den Field, num ...Field) float64 {
	if p.V[den] == 0 {
		return 0
	}
	var n uint64
	for _, f := range num {
		n += p.V[f]
	}
	return float64(n) / float64(p.V[den])
}

// ErrorRatio returns the share of requests answered with a 5xx.
func (p *Point) ErrorRatio() float64 { return p.Ratio(Requests, Class5xx) }

// Mean returns the mean of a microsecond sum field per request (e.g.
// LatencySum, OverheadSum, UpstreamSum).
func (p *Point) Mean(sum Field) time.Duration {
	if p.V[Requests] == 0 {
		return 0
	}
	return time.Duration(p.V[sum]/p.V[Requests]) * time.Microsecond
}

var _ Source = source{}
