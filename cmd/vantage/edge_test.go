package main

import (
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

// TestServeCountsRefusedRequestsAndDrains runs the real serve loop: the
// refusal counter starts at zero for every reason, counts what the
// listener and net/http refuse, the refusals are logged, and /readyz says
// draining while a request in flight holds the shutdown.
func TestServeCountsRefusedRequestsAndDrains(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(time.Second)
		}
		fmt.Fprint(w, "ok")
	}))
	defer up.Close()
	cfg, err := config.Parse("edge.yml", []byte(fmt.Sprintf(`
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
shutdown_grace: 5s
access_log: {enabled: false}
services: [{name: s, upstreams: [{url: %q}]}]
routes: [{name: r, match: {path_prefix: /}, service: s}]
`, up.URL)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan boundAddrs, 1)
	stop := make(chan struct{})
	done := make(chan int, 1)
	var logs bytes.Buffer
	go func() {
		done <- serve(cfg, serveOptions{stdout: io.Discard, stderr: &syncWriter{w: &logs}, ready: func(a boundAddrs) { ready <- a }, stop: stop})
	}()
	var addrs boundAddrs
	select {
	case addrs = <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("never ready")
	}
	metric := func(reason string) string {
		return `vantage_listener_rejected_requests_total{listener="public",reason="` + reason + `"} `
	}
	m := adminGet(t, addrs.Admin, "/metrics")
	for _, reason := range []string{"ambiguous_framing", "bad_request", "header_too_large", "connect", "other"} {
		if !strings.Contains(m, metric(reason)+"0\n") {
			t.Errorf("no zero series for %s", reason)
		}
	}
	raw := func(payload string) {
		c, err := net.Dial("tcp", addrs.Listeners["public"])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, payload)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		io.ReadAll(c)
	}
	raw("GARBAGE\r\n\r\n")
	raw("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	waitUntil(t, func() bool {
		m := adminGet(t, addrs.Admin, "/metrics")
		return strings.Contains(m, metric("bad_request")+"1\n") && strings.Contains(m, metric("ambiguous_framing")+"1\n")
	})
	if !strings.Contains(logs.String(), "request refused before routing") {
		t.Errorf("refusals not logged:\n%s", logs.String())
	}

	result := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + addrs.Listeners["public"] + "/slow")
		if err == nil {
			resp.Body.Close()
		}
		result <- err
	}()
	time.Sleep(200 * time.Millisecond) // the request is in flight
	close(stop)
	waitUntil(t, func() bool { return adminGet(t, addrs.Admin, "/readyz") == "draining\n" })
	if err := <-result; err != nil {
		t.Fatalf("in-flight request: %v", err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exit %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return")
	}
}
