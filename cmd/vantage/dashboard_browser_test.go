package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/dashboard/browsertest"
	"github.com/vantage-gateway/vantage/internal/tracestore/queryapi"
)

// startBrowser starts a headless Chromium for one test, stopped when the
// test ends; the test is skipped when Chromium is not installed.
func startBrowser(t *testing.T) *browsertest.Browser {
	t.Helper()
	if browsertest.Path() == "" {
		t.Skip(browsertest.ErrNoChromium.Error())
	}
	b, err := browsertest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// otelService is a real upstream service instrumented with the
// OpenTelemetry Go SDK: its spans and log records go to the gateway's
// admin OTLP receiver, as a user's service would send them.
type otelService struct {
	srv    *httptest.Server
	tracer atomic.Pointer[trace.Tracer]
	logger atomic.Pointer[otellog.Logger]
}

// instrument points s's SDK at the admin listener; spans and log records
// are exported synchronously as they end.
func (s *otelService) instrument(t *testing.T, admin, name string) {
	t.Helper()
	ctx := context.Background()
	res := resource.NewSchemaless(attribute.String("service.name", name))
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL("http://"+admin+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(res))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	lexp, err := otlploghttp.New(ctx, otlploghttp.WithEndpointURL("http://"+admin+"/v1/logs"))
	if err != nil {
		t.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(lexp)), sdklog.WithResource(res))
	t.Cleanup(func() { _ = lp.Shutdown(context.Background()) })
	tr := tp.Tracer(name)
	lg := lp.Logger(name)
	s.tracer.Store(&tr)
	s.logger.Store(&lg)
}

// traceShop starts two instrumented services: shop (GET /cart/...) loads
// a cart, records a span event and a log line, and calls payments, which
// answers from its own server span.
func traceShop(t *testing.T) (shop, payments *otelService) {
	t.Helper()
	prop := propagation.TraceContext{}
	payments = &otelService{}
	payments.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		if tr := payments.tracer.Load(); tr != nil {
			var span trace.Span
			_, span = (*tr).Start(ctx, "POST /charge", trace.WithSpanKind(trace.SpanKindServer))
			span.SetAttributes(attribute.String("payment.method", "card"))
			defer span.End()
		}
		fmt.Fprint(w, "charged")
	}))
	t.Cleanup(payments.srv.Close)
	shop = &otelService{}
	client := &http.Client{Timeout: 5 * time.Second}
	shop.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		if tr := shop.tracer.Load(); tr != nil {
			var span trace.Span
			ctx, span = (*tr).Start(ctx, "GET /cart", trace.WithSpanKind(trace.SpanKindServer))
			defer span.End()
			span.AddEvent("cart.loaded", trace.WithAttributes(attribute.Int("cart.items", 3)))
			if lg := shop.logger.Load(); lg != nil {
				var rec otellog.Record
				rec.SetTimestamp(time.Now())
				rec.SetSeverity(otellog.SeverityInfo)
				rec.SetSeverityText("INFO")
				rec.SetBody(attribute.StringValue("cart loaded with 3 items"))
				(*lg).Emit(ctx, rec)
			}
			cctx, cspan := (*tr).Start(ctx, "POST payments", trace.WithSpanKind(trace.SpanKindClient))
			req, _ := http.NewRequestWithContext(cctx, "POST", payments.srv.URL+"/charge", nil)
			prop.Inject(cctx, propagation.HeaderCarrier(req.Header))
			if resp, err := client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			cspan.End()
		}
		fmt.Fprint(w, "cart")
	}))
	t.Cleanup(shop.srv.Close)
	return shop, payments
}

