package tracestore

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// benchStore is one store of 1M spans (100k traces of 10 spans over 10
// services), built once for the benchmarks that read it.
var benchStore struct {
	once  sync.Once
	s     *Store
	bytes int64
	heap  uint64
}

const (
	benchTraces        = 100_000
	benchSpansPerTrace = 10
)

func buildBenchStore(b *testing.B) *Store {
	benchStore.once.Do(func() {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		s, err := New(Options{Budget: 4 << 30})
		if err != nil {
			b.Fatal(err)
		}
		for n := uint64(1); n <= benchTraces; n++ {
			writeBenchStoreTrace(s, n)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		benchStore.s, benchStore.bytes, benchStore.heap = s, s.Stats().Bytes, m1.HeapAlloc-m0.HeapAlloc
	})
	return benchStore.s
}

// writeBenchStoreTrace writes trace n of the 1M store: 10 spans over 10 services
// (every trace touches every service), 8 gateway attributes each; 1 in
// 100 is an error; the first span has a low-cardinality tag whose rare
// value 20 traces have.
func writeBenchStoreTrace(s *Store, n uint64) {
	r := rand.New(rand.NewPCG(1, n))
	for k := uint64(1); k <= benchSpansPerTrace; k++ {
		svc := fmt.Sprintf("svc-%d", (n+k)%10)
		sp := Span{TraceID: tid(n), SpanID: sid(n*100 + k), Name: fmt.Sprintf("op-%d", (n*k)%50), Kind: KindServer,
			Start: t0.Add(time.Duration(n) * time.Millisecond), Attributes: gatewayAttrs(n)[:8]}
		sp.End = sp.Start.Add(time.Duration(1+r.IntN(200)) * time.Millisecond)
		if k == 1 {
			plan := "free"
			if n%5000 == 0 {
				plan = "enterprise"
			}
			sp.Attributes = append(sp.Attributes, String("customer.plan", plan))
			if n%100 == 0 {
				sp.StatusCode = StatusError
				sp.Attributes = append(sp.Attributes, Int(keyHTTPStatus, 503))
			}
		} else {
			sp.ParentSpanID, sp.Kind = sid(n*100+k-1), KindClient
		}
		b := s.NewBatch(Resource{ServiceName: svc})
		b.AddSpan(&sp)
		s.Write(b)
	}
}

// p99 runs op b.N times and reports the 99th percentile of its latency.
func p99(b *testing.B, op func(i int)) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		op(i)
		lat = append(lat, time.Since(t))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkQuery1M reads a store of 1M spans: a trace by id, and searches
// that the indexes answer.
//
//	go test ./internal/tracestore -run XXX -bench Query1M -benchtime 2000x
func BenchmarkQuery1M(b *testing.B) {
	s := buildBenchStore(b)
	r := rand.New(rand.NewPCG(3, 4))
	b.Run("by-id", func(b *testing.B) {
		p99(b, func(int) {
			if _, ok := s.GetTrace(tid(1+r.Uint64N(benchTraces)), false); !ok {
				b.Fatal("missing")
			}
		})
		b.ReportMetric(float64(benchStore.bytes)/(benchTraces*benchSpansPerTrace), "acct-B/span")
		b.ReportMetric(float64(benchStore.heap)/(benchTraces*benchSpansPerTrace), "heap-B/span")
	})
	searches := map[string]Query{
		"service":           {Service: "svc-3"},
		"service+operation": {Service: "svc-3", Operation: "op-0"},
		"error":             {Error: true},
		"status-5xx":        {HTTPStatusClass: 5},
		"min-duration":      {Service: "svc-1", MinDuration: 190 * time.Millisecond},
		"tag":               {Service: "svc-2", Tags: map[string]string{"url.path": "/users/77777"}},
	}
	for name, q := range searches {
		b.Run("search-"+name, func(b *testing.B) {
			q.Limit = 20
			n := 0
			p99(b, func(int) { n = len(s.Search(q)) })
			if n == 0 {
				b.Fatal("the search found nothing")
			}
		})
	}
	// Tag searches with the tag index and without it (the scan of the
	// service's candidates it replaces), on the same store.
	tagSearches := map[string]Query{
		"rare-low-cardinality": {Service: "svc-1", Tags: map[string]string{"customer.plan": "enterprise"}},
		"common-value":         {Service: "svc-1", Tags: map[string]string{"url.scheme": "http", "customer.plan": "free"}},
		"high-cardinality":     {Service: "svc-2", Tags: map[string]string{"url.path": "/users/77777"}},
		"no-match":             {Service: "svc-1", Tags: map[string]string{"customer.plan": "gold"}},
	}
	for name, q := range tagSearches {
		for _, index := range []bool{false, true} {
			b.Run(fmt.Sprintf("tag-%s/index=%v", name, index), func(b *testing.B) {
				s.mu.Lock()
				s.noTagLookup = !index
				s.mu.Unlock()
				defer func() {
					s.mu.Lock()
					s.noTagLookup = false
					s.mu.Unlock()
				}()
				q.Limit = 20
				n := 0
				p99(b, func(int) { n = len(s.Search(q)) })
				if n == 0 && name != "no-match" {
					b.Fatal("the search found nothing")
				}
			})
		}
	}
}

// BenchmarkWrite measures storing one 10-span trace, past the budget (so
// with evictions).
// BenchmarkWrite measures stores of 10-span traces, in memory only and
// with persistence (fsync every second, as by default; the final sync
// is timed too).
func BenchmarkWrite(b *testing.B) {
	for _, persist := range []bool{false, true} {
		b.Run(fmt.Sprintf("persist=%v", persist), func(b *testing.B) {
			o := Options{Budget: 64 << 20}
			if persist {
				o.DataDir = b.TempDir()
			}
			s, err := New(o)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.Write(benchTrace(s, uint64(i+1)))
			}
			if err := s.Sync(); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N*benchSpansPerTrace)/b.Elapsed().Seconds(), "spans/s")
		})
	}
}

