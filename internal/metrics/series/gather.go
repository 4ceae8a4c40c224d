package series

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Gather implements prometheus.Gatherer: the set's families, sorted by
// name, each with its series sorted by label values (in label-name order,
// as a prometheus.Registry sorts them), then the set's own
// bookkeeping families. It reads every series without blocking recorders.
//
// It builds the protobuf families straight from the series instead of
// through a prometheus.Registry, which re-hashes and re-checks every
// sample's labels and sorts samples by comparing label pairs: for 10,000
// series that was most of a scrape's CPU. The checks are not needed here:
// a family's label names are validated when it is made, its label sets
// are distinct map keys, and family names are unique in the set.
func (s *Set) Gather() ([]*dto.MetricFamily, error) {
	fams := s.snapshotFamilies()
	out := make([]*dto.MetricFamily, 0, len(fams)+4)
	series := newBookkeeping("vantage_metrics_series", "Label sets (series) a metric family holds now.", dto.MetricType_GAUGE)
	folded := newBookkeeping("vantage_metrics_series_folded_total", "Lookups of a new label set that were folded into the family's \"other\" series because the family was at its series cap (or a label value was invalid).", dto.MetricType_COUNTER)
	expired := newBookkeeping("vantage_metrics_series_expired_total", "Series removed because they were not updated for the idle timeout.", dto.MetricType_COUNTER)
	limit := newBookkeeping("vantage_metrics_series_limit", "The series cap of each metric family (metrics.max_series_per_metric; for histograms metrics.max_histogram_series_per_metric).", dto.MetricType_GAUGE)
	var buf []*Child
	var errs []error
	for _, f := range fams {
		f.mu.RLock()
		buf = buf[:0]
		for _, head := range f.m {
			for c := head; c != nil; c = c.next {
				buf = append(buf, c)
			}
		}
		f.mu.RUnlock()
		series.add(f.opts.Name, float64(f.live.Load()))
		folded.add(f.opts.Name, float64(f.folded.Load()))
		expired.add(f.opts.Name, float64(f.expired.Load()))
		limit.add(f.opts.Name, float64(f.opts.MaxSeries))
		if len(buf) == 0 {
			continue // a registry leaves out families without series too
		}
		n := len(f.opts.Labels)
		slices.SortFunc(buf, func(a, b *Child) int {
			for _, i := range f.byName {
				if c := strings.Compare(a.key[i], b.key[i]); c != 0 {
					return c
				}
			}
			return 0
		})
		mf := &dto.MetricFamily{Name: &f.opts.Name, Help: &f.opts.Help, Type: f.opts.Kind.dtoType(), Metric: make([]*dto.Metric, 0, len(buf))}
		w := newWriter(f, len(buf))
		for _, c := range buf {
			m := w.metric()
			if c.native != nil {
				if err := c.native.Write(m); err != nil {
					errs = append(errs, fmt.Errorf("series %s%v: %w", f.opts.Name, c.key[:n], err))
					continue
				}
			} else {
				w.write(c, m)
			}
			mf.Metric = append(mf.Metric, m)
		}
		out = append(out, mf)
	}
	out = append(out, series.family(), folded.family(), expired.family(), limit.family())
	out = slices.DeleteFunc(out, func(mf *dto.MetricFamily) bool { return len(mf.Metric) == 0 })
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	if len(errs) > 0 {
		return out, prometheus.MultiError(errs)
	}
	return out, nil
}

func (k Kind) dtoType() *dto.MetricType {
	switch k {
	case Counter:
		return dto.MetricType_COUNTER.Enum()
	case Gauge:
		return dto.MetricType_GAUGE.Enum()
	default:
		return dto.MetricType_HISTOGRAM.Enum()
	}
}

// writer writes the samples of one family's series, taking their protobuf
// parts from arrays sized for the family's series at once instead of an
// allocation per field. Label names, the family's bucket bounds and label
// values are shared with the family and its series, not copied.
type writer struct {
	f      *Family
	prev   *Child // the series written last
	ms     []dto.Metric
	labels []dto.LabelPair // allocated chunk elements at a time
	chunk  int
	lps    []*dto.LabelPair
	floats []float64
	ts     []timestamppb.Timestamp

	counters []dto.Counter
	gauges   []dto.Gauge

	hists   []dto.Histogram
	buckets []dto.Bucket
	bps     []*dto.Bucket
	counts  []uint64
}

func newWriter(f *Family, n int) *writer {
	nl := len(f.opts.Labels)
	w := &writer{
		f:      f,
		ms:     make([]dto.Metric, 0, n),
		chunk:  n/2 + 16,
		lps:    make([]*dto.LabelPair, 0, n*nl),
		floats: make([]float64, 0, n),
	}
	switch f.opts.Kind {
	case Counter:
		w.counters = make([]dto.Counter, 0, n)
		w.ts = make([]timestamppb.Timestamp, 0, n)
	case Gauge:
		w.gauges = make([]dto.Gauge, 0, n)
	case Histogram:
		if f.set.opts.NativeBucketFactor > 1 {
			break // client_golang writes native histograms
		}
		nb := len(f.opts.Buckets)
		w.ts = make([]timestamppb.Timestamp, 0, n)
		w.hists = make([]dto.Histogram, 0, n)
		w.buckets = make([]dto.Bucket, 0, n*nb)
		w.bps = make([]*dto.Bucket, 0, n*nb)
		w.counts = make([]uint64, 0, n*(nb+1))
	}
	return w
}

func (w *writer) metric() *dto.Metric {
	w.ms = append(w.ms, dto.Metric{})
	return &w.ms[len(w.ms)-1]
}

func (w *writer) float(v float64) *float64 {
	w.floats = append(w.floats, v)
	return &w.floats[len(w.floats)-1]
}

