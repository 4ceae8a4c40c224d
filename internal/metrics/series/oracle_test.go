package series

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

// oracle records the same operations into a Set and into client_golang
// Counters, Gauges and Histograms built with the label values as constant
// labels (what each series was before), registered in a pedantic
// registry, so that the two gathers can be compared.
type oracle struct {
	set *Set
	reg *prometheus.Registry
	lib map[*Child]prometheus.Metric
}

func newOracle(t *testing.T, o Options) *oracle {
	t.Helper()
	return &oracle{set: NewSet(o, t0), reg: prometheus.NewPedanticRegistry(), lib: map[*Child]prometheus.Metric{}}
}

func (or *oracle) child(t *testing.T, f *Family, values ...string) (*Child, prometheus.Metric) {
	t.Helper()
	c := f.With(values...)
	if m, ok := or.lib[c]; ok {
		return c, m
	}
	labels := prometheus.Labels{}
	for i, name := range f.opts.Labels {
		labels[name] = values[i]
	}
	var m prometheus.Metric
	switch f.opts.Kind {
	case Counter:
		m = prometheus.NewCounter(prometheus.CounterOpts{Name: f.opts.Name, Help: f.opts.Help, ConstLabels: labels})
	case Gauge:
		m = prometheus.NewGauge(prometheus.GaugeOpts{Name: f.opts.Name, Help: f.opts.Help, ConstLabels: labels})
	case Histogram:
		m = prometheus.NewHistogram(prometheus.HistogramOpts{Name: f.opts.Name, Help: f.opts.Help, ConstLabels: labels, Buckets: f.opts.Buckets})
	}
	if err := or.reg.Register(m.(prometheus.Collector)); err != nil {
		t.Fatal(err)
	}
	or.lib[c] = m
	return c, m
}

// compare gathers both sides and compares every sample: labels, values,
// buckets, sums, counts and exemplars (labels and values; the library
// timestamps its exemplars and created times with the wall clock, so
// those are checked against the set's inputs instead) and, with expose,
// their text and OpenMetrics exposition.
func (or *oracle) compare(t *testing.T, now time.Time, expose bool) {
	t.Helper()
	got, err := or.set.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got = slices.DeleteFunc(got, func(mf *dto.MetricFamily) bool { return !or.set.names[mf.GetName()] })
	want, err := or.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d families, the library has %d", len(got), len(want))
	}
	for i := range got {
		g, w := proto.Clone(got[i]).(*dto.MetricFamily), proto.Clone(want[i]).(*dto.MetricFamily)
		for _, m := range g.Metric {
			checkTimes(t, m, now)
		}
		clearTimes(g)
		clearTimes(w)
		if !proto.Equal(g, w) {
			t.Fatalf("family %s differs from the library's:\n ours %v\n  lib %v", g.GetName(), g, w)
		}
		if !expose {
			continue
		}
		for _, ft := range []expfmt.Format{expfmt.NewFormat(expfmt.TypeTextPlain), expfmt.NewFormat(expfmt.TypeOpenMetrics)} {
			if ge, we := encode(t, g, ft), encode(t, w, ft); ge != we {
				t.Fatalf("family %s is exposed differently (%s):\n ours %s\n  lib %s", g.GetName(), ft, ge, we)
			}
		}
	}
}

