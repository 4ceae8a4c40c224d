package tracing

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/otlptest"
)

// TestThroughRealGateway wires tracing into the real gateway (router, proxy
// with retries, error mapping) as cmd/vantage does, and checks the spans
// and headers end to end against a real OTLP receiver.
func TestThroughRealGateway(t *testing.T) {
	rcv, otlpURL := otlptest.StartHTTP(t)
	up := newUpstream(t, 503, 200)
	dead := deadAddr(t)
	y := fmt.Sprintf(`listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - name: svc
    upstreams: [{url: "%s"}]
  - name: gone
    upstreams: [{url: "http://%s"}]
routes:
  - name: items
    match: {path: "/items/{id}"}
    service: svc
    retry: {attempts: 2, on: ["503"], backoff: 1ms, max_backoff: 2ms}
  - name: broken
    match: {path_prefix: "/broken/"}
    service: gone
tracing:
  response_header: traceresponse
  exporters:
    - type: otlp_http
      endpoint: %q
      flush_interval: 20ms
`, up.srv.URL, dead, otlpURL)
	tr, srv := startRealGateway(t, y)

	get := func(path string, h http.Header) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for k, vs := range h {
			req.Header[k] = vs
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body)
	}

	// A retried request continues the caller's trace, one client span per
	// attempt, each the parent the upstream saw.
	resp, _ := get("/items/5", h("traceparent", "00-"+inTID+"-"+inSID+"-01", "b3", inTID2+"-"+inSID2+"-1"))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if tp := resp.Header.Values("Traceresponse"); len(tp) != 1 || !strings.HasPrefix(tp[0], "00-"+inTID+"-") {
		t.Errorf("traceresponse %q", tp)
	}
	spans := rcv.WaitSpans(t, 3, 10*time.Second)
	var server otlptest.Span
	clients := map[string]otlptest.Span{}
	for _, s := range spans {
		if s.Kind == "server" {
			server = s
		} else {
			clients[s.SpanID] = s
		}
	}
	if server.Name != "GET /items/{id}" || server.ParentSpanID != inSID || server.Attrs["http.route"] != "/items/{id}" {
		t.Errorf("server span %q parent %s attrs %v", server.Name, server.ParentSpanID, server.Attrs)
	}
	got := up.received()
	if len(got) != 2 || len(clients) != 2 {
		t.Fatalf("upstream saw %d attempts, %d client spans", len(got), len(clients))
	}
	for i, hd := range got {
		tp := hd.Values("Traceparent")
		if len(tp) != 1 || hd.Get("B3") != "" {
			t.Fatalf("attempt %d: traceparent %q b3 %q", i, tp, hd.Get("B3"))
		}
		if !strings.HasPrefix(tp[0], "00-"+inTID+"-") || !strings.HasSuffix(tp[0], "-01") || len(tp[0]) != 55 {
			t.Fatalf("attempt %d: traceparent %q does not continue the sampled trace %s", i, tp[0], inTID)
		}
		parent := strings.Split(tp[0], "-")[2]
		c, ok := clients[parent]
		if !ok || c.ParentSpanID != server.SpanID {
			t.Errorf("attempt %d parent %s is not one of the gateway's client spans", i, parent)
		}
		if want := int64(i); i > 0 && c.Attrs["http.request.resend_count"] != want {
			t.Errorf("attempt %d resend_count %v", i, c.Attrs["http.request.resend_count"])
		}
	}

	// An error the gateway writes itself carries the trace id.
	resp, body := get("/broken/x", nil)
	var eb struct {
		TraceID string `json:"trace_id"`
	}
	_ = json.Unmarshal([]byte(body), &eb)
	tr0 := resp.Header.Get("Traceresponse")
	if resp.StatusCode < 500 || eb.TraceID == "" || !strings.Contains(tr0, eb.TraceID) {
		t.Errorf("gateway error: status %d traceresponse %q body %s", resp.StatusCode, tr0, body)
	}

	// Unmatched requests get a trace id too.
	resp, _ = get("/nope", nil)
	if resp.StatusCode != 404 || len(resp.Header.Get("Traceresponse")) != 55 {
		t.Errorf("404: status %d traceresponse %q", resp.StatusCode, resp.Header.Get("Traceresponse"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range rcv.WaitSpans(t, 5, 10*time.Second) {
		if s.TraceID == eb.TraceID && s.Kind == "server" {
			found = true
			if !s.StatusError || s.Attrs["error.type"] == nil {
				t.Errorf("gateway error span status %v attrs %v", s.StatusError, s.Attrs)
			}
		}
	}
	if !found {
		t.Errorf("no span for the failed request's trace %s", eb.TraceID)
	}
}

// TestMirrorContinuesTrace checks that a mirrored copy, sent after the
// response on a context of its own, still continues the request's trace:
// the shadow sees the request's trace id with its SERVER span as parent,
// and none of the client's stale trace headers.
func TestMirrorContinuesTrace(t *testing.T) {
	up, shadow := newUpstream(t), newUpstream(t)
	y := fmt.Sprintf(`listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - name: svc
    upstreams: [{url: "%s"}]
  - name: shadow
    upstreams: [{url: "%s"}]
routes:
  - name: items
    match: {path: "/items/{id}"}
    service: svc
    mirror: {service: shadow}
tracing:
  response_header: traceresponse
  sampling: {ratio: 0}
`, up.srv.URL, shadow.srv.URL)
	_, srv := startRealGateway(t, y)

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/items/1", nil)
	req.Header.Set("B3", inTID2+"-"+inSID2+"-1") // trusted: continued, then replaced
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tresp := resp.Header.Get("Traceresponse") // 00-<trace>-<server span>-<flags>
	parts := strings.Split(tresp, "-")
	if len(parts) != 4 {
		t.Fatalf("traceresponse %q", tresp)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(shadow.received()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := shadow.received()
	if len(got) != 1 {
		t.Fatalf("shadow saw %d requests", len(got))
	}
	tp := got[0].Values("Traceparent")
	if len(tp) != 1 || got[0].Get("B3") != "" {
		t.Fatalf("shadow headers: traceparent %q, b3 %q", tp, got[0].Get("B3"))
	}
	if tp[0] != tresp {
		t.Errorf("shadow traceparent %q does not continue %q with the server span as parent", tp[0], tresp)
	}
}

// startRealGateway serves config y's "public" listener through the real
// gateway with tracing wired in as cmd/vantage does; everything is closed
// when the test ends.
func startRealGateway(t *testing.T, y string) (*Tracing, *httptest.Server) {
	t.Helper()
	cfg, err := config.Parse("gw.yml", []byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := newTracing(t, cfg, Options{})
	gw, err := gateway.New(cfg, gateway.Options{Observer: tr, Telemetry: middleware.Telemetry{Tracing: tr}, WrapTransport: tr.WrapTransport})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	srv := httptest.NewServer(gw.Handler("public"))
	t.Cleanup(srv.Close)
	return tr, srv
}
