package fault_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
)

// TestThroughGateway aborts half of a route's requests in the real
// gateway's chain, in front of a real upstream.
func TestThroughGateway(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	cfg, err := config.Parse("t.yml", []byte(`
listeners: [{name: public, address: "127.0.0.1:0"}]
services: [{name: a, upstreams: [{url: "`+up.URL+`"}]}]
routes:
  - name: flaky
    match: {path: /flaky}
    service: a
    fault: {abort: {status: 502, percent: 50}}
  - name: fine
    match: {path: /fine}
    service: a
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Uint64
	alternate := func() uint64 { return n.Add(1) % 2 * 999_999 } // hit, miss, hit, ...
	// The gateway builds the fault stage of every route itself; the test
	// only fixes its random draws.
	g, err := gateway.New(cfg, gateway.Options{Rand: alternate})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(g.Handler("public"))
	defer func() { front.Close(); g.Close() }()
	client := front.Client()
	defer client.CloseIdleConnections()

	codes := ""
	for i := 0; i < 4; i++ {
		resp, err := client.Get(front.URL + "/flaky")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		codes += resp.Status[:3] + " "
		if resp.StatusCode == 502 && !strings.Contains(string(body), `"error":"fault_injected"`) {
			t.Errorf("abort body %q", body)
		}
	}
	// Other stages may take draws from the same source before the first
	// request (the health checker's jitter), so either phase alternates.
	if (codes != "200 502 200 502 " && codes != "502 200 502 200 ") || hits.Load() != 2 {
		t.Errorf("statuses %q with %d upstream hits, want alternating and 2", codes, hits.Load())
	}
	resp, err := client.Get(front.URL + "/fine")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("route without faults: %d", resp.StatusCode)
	}
}
