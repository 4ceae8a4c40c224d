package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
)

// TestSlowBodyThroughServe runs the whole gateway as serve builds it —
// tracing, metrics and the access log around every route — and checks
// that a stalled request body is still cut by the route's request_body
// idle timeout (408), counted, and logged with its error kind.
func TestSlowBodyThroughServe(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer up.Close()
	cfg, err := config.Parse("serve.yml", []byte(fmt.Sprintf(`
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
access_log: {enabled: true, output: stdout}
tracing: {enabled: true, sampling: {ratio: 1}}
services: [{name: s, upstreams: [{url: %q}]}]
routes:
  - {name: api, match: {path_prefix: /}, service: s, request_body: {idle_timeout: 300ms}}
`, up.URL)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan boundAddrs, 1)
	stop := make(chan struct{})
	done := make(chan int, 1)
	var stdout, logs bytes.Buffer
	out := &syncWriter{w: &stdout}
	go func() {
		done <- serve(cfg, serveOptions{stdout: out, stderr: &syncWriter{w: &logs},
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

	c, err := net.Dial("tcp", addrs.Listeners["public"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(8 * time.Second))
	io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\nab")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response to a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408", resp.StatusCode)
	}
	waitUntil(t, func() bool {
		return strings.Contains(adminGet(t, addrs.Admin, "/metrics"), `vantage_request_body_timeouts_total{reason="idle",route="api"} 1`)
	}, &logs)
	waitUntil(t, func() bool {
		out.mu.Lock()
		defer out.mu.Unlock()
		return strings.Contains(stdout.String(), `"error.type":"client_timeout"`) &&
			strings.Contains(stdout.String(), `"http.response.status_code":408`)
	}, &logs)
}