func encode(t *testing.T, mf *dto.MetricFamily, f expfmt.Format) string {
	t.Helper()
	var b strings.Builder
	if err := expfmt.NewEncoder(&b, f).Encode(mf); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkTimes checks that a sample's created timestamp is the set's clock
// at creation and its exemplars' timestamps are the times recorded with
// them (both are at or before now in these tests).
func checkTimes(t *testing.T, m *dto.Metric, now time.Time) {
	t.Helper()
	var ct interface{ AsTime() time.Time }
	var exs []*dto.Exemplar
	switch {
	case m.Counter != nil:
		ct = m.Counter.CreatedTimestamp
		exs = append(exs, m.Counter.Exemplar)
	case m.Histogram != nil:
		ct = m.Histogram.CreatedTimestamp
		for _, b := range m.Histogram.Bucket {
			exs = append(exs, b.Exemplar)
		}
	}
	if ct != nil && !ct.AsTime().Equal(t0) {
		t.Errorf("created timestamp %v, want %v", ct.AsTime(), t0)
	}
	for _, e := range exs {
		if e == nil {
			continue
		}
		if at := e.GetTimestamp().AsTime(); at.Before(t0) || at.After(now) {
			t.Errorf("exemplar timestamp %v outside [%v, %v]", at, t0, now)
		}
	}
}

func clearTimes(mf *dto.MetricFamily) {
	for _, m := range mf.Metric {
		if c := m.Counter; c != nil {
			c.CreatedTimestamp = nil
			if c.Exemplar != nil {
				c.Exemplar.Timestamp = nil
			}
		}
		if h := m.Histogram; h != nil {
			h.CreatedTimestamp = nil
			for _, b := range h.Bucket {
				if b.Exemplar != nil {
					b.Exemplar.Timestamp = nil
				}
			}
		}
	}
}

// value returns a random observation: often a bucket bound itself (the
// bound belongs to its bucket), sometimes below, between or above all
// bounds, negative, +Inf or NaN.
func value(r *rand.Rand, bounds []float64) float64 {
	switch r.IntN(10) {
	case 0:
		return bounds[r.IntN(len(bounds))]
	case 1:
		return math.Nextafter(bounds[r.IntN(len(bounds))], math.Inf(1))
	case 2:
		return -r.Float64()
	case 3:
		return bounds[len(bounds)-1] * (1 + r.Float64()*10)
	case 4:
		if r.IntN(20) == 0 {
			return math.NaN()
		}
		if r.IntN(20) == 0 {
			return math.Inf(1)
		}
	}
	return r.Float64() * bounds[len(bounds)-1]
}

// randomBounds returns 1 to 34 increasing bounds, or with many 35 to 42:
// past 34 bounds the library searches by bisection.
func randomBounds(r *rand.Rand, many bool) []float64 {
	n := 1 + r.IntN(34)
	if many {
		n = 35 + r.IntN(8)
	}
	b := make([]float64, n)
	x := r.Float64() - 0.5
	for i := range b {
		x += math.Ldexp(r.Float64()+0.001, r.IntN(8)-4)
		b[i] = x
	}
	return b
}

// TestMatchesClientGolang is the oracle of the series' representation:
// random increments, settings and observations, with and without
// exemplars, recorded both into a Set and into client_golang metrics,
// gather to the same samples and expose the same text.
func TestMatchesClientGolang(t *testing.T) {
	for seed := range uint64(16) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 21))
			or := newOracle(t, Options{MaxSeries: 1000, IdleTimeout: time.Hour, Exemplars: true, Now: func() time.Time { return t0 }})
			labels := [][]string{{"route", "service"}, {"zone", "app"}}[r.IntN(2)]
			cf := or.set.MustFamily(FamilyOpts{Name: "o_total", Help: "c", Kind: Counter, Labels: labels})
			gf := or.set.MustFamily(FamilyOpts{Name: "o_gauge", Help: "g", Kind: Gauge, Labels: labels})
			hf := or.set.MustFamily(FamilyOpts{Name: "o_seconds", Help: "h", Kind: Histogram, Labels: labels, Buckets: randomBounds(r, seed%4 == 3)})
			vals := []string{"a", "b", "c", "d\"x", "é"}
			now := t0
			for range 1500 {
				now = now.Add(time.Duration(r.IntN(1000)) * time.Microsecond)
				lv := []string{vals[r.IntN(len(vals))], vals[r.IntN(len(vals))]}
				id := [16]byte{byte(r.Uint32()), 1, 2, byte(r.Uint32())}
				switch r.IntN(3) {
				case 0:
					c, m := or.child(t, cf, lv...)
					lib := m.(prometheus.Counter)
					switch r.IntN(4) {
					case 0:
						c.Inc()
						lib.Inc()
					case 1:
						v := float64(r.IntN(5000))
						c.Add(v)
						lib.Add(v)
					case 2:
						v := r.Float64() * 100
						c.Add(v)
						lib.Add(v)
					case 3:
						v := float64(r.IntN(3)) + r.Float64()*float64(r.IntN(2))
						c.AddExemplar(v, &id, now)
						lib.(prometheus.ExemplarAdder).AddWithExemplar(v, traceLabels(&id))
					}
				case 1:
					c, m := or.child(t, gf, lv...)
					lib := m.(prometheus.Gauge)
					v := (r.Float64() - 0.5) * 1000
					switch r.IntN(4) {
					case 0:
						c.Inc()
						lib.Inc()
					case 1:
						c.Dec()
						lib.Dec()
					case 2:
						c.Add(v)
						lib.Add(v)
					case 3:
						c.Set(v)
						lib.Set(v)
					}
				case 2:
					c, m := or.child(t, hf, lv...)
					lib := m.(prometheus.Histogram)
					v := value(r, hf.opts.Buckets)
					if r.IntN(3) == 0 {
						c.ObserveExemplar(v, &id, now)
						lib.(prometheus.ExemplarObserver).ObserveWithExemplar(v, traceLabels(&id))
					} else {
						c.Observe(v)
						lib.Observe(v)
					}
				}
				if r.IntN(400) == 0 {
					or.compare(t, now, false)
				}
			}
			or.compare(t, now, true)
		})
	}
}

