package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/observe"
)

func TestSplitThroughGateway(t *testing.T) {
	stable, canary := echoUpstream(t, "stable"), echoUpstream(t, "canary")
	yaml := `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: checkout, upstreams: [{url: %q}]}
  - {name: checkout-v2, upstreams: [{url: %q}]}
routes:
  - name: checkout
    match: {path_prefix: /}
    split:
      services: [{service: checkout, weight: 90}, {service: checkout-v2, weight: 10}]
      override: {header: X-Canary, values: {always: checkout-v2, never: checkout}}
`
	f := newFixture(t, parse(t, yaml, stable.URL, canary.URL), Options{})
	count := func(n int, hdr ...string) (st, ca int) {
		for i := 0; i < n; i++ {
			_, body := f.get("/x", hdr...)
			switch {
			case strings.HasPrefix(body, "stable"):
				st++
			case strings.HasPrefix(body, "canary"):
				ca++
			default:
				t.Fatalf("unexpected body %q", body)
			}
		}
		return
	}
	if st, ca := count(100); st != 90 || ca != 10 {
		t.Fatalf("100 requests split %d/%d, want exactly 90/10", st, ca)
	}
	if _, ca := count(5, "X-Canary", "always"); ca != 5 {
		t.Fatalf("override always: %d of 5 to the canary", ca)
	}
	// Blue-green flip through the runtime API, then a reload restores the file's weights.
	if _, err := f.g.SetSplit("checkout", map[string]int{"checkout": 0, "checkout-v2": 100}, observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	if st, ca := count(20); st != 0 || ca != 20 {
		t.Fatalf("after flip: %d/%d", st, ca)
	}
	if err := f.g.Reload(parse(t, yaml, stable.URL, canary.URL), observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	if st, ca := count(100); st != 90 || ca != 10 {
		t.Fatalf("after reload: %d/%d, want the file's 90/10", st, ca)
	}
	if f.events.Count(observe.EventSplitChosen) != 225 || f.events.Count(observe.EventSplitUpdated) != 1 {
		t.Fatalf("split events: chosen %d, updated %d", f.events.Count(observe.EventSplitChosen), f.events.Count(observe.EventSplitUpdated))
	}
}

func TestBreakerOpensFailsFastAndRecovers(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if failing.Load() {
			w.WriteHeader(500)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := parse(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - name: pay
    upstreams: [{url: %q}]
    circuit_breaker: {consecutive_failures: 3, open_duration: 10s, half_open_probes: 1, half_open_successes: 1}
routes: [{name: pay, match: {path_prefix: /}, service: pay}]
`, up.URL)
	f := newFixture(t, cfg, Options{Clock: clk})
	for i := 0; i < 3; i++ {
		if resp, _ := f.get("/"); resp.StatusCode != 500 {
			t.Fatalf("request %d: %d, want the upstream's 500", i, resp.StatusCode)
		}
	}
	resp, body := f.get("/")
	if resp.StatusCode != 503 || !strings.Contains(body, `"error":"breaker_open"`) {
		t.Fatalf("open breaker: %d %s", resp.StatusCode, body)
	}
	if hits.Load() != 3 {
		t.Fatalf("upstream hit %d times; an open breaker must not forward", hits.Load())
	}
	if st := f.g.Services()[0]; st.Status != "breaker_open" {
		t.Fatalf("service status %q", st.Status)
	}
	failing.Store(false)
	clk.Advance(11 * time.Second)
	if resp, _ := f.get("/"); resp.StatusCode != 200 {
		t.Fatalf("half-open probe: %d", resp.StatusCode)
	}
	if resp, _ := f.get("/"); resp.StatusCode != 200 {
		t.Fatalf("closed again: %d", resp.StatusCode)
	}
	if n := f.events.Count(observe.EventBreakerTransition); n != 3 {
		t.Fatalf("transitions %d, want closed→open→half_open→closed", n)
	}
	// State survives a reload of an unchanged config.
	failing.Store(true)
	for i := 0; i < 3; i++ {
		f.get("/")
	}
	if err := f.g.Reload(parse(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - name: pay
    upstreams: [{url: %q}]
    circuit_breaker: {consecutive_failures: 3, open_duration: 10s, half_open_probes: 1, half_open_successes: 1}
routes: [{name: pay, match: {path_prefix: /}, service: pay}]
`, up.URL), observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	if resp, _ := f.get("/"); resp.StatusCode != 503 {
		t.Fatalf("breaker state lost across reload: %d", resp.StatusCode)
	}
}

func TestBreakerFallback(t *testing.T) {
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(502) }))
	defer bad.Close()
	backup := echoUpstream(t, "backup")
	cfg := parse(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - name: main
    upstreams: [{url: %q}]
    circuit_breaker: {consecutive_failures: 2, fallback: backup}
  - name: backup
    upstreams: [{url: %q}]
routes: [{name: r, match: {path_prefix: /}, service: main}]
`, bad.URL, backup.URL)
	f := newFixture(t, cfg, Options{})
	f.get("/")
	f.get("/")
	resp, body := f.get("/")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "backup") {
		t.Fatalf("fallback: %d %s", resp.StatusCode, body)
	}
}

func TestRateLimitFaultAndMirrorThroughGateway(t *testing.T) {
	var shadowHits atomic.Int64
	shadowGot := make(chan string, 10)
	shadow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		shadowHits.Add(1)
		b, _ := io.ReadAll(r.Body)
		shadowGot <- r.Method + " " + r.URL.Path + " " + string(b)
		w.WriteHeader(500) // the shadow's failures never reach the client
	}))
	defer shadow.Close()
	main := echoUpstream(t, "main")
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := parse(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: main, upstreams: [{url: %q}]}
  - {name: shadow, upstreams: [{url: %q}]}
routes:
  - name: limited
    match: {path: /limited}
    service: main
    rate_limit: {name: per-route, rate: 1, period: 1s, burst: 2}
  - name: broken
    match: {path: /broken}
    service: main
    fault: {abort: {status: 503, percent: 100}}
  - name: mirrored
    match: {path: /mirrored}
    service: main
    mirror: {service: shadow, percent: 100}
`, main.URL, shadow.URL)
	f := newFixture(t, cfg, Options{Clock: clk})

	codes := []int{}
	for i := 0; i < 3; i++ {
		resp, _ := f.get("/limited")
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
			t.Fatalf("429 without Retry-After")
		}
	}
	if fmt.Sprint(codes) != "[200 200 429]" {
		t.Fatalf("burst of 2 then limit: %v", codes)
	}
	clk.Advance(time.Second)
	if resp, _ := f.get("/limited"); resp.StatusCode != 200 {
		t.Fatalf("after one period: %d", resp.StatusCode)
	}

	resp, body := f.get("/broken")
	if resp.StatusCode != 503 || !strings.Contains(body, "fault") {
		t.Fatalf("fault abort: %d %s", resp.StatusCode, body)
	}

	req, _ := http.NewRequest("POST", f.front.URL+"/mirrored", strings.NewReader("order-1"))
	r2, err := f.front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != 200 || !strings.HasPrefix(string(b), "main POST /mirrored") {
		t.Fatalf("mirrored request: %d %s", r2.StatusCode, b)
	}
	select {
	case got := <-shadowGot:
		if got != "POST /mirrored order-1" {
			t.Fatalf("shadow got %q", got)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("shadow never received the copy")
	}
	if f.events.Count(observe.EventRateLimited) != 1 || f.events.Count(observe.EventFaultInjected) != 1 {
		t.Fatalf("events: rate limited %d, fault %d", f.events.Count(observe.EventRateLimited), f.events.Count(observe.EventFaultInjected))
	}
}
