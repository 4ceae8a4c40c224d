package tracestore

import (
	"sort"
	"time"
)

// depMap counts calls between services per minute, as spans arrive: a
// child span whose service differs from its parent's is one call from the
// parent's service to the child's. Minutes older than depRetention are
// dropped; each minute holds at most maxEdgesPerMinute pairs.
type depMap struct {
	minutes map[int64]map[depEdge]int64
	oldest  int64
	bytes   int64 // memory held, for the store's budget
}

type depEdge struct{ parent, child string }

const (
	depRetention      = 24 * time.Hour
	maxEdgesPerMinute = 10000
)

func newDepMap() *depMap { return &depMap{minutes: map[int64]map[depEdge]int64{}} }

// add counts a call at span time t (ns); now (ns) ages old minutes out.
func (d *depMap) add(parent, child string, t, now int64) {
	if parent == child {
		return
	}
	cut := (now - int64(depRetention)) / int64(time.Minute)
	if cut > d.oldest {
		for m := range d.minutes {
			if m < cut {
				d.bytes -= depMinuteBytes + int64(len(d.minutes[m]))*depEdgeBytes
				delete(d.minutes, m)
			}
		}
		d.oldest = cut
	}
	m := t / int64(time.Minute)
	if m < cut {
		return
	}
	edges := d.minutes[m]
	if edges == nil {
		if len(d.minutes) > int(depRetention/time.Minute)+60 {
			return // span times far in the future: do not grow without bound
		}
		edges = map[depEdge]int64{}
		d.minutes[m] = edges
		d.bytes += depMinuteBytes
	}
	k := depEdge{parent, child}
	if _, ok := edges[k]; !ok {
		if len(edges) >= maxEdgesPerMinute {
			return
		}
		d.bytes += depEdgeBytes
	}
	edges[k]++
}

// Dependency is the number of calls from one service to another.
type Dependency struct {
	Parent, Child string
	CallCount     int64
}

// links sums the calls of the minutes in [from, to].
func (d *depMap) links(from, to time.Time) []Dependency {
	f, t := from.UnixNano()/int64(time.Minute), to.UnixNano()/int64(time.Minute)
	sum := map[depEdge]int64{}
	for m, edges := range d.minutes {
		if m < f || m > t {
			continue
		}
		for k, n := range edges {
			sum[k] += n
		}
	}
	out := make([]Dependency, 0, len(sum))
	for k, n := range sum {
		out = append(out, Dependency{Parent: k.parent, Child: k.child, CallCount: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Parent != out[j].Parent {
			return out[i].Parent < out[j].Parent
		}
		return out[i].Child < out[j].Child
	})
	return out
}

// p99Tracker keeps the recent durations of each operation's server (or
// root) spans and tells when one is above the operation's recent p99.
type p99Tracker struct {
	ops   map[depEdge]*p99Ring
	bytes int64 // memory held, for the store's budget
}

const (
	p99Window     = 128
	p99MinSamples = 64
	p99Every      = 16
	maxP99Ops     = 2048
)

type p99Ring struct {
	d    [p99Window]time.Duration
	n    int // samples seen (saturates past the window)
	i    int
	p99  time.Duration
	tick int
}

func newP99Tracker() *p99Tracker { return &p99Tracker{ops: map[depEdge]*p99Ring{}} }

// observe records d for the operation and reports whether d is above its
// p99 over the recent window (once the window has enough samples).
func (t *p99Tracker) observe(service, op string, d time.Duration) bool {
	r := t.ring(service, op)
	return r != nil && r.observe(d)
}

// ring returns the operation's window, starting one (nil when the
// tracker holds its maximum).
func (t *p99Tracker) ring(service, op string) *p99Ring {
	k := depEdge{service, op}
	r := t.ops[k]
	if r == nil {
		if len(t.ops) >= maxP99Ops {
			return nil
		}
		r = &p99Ring{}
		t.ops[k] = r
		t.bytes += p99RingBytes
	}
	return r
}

// observe adds d to the window and reports whether it is over the
// window's p99.
func (r *p99Ring) observe(d time.Duration) bool {
	slow := r.n >= p99MinSamples && d > r.p99
	r.d[r.i] = d
	r.i = (r.i + 1) % p99Window
	if r.n < p99Window {
		r.n++
	}
	r.tick++
	if r.tick >= p99Every || r.n == p99MinSamples {
		r.tick = 0
		r.p99 = kthLargest(r.d[:r.n], r.n-((r.n*99+99)/100-1)) // index ceil(0.99 n) - 1 in ascending order
	}
	return slow
}

// p99Top is how many of the largest durations kthLargest keeps: the p99
// of a window of p99Window is its (p99Window/100 + 1)-th largest.
const p99Top = p99Window/100 + 1

// kthLargest returns the k-th largest of d (1 <= k <= p99Top, k <= len(d))
// in one pass that keeps the k largest seen, instead of sorting the
// window: the same value as sorting, for a few compares per sample.
func kthLargest(d []time.Duration, k int) time.Duration {
	var top [p99Top]time.Duration // descending; top[:n] filled
	n := 0
	for _, v := range d {
		if n == k && v <= top[k-1] {
			continue
		}
		i := min(n, k-1)
		for i > 0 && top[i-1] < v {
			top[i] = top[i-1]
			i--
		}
		top[i] = v
		if n < k {
			n++
		}
	}
	return top[k-1]
}
