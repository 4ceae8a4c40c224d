// Package series keeps metric families whose label sets are created on
// demand, capped, and expired when idle, so that the request path can hold
// pre-resolved series and record into them without label lookups, and a
// scrape never waits for the request path nor the request path for a scrape.
//
// A Set is a prometheus.Gatherer holding families. A Family maps label
// values (a Key) to a Child, the series itself: its label values once and
// its value in atomics (a counter's, a gauge's, or a classic histogram's
// bucket counts and sum), while the name, help, label names and bucket
// bounds are the family's, shared by its series. Gather writes the
// protobuf samples from them; no series carries a client_golang Desc,
// except the histograms of a set with native histograms, which keep
// client_golang's implementation. Holders
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
	"hash/maphash"
	"math"
	"regexp"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"weak"

	"github.com/prometheus/client_golang/prometheus"
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
	// Now tells the time a series is created (its created timestamp);
	// nil is time.Now.
	Now func() time.Time
}

// Set is a collector of capped, expiring families. Its zero value is not
// usable; build it with NewSet.
type Set struct {
	opts     Options
	clock    func() time.Time
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
	clk := o.Now
	if clk == nil {
		clk = time.Now
	}
	return &Set{
		opts:     o,
		clock:    clk,
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
		// The +Inf bucket is implicit; a trailing +Inf bound is dropped,
		// as client_golang drops it.
		if n := len(o.Buckets); n > 0 && math.IsInf(o.Buckets[n-1], 1) {
			o.Buckets = o.Buckets[:n-1]
		}
		if len(o.Buckets) == 0 {
			return nil, fmt.Errorf("series: histogram %q needs finite buckets", o.Name)
		}
		for i, b := range o.Buckets {
			if math.IsNaN(b) || i > 0 && b <= o.Buckets[i-1] {
				return nil, fmt.Errorf("series: histogram %q: buckets not in increasing order: %v", o.Name, o.Buckets)
			}
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
	f := &Family{set: s, opts: o, seed: maphash.MakeSeed(), mask: ^uint64(0), m: map[uint64]*Child{}}
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
		for _, head := range f.m {
			for c := head; c != nil; c = c.next {
				if isIdle(c, e) {
					idle = append(idle, c)
				}
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
			if !isIdle(c, e) || f.find(&c.key) != c {
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

func gaugeValue(c *Child) float64 { return math.Float64frombits(c.bits.Load()) }

func isIdle(c *Child, e uint32) bool {
	last := c.epoch.Load()
	return last < e && e-last > epochsPerIdle
}

// Family is one metric name with its label sets.
type Family struct {
	set  *Set
	opts FamilyOpts

	// m maps a hash of a label set's values to the series of that hash,
	// chained through Child.next: a series' label values are kept once,
	// in the series, instead of again as the map's key.
	mu       sync.RWMutex
	seed     maphash.Seed
	mask     uint64 // all ones; tests narrow it to force collisions
	m        map[uint64]*Child
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
	c := f.find(k)
	f.mu.RUnlock()
	if c != nil {
		return c
	}
	return f.create(k)
}

// hash returns the hash of k's values in f.
func (f *Family) hash(k *Key) uint64 {
	h := uint64(len(f.opts.Labels))
	for i := range f.opts.Labels {
		h = (h ^ maphash.String(f.seed, k[i])) * 0x9e3779b97f4a7c15
	}
	return h & f.mask
}

// find returns the series of k, or nil. f.mu must be held.
func (f *Family) find(k *Key) *Child {
	for c := f.m[f.hash(k)]; c != nil; c = c.next {
		if c.key == *k {
			return c
		}
	}
	return nil
}

// insertLocked adds c to f.m. f.mu must be held for writing.
func (f *Family) insertLocked(c *Child) {
	h := f.hash(&c.key)
	c.next = f.m[h]
	f.m[h] = c
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
	if c := f.find(k); c != nil {
		f.removeLocked(c)
	}
}

// removeLocked removes c from f and marks it dead. f.mu must be held.
func (f *Family) removeLocked(c *Child) {
	h := f.hash(&c.key)
	if f.m[h] == c {
		if c.next == nil {
			delete(f.m, h)
		} else {
			f.m[h] = c.next
		}
	} else {
		for p := f.m[h]; p != nil; p = p.next {
			if p.next == c {
				p.next = c.next
				break
			}
		}
	}
	c.next = nil
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
	if c := f.find(k); c != nil {
		return c
	}
	if !valid || f.n >= f.opts.MaxSeries {
		f.folded.Add(1)
		if f.overflow == nil {
			var ok Key
			for i := range f.opts.Labels {
				ok[i] = Other
			}
			if c := f.find(&ok); c != nil {
				// A real label set of all "other" values already exists:
				// share it.
				return c
			}
			f.overflow = f.newChild(&ok)
			f.insertLocked(f.overflow)
			f.live.Add(1)
		}
		return f.overflow
	}
	c := f.newChild(k)
	f.insertLocked(c)
	f.n++
	f.live.Add(1)
	return c
}

func (f *Family) newChild(k *Key) *Child {
	s := f.set
	c := &Child{key: *k, fam: f}
	c.epoch.Store(s.epoch.Load())
	wp := weak.Make(c)
	c.weak = &wp
	if f.opts.Kind != Gauge {
		c.created = s.clock().UnixNano()
	}
	switch f.opts.Kind {
	case Counter:
		if s.opts.Exemplars {
			c.ex = make([]atomic.Pointer[exemplar], 1)
		}
	case Histogram:
		if s.opts.NativeBucketFactor > 1 {
			c.native = &native{f.newNative(k)}
		} else {
			c.buckets = make([]atomic.Uint64, len(f.opts.Buckets)+1)
		}
		if s.opts.Exemplars {
			c.ex = make([]atomic.Pointer[exemplar], len(f.opts.Buckets)+1)
		}
	}
	return c
}

// newNative returns a client_golang histogram for k that is also a native
// histogram: the opt-in native histograms keep client_golang's
// implementation, with a Desc per series.
func (f *Family) newNative(k *Key) prometheus.Histogram {
	labels := make(prometheus.Labels, len(f.opts.Labels))
	for i, name := range f.opts.Labels {
		labels[name] = k[i]
	}
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: f.opts.Name, Help: f.opts.Help, ConstLabels: labels, Buckets: f.opts.Buckets,
		NativeHistogramBucketFactor:     f.set.opts.NativeBucketFactor,
		NativeHistogramMaxBucketNumber:  f.set.opts.NativeMaxBuckets,
		NativeHistogramMinResetDuration: time.Hour,
	})
}

// Child is one series. Its recording methods are lock-free and do not
// allocate (except when an exemplar is attached). Recording into a dead
// Child is harmless but lost: holders check Dead and re-resolve.
//
// A series keeps its label values once (its Key) and its values in atomics;
// the family holds the name, help, label names and bucket bounds shared by
// all its series, and Gather writes the protobuf samples from them.
type Child struct {
	fam *Family
	// next is the series after c in its family's hash chain (f.mu).
	next  *Child
	key   Key
	epoch atomic.Uint32
	dead  atomic.Bool
	// weak is the Child's weak pointer, made once so that every Slot
	// caching c shares it without allocating.
	weak *weak.Pointer[Child]
	// created is when the series was made (Unix nanoseconds), exposed as
	// the created timestamp of counters and histograms.
	created int64

	// bits is a float64's bits: a counter's non-integral part, a gauge's
	// value, a histogram's sum.
	bits atomic.Uint64
	// n is a counter's integral part, added without a compare-and-swap.
	n atomic.Uint64
	// buckets are a classic histogram's counts per bucket, not cumulative,
	// the last one for +Inf; their sum is the count.
	buckets []atomic.Uint64
	// ex holds, per histogram bucket (+Inf included) or for the counter,
	// the latest exemplar; nil when exemplars are off.
	ex []atomic.Pointer[exemplar]
	// native is the client_golang histogram of a native histogram family.
	native *native
}

// native is a client_golang histogram that is also a native histogram.
type native struct{ prometheus.Histogram }

// exemplar is a trace id attached to an observation or an increment.
type exemplar struct {
	at    int64 // Unix nanoseconds
	value float64
	trace [16]byte
}

// Dead reports whether the series was expired; a holder must then
// re-resolve it with Family.Get.
func (c *Child) Dead() bool { return c.dead.Load() }

// Family returns the family c belongs to.
func (c *Child) Family() *Family { return c.fam }

// Value returns label value i of c.
func (c *Child) Value(i int) string { return c.key[i] }

func (c *Child) touch() {
	if e := c.fam.set.epoch.Load(); c.epoch.Load() != e {
		c.epoch.Store(e)
	}
}

// Touch marks c as in use without changing its value, so it does not
// expire (for series whose value is set rarely but stays meaningful).
func (c *Child) Touch() { c.touch() }

// Inc adds 1 to a counter or gauge.
func (c *Child) Inc() {
	c.touch()
	if c.fam.opts.Kind == Counter {
		c.n.Add(1)
	} else {
		c.addFloat(1)
	}
}

// Dec subtracts 1 from a gauge.
func (c *Child) Dec() {
	c.touch()
	c.addFloat(-1)
}

// Add adds v (>= 0 for counters) to a counter or gauge. Adding a negative
// value to a counter panics, as client_golang's counters do.
func (c *Child) Add(v float64) {
	c.touch()
	if c.fam.opts.Kind == Counter {
		c.addCounter(v)
	} else {
		c.addFloat(v)
	}
}

func (c *Child) addCounter(v float64) {
	if v < 0 {
		panic(fmt.Sprintf("series: counter %s cannot decrease (added %v)", c.fam.opts.Name, v))
	}
	if i := uint64(v); float64(i) == v {
		c.n.Add(i)
		return
	}
	c.addFloat(v)
}

// addFloat adds v to the float64 in c.bits.
func (c *Child) addFloat(v float64) {
	for {
		old := c.bits.Load()
		if c.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Set sets a gauge.
func (c *Child) Set(v float64) {
	c.touch()
	c.bits.Store(math.Float64bits(v))
}

// Observe records v in a histogram.
func (c *Child) Observe(v float64) {
	c.touch()
	if c.native != nil {
		c.native.Observe(v)
		return
	}
	c.observe(v, c.fam.bucket(v))
}

// observe adds v to bucket i and to the sum. The count is the buckets'
// sum, so a scrape's count always equals its +Inf bucket.
func (c *Child) observe(v float64, i int) {
	c.buckets[i].Add(1)
	c.addFloat(v)
}

// bucket returns the index of v's bucket: the first upper bound >= v, or
// len(bounds) for +Inf (and NaN), as client_golang finds it.
func (f *Family) bucket(v float64) int {
	b := f.opts.Buckets
	n := len(b)
	if v <= b[0] {
		return 0
	}
	if v > b[n-1] {
		return n
	}
	if n < 35 {
		for i, ub := range b {
			if v <= ub {
				return i
			}
		}
		return n
	}
	return sort.SearchFloat64s(b, v)
}

// ObserveExemplar records v in a histogram and, unless the bucket got an
// exemplar less than the set's exemplar interval before at, attaches
// traceID as its exemplar, timestamped at (this allocates).
func (c *Child) ObserveExemplar(v float64, traceID *[16]byte, at time.Time) {
	c.touch()
	i := c.fam.bucket(v)
	if c.native != nil {
		if c.ex != nil && c.claimExemplar(i, v, traceID, at) {
			c.native.Histogram.(prometheus.ExemplarObserver).ObserveWithExemplar(v, traceLabels(traceID))
		} else {
			c.native.Observe(v)
		}
		return
	}
	c.observe(v, i)
	if c.ex != nil {
		c.claimExemplar(i, v, traceID, at)
	}
}

// AddExemplar adds v to a counter and, unless it got an exemplar less than
// the set's exemplar interval before at, attaches traceID as its exemplar,
// timestamped at (this allocates).
func (c *Child) AddExemplar(v float64, traceID *[16]byte, at time.Time) {
	c.touch()
	c.addCounter(v)
	if c.ex != nil {
		c.claimExemplar(0, v, traceID, at)
	}
}

// claimExemplar replaces exemplar i by (v, traceID, at) unless the one it
// holds is less than the exemplar interval away from at; it reports
// whether it did. It is called after the value is recorded, and Gather
// reads exemplars before values, so that no scrape shows an exemplar of
// an observation it does not count.
func (c *Child) claimExemplar(i int, v float64, traceID *[16]byte, at time.Time) bool {
	now := at.UnixNano()
	old := c.ex[i].Load()
	if old != nil {
		iv := int64(c.fam.set.opts.ExemplarInterval)
		if d := now - old.at; d < iv && -d < iv {
			return false
		}
	}
	return c.ex[i].CompareAndSwap(old, &exemplar{at: now, value: v, trace: *traceID})
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
