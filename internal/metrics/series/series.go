// Package series keeps metric families whose label sets are created on
// demand, capped, and expired when idle, so that the request path can hold
// pre-resolved series and record into them without label lookups, and a
// scrape never waits for the request path nor the request path for a scrape.
//
// A Set is a prometheus.Gatherer holding families. A Family maps label
// values (a Key) to a Child, the series itself: a client_golang Counter,
// Gauge or Histogram carrying its label values as constant labels. Holders
// cache Children (see Slot) and check Child.Dead before each use: a series
// idle for the set's idle timeout is removed by Set.Sweep, marked dead, and
// re-created from zero by the next holder that needs it.
//
// A family's map is the only strong reference to its series: a Slot holds
// its Child weakly, so that an expired series' memory (a histogram's
// buckets, its label pairs) is returned to the garbage collector even while
// the route or binding that cached it lives on. Memory thus follows the
// series in use, not the series ever used.
//
// Each family has a series cap. Once it holds that many label sets, a new
// label set is folded into the family's overflow series, whose labels are
// all "other", and the family's folded counter is incremented. The set
// exposes, per family, vantage_metrics_series (live label sets),
// vantage_metrics_series_folded_total and
// vantage_metrics_series_expired_total and vantage_metrics_series_limit.
//
// All methods are safe for concurrent use.
package series