// TestBrowserTraceFromStore: a request through a gateway with its trace
// store, in front of two services instrumented with the OpenTelemetry SDK
// that export to the admin OTLP receiver. Pasting the traceresponse value
// into the traces page shows the waterfall of all five spans of the three
// services, the shop's span event and the trace's two log lines (the
// gateway's access-log record and the shop's); /traces/{id} opens the same
// view; the service map shows the three services and both calls.
func TestBrowserTraceFromStore(t *testing.T) {
	b := startBrowser(t)
	shop, payments := traceShop(t)
	gw, admin, logs := startStoreGateway(t, shop.srv.URL, "")
	shop.instrument(t, admin, "shop")
	payments.instrument(t, admin, "payments")

	resp, err := http.Get(gw + "/cart/42")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	tr := resp.Header.Get("Traceresponse")
	parts := strings.Split(tr, "-")
	if len(parts) != 4 {
		t.Fatalf("traceresponse %q", tr)
	}
	id := parts[1]
	// The services export as their spans end; wait until the store has
	// the whole trace so the page is judged on a complete one.
	waitUntil(t, func() bool {
		r, err := http.Get("http://" + admin + "/api/traces/" + id)
		if err != nil {
			return false
		}
		defer r.Body.Close()
		var doc queryapi.TraceDoc
		_ = json.NewDecoder(r.Body).Decode(&doc)
		return len(doc.Spans) == 5 && len(doc.Logs) == 2
	}, logs)

	dir := browsertest.ScreenshotDir(t)
	ctx, ce := b.Tab(t, 30*time.Second)
	if err := chromedp.Run(ctx,
		chromedp.Navigate("http://"+admin+"/traces"),
		chromedp.WaitVisible("#trace-id", chromedp.ByQuery),
		chromedp.SendKeys("#trace-id", tr, chromedp.ByQuery),
		chromedp.Click("#trace-id-form button[type=submit]", chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	checkWaterfall := func() {
		t.Helper()
		browsertest.WaitText(ctx, t, "#trace-view-id", id)
		browsertest.WaitText(ctx, t, "#trace-span-count", "5")
		browsertest.WaitText(ctx, t, "#trace-service-count", "3")
		browsertest.WaitCount(ctx, t, "#waterfall .wf-row", 5)
		for _, sv := range []string{"vantage", "shop", "payments"} {
			if n := browsertest.Count(ctx, t, fmt.Sprintf("#waterfall .wf-row[data-service=%q]", sv)); n == 0 {
				t.Errorf("waterfall has no span of %s", sv)
			}
		}
		browsertest.WaitText(ctx, t, "#trace-log-count", "2")
		browsertest.WaitTextFunc(ctx, t, "#trace-logs", "the shop's log line", func(s string) bool {
			return strings.Contains(s, "cart loaded with 3 items") && strings.Contains(s, "[shop]")
		})
	}
	checkWaterfall()
	var path string
	if err := chromedp.Run(ctx, chromedp.Evaluate("location.pathname", &path)); err != nil || path != "/traces/"+id {
		t.Errorf("pasting the id led to %q (%v), want the shareable /traces/%s", path, err, id)
	}
	// The shop's span shows its event, with its attribute, once opened.
	if err := chromedp.Run(ctx, chromedp.Click(`#waterfall .wf-row[data-service="shop"][data-kind="server"]`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitTextFunc(ctx, t, `#waterfall .wf-detail[data-service="shop"][data-kind="server"] .wf-events`, "the cart.loaded event", func(s string) bool {
		return strings.Contains(s, "cart.loaded") && strings.Contains(s, "cart.items=3")
	})
	browsertest.Screenshot(ctx, t, dir, "otel-trace")

	// The shareable URL opens the same view in a fresh page load.
	if err := chromedp.Run(ctx, chromedp.Navigate("http://"+admin+"/traces/"+id)); err != nil {
		t.Fatal(err)
	}
	checkWaterfall()

	// The service map: the three services, the gateway's call to shop and
	// shop's call to payments.
	if err := chromedp.Run(ctx, chromedp.Navigate("http://"+admin+"/map"), chromedp.WaitVisible("#service-map", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitCount(ctx, t, "#service-map g.node", 3)
	for _, sv := range []string{"vantage", "shop", "payments"} {
		if browsertest.Count(ctx, t, fmt.Sprintf("#service-map g.node[data-service=%q]", sv)) != 1 {
			t.Errorf("the map has no node %s", sv)
		}
	}
	browsertest.WaitCount(ctx, t, "#service-map path.edge", 2)
	for _, e := range [][2]string{{"vantage", "shop"}, {"shop", "payments"}} {
		if browsertest.Count(ctx, t, fmt.Sprintf("#service-map path.edge[data-parent=%q][data-child=%q]", e[0], e[1])) != 1 {
			t.Errorf("the map has no edge %s → %s", e[0], e[1])
		}
	}
	browsertest.Screenshot(ctx, t, dir, "otel-map")
	ce.Check(t)
}

// startDashboardGateway serves the config body (listeners, admin and
// tracing are added) and returns the public and admin addresses.
func startDashboardGateway(t *testing.T, body string) (gw, admin string, logs *bytes.Buffer) {
	t.Helper()
	return startGatewayFile(t, body, true, 10*time.Second)
}

// startGatewayFile serves a config of a public listener and an admin
// listener on ports of their own, a 2 s shutdown grace, a traceresponse
// header and body, from a file of its own (given to serve, so the admin
// API can reload it, when withFile), until the test ends. It waits at most
// wait for readiness.
func startGatewayFile(t *testing.T, body string, withFile bool, wait time.Duration) (gw, admin string, logs *bytes.Buffer) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "vantage.yml")
	data := `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
shutdown_grace: 2s
tracing: {response_header: traceresponse}
` + body
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	opts := serveOptions{stdout: io.Discard}
	if withFile {
		opts.file = file
	}
	ready := make(chan boundAddrs, 1)
	stop := make(chan struct{})
	done := make(chan int, 1)
	logs = &bytes.Buffer{}
	opts.stderr, opts.ready, opts.stop = &syncWriter{w: logs}, func(a boundAddrs) { ready <- a }, stop
	go func() { done <- serve(cfg, opts) }()
	var addrs boundAddrs
	select {
	case addrs = <-ready:
	case <-time.After(wait):
		t.Fatal("gateway never ready")
	}
	t.Cleanup(func() {
		close(stop)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	return "http://" + addrs.Listeners["public"], addrs.Admin, logs
}

// statusUpstream answers the status named by the request path's last
// segment (200 when it names none).
func statusUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := 200
		if i := strings.LastIndex(r.URL.Path, "/"); i >= 0 {
			if c, err := strconv.Atoi(r.URL.Path[i+1:]); err == nil && c >= 200 && c <= 599 {
				code = c
			}
		}
		w.WriteHeader(code)
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(up.Close)
	return up
}

// sendN sends n GET requests to url and fails t on a transport error.
func sendN(t *testing.T, url string, n int) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < n; i++ {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// TestBrowserAlertsAndRollouts: a route failing half its requests fires
// its alert, which the overview and the alerts page show with its value,
// threshold and exemplar traces (one opens as a waterfall); a rollout
// started at its first step shows its state, step, weight and decisions;
// the traffic page's timeline holds both.
func TestBrowserAlertsAndRollouts(t *testing.T) {
	b := startBrowser(t)
	up := statusUpstream(t)
	gw, admin, logs := startDashboardGateway(t, fmt.Sprintf(`
services:
  - {name: v1, upstreams: [{url: %[1]q}]}
  - {name: v2, upstreams: [{url: %[1]q}]}
  - {name: api, upstreams: [{url: %[1]q}]}
routes:
  - name: shop
    match: {path_prefix: /shop/}
    split: {services: [{service: v1, weight: 100}, {service: v2, weight: 0}]}
  - {name: api, match: {path_prefix: /api/}, service: api}
alerts:
  rules:
    - {name: ApiErrors, scope: route, target: api, metric: error_ratio, window: 1m, threshold: 0.2, min_requests: 5, keep_firing_for: 1m, severity: page}
rollouts:
  - {name: shop-v2, route: shop, stable: v1, canary: v2, steps: [10, 50, 100], interval: 2s, min_requests: 1000}
`, up.URL))
	sendN(t, gw+"/api/x/200", 10)
	sendN(t, gw+"/api/x/500", 10)
	sendN(t, gw+"/shop/a", 20)
	// The rule sees the 20 requests of the minute: 10 of them 5xx.
	waitUntil(t, func() bool {
		return strings.Contains(adminGet(t, admin, "/api/alerts?state=firing"), `"rule": "ApiErrors"`) &&
			strings.Contains(adminGet(t, admin, "/api/rollouts"), `"holding"`)
	}, logs)
	// Traffic at the first step, for the legs' charts.
	sendN(t, gw+"/shop/a", 30)

	dir := browsertest.ScreenshotDir(t)
	ctx, ce := b.Tab(t, 40*time.Second)
	if err := chromedp.Run(ctx, chromedp.Navigate("http://"+admin+"/")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitText(ctx, t, "#firing-alerts tbody td[data-col=rule]", "ApiErrors")
	browsertest.WaitText(ctx, t, "#firing-alerts tbody td[data-col=value]", "50.00%")
	browsertest.WaitText(ctx, t, "#firing-alerts tbody td[data-col=threshold]", "> 20.00%")
	browsertest.WaitText(ctx, t, "#ov-requests", "70")
	browsertest.Screenshot(ctx, t, dir, "rules-overview")

	// The alerts page, through the navigation: state, since, exemplars, and
	// the rule's page with its chart.
	if err := chromedp.Run(ctx, chromedp.Click(`#nav a[data-page=alerts]`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitText(ctx, t, "#alerts-table tbody td[data-col=state]", "firing")
	browsertest.WaitTextFunc(ctx, t, "#alerts-table tbody td[data-col=active_at]", "a time", func(s string) bool { return strings.Contains(s, ":") })
	browsertest.WaitText(ctx, t, "#rules-table tbody td[data-col=state]", "firing")
	if err := chromedp.Run(ctx, chromedp.Click(`#alerts-table tbody td[data-col=rule] a`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitText(ctx, t, "#alert-rule", "ApiErrors")
	browsertest.WaitCount(ctx, t, "#alert-chart .uplot", 1)
	browsertest.Screenshot(ctx, t, dir, "rules-alerts")
	var ex string
	if err := chromedp.Run(ctx, chromedp.WaitVisible("#alerts-table a.exemplar", chromedp.ByQuery), chromedp.AttributeValue("#alerts-table a.exemplar", "href", &ex, nil, chromedp.ByQuery)); err != nil {
		t.Fatalf("no exemplar trace link: %v", err)
	}
	if err := chromedp.Run(ctx, chromedp.Click("#alerts-table a.exemplar", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitText(ctx, t, "#trace-view-id", strings.TrimPrefix(ex, "/traces/"))
	browsertest.WaitTextFunc(ctx, t, "#trace-span-count", "at least one span", func(s string) bool { return s != "" && s != "0" })

	// The rollout: started at its first step (10 %), holding for lack of
	// requests, its decisions listed.
	if err := chromedp.Run(ctx, chromedp.Click(`#nav a[data-page=rollouts]`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitText(ctx, t, "#ro-step-shop-v2", "1 of 3")
	browsertest.WaitText(ctx, t, "#ro-weight-shop-v2", "10%")
	browsertest.WaitText(ctx, t, "#ro-state-shop-v2", "holding")
	browsertest.WaitTextFunc(ctx, t, `.decisions-table[data-rollout="shop-v2"]`, "the start and hold decisions", func(s string) bool {
		return strings.Contains(s, "start") && strings.Contains(s, "hold")
	})
	browsertest.WaitTextFunc(ctx, t, "#rollout-shop-v2 .checks-table", "the error ratio check", func(s string) bool { return strings.Contains(s, "error_ratio") })
	browsertest.WaitCount(ctx, t, "#rollout-shop-v2 .uplot", 2)
	browsertest.Screenshot(ctx, t, dir, "rules-rollouts")

	// The shared timeline on the traffic page.
	if err := chromedp.Run(ctx, chromedp.Click(`#nav a[data-page=traffic]`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitTextFunc(ctx, t, "#decision-events", "the rollout's start and the alert's firing", func(s string) bool {
		return strings.Contains(s, "shop-v2") && strings.Contains(s, "start: pending → ") && strings.Contains(s, "ApiErrors") && strings.Contains(s, "firing")
	})
	if n := browsertest.Count(ctx, t, "#decision-timeline svg rect[data-kind=rollout]"); n == 0 {
		t.Error("no rollout decision on the timeline")
	}
	browsertest.Screenshot(ctx, t, dir, "rules-traffic")
	ce.Check(t)
}

// TestBrowserKPIs: the KPI page shows each business KPI's events over the
// window, in all, per label value and per split leg, and a histogram
// KPI's sum and mean, as the requests sent make them.
func TestBrowserKPIs(t *testing.T) {
	b := startBrowser(t)
	// The shop answers with the payment method and the order amount the
	// request names, as a real checkout would.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Payment-Method", r.URL.Query().Get("pm"))
		w.Header().Set("X-Order-Amount", r.URL.Query().Get("amount"))
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(up.Close)
	gw, admin, _ := startDashboardGateway(t, fmt.Sprintf(`
services:
  - {name: v1, upstreams: [{url: %[1]q}]}
  - {name: v2, upstreams: [{url: %[1]q}]}
routes:
  - name: checkout
    match: {path_prefix: /checkout}
    split:
      services: [{service: v1, weight: 50}, {service: v2, weight: 50}]
      override: {header: X-Leg, values: {v1: v1, v2: v2}}
metrics:
  kpis:
    - name: purchases_total
      match: {routes: [checkout], methods: [POST], status: ["2xx"]}
      label: {name: payment_method, header: X-Payment-Method, values: [card, paypal]}
    - name: order_amount
      type: histogram
      value_header: X-Order-Amount
      buckets: [5, 10, 25, 50, 100]
      match: {routes: [checkout], methods: [POST], status: ["2xx"]}
`, up.URL))
	c := &http.Client{Timeout: 5 * time.Second}
	post := func(leg, pm, amount string, n int) {
		for i := 0; i < n; i++ {
			req, _ := http.NewRequest("POST", gw+"/checkout?pm="+pm+"&amount="+amount, nil)
			req.Header.Set("X-Leg", leg)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	post("v1", "card", "10", 4)
	post("v2", "card", "10", 2)
	post("v2", "paypal", "40", 3)
	waitUntil(t, func() bool {
		return strings.Contains(adminGet(t, admin, "/api/history?scope=kpi&name=purchases_total&window=1m"), `"count":9`)
	})

	ctx, ce := b.Tab(t, 30*time.Second)
	if err := chromedp.Run(ctx, chromedp.Navigate("http://"+admin+"/kpis")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitText(ctx, t, "#kpi-count-purchases_total", "9")
	browsertest.WaitText(ctx, t, `.kpi-labels[data-kpi=purchases_total] tr[data-name=card] td[data-col=count]`, "6")
	browsertest.WaitText(ctx, t, `.kpi-labels[data-kpi=purchases_total] tr[data-name=paypal] td[data-col=count]`, "3")
	browsertest.WaitText(ctx, t, `.kpi-labels[data-kpi=purchases_total] tr[data-name=paypal] td[data-col=share]`, "33.33%")
	browsertest.WaitText(ctx, t, `.kpi-legs[data-kpi=purchases_total] tr[data-name="checkout/v1"] td[data-col=count]`, "4")
	browsertest.WaitText(ctx, t, `.kpi-legs[data-kpi=purchases_total] tr[data-name="checkout/v2"] td[data-col=count]`, "5")
	browsertest.WaitText(ctx, t, `.kpi-legs[data-kpi=purchases_total] tr[data-name="checkout/v2"] td[data-col=requests]`, "5")
	browsertest.WaitText(ctx, t, "#kpi-count-order_amount", "9")
	browsertest.WaitText(ctx, t, "#kpi-sum-order_amount", "180.00")
	browsertest.WaitText(ctx, t, "#kpi-mean-order_amount", "20.00")
	browsertest.WaitCount(ctx, t, "#kpi-purchases_total .uplot", 1)
	browsertest.Screenshot(ctx, t, browsertest.ScreenshotDir(t), "kpis")
	ce.Check(t)
}

// TestBrowserDemoPages runs `vantage demo` with a canary that fails half
// its calls and opens every page of its dashboard: each shows the demo's
// real traffic (requests, the failing canary's alert, the rollout, error
// traces across the shop's services, the service map, the machine's
// figures), with no error logged by the page. With VANTAGE_SCREENSHOTS set
// it also waits (at most a minute) for the rollout's first verdict and
// saves every page there, for docs/dashboard.md.
func TestBrowserDemoPages(t *testing.T) {
	b := startBrowser(t)
	shots := os.Getenv("VANTAGE_SCREENSHOTS") != ""
	// The demo runs for run1 (it has no other way to stop): long enough
	// for the alert to fire and every page to be visited after it.
	run1 := 90 * time.Second
	if shots {
		run1 = 120 * time.Second
	}
	var stdout, stderr demoOutput
	exited := make(chan int, 1)
	go func() {
		exited <- run([]string{"demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0",
			"--duration", run1.String(), "--traffic", "40", "--bad-canary", "--config-out", filepath.Join(t.TempDir(), "demo.yml")}, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		case <-time.After(run1 + 15*time.Second):
			t.Error("the demo did not stop")
		}
	})
	start := time.Now()
	admin := demoLine(t, &stdout, exited, "admin")
	// The canary's alert needs 10 s of its errors; with screenshots, the
	// rollout's first interval (30 s) too.
	until := func(d time.Duration, cond func() bool) bool {
		for time.Since(start) < d {
			if cond() {
				return true
			}
			time.Sleep(500 * time.Millisecond)
		}
		return false
	}
	body := func(path string) string {
		_, _, s := demoGet(t, admin+path)
		return s
	}
	if !until(run1-60*time.Second, func() bool { return strings.Contains(body("/api/alerts?state=firing"), `"rule": "CanaryErrors"`) }) {
		t.Fatalf("the canary's alert did not fire; alerts:\n%s", body("/api/alerts"))
	}
	if shots {
		until(run1-60*time.Second, func() bool { return strings.Contains(body("/api/rollouts"), `"rolled_back"`) })
	}
	dir := browsertest.ScreenshotDir(t)
	ctx, ce := b.Tab(t, 55*time.Second)
	nav := func(page, wait string) {
		t.Helper()
		if err := chromedp.Run(ctx, chromedp.Click(`#nav a[data-page=`+page+`]`, chromedp.ByQuery), chromedp.WaitVisible(wait, chromedp.ByQuery)); err != nil {
			t.Fatalf("%s: waiting for %s: %v", page, wait, err)
		}
	}
	positive := func(s string) bool { return s != "" && s != "0" && s != "–" }
	if err := chromedp.Run(ctx, chromedp.Navigate(admin+"/")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitTextFunc(ctx, t, "#ov-requests", "requests", positive)
	browsertest.WaitTextFunc(ctx, t, "#firing-alerts", "the canary's alert", func(s string) bool { return strings.Contains(s, "CanaryErrors") })
	browsertest.Screenshot(ctx, t, dir, "overview")
	nav("routes", "#routes-table")
	browsertest.WaitTextFunc(ctx, t, `#routes-table tr[data-name=catalog-api] td[data-col=requests]`, "catalog-api's requests", positive)
	browsertest.Screenshot(ctx, t, dir, "routes")
	nav("services", "#services-table")
	browsertest.WaitTextFunc(ctx, t, `#services-table tr[data-name=catalog-v2] td[data-col=error_ratio]`, "the canary's errors", func(s string) bool { return s != "0.00%" && s != "" })
	browsertest.Screenshot(ctx, t, dir, "services")
	nav("hosts", "#hosts-table")
	browsertest.Screenshot(ctx, t, dir, "hosts")
	nav("traffic", ".split-table")
	browsertest.WaitTextFunc(ctx, t, "#decision-events", "the rollout's start", func(s string) bool { return strings.Contains(s, "catalog-v2") })
	browsertest.Screenshot(ctx, t, dir, "traffic")
	nav("rollouts", "#rollout-catalog-v2")
	browsertest.WaitTextFunc(ctx, t, "#ro-state-catalog-v2", "a state", func(s string) bool { return s != "pending" && s != "" })
	browsertest.Screenshot(ctx, t, dir, "rollouts")
	nav("alerts", "#alerts-table")
	if err := chromedp.Run(ctx, chromedp.Click(`#alerts-table tbody td[data-col=rule] a`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitCount(ctx, t, "#alert-chart .uplot", 1)
	browsertest.Screenshot(ctx, t, dir, "alerts")
	nav("traces", "#trace-id")
	if err := chromedp.Run(ctx, chromedp.WaitVisible(`#trace-results, table`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	browsertest.Screenshot(ctx, t, dir, "traces")
	// The newest error trace, as a person would open it from the list.
	if err := chromedp.Run(ctx, chromedp.WaitVisible(`table a[href^="/traces/"]`, chromedp.ByQuery), chromedp.Click(`table a[href^="/traces/"]`, chromedp.ByQuery)); err != nil {
		t.Fatalf("no error trace listed: %v", err)
	}
	browsertest.WaitTextFunc(ctx, t, "#trace-service-count", "several services", func(s string) bool { n, _ := strconv.Atoi(s); return n >= 2 })
	browsertest.Screenshot(ctx, t, dir, "trace")
	nav("map", "#service-map")
	browsertest.WaitCount(ctx, t, `#service-map g.node[data-service="vantage"]`, 1)
	if n := browsertest.Count(ctx, t, "#service-map g.node"); n < 4 {
		t.Errorf("the map has %d services, want the gateway and at least three of the shop's", n)
	}
	browsertest.Screenshot(ctx, t, dir, "map")
	nav("host", "#host-cpu, #host-none")
	browsertest.Screenshot(ctx, t, dir, "host")
	nav("config", "#config-routes")
	browsertest.Screenshot(ctx, t, dir, "config")
	if err := chromedp.Run(ctx, chromedp.Click(`#config-routes a[href="/route/catalog-api"]`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitTextFunc(ctx, t, "#rd-requests", "catalog-api's requests", positive)
	browsertest.Screenshot(ctx, t, dir, "route")
	ce.Check(t)
}
