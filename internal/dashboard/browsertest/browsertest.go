// Package browsertest drives a real headless Chromium for the dashboard's
// browser tests: it starts the browser (Debian's chromium), opens tabs
// bounded in time that collect the page's console errors, uncaught
// exceptions and security (CSP) errors, waits for a selector's text and
// saves screenshots. It is a test kit: only tests import it.
package browsertest

import (
	"context"
	"errors"
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
)

// ErrNoChromium is returned by Start when no Chromium binary is installed.
var ErrNoChromium = errors.New("no Chromium binary (/usr/bin/chromium); install Debian's chromium package (scripts/test does) to run the browser tests")

// Path returns the Chromium binary, "" when there is none.
func Path() string {
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

// Browser is one headless Chromium process with its own temporary profile.
// Tabs may be opened from several tests at once. Close stops the process
// (by its context, so by its own PID) and removes the profile.
type Browser struct {
	ctx    context.Context
	cancel func()
	dir    string
}

// Start starts a headless Chromium; ErrNoChromium when there is none.
func Start() (*Browser, error) {
	bin := Path()
	if bin == "" {
		return nil, ErrNoChromium
	}
	dir, err := os.MkdirTemp("", "vantage-chromium-")
	if err != nil {
		return nil, err
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
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	b := &Browser{ctx: bctx, dir: dir, cancel: func() { bcancel(); acancel() }}
	if err := chromedp.Run(bctx); err != nil {
		b.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	return b, nil
}

// Close stops the browser and removes its profile. It is safe to call
// more than once.
func (b *Browser) Close() {
	if b == nil {
		return
	}
	if b.cancel != nil {
		b.cancel()
		b.cancel = nil
	}
	if b.dir != "" {
		os.RemoveAll(b.dir)
		b.dir = ""
	}
}

// Tab opens a new tab bounded to timeout, closed when t ends, and
// collects what the page logs as errors into the returned Console.
func (b *Browser) Tab(t testing.TB, timeout time.Duration) (context.Context, *Console) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	ctx, cancel2 := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancel2(); cancel() })
	ce := &Console{}
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

// Console holds the errors a tab's page logged. It is safe for concurrent
// use.
type Console struct {
	mu   sync.Mutex
	msgs []string
}

func (c *Console) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, s)
}

// Check fails t for every error the page logged.
func (c *Console) Check(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		t.Errorf("page logged an error: %s", m)
	}
}

// WaitText polls the text of the visible element sel until it equals want
// (spaces trimmed) and returns it; past the tab's deadline it fails t
// with the last text seen.
func WaitText(ctx context.Context, t testing.TB, sel, want string) string {
	t.Helper()
	return WaitTextFunc(ctx, t, sel, "= "+want, func(s string) bool { return s == want })
}

// WaitTextFunc polls the text of the visible element sel until ok holds
// for it (spaces trimmed); desc describes ok in the failure message.
func WaitTextFunc(ctx context.Context, t testing.TB, sel, desc string, ok func(string) bool) string {
	t.Helper()
	var got string
	for {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := chromedp.Run(tctx, chromedp.Text(sel, &got, chromedp.ByQuery, chromedp.NodeVisible))
		cancel()
		if err == nil && ok(strings.TrimSpace(got)) {
			return strings.TrimSpace(got)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: text %q, want %s (%v)", sel, got, desc, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Count returns the number of elements matching the CSS selector sel.
func Count(ctx context.Context, t testing.TB, sel string) int {
	t.Helper()
	var n int
	if err := chromedp.Run(ctx, chromedp.Evaluate(fmt.Sprintf("document.querySelectorAll(%q).length", sel), &n)); err != nil {
		t.Fatalf("counting %s: %v", sel, err)
	}
	return n
}

// WaitCount polls until exactly want elements match sel and fails t past
// the tab's deadline.
func WaitCount(ctx context.Context, t testing.TB, sel string, want int) {
	t.Helper()
	n := -1
	for {
		var err error
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = chromedp.Run(tctx, chromedp.Evaluate(fmt.Sprintf("document.querySelectorAll(%q).length", sel), &n))
		cancel()
		if err == nil && n == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %d elements, want %d (%v)", sel, n, want, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ScreenshotDir is $VANTAGE_SCREENSHOTS when set (created if needed), else
// a temporary folder of t.
func ScreenshotDir(t testing.TB) string {
	if d := os.Getenv("VANTAGE_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// Screenshot saves the tab's viewport as dir/name.png.
func Screenshot(ctx context.Context, t testing.TB, dir, name string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.Sleep(150*time.Millisecond), chromedp.CaptureScreenshot(&png)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", name, len(png))
}
