package alerts

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/vantage-gateway/vantage/internal/history"
)

// fakeSource is a synthetic history: points per second per series.
type fakeSource struct {
	mu     sync.Mutex
	series map[history.Scope]map[string]map[int64]*history.Point
	latest time.Time
}

func newFakeSource() *fakeSource {
	return &fakeSource{series: map[history.Scope]map[string]map[int64]*history.Point{}}
}

// add records n requests of which bad are 5xx in second t of a series,
// with an error exemplar when bad > 0.
func (f *fakeSource) add(scope history.Scope, name string, t time.Time, n, bad uint64) *history.Point {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.series[scope] == nil {
		f.series[scope] = map[string]map[int64]*history.Point{}
	}
	if f.series[scope][name] == nil {
		f.series[scope][name] = map[int64]*history.Point{}
	}
	sec := t.Unix()
	p := f.series[scope][name][sec]
	if p == nil {
		p = &history.Point{Time: time.Unix(sec, 0)}
		f.series[scope][name][sec] = p
	}
	p.V[history.Requests] += n
	p.V[history.Class5xx] += bad
	p.V[history.Class2xx] += n - bad
	if bad > 0 {
		var id [16]byte
		copy(id[:], fmt.Sprintf("%016d", sec))
		p.Exemplars = append(p.Exemplars, history.Exemplar{Time: p.Time, Kind: history.ExemplarError, TraceID: id, Status: 502})
	}
	return p
}

// set sets a field of second t.
func (f *fakeSource) set(scope history.Scope, name string, t time.Time, fld history.Field, v uint64) {
	p := f.add(scope, name, t, 0, 0)
	f.mu.Lock()
	p.V[fld] = v
	f.mu.Unlock()
}

func (f *fakeSource) Range(ctx context.Context, q history.Query) (history.Result, error) {
	if err := q.Validate(); err != nil {
		return history.Result{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.series[q.Scope][q.Name]
	if !ok {
		return history.Result{}, fmt.Errorf("%w: %s %q", history.ErrNotFound, q.Scope, q.Name)
	}
	step := max(q.Step, time.Second)
	from, to := q.From.Unix(), q.To.Unix()
	st := int64(step / time.Second)
	n := (to - from + st - 1) / st
	res := history.Result{Scope: q.Scope, Name: q.Name, Step: step, Points: make([]history.Point, n)}
	for i := range res.Points {
		res.Points[i].Time = time.Unix(from+int64(i)*st, 0)
	}
	for sec, p := range s {
		if sec >= from && sec < to {
			res.Points[(sec-from)/st].Add(p)
		}
	}
	return res, nil
}

func (f *fakeSource) Names(ctx context.Context, scope history.Scope) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.series[scope] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func (f *fakeSource) Latest(context.Context) (time.Time, error) { return f.latest, nil }

var _ history.Source = (*fakeSource)(nil)
