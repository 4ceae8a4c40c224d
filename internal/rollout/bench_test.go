package rollout

import (
	"context"
	"testing"
	"time"
)

// BenchmarkJudge is the decision of one analysis tick on two legs'
// windows (1,000 and 9,000 requests).
func BenchmarkJudge(b *testing.B) {
	r := testRollout(&testing.T{}, ", checks: {min_success_rate: 0.99, max_latency: 100ms}")
	c, s := leg(1000, 10, 20*time.Millisecond), leg(9000, 50, 20*time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		_ = Judge(r, &c, &s)
	}
}

// BenchmarkAnalyze is one analysis tick: reading a 10 s interval of both
// legs (one point per second each) and judging it.
func BenchmarkAnalyze(b *testing.B) {
	r := testRollout(&testing.T{}, "")
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	src := &fakeSource{}
	for i := range 10 {
		sec := t0.Add(time.Duration(i) * time.Second)
		src.put("web/web", sec, leg(900, 0, 20*time.Millisecond))
		src.put("web/web-v2", sec, leg(100, 1, 20*time.Millisecond))
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Analyze(ctx, src, r, t0.Add(10*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
}
