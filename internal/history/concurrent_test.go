package history

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// TestConcurrentRecordingLosesNothing records from several goroutines
// while the rotator seals seconds and a reader queries, and checks that
// every request, latency sample and attempt ends up in exactly one second.
func TestConcurrentRecordingLosesNothing(t *testing.T) {
	h, clk := newTestHistory(t, config.History{})
	st := h.stageFor(middleware.Route{Name: "shop", Services: []string{"users"}})
	h.Tick(clk.Now())
	const writers, perWriter = 4, 5000
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := req("users", 200, 3*time.Millisecond, observe.ErrNone)
			for i := 0; i < perWriter; i++ {
				st.Record(rec)
			}
		}()
	}
	done := make(chan struct{})
	var rot sync.WaitGroup
	rot.Add(2)
	go func() { // the rotator: at most 200 seconds
		defer rot.Done()
		for i := 0; i < 200; i++ {
			select {
			case <-done:
				return
			default:
			}
			clk.Advance(time.Second)
			h.Tick(clk.Now())
		}
	}()
	go func() { // a reader
		defer rot.Done()
		for i := 0; i < 200; i++ {
			select {
			case <-done:
				return
			default:
			}
			if _, err := Window(context.Background(), h.Source(), ScopeRoute, "shop", clk.Now().Truncate(time.Second), time.Minute); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	close(done)
	rot.Wait()
	// Seal what is left: a racing request may have left part of itself
	// for the next second.
	for i := 0; i < 2; i++ {
		clk.Advance(time.Second)
		h.Tick(clk.Now())
	}
	end := clk.Now().Truncate(time.Second)
	for _, sc := range []struct {
		sc   Scope
		name string
	}{{ScopeRoute, "shop"}, {ScopeGateway, ""}, {ScopeHost, "users/10.0.0.1:80"}} {
		p, err := Window(context.Background(), h.Source(), sc.sc, sc.name, end, end.Sub(t0)+time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if n := uint64(writers * perWriter); p.V[Requests] != n || p.V[Class2xx] != n || p.Latency.Count() != n {
			t.Fatalf("%s: requests %d 2xx %d latency samples %d, want %d each", sc.sc, p.V[Requests], p.V[Class2xx], p.Latency.Count(), n)
		}
	}
}