func (w *writer) created(c *Child) *timestamppb.Timestamp {
	w.ts = append(w.ts, timestamppb.Timestamp{Seconds: c.created / 1e9, Nanos: int32(c.created % 1e9)})
	return &w.ts[len(w.ts)-1]
}

// write fills m with c's labels (sorted by name, as a Desc sorts constant
// labels) and value, as client_golang's Counter, Gauge and classic
// Histogram write theirs.
func (w *writer) write(c *Child, m *dto.Metric) {
	start := len(w.lps)
	for j, i := range w.f.byName {
		// Series come sorted by label values: a value equal to the
		// previous series' shares its label pair (read-only).
		if w.prev != nil && w.prev.key[i] == c.key[i] {
			w.lps = append(w.lps, w.lps[start-len(w.f.byName)+j])
			continue
		}
		if len(w.labels) == cap(w.labels) {
			w.labels = make([]dto.LabelPair, 0, w.chunk)
		}
		w.labels = append(w.labels, dto.LabelPair{Name: &w.f.opts.Labels[i], Value: &c.key[i]})
		w.lps = append(w.lps, &w.labels[len(w.labels)-1])
	}
	w.prev = c
	if len(w.lps) > start {
		m.Label = w.lps[start:len(w.lps):len(w.lps)]
	}
	switch w.f.opts.Kind {
	case Counter:
		// The exemplar first, then the value: a scrape never shows the
		// exemplar of an increment it does not count.
		var ex *dto.Exemplar
		if c.ex != nil {
			ex = c.ex[0].Load().dto()
		}
		v := math.Float64frombits(c.bits.Load()) + float64(c.n.Load())
		w.counters = append(w.counters, dto.Counter{Value: w.float(v), Exemplar: ex, CreatedTimestamp: w.created(c)})
		m.Counter = &w.counters[len(w.counters)-1]
	case Gauge:
		w.gauges = append(w.gauges, dto.Gauge{Value: w.float(math.Float64frombits(c.bits.Load()))})
		m.Gauge = &w.gauges[len(w.gauges)-1]
	case Histogram:
		w.histogram(c, m)
	}
}

// histogram writes a classic histogram: cumulative bucket counts of the
// finite bounds, the count as the sum of every bucket (+Inf included) so
// that the +Inf bucket always equals the count, and the sum. Each bucket
// only grows, so no bucket of a later scrape is below an earlier one's.
func (w *writer) histogram(c *Child, m *dto.Metric) {
	bounds := w.f.opts.Buckets
	var inf *dto.Exemplar
	start := len(w.bps)
	var cum uint64
	for i := range bounds {
		var ex *dto.Exemplar
		if c.ex != nil {
			ex = c.ex[i].Load().dto()
		}
		cum += c.buckets[i].Load()
		w.counts = append(w.counts, cum)
		w.buckets = append(w.buckets, dto.Bucket{CumulativeCount: &w.counts[len(w.counts)-1], UpperBound: &bounds[i], Exemplar: ex})
		w.bps = append(w.bps, &w.buckets[len(w.buckets)-1])
	}
	if c.ex != nil {
		inf = c.ex[len(bounds)].Load().dto()
	}
	cum += c.buckets[len(bounds)].Load()
	w.counts = append(w.counts, cum)
	count := &w.counts[len(w.counts)-1]
	w.hists = append(w.hists, dto.Histogram{
		SampleCount:      count,
		SampleSum:        w.float(math.Float64frombits(c.bits.Load())),
		Bucket:           w.bps[start:len(w.bps):len(w.bps)],
		CreatedTimestamp: w.created(c),
	})
	h := &w.hists[len(w.hists)-1]
	if inf != nil {
		// As client_golang: an exemplar in the +Inf bucket makes that
		// bucket explicit.
		h.Bucket = append(h.Bucket, &dto.Bucket{CumulativeCount: count, UpperBound: &posInf, Exemplar: inf})
	}
	m.Histogram = h
}

var posInf = math.Inf(1)

var traceIDLabel = "trace_id"

// dto returns e as a protobuf exemplar labelled trace_id, or nil for nil.
func (e *exemplar) dto() *dto.Exemplar {
	if e == nil {
		return nil
	}
	id := hex.EncodeToString(e.trace[:])
	v := e.value
	return &dto.Exemplar{
		Label:     []*dto.LabelPair{{Name: &traceIDLabel, Value: &id}},
		Value:     &v,
		Timestamp: &timestamppb.Timestamp{Seconds: e.at / 1e9, Nanos: int32(e.at % 1e9)},
	}
}

// bookkeeping builds one of the per-family bookkeeping families, labelled
// by metric name.
type bookkeeping struct{ mf *dto.MetricFamily }

func newBookkeeping(name, help string, t dto.MetricType) *bookkeeping {
	return &bookkeeping{mf: &dto.MetricFamily{Name: &name, Help: &help, Type: t.Enum()}}
}

var metricLabel = "metric"

func (b *bookkeeping) add(family string, v float64) {
	m := &dto.Metric{Label: []*dto.LabelPair{{Name: &metricLabel, Value: &family}}}
	if b.mf.GetType() == dto.MetricType_COUNTER {
		m.Counter = &dto.Counter{Value: &v}
	} else {
		m.Gauge = &dto.Gauge{Value: &v}
	}
	b.mf.Metric = append(b.mf.Metric, m)
}

// family returns the family with its series sorted by family name.
func (b *bookkeeping) family() *dto.MetricFamily {
	slices.SortFunc(b.mf.Metric, func(x, y *dto.Metric) int {
		return cmp.Compare(x.Label[0].GetValue(), y.Label[0].GetValue())
	})
	return b.mf
}

func ptr(s string) *string { return &s }
