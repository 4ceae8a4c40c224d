package series

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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
		for _, c := range f.m {
			buf = append(buf, c)
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
		ms := make([]dto.Metric, len(buf))
		for i, c := range buf {
			if err := c.metric.Write(&ms[i]); err != nil {
				errs = append(errs, fmt.Errorf("series %s%v: %w", f.opts.Name, c.key[:n], err))
				continue
			}
			mf.Metric = append(mf.Metric, &ms[i])
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
