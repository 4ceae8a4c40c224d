package history

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/internal/metrics/kpi"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Business KPIs (the metrics config's kpis) are kept in the kpi scope, as
// the KPICount and KPISum fields of these series:
//
//   - KPIName(k): every event of KPI k;
//   - KPILabelName(k, label, value): the events of one label value (only
//     for a KPI with a label; values outside the allow-list count as
//     "other", a missing header as "none");
//   - KPILegName(k, route, service): the events of the requests one split
//     leg of a route served (only for routes with a weighted split).
//
// A KPI name is snake_case, so the separators ':' and '@' make the three
// kinds of names distinct.

// KPIName returns the name of the kpi-scope series of every event of KPI
// k (its configured name, without the metric prefix).
func KPIName(k string) string { return k }

// KPILabelName returns the name of the kpi-scope series of the events of
// KPI k whose label is value: "k:label=value".
func KPILabelName(k, label, value string) string { return k + ":" + label + "=" + value }

// KPILegName returns the name of the kpi-scope series of the events of
// KPI k on the split leg route/service: "k@route/service".
func KPILegName(k, route, service string) string { return k + "@" + route + "/" + service }

// kpiCells is the request-path state of one KPI within one (route,
// service) cell: a count and a value sum per label slot, and the series
// the rotator adds them to.
type kpiCells struct {
	m     *kpi.Matcher
	slots []kpiSlot
	// dirty is set by a recorder after it added to a slot, cleared by the
	// rotator before it drains the slots.
	dirty  atomic.Uint32
	total  *series                // KPIName; nil past the series cap
	labels []*series              // per slot, KPILabelName; nil entries without a label or past the cap
	leg    atomic.Pointer[series] // KPILegName; nil when the service is not a leg of the route
}

type kpiSlot struct {
	n   atomic.Uint64
	sum atomic.Uint64 // millionths, two's complement
}

// kpiCellsLocked builds the KPI cells of the (route, service) cell: route
// is the route's name for the KPIs' route lists ("" for unmatched
// requests), name its series name. h.mu must be held.
func (h *History) kpiCellsLocked(route, name, service string, leg bool) []*kpiCells {
	var out []*kpiCells
	for _, m := range h.kpis {
		if !m.MatchesRoute(route) {
			continue
		}
		kc := &kpiCells{m: m, slots: make([]kpiSlot, m.Slots())}
		kc.total = h.seriesLocked(ScopeKPI, KPIName(m.Name()))
		if m.Label() != "" {
			kc.labels = make([]*series, m.Slots())
			for i := range kc.labels {
				kc.labels[i] = h.seriesLocked(ScopeKPI, KPILabelName(m.Name(), m.Label(), m.SlotValue(i)))
			}
		}
		if leg {
			kc.leg.Store(h.seriesLocked(ScopeKPI, KPILegName(m.Name(), name, service)))
		}
		out = append(out, kc)
	}
	return out
}

