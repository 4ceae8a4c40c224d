package series

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkChild measures recording into one existing series.
func BenchmarkChild(b *testing.B) {
	s := NewSet(Options{MaxSeries: 100, IdleTimeout: time.Minute, Exemplars: true, ExemplarInterval: time.Second}, t0)
	labels := []string{"route", "service", "method", "class"}
	c := s.MustFamily(FamilyOpts{Name: "c_total", Help: "c", Kind: Counter, Labels: labels}).With("svc1", "users", "GET", "2xx")
	g := s.MustFamily(FamilyOpts{Name: "g", Help: "g", Kind: Gauge, Labels: labels}).With("svc1", "users", "GET", "2xx")
	h4 := s.MustFamily(FamilyOpts{Name: "h4_seconds", Help: "h", Kind: Histogram, Labels: labels, Buckets: []float64{0.025, 0.1, 0.5, 2.5}}).With("svc1", "users", "GET", "2xx")
	h14 := s.MustFamily(FamilyOpts{Name: "h14_seconds", Help: "h", Kind: Histogram, Labels: labels,
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}}).With("svc1", "users", "GET", "2xx")
	id := [16]byte{1}
	b.Run("counter-inc", func(b *testing.B) {
		for b.Loop() {
			c.Inc()
		}
	})
	b.Run("counter-add", func(b *testing.B) {
		for b.Loop() {
			c.Add(2048)
		}
	})
	b.Run("gauge-inc-dec", func(b *testing.B) {
		for b.Loop() {
			g.Inc()
			g.Dec()
		}
	})
	b.Run("histogram-4", func(b *testing.B) {
		for b.Loop() {
			h4.Observe(0.003)
		}
	})
	b.Run("histogram-14", func(b *testing.B) {
		for b.Loop() {
			h14.Observe(0.003)
		}
	})
	b.Run("histogram-14-exemplar", func(b *testing.B) {
		at := t0
		for b.Loop() {
			h14.ObserveExemplar(0.003, &id, at) // within the interval: no exemplar
		}
	})
	b.Run("histogram-4-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h4.Observe(0.003)
			}
		})
	})
}

// BenchmarkGather measures one Gather of 10,000 route histograms (four
// bounds, exemplars on) and 10,000 counters.
func BenchmarkGather(b *testing.B) {
	s := NewSet(Options{MaxSeries: 20000, IdleTimeout: time.Minute, Exemplars: true}, t0)
	labels := []string{"route", "service", "method", "class"}
	h := s.MustFamily(FamilyOpts{Name: "h_seconds", Help: "h", Kind: Histogram, Labels: labels, Buckets: []float64{0.025, 0.1, 0.5, 2.5}})
	c := s.MustFamily(FamilyOpts{Name: "c_total", Help: "c", Kind: Counter, Labels: labels})
	id := [16]byte{1}
	for i := range 10000 {
		r := "svc" + strconv.Itoa(i)
		h.With(r, "users", "GET", "2xx").ObserveExemplar(0.003, &id, t0)
		c.With(r, "users", "GET", "2xx").Inc()
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
