package accesslog_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/vantage-gateway/vantage/internal/accesslog"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// traceStub stands in for the tracing middleware: it gives every request
// a trace id, as tracing does outside the access log.
var traceStub = middleware.FactoryFunc(func(middleware.Route) middleware.Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := observe.FromContext(r.Context())
			rec.Trace = observe.TraceContext{TraceID: [16]byte{0xab, 0xcd}, SpanID: [8]byte{0xef}, Valid: true}
			next.ServeHTTP(w, r)
		})
	}
})

// One record per request through the real gateway: a proxied request, an
// unmatched one and one whose upstream is down.
func TestThroughGateway(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", "yes")
		fmt.Fprint(w, "ok")
	}))
	defer up.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	cfg, err := config.Parse("e2e.yml", []byte(`
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: items, upstreams: [{url: "`+up.URL+`"}]}
  - {name: gone, upstreams: [{url: "`+downURL+`"}]}
routes:
  - {name: item, match: {path: "/items/{id}"}, service: items}
  - {name: broken, match: {path_prefix: "/broken"}, service: gone}
access_log:
  response_headers: [X-Upstream]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	l, err := accesslog.New(cfg.AccessLog, accesslog.Options{Stdout: out})
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Telemetry: middleware.Telemetry{Tracing: traceStub, AccessLog: l}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g.Handler("public"))
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()

	for _, p := range []string{"/items/42?api_key=secret", "/nowhere", "/broken/x"} {
		resp, err := client.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 records, got %d:\n%s", len(lines), out.String())
	}
	if strings.Contains(out.String(), "secret") {
		t.Fatalf("secret leaked:\n%s", out.String())
	}
	want := []map[string]any{
		{"route": "item", "http.route": "/items/{id}", "service": "items", "http.response.status_code": 200.0,
			"url.query": "api_key=REDACTED", "attempts": 1.0, "http.response.header.x-upstream": []any{"yes"}},
		{"route": nil, "http.response.status_code": 404.0, "error.type": "no_route", "attempts": 0.0},
		{"route": "broken", "http.response.status_code": 502.0, "error.type": "upstream_connect"},
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if m["trace_id"] != "abcd0000000000000000000000000000" || m["client.address"] != "127.0.0.1" || m["listener"] != "public" {
			t.Errorf("line %d: %s", i, line)
		}
		for k, v := range want[i] {
			if fmt.Sprint(m[k]) != fmt.Sprint(v) {
				t.Errorf("line %d: %s = %v, want %v\n%s", i, k, m[k], v, line)
			}
		}
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
