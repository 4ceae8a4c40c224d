package rollout_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/rollout"
)

// tailed answers after d, and every 25th request after 10·d.
func tailed(t *testing.T, d time.Duration) *httptest.Server {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%25 == 0 {
			time.Sleep(10 * d)
		} else {
			time.Sleep(d)
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

// TestE2ESlowCanaryIsRolledBack: a canary 30 % slower (26 ms against
// 20 ms, 260 ms against 200 ms in the tail) is rolled back on its p99.
func TestE2ESlowCanaryIsRolledBack(t *testing.T) {
	// Each leg has a tail: every 25th request takes ten times as long, so
	// that p99 falls in it rather than in the machine's scheduling noise.
	st, ca := tailed(t, 20*time.Millisecond), tailed(t, 26*time.Millisecond)
	s := start(t, st.URL, ca.URL, "steps: [50, 100], interval: 3s, min_requests: 50, pass_intervals: 3, fail_intervals: 1, checks: {latency_factor: 1.1}", "")
	sent, _ := load(s, 8, 0, 14*time.Second, 200000, func() bool { return s.status().State == rollout.RolledBack })
	got := s.status()
	if got.State != rollout.RolledBack {
		t.Fatalf("not rolled back after %d requests: %s; last %+v", sent, got.State, got.LastAnalysis)
	}
	a := got.Decisions[len(got.Decisions)-1].Analysis
	t.Logf("rolled back: canary p99 %.1fms, stable p99 %.1fms over %d/%d requests: %s", a.Canary.LatencyMs, a.Stable.LatencyMs, a.Canary.Requests, a.Stable.Requests, a.Reason)
}
