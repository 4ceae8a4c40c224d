package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
)

// TestZeroCountersFromStart scrapes /metrics right after start, before any
// traffic: the counters of the configured controls are there at zero, so a
// rate() alert sees the first burst. A reload that removes the rate limit
// removes its counter.
func TestZeroCountersFromStart(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	file := filepath.Join(t.TempDir(), "vantage.yml")
	write := func(rateLimit string) {
		data := fmt.Sprintf(`
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
access_log: {enabled: false}
services:
  - name: s
    upstreams: [{url: %q}]
    circuit_breaker: {consecutive_failures: 5}
routes:
  - name: api
    match: {path_prefix: /}
    service: s
    retry: {attempts: 2, on: [timeout]}
%s`, up.URL, rateLimit)
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("    rate_limit: {rate: 100}\n")
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan boundAddrs, 1)
	stop := make(chan struct{})
	done := make(chan int, 1)
	var logs bytes.Buffer
	go func() {
		done <- serve(cfg, serveOptions{file: file, watch: true, stdout: io.Discard, stderr: &syncWriter{w: &logs},
			ready: func(a boundAddrs) { ready <- a }, stop: stop})
	}()
	defer func() {
		close(stop)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("serve did not return")
		}
	}()
	var addrs boundAddrs
	select {
	case addrs = <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("never ready")
	}

	scrape := adminGet(t, addrs.Admin, "/metrics")
	for _, want := range []string{
		`vantage_rate_limit_rejections_total{key="route",policy="api",route="api"} 0`,
		`vantage_circuit_breaker_rejections_total{route="api",service="s",upstream="none"} 0`,
		`vantage_retries_total{reason="upstream_timeout",route="api",service="s"} 0`,
		`vantage_retry_budget_exhausted_total{route="api",service="s"} 0`,
		`vantage_request_body_timeouts_total{reason="idle",route="api"} 0`,
		`vantage_request_body_timeouts_total{reason="min_rate",route="api"} 0`,
	} {
		if !strings.Contains(scrape, want) {
			t.Errorf("no %s in the first scrape", want)
		}
	}

	write("")
	waitUntil(t, func() bool {
		return !strings.Contains(adminGet(t, addrs.Admin, "/metrics"), "vantage_rate_limit_rejections_total{")
	}, &logs)
	if s := adminGet(t, addrs.Admin, "/metrics"); !strings.Contains(s, `vantage_retry_budget_exhausted_total{route="api",service="s"} 0`) {
		t.Errorf("the retry budget counter went with the rate limit")
	}
}
