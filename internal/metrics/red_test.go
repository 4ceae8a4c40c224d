package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

const kpiYAML = `  kpis:
    - name: purchases_total
      help: Completed purchases.
      match: {routes: [checkout], methods: [POST], status: ["2xx"]}
      label: {name: payment_method, header: X-Payment-Method, values: [card, paypal]}
    - name: order_amount
      type: histogram
      value_header: X-Order-Amount
      buckets: [10, 100, 1000]
      match: {routes: [checkout], methods: [POST], status: ["201"]}
`

// scenario builds the stand-in gateway over real upstreams.
func scenario(t *testing.T, m *Metrics) (*standIn, *upstreams) {
	u := startUpstreams(t)
	upgrade := upgradeServer(t)
	svcs := []*testService{
		{name: "users", upstreams: []string{u.ok, u.ok2}},
		{name: "orders", upstreams: []string{u.ok}},
		{name: "stable", upstreams: []string{u.ok}},
		{name: "canary", upstreams: []string{u.ok2}},
		{name: "flaky", upstreams: []string{u.closed, u.ok}},
		{name: "slow", upstreams: []string{u.slow}, timeout: 100 * time.Millisecond},
		{name: "slowc", upstreams: []string{u.slow}},
		{name: "reset", upstreams: []string{u.reset}},
		{name: "proto", upstreams: []string{u.protocol}},
		{name: "down", upstreams: []string{u.closed}},
		{name: "empty"},
		{name: "broken", upstreams: []string{u.ok}, breakerOpen: true},
		{name: "grpc", upstreams: []string{u.ok}},
		{name: "retry503", upstreams: []string{u.ok}},
		{name: "ws", upstreams: []string{upgrade}},
	}
	one := func(name, prefix, svc string) *testRoute {
		return &testRoute{name: name, prefix: prefix, legs: []testLeg{{svc, 1}}, budget: -1, limit: -1}
	}
	routes := []*testRoute{
		one("api", "/api/", "users"),
		one("checkout", "/checkout", "orders"),
		{name: "shop", prefix: "/shop/", legs: []testLeg{{"stable", 9}, {"canary", 1}}, budget: -1, limit: -1},
		{name: "flaky", prefix: "/flaky/", legs: []testLeg{{"flaky", 1}}, retries: 1, budget: -1, limit: -1},
		one("slow", "/slow/", "slow"),
		one("cancel", "/cancel/", "slowc"),
		one("reset", "/reset/", "reset"),
		one("proto", "/proto/", "proto"),
		{name: "down", prefix: "/down/", legs: []testLeg{{"down", 1}}, retries: 1, budget: 0, limit: -1},
		one("empty", "/empty/", "empty"),
		one("broken", "/broken/", "broken"),
		{name: "limited", prefix: "/limited/", legs: []testLeg{{"users", 1}}, budget: -1, limit: 2},
		{name: "fault", prefix: "/fault/", legs: []testLeg{{"orders", 1}}, budget: -1, limit: -1, fault: "abort"},
		one("grpc", "/grpc/", "grpc"),
		{name: "r503", prefix: "/r503/", legs: []testLeg{{"retry503", 1}}, retries: 1, retryOn503: true, budget: -1, limit: -1},
		one("upgrade", "/upgrade/", "ws"),
	}
	return newStandIn(t, m, svcs, routes), u
}

// upgradeServer answers 101 Switching Protocols and closes.
func upgradeServer(t *testing.T) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
		buf.Flush()
		c.Close()
	}))
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

type sent struct {
	method, path string
	n            int
}

