package tracestore

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fillShapes writes traces of varied shape (1 to 40 spans, several
// services, logs, long values, tags) until about total bytes have gone
// in, checking after every write that the store is within its budget.
func fillShapes(t testing.TB, s *Store, total int64, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 99))
	var in int64
	for n := uint64(1); in < total; n++ {
		spans := 1 + r.IntN(40)
		for k := 1; k <= spans; k++ {
			b := s.NewBatch(Resource{ServiceName: fmt.Sprintf("svc-%d", r.IntN(8)), Attributes: []KeyValue{String("host.name", fmt.Sprintf("h%d", r.IntN(4)))}})
			attrs := gatewayAttrs(n)[:4+r.IntN(12)]
			if r.IntN(20) == 0 {
				attrs = append(attrs, String("payload", strings.Repeat("z", r.IntN(3000))))
			}
			sp := Span{TraceID: tid(n + seed<<40), SpanID: sid(uint64(k)), Name: fmt.Sprintf("op-%d", r.IntN(30)), Kind: KindServer,
				Start: t0, End: t0.Add(time.Duration(1+r.IntN(1000)) * time.Millisecond), Attributes: attrs}
			if k > 1 {
				sp.ParentSpanID = sid(uint64(1 + r.IntN(k-1)))
			}
			if r.IntN(30) == 0 {
				sp.StatusCode = StatusError
			}
			if r.IntN(4) == 0 {
				sp.Events = []Event{{Time: t0, Name: "retry", Attributes: attrs[:2]}}
			}
			b.AddSpan(&sp)
			if r.IntN(3) == 0 {
				b.AddLog(&LogRecord{Time: t0, TraceID: sp.TraceID, SpanID: sp.SpanID, SeverityText: "INFO", Body: strings.Repeat("l", 50+r.IntN(300)), Attributes: attrs[:3]})
			}
			in += b.bytes
			s.Write(b)
			if st := s.Stats(); st.Bytes > st.Budget {
				t.Fatalf("after %d bytes in: the store counts %d bytes, over its budget %d", in, st.Bytes, st.Budget)
			}
		}
	}
}

// TestAccountingMatchesHeap fills a store several times over its budget
// with traces of varied shape and checks that (1) the bytes it counts
// never exceed the budget and (2) the Go heap it holds is close to what
// it counts, so that the budget bounds memory, not a third less than it.
func TestAccountingMatchesHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 64 MiB")
	}
	const budget = 16 << 20
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	s, err := New(Options{Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	fillShapes(t, s, 4*budget, 1)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	st := s.Stats()
	heap := int64(m1.HeapAlloc) - int64(m0.HeapAlloc)
	ratio := float64(heap) / float64(st.Bytes)
	t.Logf("budget %d, counted %d (%.1f%%), heap %d: heap/counted %.3f; %d traces, %d spans, %d logs",
		st.Budget, st.Bytes, 100*float64(st.Bytes)/budget, heap, ratio, st.Traces, st.Spans, st.Logs)
	if st.Bytes < budget*9/10 {
		t.Errorf("the store counts %d bytes after filling: it should be near its budget %d", st.Bytes, budget)
	}
	if ratio > 1.10 || ratio < 0.85 {
		t.Errorf("heap %d is %.2f times the %d bytes the store counts; want within 0.85–1.10", heap, ratio, st.Bytes)
	}
	runtime.KeepAlive(s)
	s.Close()
}
