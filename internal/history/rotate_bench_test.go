package history

import (
	"fmt"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// BenchmarkRotateEstate is the rotator's cost per request when traffic is
// spread uniformly over n routes, one request per route per second (as
// about 10,000 requests a second over 10,000 routes give, up to the
// max_series cap): each op records one request in every route's cell and
// seals the second, rolling up each minute as it completes. The figure to
// compare across n is cpu-ns/req: with a rotation whose cost follows the
// requests rather than the buckets of every active series it stays flat.
func BenchmarkRotateEstate(b *testing.B) {
	for _, n := range []int{10, 1000, 5000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			h, err := New(config.History{MaxSeries: n + 10}, Options{NoMachine: true})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(h.Close)
			stages := make([]*stage, n)
			for i := range stages {
				stages[i] = h.stageFor(middleware.Route{Name: fmt.Sprintf("svc%d", i), Services: []string{"upstream"}})
			}
			rec := observe.GetRecord()
			now := time.Unix(1_700_000_000, 0)
			fill := func(i int) {
				rec.Reset()
				rec.Start = now.Add(time.Duration(i) * time.Microsecond)
				rec.End = rec.Start.Add(time.Duration(300+i%700) * time.Microsecond)
				rec.Service, rec.Status, rec.BytesOut = "upstream", 200, 64
				a := rec.AddAttempt(observe.Attempt{Service: "upstream", Upstream: "127.0.0.1:9000", Start: rec.Start})
				a.Duration, a.Status = time.Duration(250+i%500)*time.Microsecond, 200
			}
			second := func() {
				for i, st := range stages {
					fill(i)
					st.Record(rec)
				}
				now = now.Add(time.Second)
				h.Tick(now)
			}
			for range 120 { // warm: every host cell, two minutes rolled up
				second()
			}
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				second()
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N*n), "cpu-ns/req")
		})
	}
}
