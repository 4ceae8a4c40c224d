package retry

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func budgetCfg(percent float64, minPerSec int, window time.Duration) config.RetryBudget {
	return config.RetryBudget{Percent: percent, MinRetriesPerSecond: minPerSec, Window: config.Duration(window)}
}

// allowed counts the retries AllowRetry grants out of n tries.
func allowed(b *Budget, n int) int {
	got := 0
	for i := 0; i < n; i++ {
		if b.AllowRetry() {
			got++
		}
	}
	return got
}

func TestBudgetPercent(t *testing.T) {
	clk := clock.NewFake(t0)
	b := NewBudget(budgetCfg(20, 0, 10*time.Second), clk)
	if got := allowed(b, 5); got != 0 {
		t.Fatalf("no requests yet: %d retries allowed, want 0", got)
	}
	for i := 0; i < 100; i++ {
		b.Request()
	}
	if got := allowed(b, 50); got != 20 {
		t.Fatalf("100 requests at 20%%: %d retries allowed, want 20", got)
	}
	if req, ret := b.Counts(); req != 100 || ret != 20 {
		t.Fatalf("counts = %d, %d", req, ret)
	}
	// Five more requests make room for one more retry.
	for i := 0; i < 5; i++ {
		b.Request()
	}
	if got := allowed(b, 5); got != 1 {
		t.Fatalf("105 requests: %d more retries, want 1", got)
	}
}

func TestBudgetMinimumPerSecond(t *testing.T) {
	clk := clock.NewFake(t0)
	b := NewBudget(budgetCfg(20, 3, 10*time.Second), clk)
	// 3/s over 10s: 30 retries even without traffic.
	if got := allowed(b, 100); got != 30 {
		t.Fatalf("minimum: %d retries, want 30", got)
	}
}

func TestBudgetWindowSlides(t *testing.T) {
	clk := clock.NewFake(t0)
	b := NewBudget(budgetCfg(50, 0, 10*time.Second), clk)
	for i := 0; i < 10; i++ {
		b.Request()
	}
	if got := allowed(b, 10); got != 5 {
		t.Fatalf("got %d, want 5", got)
	}
	clk.Advance(5 * time.Second)
	for i := 0; i < 10; i++ {
		b.Request()
	}
	// 20 requests and 5 retries in the window: 5 more.
	if got := allowed(b, 10); got != 5 {
		t.Fatalf("after 5s: got %d, want 5", got)
	}
	// The first second's requests and retries roll out together.
	clk.Advance(5 * time.Second)
	if req, ret := b.Counts(); req != 10 || ret != 5 {
		t.Fatalf("after 10s: counts %d/%d, want 10/5", req, ret)
	}
	if got := allowed(b, 10); got != 0 {
		t.Fatalf("after 10s: %d retries, want 0 (5 of 10 used)", got)
	}
	clk.Advance(10 * time.Second)
	if req, ret := b.Counts(); req != 0 || ret != 0 {
		t.Fatalf("after 20s: counts %d/%d, want empty", req, ret)
	}
}

// TestBudgetNeverExceeded drives a budget with random traffic and time steps
// and checks after every granted retry that the window holds no more
// retries than the budget allows.
func TestBudgetNeverExceeded(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	clk := clock.NewFake(t0)
	cfg := budgetCfg(10, 1, 5*time.Second)
	b := NewBudget(cfg, clk)
	for i := 0; i < 20000; i++ {
		switch n := rng.IntN(100); {
		case n < 60:
			b.Request()
		case n < 95:
			if b.AllowRetry() {
				req, ret := b.Counts()
				limit := max(float64(cfg.MinRetriesPerSecond)*5, 0.10*float64(req))
				if float64(ret) > limit {
					t.Fatalf("step %d: %d retries for %d requests, limit %.1f", i, ret, req, limit)
				}
			}
		default:
			clk.Advance(time.Duration(rng.IntN(1500)) * time.Millisecond)
		}
	}
}

func TestBudgetConcurrent(t *testing.T) {
	clk := clock.NewFake(t0)
	b := NewBudget(budgetCfg(20, 0, 10*time.Second), clk)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				b.Request()
			}
		}()
	}
	wg.Wait()
	var granted atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			granted.Add(int64(allowed(b, 100)))
		}()
	}
	wg.Wait()
	if n := granted.Load(); n != 160 {
		t.Fatalf("granted %d retries for 800 requests at 20%%, want exactly 160", n)
	}
}

func TestBudgetCarryAndNil(t *testing.T) {
	clk := clock.NewFake(t0)
	cfg := budgetCfg(20, 3, 10*time.Second)
	b := NewBudget(cfg, clk)
	if Carry(b, cfg, clk) != b {
		t.Error("same config: budget not carried")
	}
	if Carry(b, budgetCfg(30, 3, 10*time.Second), clk) == b {
		t.Error("changed config: budget carried")
	}
	if Carry(nil, cfg, clk) == nil {
		t.Error("Carry(nil) = nil")
	}
	var none *Budget
	none.Request()
	if !none.AllowRetry() {
		t.Error("nil budget refused a retry")
	}
}

func TestBackoff(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		attempt   int
		base, max time.Duration
		want      time.Duration // upper bound (rnd nil)
	}{
		{0, 25 * ms, 250 * ms, 0},
		{1, 25 * ms, 250 * ms, 25 * ms},
		{2, 25 * ms, 250 * ms, 50 * ms},
		{3, 25 * ms, 250 * ms, 100 * ms},
		{4, 25 * ms, 250 * ms, 200 * ms},
		{5, 25 * ms, 250 * ms, 250 * ms},
		{64, 25 * ms, 250 * ms, 250 * ms},
		{1000, time.Hour, 10 * time.Hour, 10 * time.Hour},
		{3, 0, 250 * ms, 0},
		{3, 25 * ms, 0, 25 * ms},
	} {
		if got := Backoff(tc.attempt, tc.base, tc.max, nil); got != tc.want {
			t.Errorf("Backoff(%d, %s, %s) = %s, want %s", tc.attempt, tc.base, tc.max, got, tc.want)
		}
	}
	// Full jitter: rnd's bits taken modulo the bound + 1.
	if got := Backoff(2, 25*ms, 250*ms, func() uint64 { return uint64(50*ms) + 1 }); got != 0 {
		t.Errorf("jitter wraps: got %s", got)
	}
	if got := Backoff(2, 25*ms, 250*ms, func() uint64 { return uint64(17 * ms) }); got != 17*ms {
		t.Errorf("jitter: got %s", got)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var sum time.Duration
	for i := 0; i < 10000; i++ {
		d := Backoff(3, 25*ms, 250*ms, rng.Uint64)
		if d < 0 || d > 100*ms {
			t.Fatalf("Backoff out of [0, 100ms]: %s", d)
		}
		sum += d
	}
	if mean := sum / 10000; mean < 40*ms || mean > 60*ms {
		t.Errorf("mean jitter %s, want about 50ms (uniform)", mean)
	}
}

func BenchmarkBudget(b *testing.B) {
	bud := NewBudget(budgetCfg(20, 3, 10*time.Second), clock.Real{})
	b.ReportAllocs()
	for b.Loop() {
		bud.Request()
		bud.AllowRetry()
	}
}

func BenchmarkBackoff(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Backoff(3, 25*time.Millisecond, 250*time.Millisecond, rand.Uint64)
	}
}
