package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
	browsertest.Screenshot(ctx, t, dir, "trace")

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
	browsertest.Screenshot(ctx, t, dir, "map")
	ce.Check(t)
}
