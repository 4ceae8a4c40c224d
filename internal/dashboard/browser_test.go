package dashboard_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/vantage-gateway/vantage/internal/dashboard"
)

// The browser tests drive a real headless Chromium, one per test binary,
// started on first use and stopped by TestMain.
var browser struct {
	once   sync.Once
	ctx    context.Context
	cancel func()
	err    error
	dir    string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if browser.cancel != nil {
		browser.cancel()
	}
	if browser.dir != "" {
		os.RemoveAll(browser.dir)
	}
	os.Exit(code)
}

// chromiumPath finds the Chromium binary, "" when there is none.
func chromiumPath() string {
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// tab opens a new tab of the shared browser for one test, bounded to 20 s,
// and collects the page's console errors and uncaught exceptions.
func tab(t *testing.T) (context.Context, *consoleErrors) {
	t.Helper()
	bin := chromiumPath()
	if bin == "" {
		t.Skip("no Chromium binary (/usr/bin/chromium); install Debian's chromium package (scripts/test does) to run the browser tests")
	}
	browser.once.Do(func() {
		browser.dir, browser.err = os.MkdirTemp("", "vantage-chromium-")
		if browser.err != nil {
			return
		}
		opts := []chromedp.ExecAllocatorOption{
			chromedp.ExecPath(bin),
			chromedp.Flag("headless", true),
			chromedp.Flag("no-sandbox", true),
			chromedp.Flag("disable-gpu", true),
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("no-first-run", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.UserDataDir(browser.dir),
			chromedp.WindowSize(1280, 900),
		}
		actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, bcancel := chromedp.NewContext(actx)
		if err := chromedp.Run(bctx); err != nil {
			browser.err = fmt.Errorf("starting %s: %w", bin, err)
		}
		browser.ctx = bctx
		browser.cancel = func() { bcancel(); acancel() }
	})
	if browser.err != nil {
		t.Fatal(browser.err)
	}
	ctx, cancel := chromedp.NewContext(browser.ctx)
	ctx, cancel2 := context.WithTimeout(ctx, 20*time.Second)
	t.Cleanup(func() { cancel2(); cancel() })
	ce := &consoleErrors{}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeAssert {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				ce.add("console." + string(ev.Type) + ": " + strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			ce.add(fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg))
		case *log.EventEntryAdded:
			// Security (CSP) and JavaScript errors; failed fetches of an
			// absent optional API are the page's to show, not errors.
			if ev.Entry.Level == log.LevelError && ev.Entry.Source != log.SourceNetwork {
				ce.add(fmt.Sprintf("log %s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err := chromedp.Run(ctx, log.Enable(), runtime.Enable()); err != nil {
		t.Fatal(err)
	}
	return ctx, ce
}

type consoleErrors struct {
	mu   sync.Mutex
	msgs []string
}

func (c *consoleErrors) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, s)
}

func (c *consoleErrors) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		t.Errorf("page logged an error: %s", m)
	}
}

// waitText polls the text of sel until it equals want (or the tab's
// deadline passes) and returns the last text seen.
func waitText(ctx context.Context, t *testing.T, sel, want string) string {
	t.Helper()
	var got string
	for {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := chromedp.Run(tctx, chromedp.Text(sel, &got, chromedp.ByQuery, chromedp.NodeVisible))
		cancel()
		if err == nil && strings.TrimSpace(got) == want {
			return got
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: text %q, want %q (%v)", sel, got, want, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// screenshotDir is $VANTAGE_SCREENSHOTS when set, else a test folder.
func screenshotDir(t *testing.T) string {
	if d := os.Getenv("VANTAGE_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func screenshot(ctx context.Context, t *testing.T, dir, name string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.Sleep(150*time.Millisecond), chromedp.CaptureScreenshot(&png)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", p, len(png))
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
	ce.check(t)
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
	ce.check(t)
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
	t.Cleanup(func() { ce.check(t) })
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
