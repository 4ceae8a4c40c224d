package demo

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/vantage-gateway/vantage/internal/clock"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startShop starts a shop with a span recorder and a fake clock in a good
// payments phase, and stops it when the test ends.
func startShop(t *testing.T) (*Shop, *tracetest.SpanRecorder, *clock.Fake) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	clk := clock.NewFake(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	shop, err := Start(context.Background(), Options{Clock: clk, Seed: 42, SpanProcessor: rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shop.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return shop, rec, clk
}

// do sends one request and returns the status, body and headers.
func do(t *testing.T, method, url, body string, hdr http.Header) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// doUntil repeats a request until it answers want (the services fail a
// small, random share of calls on purpose), at most 10 times.
func doUntil(t *testing.T, want int, method, url, body string) string {
	t.Helper()
	var got int
	var b string
	for range 10 {
		if got, b, _ = do(t, method, url, body, nil); got == want {
			return b
		}
	}
	t.Fatalf("%s %s: status %d, want %d; body %s", method, url, got, want, b)
	return ""
}

func TestServicesAnswer(t *testing.T) {
	t.Parallel()
	shop, _, _ := startShop(t)
	ups := shop.Upstreams()
	for _, l := range layout {
		if got := len(ups[l.service]); got != l.replicas {
			t.Fatalf("%s: %d upstreams, want %d", l.service, got, l.replicas)
		}
		for _, u := range ups[l.service] {
			if st, body, _ := do(t, "GET", u+"/healthz", "", nil); st != 200 || body != "ok\n" {
				t.Errorf("%s/healthz: %d %q", u, st, body)
			}
		}
	}
	if got := strings.Join(shop.Services(), ","); got != "catalog,catalog-v2,inventory,orders,payments,payments-queue,storefront" {
		t.Errorf("Services() = %s", got)
	}

	tests := []struct {
		name, service, method, path, body string
		want                              int
		contains                          string
	}{
		{"home page", Storefront, "GET", "/", "", 200, `"page":"home"`},
		{"product page with stock", Storefront, "GET", "/products/42", "", 200, `"stock":`},
		{"unknown product", Storefront, "GET", "/products/9999", "", 404, "no such product"},
		{"bad product id", Storefront, "GET", "/products/abc", "", 400, "id must be a number"},
		{"catalog list", Catalog, "GET", "/products?limit=3", "", 200, `"products":`},
		{"catalog product", Catalog, "GET", "/products/7", "", 200, `"catalog_version":"1.8.0"`},
		{"canary product", CatalogV2, "GET", "/products/7", "", 200, `"catalog_version":"2.0.0-rc.1"`},
		{"inventory", Inventory, "GET", "/stock/8", "", 200, `"in_stock":`},
		{"place order", Orders, "POST", "/orders", `{"product_id": 3, "quantity": 2}`, 201, `"status":"paid"`},
		{"bad order", Orders, "POST", "/orders", `{"product_id": 0}`, 422, "product_id"},
		{"order status", Orders, "GET", "/orders/1", "", 200, `"status":`},
		{"unknown order", Orders, "GET", "/orders/100000", "", 404, "no such order"},
		{"charge", Payments, "POST", "/charge", `{"order_id": 1}`, 200, "charged"},
		{"deferred charge", PaymentsQueue, "POST", "/charge", `{"order_id": 1}`, 202, "deferred"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := doUntil(t, tt.want, tt.method, ups[tt.service][0]+tt.path, tt.body)
			if !strings.Contains(body, tt.contains) {
				t.Errorf("body %s does not contain %s", body, tt.contains)
			}
		})
	}
}

func TestCatalogReplicasShareStorefrontCalls(t *testing.T) {
	t.Parallel()
	shop, rec, _ := startShop(t)
	for range 6 {
		doUntil(t, 200, "GET", shop.Upstreams()[Storefront][0]+"/products/5", "")
	}
	seen := map[string]int{}
	for _, s := range rec.Ended() {
		if serviceOf(s) == Catalog && s.SpanKind() == trace.SpanKindServer {
			v, _ := s.Resource().Set().Value("service.instance.id")
			seen[v.AsString()]++
		}
	}
	if seen["catalog-1"] == 0 || seen["catalog-2"] == 0 {
		t.Errorf("catalog replicas that served the storefront: %v", seen)
	}
}

// spansOf waits until rec holds n ended spans of trace id and returns
// them by name.
func spansOf(t *testing.T, rec *tracetest.SpanRecorder, id trace.TraceID, names ...string) map[string]sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		got := map[string]sdktrace.ReadOnlySpan{}
		for _, s := range rec.Ended() {
			if s.SpanContext().TraceID() == id {
				got[serviceOf(s)+" "+s.Name()] = s
			}
		}
		missing := ""
		for _, n := range names {
			if got[n] == nil {
				missing = n
			}
		}
		if missing == "" {
			return got
		}
		if time.Now().After(deadline) {
			var have []string
			for k := range got {
				have = append(have, k)
			}
			t.Fatalf("span %q of trace %s not recorded; have %v", missing, id, have)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func serviceOf(s sdktrace.ReadOnlySpan) string {
	v, _ := s.Resource().Set().Value("service.name")
	return v.AsString()
}

func TestTraceFlowsFromStorefrontToCatalogAndInventory(t *testing.T) {
	t.Parallel()
	shop, rec, _ := startShop(t)
	storefront := shop.Upstreams()[Storefront][0]

	// The gateway would send this: the request's trace context.
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	var st int
	for range 10 {
		if st, _, _ = do(t, "GET", storefront+"/products/8", "", http.Header{"Traceparent": {traceparent}}); st == 200 {
			break
		}
	}
	if st != 200 {
		t.Fatalf("status %d", st)
	}
	id, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spans := spansOf(t, rec, id,
		"storefront GET /products/{id}", "storefront GET catalog", "storefront GET inventory",
		"catalog GET /products/{id}", "inventory GET /stock/{id}")

	front := spans["storefront GET /products/{id}"]
	if front.SpanKind() != trace.SpanKindServer || front.Parent().SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("storefront server span: kind %v parent %v", front.SpanKind(), front.Parent().SpanID())
	}
	for _, hop := range []struct{ client, server string }{
		{"storefront GET catalog", "catalog GET /products/{id}"},
		{"storefront GET inventory", "inventory GET /stock/{id}"},
	} {
		c, s := spans[hop.client], spans[hop.server]
		if c.SpanKind() != trace.SpanKindClient || c.Parent().SpanID() != front.SpanContext().SpanID() {
			t.Errorf("%s: kind %v, parent %v, want child of the storefront span", hop.client, c.SpanKind(), c.Parent().SpanID())
		}
		if s.Parent().SpanID() != c.SpanContext().SpanID() || !s.Parent().IsRemote() {
			t.Errorf("%s: parent %v, want the remote client span %v", hop.server, s.Parent().SpanID(), c.SpanContext().SpanID())
		}
	}
	cat := spans["catalog GET /products/{id}"]
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range cat.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	if attrs["http.route"].AsString() != "/products/{id}" || attrs["http.response.status_code"].AsInt64() != 200 || attrs["product.id"].AsInt64() != 8 {
		t.Errorf("catalog span attributes: %v", cat.Attributes())
	}
	if v, _ := cat.Resource().Set().Value("service.instance.id"); !strings.HasPrefix(v.AsString(), "catalog-") {
		t.Errorf("catalog instance id %q", v.AsString())
	}
}

func TestTraceStartsAtStorefrontWithoutIncomingContext(t *testing.T) {
	t.Parallel()
	shop, rec, _ := startShop(t)
	doUntil(t, 200, "GET", shop.Upstreams()[Storefront][0]+"/", "")
	var front sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "GET /{$}" {
			front = s
		}
	}
	if front == nil || front.Parent().IsValid() {
		t.Fatalf("want a root storefront span, got %v", front)
	}
	spansOf(t, rec, front.SpanContext().TraceID(), "catalog GET /products")
	for _, s := range rec.Ended() {
		if strings.Contains(s.Name(), "healthz") {
			t.Errorf("health checks must not be traced: %s", s.Name())
		}
	}
}