import (
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"weak"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// MaxLabels is the most labels a family may have.
const MaxLabels = 6

// Key holds a label set's values in the family's label order; unused
// trailing entries are "".
type Key [MaxLabels]string

// Other is the value of every label of a family's overflow series.
const Other = "other"

// maxLabelValueLen is the longest label value kept; a longer one folds.
const maxLabelValueLen = 256

// epochsPerIdle divides the idle timeout into epochs: a series expires once
// it has not been touched for epochsPerIdle+1 epochs, that is after between
// 1 and 1.125 idle timeouts (plus up to one sweep period).
const epochsPerIdle = 8

// Kind is a family's metric type.
type Kind uint8

// The kinds of family.
const (
	Counter Kind = iota + 1
	Gauge
	Histogram
)

// Options configure a Set.
type Options struct {
	// MaxSeries caps the label sets of each family (at least 1).
	MaxSeries int
	// IdleTimeout is how long a series may go without updates before
	// Sweep removes it (at least 1ns).
	IdleTimeout time.Duration
	// Exemplars turns on exemplars for Child.AddExemplar and
	// Child.ObserveExemplar; off, they record without one.
	Exemplars bool
	// ExemplarInterval is the shortest time between two exemplars in one
	// histogram bucket or counter; 0 replaces it every time.
	ExemplarInterval time.Duration
	// NativeBucketFactor > 1 makes every histogram also a native histogram
	// with that bucket growth factor; 0 (or <= 1) keeps classic only.
	NativeBucketFactor float64
	// NativeMaxBuckets caps a native histogram's buckets (0: no cap).
	NativeMaxBuckets uint32
}

// Set is a collector of capped, expiring families. Its zero value is not
// usable; build it with NewSet.
type Set struct {
	opts     Options
	start    time.Time
	epochLen time.Duration
	epoch    atomic.Uint32

	mu       sync.Mutex
	families []*Family
	names    map[string]bool
}

// NewSet returns an empty Set whose epochs count from now.
func NewSet(o Options, now time.Time) *Set {
	if o.MaxSeries < 1 {
		o.MaxSeries = 1
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = time.Nanosecond
	}
	el := o.IdleTimeout / epochsPerIdle
	if el <= 0 {
		el = 1
	}
	return &Set{
		opts:     o,
		start:    now,
		epochLen: el,
		names:    map[string]bool{},
	}
}

// SweepInterval is how often Sweep should run: one epoch.
func (s *Set) SweepInterval() time.Duration { return s.epochLen }

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// FamilyOpts describe a family.
type FamilyOpts struct {
	// Name is the full metric name; Help its HELP text. Both required.
	Name, Help string
	// Kind is the metric type.
	Kind Kind
	// Labels are the label names, at most MaxLabels.
	Labels []string
	// Buckets are a histogram's upper bounds (required for Histogram).
	Buckets []float64
	// Persistent series never expire (state gauges).
	Persistent bool
	// KeepNonZero (gauges) keeps an idle series while its value is not
	// zero (an in-flight gauge during one long request).
	KeepNonZero bool
	// MaxSeries, when above 0 and below the set's MaxSeries, caps this
	// family's label sets instead (a histogram costs a sample per bucket,
	// so its families may be capped lower than counters).
	MaxSeries int
}

// Family returns a new family in s. It fails on an invalid or duplicate
// name, invalid labels, or a histogram without buckets.
func (s *Set) Family(o FamilyOpts) (*Family, error) {
	if !metricNameRE.MatchString(o.Name) || o.Help == "" {
		return nil, fmt.Errorf("series: family %q: invalid name or empty help", o.Name)
	}
	if len(o.Labels) > MaxLabels {
		return nil, fmt.Errorf("series: family %q: %d labels, at most %d", o.Name, len(o.Labels), MaxLabels)
	}
	for _, l := range o.Labels {
		if !labelNameRE.MatchString(l) || l == "le" || len(l) > 1 && l[:2] == "__" {
			return nil, fmt.Errorf("series: family %q: invalid label name %q", o.Name, l)
		}
	}
	switch o.Kind {
	case Counter, Gauge:
	case Histogram:
		if len(o.Buckets) == 0 {
			return nil, fmt.Errorf("series: histogram %q needs buckets", o.Name)
		}
		if !sort.Float64sAreSorted(o.Buckets) {
			return nil, fmt.Errorf("series: histogram %q: buckets not sorted", o.Name)
		}
	default:
		return nil, fmt.Errorf("series: family %q: unknown kind %d", o.Name, o.Kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.names[o.Name] {
		return nil, fmt.Errorf("series: duplicate family %q", o.Name)
	}
	s.names[o.Name] = true
	if o.MaxSeries <= 0 || o.MaxSeries > s.opts.MaxSeries {
		o.MaxSeries = s.opts.MaxSeries
	}
	o.Labels = append([]string(nil), o.Labels...)
	o.Buckets = append([]float64(nil), o.Buckets...)
	f := &Family{set: s, opts: o, m: map[Key]*Child{}}
	f.byName = make([]int, len(o.Labels))
	for i := range f.byName {
		f.byName[i] = i
	}
	sort.SliceStable(f.byName, func(i, j int) bool { return o.Labels[f.byName[i]] < o.Labels[f.byName[j]] })
	s.families = append(s.families, f)
	return f, nil
}

// MustFamily is Family that panics on error, for families declared in code.
func (s *Set) MustFamily(o FamilyOpts) *Family {
	f, err := s.Family(o)
	if err != nil {
		panic(err)
	}
	return f
}

func (s *Set) snapshotFamilies() []*Family {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Family(nil), s.families...)
}

// Sweep advances the set's epoch to now and removes every non-persistent
// series not updated for the idle timeout. It returns how many it removed.
// It takes a family's write lock only to delete the series it found idle.
func (s *Set) Sweep(now time.Time) int {
	d := now.Sub(s.start)
	if d < 0 {
		d = 0
	}
	e := uint32(d / s.epochLen)
	if e > s.epoch.Load() {
		s.epoch.Store(e)
	}
	e = s.epoch.Load()
	if e <= epochsPerIdle {
		return 0
	}
	n := 0
	var idle []*Child
	for _, f := range s.snapshotFamilies() {
		if f.opts.Persistent {
			continue
		}
		idle = idle[:0]
		f.mu.RLock()
		for _, c := range f.m {
			if isIdle(c, e) {
				idle = append(idle, c)
			}
		}
		f.mu.RUnlock()
		if f.opts.KeepNonZero {
			idle = slices.DeleteFunc(idle, func(c *Child) bool { return gaugeValue(c) != 0 })
		}
		if len(idle) == 0 {
			continue
		}
		f.mu.Lock()
		for _, c := range idle {
			if !isIdle(c, e) || f.m[c.key] != c {
				continue
			}
			f.removeLocked(c)
			f.expired.Add(1)
			n++
		}
		f.mu.Unlock()
	}
	return n
}

func gaugeValue(c *Child) float64 {
	if c.gauge == nil {
		return 0
	}
	var m dto.Metric
	if err := c.gauge.Write(&m); err != nil || m.Gauge == nil {
		return 0
	}
	return m.Gauge.GetValue()
}

func isIdle(c *Child, e uint32) bool {
	last := c.epoch.Load()
	return last < e && e-last > epochsPerIdle
}

// Family is one metric name with its label sets.
type Family struct {
	set  *Set
	opts FamilyOpts

	mu       sync.RWMutex
	m        map[Key]*Child
	n        int // label sets, the overflow series excluded
	overflow *Child

	// byName lists the label indexes in label-name order: samples are
	// exposed sorted by their values in that order, as client_golang sorts
	// them.
	byName []int

	live    atomic.Int64
	folded  atomic.Uint64
	expired atomic.Uint64
}

// Name returns the family's metric name.
func (f *Family) Name() string { return f.opts.Name }

// Labels returns the family's label names; the caller must not modify them.
func (f *Family) Labels() []string { return f.opts.Labels }

// Len returns the number of live label sets, the overflow series included.
func (f *Family) Len() int { return int(f.live.Load()) }

// Folded returns how many lookups were folded into the overflow series.
func (f *Family) Folded() uint64 { return f.folded.Load() }

// Get returns the series for k, creating it if needed. Past the series
// cap, or when a label value is not valid UTF-8 or is too long, it returns
// the overflow series (labels all "other") and counts a fold. Looking up an
// existing series takes a read lock and does not allocate.
func (f *Family) Get(k *Key) *Child {
	f.mu.RLock()
	c := f.m[*k]
	f.mu.RUnlock()
	if c != nil {
		return c
	}
	return f.create(k)
}

// With is Get with the label values as arguments, for build time (it
// allocates). It panics on a wrong number of values.
func (f *Family) With(values ...string) *Child {
	if len(values) != len(f.opts.Labels) {
		panic(fmt.Sprintf("series: %s: %d label values for %d labels", f.opts.Name, len(values), len(f.opts.Labels)))
	}
	var k Key
	copy(k[:], values)
	return f.Get(&k)
}

// Delete removes the series for k, if any, and marks it dead (its holders
// re-resolve it on their next use). It is for series whose subject is gone,
// such as a host a reload removed; persistent series never expire
// otherwise.
func (f *Family) Delete(k *Key) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.m[*k]; c != nil {
		f.removeLocked(c)
	}
}

// removeLocked removes c from f and marks it dead. f.mu must be held.
func (f *Family) removeLocked(c *Child) {
	delete(f.m, c.key)
	c.dead.Store(true)
	if f.overflow == c {
		f.overflow = nil
	} else {
		f.n--
	}
	f.live.Add(-1)
}

func (f *Family) create(k *Key) *Child {
	valid := true
	for i := range f.opts.Labels {
		if len(k[i]) > maxLabelValueLen || !utf8.ValidString(k[i]) {
			valid = false
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.m[*k]; c != nil {
		return c
	}
	if !valid || f.n >= f.opts.MaxSeries {
		f.folded.Add(1)
		if f.overflow == nil {
			var ok Key
			for i := range f.opts.Labels {
				ok[i] = Other
			}
			if c := f.m[ok]; c != nil {
				// A real label set of all "other" values already exists:
				// share it.
				return c
			}
			f.overflow = f.newChild(&ok)
			f.m[ok] = f.overflow
			f.live.Add(1)
		}
		return f.overflow
	}
	c := f.newChild(k)
	f.m[*k] = c
	f.n++
	f.live.Add(1)
	return c
}

func (f *Family) newChild(k *Key) *Child {
	s := f.set
	c := &Child{key: *k, ep: &s.epoch, fam: f}
	c.epoch.Store(s.epoch.Load())
	wp := weak.Make(c)
	c.weak = &wp
	labels := make(prometheus.Labels, len(f.opts.Labels))
	for i, name := range f.opts.Labels {
		labels[name] = k[i]
	}
	switch f.opts.Kind {
	case Counter:
		c.counter = prometheus.NewCounter(prometheus.CounterOpts{Name: f.opts.Name, Help: f.opts.Help, ConstLabels: labels})
		c.metric = c.counter
		if s.opts.Exemplars {
			c.exAt = make([]atomic.Int64, 1)
		}
	case Gauge:
		c.gauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: f.opts.Name, Help: f.opts.Help, ConstLabels: labels})
		c.metric = c.gauge
	case Histogram:
		ho := prometheus.HistogramOpts{Name: f.opts.Name, Help: f.opts.Help, ConstLabels: labels, Buckets: f.opts.Buckets}
		if s.opts.NativeBucketFactor > 1 {
			ho.NativeHistogramBucketFactor = s.opts.NativeBucketFactor
			ho.NativeHistogramMaxBucketNumber = s.opts.NativeMaxBuckets
			ho.NativeHistogramMinResetDuration = time.Hour
		}
		c.hist = prometheus.NewHistogram(ho)
		c.metric = c.hist
		if s.opts.Exemplars {
			c.exAt = make([]atomic.Int64, len(f.opts.Buckets)+1)
		}
	}
	return c
}

// Child is one series. Its recording methods are lock-free and do not
// allocate (except when an exemplar is attached). Recording into a dead
// Child is harmless but lost: holders check Dead and re-resolve.
type Child struct {
	fam   *Family
	key   Key
	ep    *atomic.Uint32
	epoch atomic.Uint32
	dead  atomic.Bool
	// weak is the Child's weak pointer, made once so that every Slot
	// caching c shares it without allocating.
	weak *weak.Pointer[Child]

	metric  prometheus.Metric
	counter prometheus.Counter
	gauge   prometheus.Gauge
	hist    prometheus.Histogram
	// exAt holds, per histogram bucket (+Inf included) or for the counter,
	// when the last exemplar was attached (Unix nanoseconds); nil when
	// exemplars are off.
	exAt []atomic.Int64
}

// Dead reports whether the series was expired; a holder must then
// re-resolve it with Family.Get.
func (c *Child) Dead() bool { return c.dead.Load() }

// Family returns the family c belongs to.
func (c *Child) Family() *Family { return c.fam }

// Value returns label value i of c.
func (c *Child) Value(i int) string { return c.key[i] }

func (c *Child) touch() {
	if e := c.ep.Load(); c.epoch.Load() != e {
		c.epoch.Store(e)
	}
}

// Touch marks c as in use without changing its value, so it does not
// expire (for series whose value is set rarely but stays meaningful).
func (c *Child) Touch() { c.touch() }

// Inc adds 1 to a counter or gauge.
func (c *Child) Inc() {
	c.touch()
	if c.counter != nil {
		c.counter.Inc()
	} else {
		c.gauge.Inc()
	}
}

// Dec subtracts 1 from a gauge.
func (c *Child) Dec() {
	c.touch()
	c.gauge.Dec()
}

// Add adds v (>= 0 for counters) to a counter or gauge.
func (c *Child) Add(v float64) {
	c.touch()
	if c.counter != nil {
		c.counter.Add(v)
	} else {
		c.gauge.Add(v)
	}
}

// Set sets a gauge.
func (c *Child) Set(v float64) {
	c.touch()
	c.gauge.Set(v)
}

// Observe records v in a histogram.
func (c *Child) Observe(v float64) {
	c.touch()
	c.hist.Observe(v)
}

// ObserveExemplar records v in a histogram and, unless the bucket got an
// exemplar less than the set's exemplar interval before at, attaches
// traceID as its exemplar (this allocates).
func (c *Child) ObserveExemplar(v float64, traceID *[16]byte, at time.Time) {
	c.touch()
	if c.exAt == nil {
		c.hist.Observe(v)
		return
	}
	i := sort.SearchFloat64s(c.fam.opts.Buckets, v)
	if !c.claimExemplar(i, at) {
		c.hist.Observe(v)
		return
	}
	c.hist.(prometheus.ExemplarObserver).ObserveWithExemplar(v, traceLabels(traceID))
}

// AddExemplar adds v to a counter and, unless it got an exemplar less than
// the set's exemplar interval before at, attaches traceID as its exemplar
// (this allocates).
func (c *Child) AddExemplar(v float64, traceID *[16]byte, at time.Time) {
	c.touch()
	if c.exAt == nil || !c.claimExemplar(0, at) {
		c.counter.Add(v)
		return
	}
	c.counter.(prometheus.ExemplarAdder).AddWithExemplar(v, traceLabels(traceID))
}

func (c *Child) claimExemplar(i int, at time.Time) bool {
	now := at.UnixNano()
	last := c.exAt[i].Load()
	if d := now - last; last != 0 && d < int64(c.fam.set.opts.ExemplarInterval) && -d < int64(c.fam.set.opts.ExemplarInterval) {
		return false
	}
	return c.exAt[i].CompareAndSwap(last, now)
}

func traceLabels(id *[16]byte) prometheus.Labels {
	return prometheus.Labels{"trace_id": hex.EncodeToString(id[:])}
}

// Slot caches one Child for a holder. The zero value is empty. It holds
// the Child weakly: once the family drops the series (idle expiry, Delete)
// and no recorder is using it, its memory is freed even though the Slot
// lives on, and Load returns nil.
type Slot struct {
	p atomic.Pointer[weak.Pointer[Child]]
}

// Load returns the cached Child, or nil when there is none or it expired.
// It does not allocate.
func (s *Slot) Load() *Child {
	wp := s.p.Load()
	if wp == nil {
		return nil
	}
	c := wp.Value()
	if c == nil || c.dead.Load() {
		return nil
	}
	return c
}

// Resolve looks k up in f, caches the result and returns it. It allocates
// only when it creates the series.
func (s *Slot) Resolve(f *Family, k *Key) *Child {
	c := f.Get(k)
	s.p.Store(c.weak)
	return c
}
