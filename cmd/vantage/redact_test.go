package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/otlptest"
)

// TestRedactionThroughProxy sends a request with secret query parameters
// through the real serve loop (gateway, upstream, tracing exported over
// OTLP, the access log in each format and over OTLP) and checks that the
// access-log line, the OTLP log record and the exported span all carry the
// same redacted query, and that no secret value appears in any of them.
func TestRedactionThroughProxy(t *testing.T) {
	secrets := []string{"eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.sig1", "at-7f3a9c", "ak-51d0e2", "tk-93be41", "sid-0c7d55"}
	query := "jwt=" + secrets[0] + "&access-token=" + secrets[1] + "&x-api-key=" + secrets[2] +
		"&auth_token=" + secrets[3] + "&session_id=" + secrets[4] + "&page=2"
	const want = "jwt=REDACTED&access-token=REDACTED&x-api-key=REDACTED&auth_token=REDACTED&session_id=REDACTED&page=2"

	var upstreamQuery string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamQuery = r.URL.RawQuery
		fmt.Fprint(w, "ok")
	}))
	defer up.Close()

	for _, format := range []string{config.AccessLogJSON, config.AccessLogCommon, config.AccessLogCombined} {
		t.Run(format, func(t *testing.T) {
			spans, spansURL := otlptest.StartHTTP(t)
			logs, logsURL := otlptest.StartLogsHTTP(t)
			cfg, err := config.Parse("redact.yml", []byte(fmt.Sprintf(`
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "off"}
services: [{name: s, upstreams: [{url: %q}]}]
routes: [{name: r, match: {path_prefix: /}, service: s}]
tracing:
  exporters:
    - {name: collector, type: otlp_http, endpoint: %q, flush_interval: 10ms}
access_log:
  format: %s
  otlp: {exporter: collector, endpoint: %q, flush_interval: 10ms}
`, up.URL, spansURL+"/v1/traces", format, logsURL+"/v1/logs")), nil)
			if err != nil {
				t.Fatal(err)
			}
			var stdoutBuf strings.Builder
			stdout := &syncWriter{w: &stdoutBuf}
			var stderr strings.Builder
			ready := make(chan boundAddrs, 1)
			stop := make(chan struct{})
			done := make(chan int, 1)
			go func() {
				done <- serve(cfg, serveOptions{stdout: stdout, stderr: &syncWriter{w: &stderr}, ready: func(a boundAddrs) { ready <- a }, stop: stop})
			}()
			var addrs boundAddrs
			select {
			case addrs = <-ready:
			case <-time.After(5 * time.Second):
				t.Fatal("never ready")
			}
			req, _ := http.NewRequest("GET", "http://"+addrs.Listeners["public"]+"/items?"+query, nil)
			req.Header.Set("Referer", "https://shop.example/cb?code=c-123&state=st-456")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || upstreamQuery != query {
				t.Fatalf("status %d, upstream got %q: the proxy must forward the query untouched", resp.StatusCode, upstreamQuery)
			}
			close(stop)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("serve did not return")
			}

			line := strings.TrimSpace(stdoutBuf.String())
			var lineQuery string
			if format == config.AccessLogJSON {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("access log %q: %v", line, err)
				}
				lineQuery, _ = m["url.query"].(string)
			} else if _, after, ok := strings.Cut(line, "/items?"); ok {
				lineQuery, _, _ = strings.Cut(after, " ")
			}
			if lineQuery != want {
				t.Errorf("access log query = %q, want %q\n%s", lineQuery, want, line)
			}

			recs := logs.Wait(t, 1)
			if got := recs[0].Attrs["url.query"]; got != want {
				t.Errorf("OTLP log record url.query = %v, want %q", got, want)
			}
			var server *otlptest.Span
			for _, s := range spans.WaitSpans(t, 2, 5*time.Second) {
				if s.Kind == "server" {
					server = &s
				}
			}
			if server == nil {
				t.Fatal("no server span")
			}
			if got := server.Attrs["url.query"]; got != want {
				t.Errorf("span url.query = %v, want %q", got, want)
			}

			everything := line + "\n" + stderr.String() + fmt.Sprint(recs) + fmt.Sprint(spans.Spans())
			for _, s := range append(secrets, "c-123", "st-456") {
				if strings.Contains(everything, s) {
					t.Errorf("secret %q leaked into the log line, log record or spans:\n%s", s, everything)
				}
			}
		})
	}
}
