package admin

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/observe"
)

type fakeGateway struct {
	cfg     *config.Config
	weights map[string]int
}

func (f *fakeGateway) Config() *config.Config { return f.cfg }
func (f *fakeGateway) LastReload() gateway.ReloadStatus {
	return gateway.ReloadStatus{Success: true, Source: "start"}
}
func (f *fakeGateway) Routes() []gateway.RouteStatus {
	return []gateway.RouteStatus{{Name: "r", Status: "enabled"}}
}
func (f *fakeGateway) Services() []gateway.ServiceStatus { return nil }
func (f *fakeGateway) SplitWeights(string) ([]config.SplitService, error) {
	return nil, gateway.ErrNoSuchSplit
}
func (f *fakeGateway) SetSplit(route string, w map[string]int, src observe.ChangeSource) ([]config.SplitService, error) {
	if route != "checkout" {
		return nil, gateway.ErrNoSuchSplit
	}
	if w["checkout"] < 0 {
		return nil, errors.New("weight must be >= 0")
	}
	f.weights = w
	return []config.SplitService{{Service: "checkout", Weight: w["checkout"]}}, nil
}

func do(t *testing.T, h http.Handler, method, path, ctype, body string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Host = "127.0.0.1:9901"
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func TestAdmin(t *testing.T) {
	cfg, err := config.Parse("f.yml", []byte(`
listeners: [{address: "127.0.0.1:1"}]
services: [{name: s, upstreams: [{url: "http://127.0.0.1:2"}]}]
routes:
  - name: r
    match: {path: /, headers: [{name: X-Env, value: prod}]}
    service: s
    request_headers: {set: {Authorization: "Bearer s3cret"}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	fg := &fakeGateway{cfg: cfg}
	h := New(fg, Options{Version: "v-test"})

	if code, _ := do(t, h, "GET", "/readyz", "", ""); code != 503 {
		t.Fatalf("readyz before ready: %d", code)
	}
	h.SetReady(true)
	if code, _ := do(t, h, "GET", "/readyz", "", ""); code != 200 {
		t.Fatalf("readyz: %d", code)
	}
	h.SetDraining()
	if code, body := do(t, h, "GET", "/readyz", "", ""); code != 503 || body != "draining\n" {
		t.Fatalf("readyz while draining: %d %q", code, body)
	}
	code, body := do(t, h, "GET", "/api/config", "", "")
	if code != 200 || strings.Contains(body, "s3cret") || !strings.Contains(body, "[redacted]") {
		t.Fatalf("config not redacted: %s", body)
	}
	if !strings.Contains(body, `"X-Env"`) {
		t.Fatalf("match headers must stay visible: %s", body)
	}
	if code, _ := do(t, h, "PUT", "/api/routes/checkout/split", "text/plain", `{"weights":{"checkout":1}}`); code != 415 {
		t.Fatalf("non-JSON split update: %d, want 415", code)
	}
	if code, _ := do(t, h, "PUT", "/api/routes/nope/split", "application/json", `{"weights":{"a":1}}`); code != 404 {
		t.Fatalf("unknown split: %d", code)
	}
	if code, _ := do(t, h, "PUT", "/api/routes/checkout/split", "application/json", `{"weights":{"checkout":-1}}`); code != 422 {
		t.Fatalf("invalid weights: %d", code)
	}
	if code, body := do(t, h, "PUT", "/api/routes/checkout/split", "application/json", `{"weights":{"checkout":100}}`); code != 200 || fg.weights["checkout"] != 100 {
		t.Fatalf("split update: %d %s", code, body)
	}
	if code, _ := do(t, h, "PUT", "/api/routes/checkout/split", "application/json", `{"weight":1}`); code != 400 {
		t.Fatalf("malformed body: %d", code)
	}
}
