package sampling

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/clock"
)

func TestRatioAgreesWithOpenTelemetry(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, ratio := range []float64{0, 0.01, 0.25, 0.5, 0.999, 1} {
		sdk := sdktrace.TraceIDRatioBased(ratio)
		b := Bound(ratio)
		kept := 0
		for i := 0; i < 2000; i++ {
			var tid trace.TraceID
			binary.BigEndian.PutUint64(tid[:8], rng.Uint64())
			binary.BigEndian.PutUint64(tid[8:], rng.Uint64())
			want := sdk.ShouldSample(sdktrace.SamplingParameters{TraceID: tid}).Decision == sdktrace.RecordAndSample
			if got := RatioSampled(tid, b); got != want {
				t.Fatalf("ratio %v trace %s: got %v, SDK says %v", ratio, tid, got, want)
			}
			if want {
				kept++
			}
		}
		t.Logf("ratio %v kept %d/2000", ratio, kept)
	}
}

func TestHead(t *testing.T) {
	var tid trace.TraceID
	tid[15] = 1 // tiny: sampled by any ratio > 0
	cases := []struct {
		name                 string
		h                    Head
		hasParent, parentSmp bool
		want                 Reason
	}{
		{"ratio 1", Head{Bound: Bound(1)}, false, false, Ratio},
		{"ratio 0", Head{Bound: Bound(0)}, false, false, Dropped},
		{"parent sampled wins over ratio 0", Head{Bound: Bound(0), ParentBased: true}, true, true, Parent},
		{"parent unsampled wins over ratio 1", Head{Bound: Bound(1), ParentBased: true}, true, false, Dropped},
		{"not parent based ignores parent", Head{Bound: Bound(0)}, true, true, Dropped},
	}
	for _, tc := range cases {
		if got := tc.h.Decide(tid, tc.hasParent, tc.parentSmp); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLimiter(t *testing.T) {
	clk := clock.NewFake(time.Unix(1000, 0))
	l := NewLimiter(2, clk)
	h := Head{Bound: Bound(1), Limiter: l}
	var tid trace.TraceID
	got := []Reason{h.Decide(tid, false, false), h.Decide(tid, false, false), h.Decide(tid, false, false)}
	if got[0] != Ratio || got[1] != Ratio || got[2] != RateLimited {
		t.Fatalf("burst: %v", got)
	}
	clk.Advance(500 * time.Millisecond)
	if r := h.Decide(tid, false, false); r != Ratio {
		t.Fatalf("after 0.5s: %v", r)
	}
	if r := h.Decide(tid, false, false); r != RateLimited {
		t.Fatalf("second after 0.5s: %v", r)
	}
	clk.Advance(time.Hour)
	n := 0
	for i := 0; i < 10; i++ {
		if l.Allow() {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("burst after idle = %d, want 2", n)
	}
	if NewLimiter(0, clk) != nil || !(*Limiter)(nil).Allow() {
		t.Fatal("zero rate must mean no limiter")
	}
}

func TestLate(t *testing.T) {
	l := Late{Errors: true, Retried: true, SlowerThan: time.Second}
	cases := []struct {
		failed  bool
		retries int
		total   time.Duration
		want    Reason
	}{
		{false, 0, time.Millisecond, Dropped},
		{true, 0, time.Millisecond, LateError},
		{true, 2, 2 * time.Second, LateError},
		{false, 1, time.Millisecond, LateRetried},
		{false, 0, time.Second, LateSlow},
	}
	for _, tc := range cases {
		if got := l.Decide(tc.failed, tc.retries, tc.total); got != tc.want {
			t.Errorf("%+v: got %v", tc, got)
		}
	}
	if (Late{}).Enabled() || (Late{}).Decide(true, 3, time.Hour) != Dropped {
		t.Error("zero Late must keep nothing")
	}
	clk := clock.NewFake(time.Unix(0, 0))
	capped := Late{Errors: true, Limiter: NewLimiter(1, clk)}
	if capped.Decide(true, 0, 0) != LateError || capped.Decide(true, 0, 0) != RateLimited {
		t.Error("late cap not applied")
	}
}

func BenchmarkHead(b *testing.B) {
	h := Head{Bound: Bound(0.01), ParentBased: true}
	var tid trace.TraceID
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tid[15] = byte(i)
		_ = h.Decide(tid, false, false)
	}
}