func TestREDCountsMatchRequests(t *testing.T) {
	m := newTestMetrics(t, kpiYAML, nil)
	s, u := scenario(t, m)
	gw := httptest.NewServer(s)
	defer gw.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	plan := []sent{
		{"GET", "/api/status/200", 5}, {"POST", "/api/status/201", 2}, {"GET", "/api/status/302", 1},
		{"GET", "/api/status/404", 3}, {"DELETE", "/api/status/500", 1}, {"GET", "/api/status/418", 1},
		{"PURGE", "/api/x", 1},
		{"POST", "/checkout/kpi?pay=card&amount=50", 3}, {"POST", "/checkout/kpi?pay=paypal", 1},
		{"POST", "/checkout/kpi?pay=bitcoin", 1}, {"POST", "/checkout/kpi", 1}, {"GET", "/checkout/kpi", 2},
		{"POST", "/checkout/status/500", 1},
		{"GET", "/shop/", 20},
		{"GET", "/flaky/", 2},
		{"GET", "/slow/", 1},
		{"GET", "/reset/", 1},
		{"GET", "/proto/", 1},
		{"GET", "/down/", 1},
		{"GET", "/empty/", 1},
		{"GET", "/broken/", 2},
		{"GET", "/limited/", 4},
		{"GET", "/fault/", 1},
		{"POST", "/grpc/grpc/0", 2}, {"POST", "/grpc/grpc/14", 1},
		{"GET", "/r503/status/503", 1},
		{"GET", "/nope", 2},
	}
	total := int64(0)
	for _, p := range plan {
		for i := 0; i < p.n; i++ {
			req, _ := http.NewRequest(p.method, gw.URL+p.path, strings.NewReader("hello"))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", p.method, p.path, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			total++
		}
	}
	// A client that goes away while the upstream is working.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", gw.URL+"/cancel/", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	drainUntil(t, u.slowHit, 2) // the /slow/ request, then this one
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("canceled request succeeded")
	}
	total++
	// A 101 Switching Protocols, with the recorder as the client side.
	up := httptest.NewRequest("GET", "/upgrade/", nil)
	up.Header.Set("Connection", "Upgrade")
	up.Header.Set("Upgrade", "test")
	rr := httptest.NewRecorder()
	s.ServeHTTP(rr, up)
	if rr.Code != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: got %d", rr.Code)
	}
	total++
	s.waitFinished(t, total)

	want := map[string]float64{}
	add := func(route, svc, method, code string, n float64) {
		class := "other"
		if code != "other" {
			class = code[:1] + "xx"
		}
		want["class="+class+",code="+code+",method="+method+",route="+route+",service="+svc] += n
	}
	add("api", "users", "GET", "200", 5)
	add("api", "users", "POST", "201", 2)
	add("api", "users", "GET", "302", 1)
	add("api", "users", "GET", "404", 3)
	add("api", "users", "DELETE", "500", 1)
	add("api", "users", "GET", "418", 1)
	add("api", "users", "other", "200", 1)
	add("checkout", "orders", "POST", "201", 6)
	add("checkout", "orders", "GET", "201", 2)
	add("checkout", "orders", "POST", "500", 1)
	add("shop", "stable", "GET", "200", 18)
	add("shop", "canary", "GET", "200", 2)
	add("flaky", "flaky", "GET", "200", 2)
	add("slow", "slow", "GET", "504", 1)
	add("cancel", "slowc", "GET", "499", 1)
	add("reset", "reset", "GET", "502", 1)
	add("proto", "proto", "GET", "502", 1)
	add("down", "down", "GET", "502", 1)
	add("empty", "empty", "GET", "503", 1)
	add("broken", "broken", "GET", "503", 2)
	add("limited", "users", "GET", "200", 2)
	add("limited", "none", "GET", "429", 2)
	add("fault", "none", "GET", "503", 1)
	add("grpc", "grpc", "POST", "200", 3)
	add("r503", "retry503", "GET", "503", 1)
	add("unmatched", "none", "GET", "404", 2)
	add("upgrade", "ws", "GET", "101", 1)
	assertSeries(t, m, "vantage_requests_total", want)
	if got := sum(values(t, m, "vantage_requests_total")); got != float64(total) {
		t.Errorf("requests_total sums to %v, sent %d", got, total)
	}
	if got := sum(values(t, m, "vantage_request_duration_seconds")); got != float64(total) {
		t.Errorf("duration histogram counts %v, sent %d", got, total)
	}
	if got := sum(values(t, m, "vantage_request_overhead_seconds")); got != float64(total) {
		t.Errorf("overhead histogram counts %v, sent %d", got, total)
	}

	assertSeries(t, m, "vantage_request_errors_total", map[string]float64{
		"error_kind=upstream_timeout,route=slow,service=slow":      1,
		"error_kind=client_canceled,route=cancel,service=slowc":    1,
		"error_kind=upstream_reset,route=reset,service=reset":      1,
		"error_kind=upstream_protocol,route=proto,service=proto":   1,
		"error_kind=upstream_connect,route=down,service=down":      1,
		"error_kind=no_healthy_upstream,route=empty,service=empty": 1,
		"error_kind=breaker_open,route=broken,service=broken":      2,
		"error_kind=rate_limited,route=limited,service=none":       2,
		"error_kind=fault_injected,route=fault,service=none":       1,
		"error_kind=no_route,route=unmatched,service=none":         2,
	})
	assertSeries(t, m, "vantage_upstream_errors_total", map[string]float64{
		"error_kind=upstream_connect,route=flaky,service=flaky,upstream=" + u.closed:    2,
		"error_kind=upstream_timeout,route=slow,service=slow,upstream=" + u.slow:        1,
		"error_kind=client_canceled,route=cancel,service=slowc,upstream=" + u.slow:      1,
		"error_kind=upstream_reset,route=reset,service=reset,upstream=" + u.reset:       1,
		"error_kind=upstream_protocol,route=proto,service=proto,upstream=" + u.protocol: 1,
		"error_kind=upstream_connect,route=down,service=down,upstream=" + u.closed:      1,
	})
	ups := values(t, m, "vantage_upstream_requests_total")
	for k, v := range map[string]float64{
		"class=none,route=flaky,service=flaky,upstream=" + u.closed:                    2,
		"class=2xx,route=flaky,service=flaky,upstream=" + u.ok:                         2,
		"class=5xx,route=r503,service=retry503,upstream=" + u.ok:                       2,
		"class=1xx,route=upgrade,service=ws,upstream=" + s.services["ws"].upstreams[0]: 1,
		"class=2xx,route=shop,service=canary,upstream=" + u.ok2:                        2,
	} {
		if ups[k] != v {
			t.Errorf("upstream_requests_total{%s} = %v, want %v", k, ups[k], v)
		}
	}
	// api spreads over two hosts round-robin: every attempt is counted once.
	apiAttempts := 0.0
	for k, v := range ups {
		if strings.Contains(k, "route=api,") {
			apiAttempts += v
		}
	}
	if apiAttempts != 14 {
		t.Errorf("api upstream attempts = %v, want 14", apiAttempts)
	}

	// Decisions from events.
	assertSeries(t, m, "vantage_split_requests_total", map[string]float64{
		"reason=weight,route=shop,rule=shop,service=stable": 18,
		"reason=weight,route=shop,rule=shop,service=canary": 2,
	})
	assertSeries(t, m, "vantage_split_weight", map[string]float64{
		"route=shop,service=stable": 9,
		"route=shop,service=canary": 1,
	})
	assertSeries(t, m, "vantage_retries_total", map[string]float64{
		"reason=upstream_connect,route=flaky,service=flaky": 2,
		"reason=status_503,route=r503,service=retry503":     1,
	})
	assertSeries(t, m, "vantage_retry_budget_exhausted_total", map[string]float64{"route=down,service=down": 1})
	assertSeries(t, m, "vantage_circuit_breaker_rejections_total", map[string]float64{"route=broken,service=broken,upstream=none": 2})
	assertSeries(t, m, "vantage_rate_limit_rejections_total", map[string]float64{"key=client_ip,policy=limited-policy,route=limited": 2})
	assertSeries(t, m, "vantage_faults_injected_total", map[string]float64{"fault=abort,route=fault": 1})
	assertSeries(t, m, "vantage_grpc_requests_total", map[string]float64{
		"grpc_status=OK,route=grpc,service=grpc":          2,
		"grpc_status=UNAVAILABLE,route=grpc,service=grpc": 1,
	})

	// KPIs.
	assertSeries(t, m, "vantage_kpi_purchases_total", map[string]float64{
		"payment_method=card": 3, "payment_method=paypal": 1, "payment_method=other": 1, "payment_method=none": 1,
	})
	assertSeries(t, m, "vantage_kpi_order_amount", map[string]float64{"": 3})

	// Nothing is left in flight.
	for k, v := range values(t, m, "vantage_requests_in_flight") {
		if v != 0 {
			t.Errorf("in flight %s = %v", k, v)
		}
	}
	// Request bytes: "hello" from every request whose body the proxy read:
	// not the canceled and upgrade ones (no body), nor the 8 refused
	// before the proxy (rate limit, fault, breaker, no upstream, no route).
	if in, want := sum(values(t, m, "vantage_request_body_bytes_total")), float64(5*(total-2-8)); in != want {
		t.Errorf("request bytes = %v, want %v", in, want)
	}
	if sum(values(t, m, "vantage_response_body_bytes_total")) == 0 {
		t.Error("no response bytes counted")
	}
}

func drainUntil(t *testing.T, ch chan struct{}, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("upstream saw %d of %d requests", i, n)
		}
	}
}

func assertSeries(t *testing.T, m *Metrics, name string, want map[string]float64) {
	t.Helper()
	got := values(t, m, name)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %s\n want %s", name, render(got), render(want))
	}
}

func render(vs map[string]float64) string {
	var lines []string
	for k, v := range vs {
		lines = append(lines, "{"+k+"} "+strconv.FormatFloat(v, 'g', -1, 64))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n       ")
}
