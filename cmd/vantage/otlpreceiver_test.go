package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/otlptest"
)

// TestOTLPReceiverWiring runs the real serve loop with the receiver on:
// services' SDKs export to the admin listener (OTLP/HTTP) and to the
// OTLP/gRPC listener, what they send is forwarded to the configured OTLP
// exporter, the public listener does not serve the receiver, and
// /api/config does not show the bearer token.
func TestOTLPReceiverWiring(t *testing.T) {
	var upstreamOTLP atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			upstreamOTLP.Add(1)
		}
		_, _ = io.WriteString(w, "upstream")
	}))
	defer upstream.Close()
	collector, collectorURL := otlptest.StartHTTP(t)

	cfg, err := config.Parse("otlp.yml", []byte(`
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
access_log: {enabled: false}
services: [{name: s, upstreams: [{url: "`+upstream.URL+`"}]}]
routes: [{name: r, match: {path_prefix: /}, service: s}]
tracing:
  sampling: {ratio: 0}
  exporters: [{name: collector, type: otlp_http, endpoint: "`+collectorURL+`", flush_interval: 50ms}]
otlp_receiver:
  grpc_address: "127.0.0.1:0"
  forward: true
  bearer_token: s3cret-token
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan boundAddrs, 1)
	stop := make(chan struct{})
	done := make(chan int, 1)
	go func() {
		done <- serve(cfg, serveOptions{stdout: io.Discard, stderr: io.Discard, ready: func(a boundAddrs) { ready <- a }, stop: stop})
	}()
	var b boundAddrs
	select {
	case b = <-ready:
	case code := <-done:
		t.Fatalf("serve exited with %d", code)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not start")
	}
	defer func() {
		close(stop)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop")
		}
	}()
	if b.OTLPGRPC == "" || strings.HasSuffix(b.OTLPGRPC, ":0") {
		t.Fatalf("OTLP/gRPC bound address %q", b.OTLPGRPC)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	auth := map[string]string{"Authorization": "Bearer s3cret-token"}

	// Over OTLP/HTTP to the admin listener, and over gRPC.
	httpExp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL("http://"+b.Admin+"/v1/traces"), otlptracehttp.WithHeaders(auth))
	if err != nil {
		t.Fatal(err)
	}
	grpcExp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(b.OTLPGRPC), otlptracegrpc.WithInsecure(), otlptracegrpc.WithHeaders(auth))
	if err != nil {
		t.Fatal(err)
	}
	for name, exp := range map[string]sdktrace.SpanExporter{"via-http": httpExp, "via-grpc": grpcExp} {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		_, span := tp.Tracer("svc").Start(ctx, name)
		span.End()
		if err := tp.Shutdown(ctx); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	got := map[string]bool{}
	for _, s := range collector.WaitSpans(t, 2, 10*time.Second) {
		got[s.Name] = true
	}
	if !got["via-http"] || !got["via-grpc"] {
		t.Errorf("forwarded spans %v, want via-http and via-grpc", got)
	}

	// Without the token: 401.
	resp, err := http.Post("http://"+b.Admin+"/v1/traces", "application/x-protobuf", bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("admin /v1/traces without the token: %d, want 401", resp.StatusCode)
	}

	// The public listener proxies /v1/traces like any path: the receiver is
	// not there.
	for _, path := range []string{"/v1/traces", "/v1/logs"} {
		resp, err := http.Post("http://"+b.Listeners["public"]+path, "application/x-protobuf", bytes.NewReader(nil))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "upstream" {
			t.Errorf("public %s answered %d %q, not the upstream", path, resp.StatusCode, body)
		}
	}
	if n := upstreamOTLP.Load(); n != 2 {
		t.Errorf("upstream saw %d OTLP paths, want 2", n)
	}

	// Metrics on the admin listener count what was received (the forwarder
	// counts a send when its answer arrives, just after the collector has
	// the span: poll, bounded).
	wantMetrics := []string{
		`vantage_otlp_receiver_items_total{outcome="accepted",signal="traces"} 2`,
		`vantage_otlp_receiver_requests_total{outcome="unauthorized",signal="traces",transport="http"} 1`,
		`vantage_otlp_receiver_forwarded_total{outcome="sent",signal="traces",target="collector"} 2`,
	}
	var missing []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		resp, err := http.Get("http://" + b.Admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		missing = missing[:0]
		for _, want := range wantMetrics {
			if !strings.Contains(string(metrics), want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Errorf("/metrics lacks %v", missing)
	}
	resp, err = http.Get("http://" + b.Admin + "/api/config")
	if err != nil {
		t.Fatal(err)
	}
	conf, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(conf, []byte("s3cret-token")) || !bytes.Contains(conf, []byte(`"bearer_token": "[redacted]"`)) {
		t.Errorf("/api/config shows the bearer token or lacks the redacted field:\n%s", conf)
	}
}
