package history

import (
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

func TestRateLimitSeries(t *testing.T) {
	h, clk := newTestHistory(t, config.History{})
	h.Tick(clk.Now())
	hit := func(policy string, key observe.RateLimitKey, n int) {
		for range n {
			h.Observe(observe.Event{Kind: observe.EventRateLimited, Route: "shop", RateLimit: observe.RateLimitHit{Policy: policy, Key: key}})
		}
	}
	hit("shop", observe.RateLimitKeyClientIP, 5)
	hit("shop", observe.RateLimitKeyInFlight, 2)
	hit("api", observe.RateLimitKeyRoute, 1)
	clk.Advance(time.Second)
	h.Tick(clk.Now())
	hit("shop", observe.RateLimitKeyClientIP, 3)
	clk.Advance(time.Second)
	h.Tick(clk.Now())
	end := clk.Now().Truncate(time.Second)
	for _, tc := range []struct {
		name   string
		s0, s1 uint64
	}{
		{"shop", 7, 3}, {"shop/client_ip", 5, 3}, {"shop/in_flight", 2, 0}, {"api", 1, 0}, {"api/route", 1, 0},
	} {
		p := rangeOf(t, h, ScopeRateLimit, tc.name, end.Add(-2*time.Second), end, time.Second)
		if p[0].V[RateLimitRejections] != tc.s0 || p[1].V[RateLimitRejections] != tc.s1 {
			t.Errorf("%s: %d, %d; want %d, %d", tc.name, p[0].V[RateLimitRejections], p[1].V[RateLimitRejections], tc.s0, tc.s1)
		}
	}
	if got := h.Names(ScopeRateLimit); len(got) != 5 {
		t.Errorf("ratelimit names %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { hit("shop", observe.RateLimitKeyClientIP, 1) }); n != 0 {
		t.Errorf("a rejection allocates %v times", n)
	}
}

func TestRateLimitKeysAreCapped(t *testing.T) {
	h, clk := newTestHistory(t, config.History{})
	h.rlMaxKeys = 2
	h.Tick(clk.Now())
	keys := observe.RateLimitKeys() // 5 kinds
	for _, k := range keys {
		h.Observe(observe.Event{Kind: observe.EventRateLimited, RateLimit: observe.RateLimitHit{Policy: "p", Key: k}})
	}
	h.Observe(observe.Event{Kind: observe.EventRateLimited, RateLimit: observe.RateLimitHit{Policy: "p", Key: keys[0]}})
	clk.Advance(time.Second)
	h.Tick(clk.Now())
	names := h.Names(ScopeRateLimit)
	if len(names) != 1+2+1 {
		t.Fatalf("%d series for one policy: %q", len(names), names)
	}
	end := clk.Now().Truncate(time.Second)
	all := rangeOf(t, h, ScopeRateLimit, "p", end.Add(-time.Second), end, time.Second)
	other := rangeOf(t, h, ScopeRateLimit, "p/other", end.Add(-time.Second), end, time.Second)
	if all[0].V[RateLimitRejections] != 6 || other[0].V[RateLimitRejections] != 3 {
		t.Fatalf("all %d, other %d", all[0].V[RateLimitRejections], other[0].V[RateLimitRejections])
	}
}