func benchTrace(s *Store, n uint64) *Batch {
	batch := s.NewBatch(Resource{ServiceName: "svc"})
	for k := uint64(1); k <= benchSpansPerTrace; k++ {
		sp := Span{TraceID: tid(n), SpanID: sid(n*100 + k), ParentSpanID: sid(n*100 + k - 1), Name: "op", Kind: KindServer,
			Start: t0, End: t0.Add(time.Millisecond), Attributes: gatewayAttrs(n)[:8]}
		batch.AddSpan(&sp)
	}
	return batch
}

// BenchmarkReplay100k measures opening a data directory that holds 100k
// spans (10k traces of 10 spans).
func BenchmarkReplay100k(b *testing.B) {
	dir := b.TempDir()
	s, err := New(Options{Budget: 256 << 20, DataDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	for n := uint64(1); n <= 10000; n++ {
		s.Write(benchTrace(s, n))
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	var disk int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := New(Options{Budget: 256 << 20, DataDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if st := r.Stats(); st.Spans != 100000 {
			b.Fatalf("replayed %d spans", st.Spans)
		}
		disk = r.DiskBytes()
		r.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(disk)/100000, "disk-B/span")
}

// BenchmarkTagIndexBytes stores 100k spans (the 1M store's shape) with the
// tag index and without it, and reports the bytes per span the budget
// counts and the heap holds.
//
//	go test ./internal/tracestore -run XXX -bench TagIndexBytes -benchtime 1x
func BenchmarkTagIndexBytes(b *testing.B) {
	for _, index := range []bool{false, true} {
		b.Run(fmt.Sprintf("index=%v", index), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				s, err := New(Options{Budget: 1 << 30, noTagIndex: !index})
				if err != nil {
					b.Fatal(err)
				}
				const traces = 10_000
				for n := uint64(1); n <= traces; n++ {
					writeBenchStoreTrace(s, n)
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				b.ReportMetric(float64(s.Stats().Bytes)/(traces*benchSpansPerTrace), "acct-B/span")
				b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/(traces*benchSpansPerTrace), "heap-B/span")
				runtime.KeepAlive(s)
				s.Close()
			}
		})
	}
}
