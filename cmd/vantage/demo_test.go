package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
)

// demoOutput is a buffer safe to write and read concurrently.
type demoOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *demoOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *demoOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// demoLine waits for the line starting with prefix in out and returns the
// rest of it.
func demoLine(t *testing.T, out *demoOutput, exited <-chan int, prefix string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(prefix) + `\s+(\S+)`)
	deadline := time.After(8 * time.Second)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-exited:
			t.Fatalf("demo exited with %d before printing %q; output:\n%s", code, prefix, out)
		case <-deadline:
			t.Fatalf("no %q line; output:\n%s", prefix, out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func demoGet(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestDemoCommand(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "out", "demo.yml")
	var stdout, stderr demoOutput
	exited := make(chan int, 1)
	start := time.Now()
	go func() {
		exited <- run([]string{"demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0",
			"--duration", "3s", "--traffic", "20", "--config-out", cfgPath}, &stdout, &stderr)
	}()

	gw := demoLine(t, &stdout, exited, "gateway")
	admin := demoLine(t, &stdout, exited, "admin")
	if got := demoLine(t, &stdout, exited, "config"); got != cfgPath {
		t.Errorf("config line names %s, want %s", got, cfgPath)
	}
	if !strings.HasPrefix(gw, "http://127.0.0.1:") || strings.HasSuffix(gw, ":0") {
		t.Fatalf("gateway URL %q must carry the bound port", gw)
	}

	// The gateway serves the shop while the demo runs (the catalog fails a
	// small share of calls on purpose, so allow a few tries).
	var status int
	var body string
	for range 5 {
		if status, _, body = demoGet(t, gw+"/products/1"); status == http.StatusOK {
			break
		}
	}
	if status != http.StatusOK || !strings.Contains(body, `"page":"product"`) {
		t.Errorf("GET /products/1: %d %s", status, body)
	}
	if status, _, body := demoGet(t, admin+"/api/routes"); status != http.StatusOK || !strings.Contains(body, "catalog-api") {
		t.Errorf("admin /api/routes: %d %s", status, body)
	}
	// The history records the demo's traffic (sealed once a second).
	var histTotal uint64
	for i := 0; i < 30 && histTotal == 0; i++ {
		status, _, body := demoGet(t, admin+"/api/history?window=1m")
		var h struct {
			Total struct {
				Requests uint64 `json:"requests"`
			} `json:"total"`
		}
		if status != http.StatusOK || json.Unmarshal([]byte(body), &h) != nil {
			t.Fatalf("admin /api/history: %d %s", status, body)
		}
		if histTotal = h.Total.Requests; histTotal == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if histTotal == 0 {
		t.Error("/api/history saw no request of the demo's traffic")
	}
	// The trace store holds the shop's multi-hop traces: the gateway's
	// spans and the demo services' spans in one trace.
	deadline := time.Now().Add(2 * time.Second)
	for {
		status, _, body := demoGet(t, admin+"/api/traces?service=storefront&limit=5")
		if status == http.StatusOK && strings.Contains(body, `"services":["storefront","vantage"]`) ||
			strings.Contains(body, `"services":["catalog","storefront","vantage"]`) || strings.Contains(body, `"inventory","storefront"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("no multi-service trace in the store: %d %s", status, body)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit code %d; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("demo did not stop after --duration; output:\n%s", stdout.String())
	}
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("demo stopped after %s, before --duration", d)
	}

	out := stdout.String()
	for _, want := range []string{
		"curl -i " + gw + "/products/42",
		"curl " + gw + "/api/catalog/products",
		"curl " + admin + "/api/routes",
		"curl " + admin + "/api/services",
		"curl " + admin + "/metrics",
		"curl 'http://" + strings.TrimPrefix(admin, "http://") + "/api/history?window=1m&step=10s'",
		"OTEL_EXPORTER_OTLP_ENDPOINT",
		"otlp     services may send spans and logs to the gateway: OTEL_EXPORTER_OTLP_ENDPOINT=" + admin,
		"otlp     OTLP/gRPC receiver on 127.0.0.1:",
		"vantage trace --admin " + admin + " TRACE_ID",
		"jaeger   " + admin + "/jaeger",
		"traffic  20 req/s with User-Agent vantage-demo",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^traffic  total: [1-9]\d* requests  2xx [1-9]`).MatchString(out) {
		t.Errorf("no traffic total with answered requests:\n%s", out)
	}

	// The file on disk is the config that ran, and loads like a user's.
	if _, err := config.Load(cfgPath); err != nil {
		t.Errorf("written config does not load: %v", err)
	}
}

func TestDemoFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--traffic", "-1"}, "--traffic"},
		{[]string{"demo", "--duration", "-1s"}, "--duration"},
		{[]string{"demo", "extra"}, "unexpected argument"},
		{[]string{"demo", "--nope"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		var stdout, stderr demoOutput
		if code := run(tt.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%v: code %d, stderr %q", tt.args, code, stderr.String())
		}
	}
}

func TestDemoReportsABusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr demoOutput
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"demo", "--listen", ln.Addr().String(), "--admin", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0",
			"--config-out", filepath.Join(t.TempDir(), "demo.yml")}, &stdout, &stderr)
	}()
	select {
	case code := <-done:
		if code == 0 || !strings.Contains(stderr.String(), "choose others with --listen") {
			t.Errorf("exit code %d with the listen port taken; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(8 * time.Second):
		t.Fatal("demo kept running with the listen port taken")
	}
}