// TestScrapeConsistentUnderRecording: scrapes taken while recorders
// observe never show a bucket above the count (the +Inf bucket), a
// cumulative bucket below the one before it, or any bucket, count or sum
// of a later scrape below an earlier one's; once recording stops the
// count and sum are exact.
func TestScrapeConsistentUnderRecording(t *testing.T) {
	s := NewSet(Options{MaxSeries: 10, IdleTimeout: time.Hour, Exemplars: true}, t0)
	f := s.MustFamily(FamilyOpts{Name: "h_seconds", Help: "h", Kind: Histogram, Buckets: []float64{1, 2, 4}})
	c := f.With()
	const workers, per = 4, 18000 // per: a multiple of 6
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := [16]byte{byte(w)}
			for i := range per {
				v := float64((i + w) % 6) // 0…5: every bucket, +Inf included
				if i%100 == 0 {
					c.ObserveExemplar(v, &id, t0.Add(time.Duration(i)*time.Second))
				} else {
					c.Observe(v)
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var prev []uint64
	var prevSum float64
	scrapes := 0
	for finished := false; !finished; scrapes++ {
		select {
		case <-done:
			finished = true
		default:
		}
		mfs, err := s.Gather()
		if err != nil {
			t.Fatal(err)
		}
		h := mfs[0].Metric[0].Histogram
		count := h.GetSampleCount()
		var cur []uint64
		for i, b := range h.Bucket {
			cc := b.GetCumulativeCount()
			if cc > count {
				t.Fatalf("scrape %d: bucket le=%v has %d, above the count %d", scrapes, b.GetUpperBound(), cc, count)
			}
			if math.IsInf(b.GetUpperBound(), 1) && cc != count {
				t.Fatalf("scrape %d: +Inf bucket %d, count %d", scrapes, cc, count)
			}
			if i > 0 && cc < cur[i-1] {
				t.Fatalf("scrape %d: cumulative bucket %d decreases", scrapes, i)
			}
			cur = append(cur, cc)
		}
		cur = append(cur[:3:3], count) // the +Inf exemplar bucket may come and go
		for i := range prev {
			if cur[i] < prev[i] {
				t.Fatalf("scrape %d: bucket %d went from %d to %d", scrapes, i, prev[i], cur[i])
			}
		}
		if sum := h.GetSampleSum(); sum < prevSum {
			t.Fatalf("scrape %d: sum went from %v to %v", scrapes, prevSum, sum)
		} else {
			prevSum = sum
		}
		prev = cur
		if finished {
			if count != workers*per {
				t.Errorf("final count %d, want %d", count, workers*per)
			}
			if want := float64(workers * per / 6 * 15); h.GetSampleSum() != want {
				t.Errorf("final sum %v, want %v", h.GetSampleSum(), want)
			}
			if cur[0] != workers*per/6*2 || cur[1] != workers*per/6*3 || cur[2] != workers*per/6*5 {
				t.Errorf("final buckets %v", cur)
			}
		}
	}
	t.Logf("%d scrapes during recording", scrapes)
}

// TestNativeHistograms: with native histograms on, a histogram series is
// client_golang's (native buckets and classic ones), with its labels and
// exemplars, the exemplar interval applying as for classic histograms.
func TestNativeHistograms(t *testing.T) {
	s := NewSet(Options{MaxSeries: 10, IdleTimeout: time.Hour, Exemplars: true, ExemplarInterval: time.Second, NativeBucketFactor: 1.1}, t0)
	f := s.MustFamily(FamilyOpts{Name: "n_seconds", Help: "n", Kind: Histogram, Labels: []string{"route"}, Buckets: []float64{0.1, 1}})
	c := f.With("r1")
	a, b := [16]byte{0xaa}, [16]byte{0xbb}
	c.ObserveExemplar(0.05, &a, t0)
	c.ObserveExemplar(0.06, &b, t0.Add(time.Millisecond)) // within the interval: no exemplar
	c.Observe(2)
	mfs, err := prometheus.Gatherers{s}.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var h *dto.Histogram
	for _, mf := range mfs {
		if mf.GetName() == "n_seconds" {
			m := mf.Metric[0]
			if len(m.Label) != 1 || m.Label[0].GetName() != "route" || m.Label[0].GetValue() != "r1" {
				t.Fatalf("labels %v", m.Label)
			}
			h = m.Histogram
		}
	}
	if h == nil || h.Schema == nil || len(h.PositiveSpan) == 0 {
		t.Fatalf("not a native histogram: %v", h)
	}
	if h.GetSampleCount() != 3 || h.Bucket[0].GetCumulativeCount() != 2 || h.Bucket[1].GetCumulativeCount() != 2 {
		t.Errorf("classic buckets %v, count %d", h.Bucket, h.GetSampleCount())
	}
	ex := h.Bucket[0].GetExemplar()
	if ex == nil || ex.Label[0].GetValue() != "aa000000000000000000000000000000" || ex.GetValue() != 0.05 {
		t.Errorf("exemplar %v, want the first trace's", ex)
	}
}