// addKPILegsLocked gives the KPI cells of a (route, service) cell that
// became a split leg by a reload their leg series. h.mu must be held.
func (h *History) addKPILegsLocked(a *atom) {
	for _, kc := range a.kpis {
		if kc.leg.Load() == nil {
			kc.leg.Store(h.seriesLocked(ScopeKPI, KPILegName(kc.m.Name(), a.key.a, a.key.b)))
		}
	}
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// recordKPIs matches the finished request against the KPIs of its cell
// and counts it where it matches. It does not allocate and takes no lock.
func (a *atom) recordKPIs(method string, hdr http.Header, rec *observe.Record) {
	for _, kc := range a.kpis {
		slot, v, ok := kc.m.Match(method, rec.Status, hdr, rec)
		if !ok {
			continue
		}
		s := &kc.slots[slot]
		s.n.Add(1)
		if kc.m.Histogram() {
			s.sum.Add(uint64(toMicro(v)))
		}
		if kc.dirty.Load() == 0 {
			kc.dirty.Store(1)
		}
	}
}

// toMicro converts a KPI value to millionths, saturating.
func toMicro(v float64) int64 {
	x := math.Round(v * 1e6)
	switch {
	case x >= math.MaxInt64:
		return math.MaxInt64
	case x <= math.MinInt64:
		return math.MinInt64
	}
	return int64(x)
}

// sealKPIs drains the KPI cells of a into their series. Only the rotator
// calls it.
func (h *History) sealKPIs(a *atom) {
	for _, kc := range a.kpis {
		if kc.dirty.Swap(0) == 0 {
			continue
		}
		for i := range kc.slots {
			s := &kc.slots[i]
			if s.n.Load() == 0 {
				continue
			}
			n, sum := s.n.Swap(0), s.sum.Swap(0)
			add := func(se *series) {
				if se != nil {
					acc := h.touch(se)
					acc.v[KPICount] += n
					acc.v[KPISum] += sum
				}
			}
			add(kc.total)
			if kc.labels != nil {
				add(kc.labels[i])
			}
			add(kc.leg.Load())
		}
	}
}

// KPISum returns the sum of a histogram KPI's observed values.
func (p *Point) KPISum() float64 { return float64(int64(p.V[KPISum])) / 1e6 }

// KPIMean returns the mean observed value of a histogram KPI (0 without
// events).
func (p *Point) KPIMean() float64 {
	if p.V[KPICount] == 0 {
		return 0
	}
	return p.KPISum() / float64(p.V[KPICount])
}

// KPILeg is one split leg's KPI over an interval, next to the requests
// the leg served in it.
type KPILeg struct {
	// Requests is the requests the leg served.
	Requests uint64
	// Count is the KPI's events among them.
	Count uint64
	// Sum is the sum of a histogram KPI's observed values.
	Sum float64
}

// PerRequest returns the KPI's events per request served (0 without
// requests): a conversion rate for a counter KPI.
func (l KPILeg) PerRequest() float64 {
	if l.Requests == 0 {
		return 0
	}
	return float64(l.Count) / float64(l.Requests)
}

// ValuePerRequest returns a histogram KPI's value per request served (0
// without requests): revenue per request.
func (l KPILeg) ValuePerRequest() float64 {
	if l.Requests == 0 {
		return 0
	}
	return l.Sum / float64(l.Requests)
}

// Mean returns the mean observed value (0 without events).
func (l KPILeg) Mean() float64 {
	if l.Count == 0 {
		return 0
	}
	return l.Sum / float64(l.Count)
}

// KPIOfLeg returns KPI k on the split leg route/service over [end-d, end)
// with the requests the leg served in the same interval. A leg that served
// requests but never a matching one may have no KPI series yet: it reads
// as zero events (ErrNotFound only when the leg itself is unknown).
func KPIOfLeg(ctx context.Context, src Source, k, route, service string, end time.Time, d time.Duration) (KPILeg, error) {
	lp, err := Window(ctx, src, ScopeLeg, route+"/"+service, end, d)
	if err != nil {
		return KPILeg{}, err
	}
	out := KPILeg{Requests: lp.V[Requests]}
	kp, err := Window(ctx, src, ScopeKPI, KPILegName(k, route, service), end, d)
	switch {
	case err == nil:
		out.Count, out.Sum = kp.V[KPICount], kp.KPISum()
	case isNotFound(err):
	default:
		return KPILeg{}, err
	}
	return out, nil
}

// KPILegs returns KPI k on two legs of one route's split over the same
// interval [end-d, end), for judging a canary's KPI per request against
// its stable's.
func KPILegs(ctx context.Context, src Source, k, route, a, b string, end time.Time, d time.Duration) (KPILeg, KPILeg, error) {
	la, err := KPIOfLeg(ctx, src, k, route, a, end, d)
	if err != nil {
		return KPILeg{}, KPILeg{}, err
	}
	lb, err := KPIOfLeg(ctx, src, k, route, b, end, d)
	if err != nil {
		return KPILeg{}, KPILeg{}, err
	}
	return la, lb, nil
}

// Shifted returns the window [end-d, end) of a series and the same window
// offset earlier, [end-offset-d, end-offset): "now" against the same
// window an hour or a day ago. A window before the history began reads as
// empty.
func Shifted(ctx context.Context, src Source, scope Scope, name string, end time.Time, d, offset time.Duration) (now, then Point, err error) {
	if offset <= 0 || offset%time.Second != 0 {
		return Point{}, Point{}, fmt.Errorf("offset must be a positive whole number of seconds, got %s", offset)
	}
	if now, err = Window(ctx, src, scope, name, end, d); err != nil {
		return Point{}, Point{}, err
	}
	if then, err = Window(ctx, src, scope, name, end.Add(-offset), d); err != nil {
		return Point{}, Point{}, err
	}
	return now, then, nil
}

// MovingAverage returns field f's mean rate per second over the n windows
// of length d that precede the window [end-d, end) — the baseline that
// window is compared to — together with the rate in [end-d, end) itself.
// Windows before the history began count as zero.
func MovingAverage(ctx context.Context, src Source, scope Scope, name string, f Field, end time.Time, d time.Duration, n int) (current, average float64, err error) {
	d = d.Truncate(time.Second)
	if d <= 0 || n <= 0 {
		return 0, 0, fmt.Errorf("moving average needs a window of at least 1s and n >= 1, got %s and %d", d, n)
	}
	end = end.Truncate(time.Second)
	res, err := src.Range(ctx, Query{Scope: scope, Name: name, From: end.Add(-time.Duration(n+1) * d), To: end, Step: d})
	if err != nil {
		return 0, 0, err
	}
	if len(res.Points) != n+1 {
		return 0, 0, fmt.Errorf("moving average: the source answered %d windows, want %d", len(res.Points), n+1)
	}
	var sum uint64
	for i := range n {
		sum += res.Points[i].V[f]
	}
	return res.Points[n].Rate(f, d), float64(sum) / float64(n) / d.Seconds(), nil
}
