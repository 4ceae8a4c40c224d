package upstream

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
)

// estatePools builds n pools of 10 hosts each with a health check every
// interval. The hosts are never contacted by the scheduling tests.
func estatePools(t *testing.T, n int, interval time.Duration, clk clock.Clock) []*Pool {
	t.Helper()
	pools := make([]*Pool, 0, n)
	for i := range n {
		s := service(fmt.Sprintf("svc%d", i))
		for j := range 10 {
			s.Upstreams = append(s.Upstreams, service("", fmt.Sprintf("http://127.0.0.%d:%d", j+1, 1000+i)).Upstreams...)
		}
		pools = append(pools, mustPool(t, withHealth(s, interval, time.Second, 1, 1), nil, nil, clk))
	}
	return pools
}

// TestCheckerSpreadsProbes drives the schedule of 1,000 services × 10 hosts
// at fixed times: no 100 ms step holds more than twice its share of the
// probes, every host is probed once per interval ±10%, and the schedule is a
// function of the seed.
func TestCheckerSpreadsProbes(t *testing.T) {
	const interval = 10 * time.Second
	const step = 100 * time.Millisecond
	clk := clock.NewFake(t0)
	pools := estatePools(t, 1000, interval, clk)
	c := NewChecker(clk, 0, 42)
	for _, p := range pools {
		p.StartWith(c)
	}
	hosts := 1000 * 10
	last := map[*Host]time.Time{}
	probes, maxStep := 0, 0
	for now := t0; now.Before(t0.Add(6 * interval)); now = now.Add(step) {
		due := c.take(now)
		c.release(due...) // every probe ends at once
		maxStep = max(maxStep, len(due))
		probes += len(due)
		for _, k := range due {
			prev, seen := last[k.host]
			gap := now.Sub(prev)
			switch {
			case !seen && now.Sub(t0) > interval:
				t.Fatalf("%s first probed at +%v, want within one interval", k.host.Key, now.Sub(t0))
			case seen && (gap < interval*9/10-step || gap > interval*11/10+step):
				t.Fatalf("%s probed %v after its previous probe, want %v ±10%%", k.host.Key, gap, interval)
			}
			last[k.host] = now
		}
	}
	if len(last) != hosts {
		t.Fatalf("%d hosts probed, want %d", len(last), hosts)
	}
	share := hosts * int(step) / int(interval)
	if maxStep > 2*share {
		t.Fatalf("%d probes due in one %v step, want at most %d (twice the share)", maxStep, step, 2*share)
	}
	if lo, hi := hosts*55/10, hosts*65/10; probes < lo || probes > hi {
		t.Fatalf("%d probes in 6 intervals, want %d..%d", probes, lo, hi)
	}

	// Same seed, same schedule; another seed, another one.
	firsts := func(seed uint64) []time.Duration {
		c := NewChecker(clk, 0, seed)
		c.add(pools[0])
		var out []time.Duration
		for _, k := range c.queue {
			out = append(out, k.due.Sub(clk.Now()))
		}
		return out
	}
	a, b, other := firsts(7), firsts(7), firsts(8)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("seed 7 gave two schedules: %v and %v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(other) {
		t.Fatalf("seeds 7 and 8 gave the same schedule %v", a)
	}
}

// TestCheckerSkipsBusyAndStoppedHosts: a host whose probe is still running
// is not probed again, and a stopped pool's hosts leave the queue.
func TestCheckerSkipsBusyAndStoppedHosts(t *testing.T) {
	const interval = time.Second
	clk := clock.NewFake(t0)
	pools := estatePools(t, 2, interval, clk)
	c := NewChecker(clk, 0, 1)
	for _, p := range pools {
		p.StartWith(c)
	}
	due := c.take(t0.Add(interval))
	if len(due) != 20 {
		t.Fatalf("%d due after one interval, want 20", len(due))
	}
	// Nothing released: the next round finds every host busy.
	if again := c.take(t0.Add(2*interval + interval/5)); len(again) != 0 {
		t.Fatalf("%d probes started while the previous ones run", len(again))
	}
	c.release(due...)
	pools[0].Stop()
	for _, k := range c.take(t0.Add(4 * interval)) {
		if k.pool == pools[0] {
			t.Fatalf("stopped pool's host %s probed", k.host.Key)
		}
	}
	for _, k := range c.queue {
		if k.pool == pools[0] {
			t.Fatalf("stopped pool's host %s still queued", k.host.Key)
		}
	}
}

// TestCheckerBoundsProbesInFlight dispatches 200 due probes through a
// Checker limited to 8: never more than 8 run at once, and all 200 run.
func TestCheckerBoundsProbesInFlight(t *testing.T) {
	const limit = 8
	clk := clock.NewFake(t0)
	pools := estatePools(t, 20, time.Second, clk)
	c := NewChecker(clk, limit, 3)
	var inFlight, peak, ran atomic.Int64
	gate := make(chan struct{})
	c.probe = func(ctx context.Context, k *check) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-gate:
		case <-ctx.Done():
		}
		ran.Add(1)
		inFlight.Add(-1)
	}
	for _, p := range pools {
		p.StartWith(c)
	}
	due := c.take(t0.Add(time.Second))
	if len(due) != 200 {
		t.Fatalf("%d due, want 200", len(due))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { c.dispatch(ctx, due); close(done) }()
	waitFor(t, "the limit of probes in flight", func() bool { return inFlight.Load() == limit })
	deadline := time.After(30 * time.Second)
	for range due {
		select {
		case gate <- struct{}{}:
		case <-deadline:
			t.Fatalf("only %d of %d probes ran", ran.Load(), len(due))
		}
	}
	<-done
	c.wg.Wait()
	if got := ran.Load(); got != int64(len(due)) {
		t.Fatalf("%d of %d probes ran", got, len(due))
	}
	if got := peak.Load(); got != limit {
		t.Fatalf("at most %d probes in flight, want exactly the limit %d", got, limit)
	}
}

// TestSharedCheckerProbesRealHosts runs a started Checker shared by two
// pools against real servers; stopping one pool stops only its probes.
func TestSharedCheckerProbesRealHosts(t *testing.T) {
	var hitsA, hitsB atomic.Int64
	srvA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hitsA.Add(1) }))
	defer srvA.Close()
	srvB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hitsB.Add(1) }))
	defer srvB.Close()
	c := NewChecker(nil, 2, 5)
	c.Start()
	defer c.Close()
	pa := mustPool(t, withHealth(service("a", srvA.URL), 20*time.Millisecond, 15*time.Millisecond, 1, 1), nil, nil, nil)
	pb := mustPool(t, withHealth(service("b", srvB.URL), 20*time.Millisecond, 15*time.Millisecond, 1, 1), nil, nil, nil)
	pa.StartWith(c)
	pb.StartWith(c)
	waitFor(t, "probes of both pools", func() bool { return hitsA.Load() >= 3 && hitsB.Load() >= 3 })
	pa.Stop()
	stoppedAt := hitsA.Load()
	base := hitsB.Load()
	waitFor(t, "more probes of the running pool", func() bool { return hitsB.Load() >= base+5 })
	// A probe in flight when Stop cancelled it may already have been sent,
	// and reach the server after Stop returned: one, since a host has at
	// most one probe in flight.
	if got := hitsA.Load(); got > stoppedAt+1 {
		t.Fatalf("stopped pool probed %d more times", got-stoppedAt)
	}
}
