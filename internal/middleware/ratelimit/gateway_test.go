package ratelimit_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/observe/observetest"
)

// eventLog records decision events.
type eventLog = observetest.Recorder

const gatewayYAML = `
listeners: [{name: public, address: "127.0.0.1:0"}]
services: [{name: a, upstreams: [{url: %q}]}]
routes:
  - name: api
    match: {path_prefix: /}
    service: a
    rate_limit: {name: per-client, rate: 1, burst: %d, key: {client_ip: true}}
`

// TestThroughGateway runs the rate limit in the real gateway's chain, in
// front of a real upstream, across a hot reload.
func TestThroughGateway(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	parse := func(burst int) *config.Config {
		cfg, err := config.Parse("t.yml", []byte(fmt.Sprintf(gatewayYAML, up.URL, burst)), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	ev := &eventLog{}
	g, err := gateway.New(parse(2), gateway.Options{Observer: ev, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(g.Handler("public"))
	defer func() { front.Close(); g.Close() }()
	client := front.Client()
	defer client.CloseIdleConnections()
	get := func() *http.Response {
		resp, err := client.Get(front.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	for i, want := range []int{200, 200, 429} {
		if resp := get(); resp.StatusCode != want {
			t.Fatalf("request %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
	// Same policy after a reload: the bucket is still empty.
	if err := g.Reload(parse(2), observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	if resp := get(); resp.StatusCode != 429 || resp.Header.Get("RateLimit-Policy") != `"per-client";q=2;w=2` {
		t.Fatalf("after an unchanged reload: %d %q", resp.StatusCode, resp.Header.Get("RateLimit-Policy"))
	}
	clk.Advance(time.Second)
	if resp := get(); resp.StatusCode != 200 {
		t.Fatalf("a second later: %d", resp.StatusCode)
	}
	// A changed policy starts with full buckets.
	if err := g.Reload(parse(3), observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if resp := get(); resp.StatusCode != 200 {
			t.Fatalf("changed policy, request %d: %d", i, resp.StatusCode)
		}
	}
	evs := ev.Of(observe.EventRateLimited)
	if len(evs) != 2 || evs[0].Route != "api" || evs[0].RateLimit != (observe.RateLimitHit{Policy: "per-client", Key: observe.RateLimitKeyClientIP}) {
		t.Errorf("events = %+v", evs)
	}
}
