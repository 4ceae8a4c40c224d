package demo

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
)

// TestShopThroughTheGateway runs the generated config in the real gateway
// in front of the shop and checks that each traffic control it declares
// does what the demo says: the canary split and its override, the rate
// limit on orders, and the payments breaker with its fallback.
func TestShopThroughTheGateway(t *testing.T) {
	t.Parallel()
	shop, rec, clk := startShop(t)
	data, err := GatewayConfig(ConfigOptions{Listen: "127.0.0.1:0", Admin: "off", Upstreams: shop.Upstreams()})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("vantage-demo.yml", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g.Handler("public"))
	defer srv.Close()
	shop.SetGateway(srv.URL)

	t.Run("pages", func(t *testing.T) {
		doUntil(t, 200, "GET", srv.URL+"/products/1", "")
		doUntil(t, 200, "GET", srv.URL+"/", "")
	})

	t.Run("trace context flows through", func(t *testing.T) {
		// A client's trace: the gateway continues it (or passes it on when
		// its tracing is off), and every hop behind it joins the same trace.
		hdr := http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
		for range 10 {
			if st, _, _ := do(t, "GET", srv.URL+"/products/6", "", hdr); st == 200 {
				break
			}
		}
		id, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
		spansOf(t, rec, id, "storefront GET /products/{id}", "catalog GET /products/{id}", "inventory GET /stock/{id}")
	})

	t.Run("canary split and override", func(t *testing.T) {
		versions := map[string]int{}
		for range 30 {
			_, body, _ := do(t, "GET", srv.URL+"/api/catalog/products/7", "", nil)
			for _, v := range []string{"1.8.0", "2.0.0-rc.1"} {
				if strings.Contains(body, `"catalog_version":"`+v+`"`) {
					versions[v]++
				}
			}
		}
		if versions["1.8.0"] < 20 || versions["2.0.0-rc.1"] == 0 {
			t.Errorf("30 catalog calls went to %v, want about 90/10", versions)
		}
		for header, want := range map[string]string{"always": "2.0.0-rc.1", "never": "1.8.0"} {
			var body string
			for range 10 {
				var st int
				if st, body, _ = do(t, "GET", srv.URL+"/api/catalog/products/7", "", http.Header{"X-Canary": {header}}); st == 200 {
					break
				}
			}
			if !strings.Contains(body, want) {
				t.Errorf("X-Canary: %s answered %s, want version %s", header, body, want)
			}
		}
	})

	t.Run("rate limit on orders", func(t *testing.T) {
		statuses := postConcurrently(t, srv.URL+"/api/orders", `{"product_id": 5, "quantity": 1}`, 8)
		if statuses[http.StatusCreated] == 0 || statuses[http.StatusTooManyRequests] == 0 {
			t.Errorf("8 orders at once: %v, want some placed and some refused with 429", statuses)
		}
		if body := doUntil(t, 200, "GET", srv.URL+"/api/orders/1", ""); !strings.Contains(body, `"id":1`) {
			t.Errorf("order 1: %s", body)
		}
	})

	t.Run("breaker falls back to payments-queue", func(t *testing.T) {
		clk.Advance(61 * time.Second) // payments' bad phase; refills the rate limit too
		postConcurrently(t, srv.URL+"/internal/payments/charge", `{"order_id": 1}`, 8)
		deferred := false
		for range 10 {
			if st, body, _ := do(t, "POST", srv.URL+"/internal/payments/charge", `{"order_id": 2}`, nil); st == http.StatusAccepted && strings.Contains(body, "deferred") {
				deferred = true
				break
			}
		}
		if !deferred {
			t.Fatal("the payments breaker never sent a charge to payments-queue")
		}
		st, body, _ := do(t, "POST", srv.URL+"/api/orders", `{"product_id": 5, "quantity": 1}`, nil)
		if st != http.StatusCreated || !strings.Contains(body, "payment_pending") {
			t.Errorf("order while the breaker is open: %d %s", st, body)
		}
	})
}

// postConcurrently sends n POSTs at once and counts the statuses.
func postConcurrently(t *testing.T, url, body string, n int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	c := &http.Client{Timeout: 5 * time.Second}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return statuses
}
