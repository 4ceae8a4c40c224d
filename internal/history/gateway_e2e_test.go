package history_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/middleware"
)

// TestThroughRealGateway sends requests with known statuses through the
// real gateway (entry handler, router, split with an override header,
// proxy) to real upstreams, seals the second, and checks that
// /api/history reports exactly those counts per route, leg, service, host
// and for the gateway.
func TestThroughRealGateway(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		code := 200
		if i := strings.LastIndex(r.URL.Path, "/"); i >= 0 {
			if c, err := strconv.Atoi(r.URL.Path[i+1:]); err == nil {
				code = c
			}
		}
		w.WriteHeader(code)
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now

	y := `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: stable, upstreams: [{url: "` + up.URL + `"}]}
  - {name: canary, upstreams: [{url: "` + up.URL + `"}]}
  - {name: api, upstreams: [{url: "` + up.URL + `"}]}
  - {name: down, upstreams: [{url: "` + dead + `"}]}
routes:
  - name: shop
    match: {path_prefix: /shop/}
    split:
      services: [{service: stable, weight: 50}, {service: canary, weight: 50}]
      override: {header: X-Leg, values: {stable: stable, canary: canary}}
  - {name: api, match: {path_prefix: /api/}, service: api}
  - {name: down, match: {path_prefix: /down/}, service: down}
`
	cfg, err := config.Parse("gw.yml", []byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := history.New(cfg.History, history.Options{NoMachine: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	g, err := gateway.New(cfg, gateway.Options{Observer: h, Telemetry: middleware.Telemetry{History: h}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g.Handler("public"))
	defer srv.Close()
	api := httptest.NewServer(h.Handler())
	defer api.Close()
	h.Tick(time.Now()) // the rotation starts before the traffic

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	send := func(path, leg string, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			req, _ := http.NewRequest("GET", srv.URL+path, nil)
			if leg != "" {
				req.Header.Set("X-Leg", leg)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	send("/shop/item/200", "stable", 20)
	send("/shop/item/500", "canary", 5)
	send("/shop/item/200", "canary", 3)
	send("/api/x/200", "", 10)
	send("/api/x/404", "", 4)
	send("/down/x", "", 2)
	send("/nowhere", "", 3)

	// Seal everything recorded so far as one second.
	h.Tick(time.Now().Add(time.Second))

	type total struct {
		Requests uint64            `json:"requests"`
		Status   map[string]uint64 `json:"status"`
		Errors   map[string]uint64 `json:"errors"`
		Latency  struct {
			Count uint64  `json:"count"`
			P99   float64 `json:"p99_ms"`
		} `json:"latency"`
	}
	get := func(q string) total {
		t.Helper()
		resp, err := c.Get(api.URL + "/api/history?window=1m&" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", q, resp.StatusCode, body)
		}
		var out struct {
			Total  total             `json:"total"`
			Points []json.RawMessage `json:"points"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		return out.Total
	}
	for _, tc := range []struct {
		q               string
		req, c2, c4, c5 uint64
		errs            map[string]uint64
	}{
		{"scope=gateway", 47, 33, 7, 7, map[string]uint64{"upstream_connect": 2, "no_route": 3}},
		{"scope=route&name=shop", 28, 23, 0, 5, nil},
		{"scope=leg&name=shop/canary", 8, 3, 0, 5, nil},
		{"scope=leg&name=shop/stable", 20, 20, 0, 0, nil},
		{"scope=route&name=api", 14, 10, 4, 0, nil},
		{"scope=route&name=down", 2, 0, 0, 2, map[string]uint64{"upstream_connect": 2}},
		{"scope=route&name=unmatched", 3, 0, 3, 0, map[string]uint64{"no_route": 3}},
		{"scope=service&name=canary", 8, 3, 0, 5, nil},
		{"scope=host&name=api/" + strings.TrimPrefix(up.URL, "http://"), 14, 10, 4, 0, nil},
	} {
		got := get(tc.q)
		if got.Requests != tc.req || got.Status["2xx"] != tc.c2 || got.Status["4xx"] != tc.c4 || got.Status["5xx"] != tc.c5 || got.Latency.Count != tc.req {
			t.Errorf("%s: requests %d status %v latency count %d; want %d requests, 2xx %d, 4xx %d, 5xx %d",
				tc.q, got.Requests, got.Status, got.Latency.Count, tc.req, tc.c2, tc.c4, tc.c5)
		}
		if tc.errs != nil && fmt.Sprint(got.Errors) != fmt.Sprint(tc.errs) {
			t.Errorf("%s: errors %v, want %v", tc.q, got.Errors, tc.errs)
		}
		if got.Latency.P99 <= 0 {
			t.Errorf("%s: p99 %v", tc.q, got.Latency.P99)
		}
	}

	// Bad queries are refused with a clear 400.
	resp, err := c.Get(api.URL + "/api/history?scope=route")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "needs a name") {
		t.Fatalf("missing name: %d %s", resp.StatusCode, body)
	}
	resp, err = c.Get(api.URL + "/api/history?scope=route&name=nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown route: %d", resp.StatusCode)
	}
}

// TestKPIsThroughRealGateway declares business KPIs with the metrics
// endpoint off, sends purchases through a real gateway's split to real
// upstreams that answer with plan and amount headers, and reads the KPI
// series per label value and per leg back from /api/history.
func TestKPIsThroughRealGateway(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Plan", r.URL.Query().Get("plan"))
		w.Header().Set("X-Amount", r.URL.Query().Get("amount"))
		w.WriteHeader(201)
	}))
	defer up.Close()
	y := `
listeners: [{name: public, address: "127.0.0.1:0"}]
metrics:
  enabled: false
  kpis:
    - name: purchases_total
      match: {routes: [shop], methods: [POST], status: ["2xx"]}
      label: {name: plan, header: X-Plan, values: [free, pro]}
    - {name: order_amount, type: histogram, value_header: X-Amount, buckets: [10, 100], match: {routes: [shop]}}
services:
  - {name: stable, upstreams: [{url: "` + up.URL + `"}]}
  - {name: canary, upstreams: [{url: "` + up.URL + `"}]}
routes:
  - name: shop
    match: {path_prefix: /shop/}
    split:
      services: [{service: stable, weight: 50}, {service: canary, weight: 50}]
      override: {header: X-Leg, values: {stable: stable, canary: canary}}
`
	cfg, err := config.Parse("gw.yml", []byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Metrics.IsEnabled() {
		t.Fatal("metrics are on")
	}
	h, err := history.New(cfg.History, history.Options{NoMachine: true, KPIs: cfg.Metrics.KPIs})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	g, err := gateway.New(cfg, gateway.Options{Observer: h, Telemetry: middleware.Telemetry{History: h}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g.Handler("public"))
	defer srv.Close()
	api := httptest.NewServer(h.Handler())
	defer api.Close()
	h.Tick(time.Now())

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	send := func(method, leg, plan, amount string, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			req, _ := http.NewRequest(method, srv.URL+"/shop/buy?plan="+plan+"&amount="+amount, nil)
			req.Header.Set("X-Leg", leg)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 201 {
				t.Fatalf("status %d", resp.StatusCode)
			}
		}
	}
	send("POST", "stable", "pro", "20", 6)
	send("POST", "stable", "free", "5", 4)
	send("POST", "canary", "pro", "30", 3)
	send("POST", "canary", "gold", "1.5", 2)
	send("GET", "canary", "pro", "", 5) // not a purchase, no amount
	h.Tick(time.Now().Add(time.Second))

	type kpiTotal struct {
		Count uint64  `json:"count"`
		Sum   float64 `json:"sum"`
	}
	get := func(name string) kpiTotal {
		t.Helper()
		resp, err := c.Get(api.URL + "/api/history?window=1m&scope=kpi&name=" + url.QueryEscape(name))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
		}
		var out struct {
			Total struct {
				KPI kpiTotal `json:"kpi"`
			} `json:"total"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		return out.Total.KPI
	}
	for _, tc := range []struct {
		name  string
		count uint64
		sum   float64
	}{
		{"purchases_total", 15, 0},
		{"purchases_total:plan=pro", 9, 0},
		{"purchases_total:plan=free", 4, 0},
		{"purchases_total:plan=other", 2, 0},
		{"purchases_total@shop/stable", 10, 0},
		{"purchases_total@shop/canary", 5, 0},
		{"order_amount", 15, 6*20 + 4*5 + 3*30 + 2*1.5},
		{"order_amount@shop/canary", 5, 3*30 + 2*1.5},
	} {
		if got := get(tc.name); got.Count != tc.count || got.Sum != tc.sum {
			t.Errorf("%s: %+v, want count %d sum %g", tc.name, got, tc.count, tc.sum)
		}
	}
	// The canary's purchases per request, as a rollout reads them.
	canary, stable, err := history.KPILegs(t.Context(), h.Source(), "purchases_total", "shop", "canary", "stable", h.Latest(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if canary.Requests != 10 || canary.PerRequest() != 0.5 || stable.Requests != 10 || stable.PerRequest() != 1 {
		t.Fatalf("canary %+v stable %+v", canary, stable)
	}
}

// TestRateLimitRejectionsThroughRealGateway sends requests over a route's
// rate limit through a real gateway and reads the rejections per policy
// and key back from /api/history.
func TestRateLimitRejectionsThroughRealGateway(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	y := `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: api, upstreams: [{url: "` + up.URL + `"}]}
routes:
  - name: api
    match: {path_prefix: /}
    service: api
    rate_limit: {name: per-client, rate: 1, period: 1m, burst: 2, key: {client_ip: true}}
`
	cfg, err := config.Parse("gw.yml", []byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := history.New(cfg.History, history.Options{NoMachine: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	g, err := gateway.New(cfg, gateway.Options{Observer: h, Telemetry: middleware.Telemetry{History: h}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g.Handler("public"))
	defer srv.Close()
	api := httptest.NewServer(h.Handler())
	defer api.Close()
	h.Tick(time.Now())
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var rejected int
	for i := 0; i < 7; i++ {
		resp, err := c.Get(srv.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 429 {
			rejected++
		}
	}
	if rejected != 5 {
		t.Fatalf("%d of 7 requests rejected, want 5 (burst 2)", rejected)
	}
	h.Tick(time.Now().Add(time.Second))
	for _, name := range []string{"per-client", "per-client/client_ip"} {
		resp, err := c.Get(api.URL + "/api/history?window=1m&scope=ratelimit&name=" + url.QueryEscape(name))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out struct {
			Total struct {
				Decisions map[string]uint64 `json:"decisions"`
			} `json:"total"`
		}
		if err := json.Unmarshal(body, &out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
		}
		if got := out.Total.Decisions["rate_limit_rejections"]; got != 5 {
			t.Errorf("%s: %d rejections, want 5", name, got)
		}
	}
}
