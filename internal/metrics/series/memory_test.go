package series

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/memsize"
)

// bytesPerSeries creates n series of a family in a fresh set and returns
// the live heap they add per series (the family's map entry, the series
// and whatever it points to; the label value strings are built before).
func bytesPerSeries(t *testing.T, o Options, fo FamilyOpts, n int) float64 {
	t.Helper()
	s := NewSet(o, t0)
	f := s.MustFamily(fo)
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = Key{"svc" + strconv.Itoa(i), "users", "GET", "2xx"}
	}
	before := memsize.LiveHeap()
	for i := range keys {
		c := f.Get(&keys[i])
		switch fo.Kind {
		case Histogram:
			c.Observe(0.003)
		default:
			c.Inc()
		}
	}
	after := memsize.LiveHeap()
	runtime.KeepAlive(keys)
	runtime.KeepAlive(s)
	return float64(int64(after)-int64(before)) / float64(n)
}

// TestBytesPerSeries measures what one series costs in memory, for each
// kind, with exemplars on (the default): a counter, a gauge, a route
// histogram (four bounds, metrics.route_buckets) and a service histogram
// (fourteen bounds, metrics.buckets). Each series carries four label
// values, as a route's duration histogram does. With a client_golang
// metric (and its Desc) per series they cost 1,176, 1,064, 1,776 and
// 2,176 bytes on amd64; the limits are above today's 270, 262, 358 and
// 518. A native histogram (client_golang's, with one observation) costs
// about 1,900.
func TestBytesPerSeries(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 10,000 series per kind")
	}
	labels := []string{"route", "service", "method", "class"}
	o := Options{MaxSeries: 100000, IdleTimeout: time.Minute, Exemplars: true, ExemplarInterval: time.Second}
	route := []float64{0.025, 0.1, 0.5, 2.5}
	full := []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	native := o
	native.NativeBucketFactor = 1.1
	for _, tc := range []struct {
		name string
		fo   FamilyOpts
		max  float64
		o    *Options
	}{
		{"counter", FamilyOpts{Name: "c_total", Help: "c", Kind: Counter, Labels: labels}, 320, nil},
		{"gauge", FamilyOpts{Name: "g", Help: "g", Kind: Gauge, Labels: labels}, 320, nil},
		{"histogram-4", FamilyOpts{Name: "h_seconds", Help: "h", Kind: Histogram, Labels: labels, Buckets: route}, 416, nil},
		{"histogram-14", FamilyOpts{Name: "h_seconds", Help: "h", Kind: Histogram, Labels: labels, Buckets: full}, 576, nil},
		// Native histograms keep client_golang's histogram, Desc included.
		{"histogram-4-native", FamilyOpts{Name: "h_seconds", Help: "h", Kind: Histogram, Labels: labels, Buckets: route}, 2560, &native},
	} {
		so := o
		if tc.o != nil {
			so = *tc.o
		}
		b := bytesPerSeries(t, so, tc.fo, 10000)
		t.Logf("%s: %.0f bytes per series", tc.name, b)
		if b > tc.max {
			t.Errorf("%s: %.0f bytes per series, want at most %.0f", tc.name, b, tc.max)
		}
	}
}