func TestOrdersChargeThroughGatewayWhenSet(t *testing.T) {
	t.Parallel()
	shop, rec, _ := startShop(t)
	paths := make(chan string, 4)
	var traceparent string
	// Stands in for the gateway: the breaker is open and the charge goes to
	// the fallback, which defers it.
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.Method + " " + r.URL.Path
		traceparent = r.Header.Get("Traceparent")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"status":"deferred"}`)
	}))
	defer gw.Close()
	shop.SetGateway(gw.URL)

	st, body, _ := do(t, "POST", shop.Upstreams()[Orders][0]+"/orders", `{"product_id": 9, "quantity": 1}`, nil)
	if st != 201 || !strings.Contains(body, `"status":"payment_pending"`) {
		t.Fatalf("order: %d %s", st, body)
	}
	if p := <-paths; p != "POST /internal/payments/charge" {
		t.Errorf("charge sent to %s", p)
	}
	var order struct{ ID int64 }
	_ = json.Unmarshal([]byte(body), &order)
	orderSpan := spansOf(t, rec, traceIDOf(t, traceparent), "orders POST /orders", "orders POST payments")
	if orderSpan["orders POST payments"].Parent().SpanID() != orderSpan["orders POST /orders"].SpanContext().SpanID() {
		t.Error("the payments client span is not a child of the orders span")
	}
	if order.ID < 1 {
		t.Errorf("order id %d", order.ID)
	}

	shop.SetGateway("")
	doUntil(t, 201, "POST", shop.Upstreams()[Orders][0]+"/orders", `{"product_id": 9, "quantity": 1}`)
	select {
	case p := <-paths:
		t.Errorf("after SetGateway(\"\"), a charge still went to the gateway: %s", p)
	default:
	}
}

func traceIDOf(t *testing.T, traceparent string) trace.TraceID {
	t.Helper()
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 {
		t.Fatalf("traceparent %q", traceparent)
	}
	id, err := trace.TraceIDFromHex(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestPaymentsPhases(t *testing.T) {
	f := Flaky{}
	f.setDefaults()
	tests := []struct {
		elapsed time.Duration
		bad     bool
	}{
		{0, false},
		{59 * time.Second, false},
		{60 * time.Second, true},
		{79 * time.Second, true},
		{80 * time.Second, false},
		{2*time.Minute + 65*time.Second, true},
		{-time.Second, false},
	}
	for _, tt := range tests {
		if got := f.bad(tt.elapsed); got != tt.bad {
			t.Errorf("bad(%s) = %v, want %v", tt.elapsed, got, tt.bad)
		}
	}
	if (Flaky{Period: time.Minute, Offset: time.Second, Bad: -1}).bad(2 * time.Second) {
		t.Error("a negative Bad must mean never bad")
	}
}

func TestPaymentsFailInBadPhase(t *testing.T) {
	t.Parallel()
	shop, _, clk := startShop(t)
	if shop.PaymentsBad() {
		t.Fatal("bad at start")
	}
	clk.Advance(65 * time.Second)
	if !shop.PaymentsBad() {
		t.Fatal("not bad at 65s")
	}
	// Calls in the bad phase take about a second each: send them at once.
	url := shop.Upstreams()[Payments][0] + "/charge"
	const n = 12
	results := make(chan int, n)
	for range n {
		go func() {
			req, _ := http.NewRequest("POST", url, strings.NewReader("{}"))
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
			if err != nil {
				results <- 0
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	failed := 0
	for range n {
		if st := <-results; st == http.StatusServiceUnavailable {
			failed++
		} else if st != http.StatusOK {
			t.Errorf("status %d", st)
		}
	}
	if failed == 0 || failed == n {
		t.Errorf("%d of %d charges failed in the bad phase, want some but not all", failed, n)
	}
}
