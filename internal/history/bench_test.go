package history

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// benchRecord is a record as the proxy leaves it for one successful
// attempt of a sampled request.
func benchRecord() *observe.Record {
	rec := observe.GetRecord()
	rec.Start = time.Now()
	rec.End = rec.Start.Add(4 * time.Millisecond)
	rec.Route, rec.Service, rec.Status = "checkout", "users", 201
	rec.BytesIn, rec.BytesOut = 120, 2048
	rec.Trace = observe.TraceContext{TraceID: [16]byte{1, 2, 3}, Valid: true, Sampled: true}
	a := rec.AddAttempt(observe.Attempt{Service: "users", Upstream: "10.0.0.1:8080", Start: rec.Start})
	a.Duration, a.BodyDuration, a.Status = 3*time.Millisecond, 200*time.Microsecond, 201
	return rec
}

func benchStage(b testing.TB) *stage {
	h, err := New(config.History{}, Options{NoMachine: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Close)
	st := h.stageFor(middleware.Route{Name: "checkout", Services: []string{"users", "fallback"}})
	st.Record(benchRecord()) // creates the host cell
	return st
}

// BenchmarkRecord is the history's cost per request at request end: the
// finished record added to its (route, service) cell and its attempt to
// its (service, host) cell.
func BenchmarkRecord(b *testing.B) {
	st := benchStage(b)
	rec := benchRecord()
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		st.Record(rec)
	}
	reportCPU(b, cpu)
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process's CPU time per op since start: on a shared
// machine the wall time per op counts the time other processes ran.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkRecordParallel records from every P at once into one route.
func BenchmarkRecordParallel(b *testing.B) {
	st := benchStage(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rec := benchRecord()
		for pb.Next() {
			st.Record(rec)
		}
	})
}

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkStage is the whole history stage around a handler that fills
// the record like the proxy: in-flight count, Record.Finish and Record.
// "baseline" is the same handler without the stage.
func BenchmarkStage(b *testing.B) {
	fill := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.FromContext(r.Context())
		rec.Service, rec.Status = "users", 200
		a := rec.AddAttempt(observe.Attempt{Service: "users", Upstream: "10.0.0.1:8080", Start: rec.Start})
		a.Duration, a.Status = 3*time.Millisecond, 200
	})
	h, err := New(config.History{}, Options{NoMachine: true})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"baseline", fill},
		{"history", middleware.Chain(fill, h.ForRoute(middleware.Route{Name: "api", Services: []string{"users"}}), middleware.End(clock.Real{}))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			rec := observe.GetRecord()
			req := httptest.NewRequest("GET", "/api", nil).WithContext(observe.NewContext(context.Background(), rec))
			w := &nopWriter{h: http.Header{}}
			run := func() {
				rec.Reset()
				rec.Start = time.Now()
				tc.h.ServeHTTP(w, req)
			}
			run()
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				run()
			}
			reportCPU(b, cpu)
		})
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	st := benchStage(t)
	rec := benchRecord()
	if n := testing.AllocsPerRun(1000, func() { st.Record(rec) }); n != 0 {
		t.Fatalf("Record allocates %v times per request", n)
	}
	rec.ErrorKind, rec.Status = observe.ErrUpstreamTimeout, 504
	if n := testing.AllocsPerRun(1000, func() { st.Record(rec) }); n != 0 {
		t.Fatalf("Record of a failed request allocates %v times", n)
	}
}

// BenchmarkSnapshotStages is the history's share of building a snapshot of
// n routes (one stage per route, each with its own service): linear in n,
// since the copy-on-write lists are republished once, not per stage.
func BenchmarkSnapshotStages(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		routes := make([]middleware.Route, n)
		for i := range routes {
			routes[i] = middleware.Route{Name: fmt.Sprintf("svc%d", i), Services: []string{fmt.Sprintf("svc%d", i)}}
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				h, err := New(config.History{MaxSeries: 4*n + 10}, Options{NoMachine: true})
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range routes {
					h.ForRoute(r)
				}
				h.Tick(time.Now())
				h.Close()
			}
		})
	}
}
