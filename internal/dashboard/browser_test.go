package dashboard_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vantage-gateway/vantage/internal/dashboard"
	"github.com/vantage-gateway/vantage/internal/dashboard/browsertest"
)

// The browser tests drive a real headless Chromium, one per test binary,
// started on first use and stopped by TestMain.
var browser struct {
	once sync.Once
	b    *browsertest.Browser
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	browser.b.Close()
	os.Exit(code)
}

// tab opens a new tab of the shared browser for one test, bounded to 20 s,
// and collects the page's console errors and uncaught exceptions.
func tab(t *testing.T) (context.Context, *browsertest.Console) {
	t.Helper()
	if browsertest.Path() == "" {
		t.Skip(browsertest.ErrNoChromium.Error())
	}
	browser.once.Do(func() { browser.b, browser.err = browsertest.Start() })
	if browser.err != nil {
		t.Fatal(browser.err)
	}
	return browser.b.Tab(t, 20*time.Second)
}

func waitText(ctx context.Context, t *testing.T, sel, want string) string {
	t.Helper()
	return browsertest.WaitText(ctx, t, sel, want)
}

func screenshotDir(t *testing.T) string { return browsertest.ScreenshotDir(t) }

func screenshot(ctx context.Context, t *testing.T, dir, name string) {
	t.Helper()
	browsertest.Screenshot(ctx, t, dir, name)
}

// TestBrowserOverviewCount: the overview's request count equals the
// requests sent through the gateway, and its 5xx ratio their statuses.
func TestBrowserOverviewCount(t *testing.T) {
	e := newEnv(t, dashboard.Options{})
	ctx, ce := tab(t)
	e.send("/api/x/200", "", 17)
	e.send("/api/x/503", "", 3)
	e.send("/shop/a/200", "canary", 5)
	e.waitSealed()
	if err := chromedp.Run(ctx, chromedp.Navigate(e.admin.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitText(ctx, t, "#ov-requests", "25")
	waitText(ctx, t, "#ov-error-ratio", "12.00%")
	waitText(ctx, t, "#top-errors tbody tr td[data-col=name]", "api")
	ce.Check(t)
}

// TestBrowserRouteErrorRatio: a route's detail page and the routes table
// show the error ratio of the statuses sent to it.
func TestBrowserRouteErrorRatio(t *testing.T) {
	e := newEnv(t, dashboard.Options{})
	ctx, ce := tab(t)
	e.send("/api/x/200", "", 6)
	e.send("/api/x/500", "", 2)
	e.send("/shop/a/200", "stable", 4)
	e.waitSealed()
	if err := chromedp.Run(ctx, chromedp.Navigate(e.admin.URL+"/route/api")); err != nil {
		t.Fatal(err)
	}
	waitText(ctx, t, "#rd-requests", "8")
	waitText(ctx, t, "#rd-error-ratio", "25.00%")
	// Client-side navigation to the routes table.
	if err := chromedp.Run(ctx, chromedp.Click(`#nav a[data-page=routes]`, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	waitText(ctx, t, `#routes-table tr[data-name=api] td[data-col=error_ratio]`, "25.00%")
	waitText(ctx, t, `#routes-table tr[data-name=shop] td[data-col=error_ratio]`, "0.00%")
	ce.Check(t)
}

// visitPages loads the dashboard once, then opens each page through its
// navigation link (client-side routing), waits for its content, saves a
// screenshot and checks the page logged no error.
func visitPages(t *testing.T, e *env, pages []struct{ nav, wait, name string }) context.Context {
	t.Helper()
	ctx, ce := tab(t)
	dir := screenshotDir(t)
	if err := chromedp.Run(ctx, chromedp.Navigate(e.admin.URL+"/"), chromedp.WaitVisible("#ov-requests", chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		if err := chromedp.Run(ctx, chromedp.Click(p.nav, chromedp.ByQuery), chromedp.WaitVisible(p.wait, chromedp.ByQuery)); err != nil {
			t.Fatalf("%s: waiting for %s: %v", p.nav, p.wait, err)
		}
		screenshot(ctx, t, dir, p.name)
	}
	t.Cleanup(func() { ce.Check(t) })
	return ctx
}

// sendMix sends a mix of statuses, split legs and a failing route.
func sendMix(e *env) {
	e.send("/api/x/200", "", 20)
	e.send("/api/x/500", "", 2)
	e.send("/api/x/404", "", 3)
	e.send("/shop/a/200", "stable", 12)
	e.send("/shop/a/200", "canary", 4)
	e.send("/down/x", "", 2)
	e.waitSealed()
}

// TestBrowserPagesLive covers the pages fed by the live stream; the
// traffic page shows the split's configured 80/20 beside the served 75/25.
func TestBrowserPagesLive(t *testing.T) {
	e := newEnv(t, dashboard.Options{})
	sendMix(e)
	ctx := visitPages(t, e, []struct{ nav, wait, name string }{
		{`#nav a[data-page=overview]`, "#top-errors", "overview"},
		{`#nav a[data-page=routes]`, "#routes-table", "routes"},
		{`#nav a[data-page=services]`, "#services-table", "services"},
		{`#nav a[data-page=hosts]`, "#hosts-table", "hosts"},
		{`#nav a[data-page=traffic]`, ".split-table", "traffic"},
	})
	waitText(ctx, t, `.split-table tr[data-name=canary] td[data-col=weight]`, "20.00%")
	waitText(ctx, t, `.split-table tr[data-name=canary] td[data-col=served]`, "25.00%")
}

// TestBrowserPagesHistory covers the pages that read the history, the
// config and the trace search.
func TestBrowserPagesHistory(t *testing.T) {
	e := newEnv(t, dashboard.Options{})
	sendMix(e)
	visitPages(t, e, []struct{ nav, wait, name string }{
		{`#nav a[data-page=config]`, "#config-routes", "config"},
		{`#config-routes a[href="/route/api"]`, "#rd-error-ratio .bad, #rd-p99", "route"},
		{`#nav a[data-page=host]`, "#host-none", "host"}, // the test history records no machine figures
		{`#nav a[data-page=traces]`, "#trace-id", "traces"},
		{`#nav a[data-page=kpis]`, "#kpis-none", "kpis"},
	})
}
