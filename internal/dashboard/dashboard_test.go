package dashboard_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/dashboard"
)

type overview struct {
	Gateway struct {
		Requests   uint64  `json:"requests"`
		Errors     uint64  `json:"errors_5xx"`
		ErrorRatio float64 `json:"error_ratio"`
	} `json:"gateway"`
	TopErrors  []struct{ Name string } `json:"top_errors"`
	TopLatency []struct{ Name string } `json:"top_latency"`
	Routes     []struct {
		Name       string            `json:"name"`
		Requests   uint64            `json:"requests"`
		ErrorRatio float64           `json:"error_ratio"`
		Status     map[string]uint64 `json:"status"`
		ErrorKinds map[string]uint64 `json:"error_kinds"`
		Spark      []uint64          `json:"spark"`
	} `json:"routes"`
	Legs []struct {
		Name     string `json:"name"`
		Requests uint64 `json:"requests"`
	} `json:"legs"`
	Reload *struct {
		Success bool `json:"success"`
	} `json:"reload"`
}

// TestOverviewCountsWhatWasSent sends known statuses through a real
// gateway and checks the overview's totals, top lists and legs.
func TestOverviewCountsWhatWasSent(t *testing.T) {
	e := newEnv(t, dashboard.Options{})
	e.send("/api/x/200", "", 8)
	e.send("/api/x/500", "", 2)
	e.send("/shop/a/200", "stable", 6)
	e.send("/shop/a/200", "canary", 3)
	e.send("/down/x", "", 1)
	e.waitSealed()

	resp, err := e.client.Get(e.admin.URL + "/api/dashboard/overview?window=2m")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var ov overview
	if err := json.NewDecoder(resp.Body).Decode(&ov); err != nil {
		t.Fatal(err)
	}
	if ov.Gateway.Requests != 20 || ov.Gateway.Errors != 3 {
		t.Errorf("gateway: %d requests, %d 5xx; want 20 and 3 (2 from api, 1 from down)", ov.Gateway.Requests, ov.Gateway.Errors)
	}
	routes := map[string]int{}
	for i, r := range ov.Routes {
		routes[r.Name] = i
	}
	api := ov.Routes[routes["api"]]
	if api.Requests != 10 || api.ErrorRatio != 0.2 || api.Status["5xx"] != 2 || api.Status["2xx"] != 8 {
		t.Errorf("route api: %+v; want 10 requests, 2 5xx, ratio 0.2", api)
	}
	if d := ov.Routes[routes["down"]]; d.ErrorKinds["upstream_connect"] != 1 {
		t.Errorf("route down: error kinds %v; want upstream_connect 1", d.ErrorKinds)
	}
	var sum uint64
	for _, v := range api.Spark {
		sum += v
	}
	if sum != 10 {
		t.Errorf("route api's sparkline sums to %d, want 10", sum)
	}
	if len(ov.TopErrors) != 2 || ov.TopErrors[0].Name != "api" {
		t.Errorf("top errors %+v; want api then down", ov.TopErrors)
	}
	legs := map[string]uint64{}
	for _, l := range ov.Legs {
		legs[l.Name] = l.Requests
	}
	if legs["shop/stable"] != 6 || legs["shop/canary"] != 3 {
		t.Errorf("legs %v; want shop/stable 6, shop/canary 3", legs)
	}
	if ov.Reload == nil || !ov.Reload.Success {
		t.Errorf("reload %+v; want the first load's success", ov.Reload)
	}
}

func TestOverviewRejectsBadParameters(t *testing.T) {
	e := newEnv(t, dashboard.Options{})
	for _, q := range []string{"window=0s", "window=25h", "window=abc", "foo=1"} {
		resp, err := e.client.Get(e.admin.URL + "/api/dashboard/overview?" + q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(b), "error") {
			t.Errorf("%s: %d %s; want 400 with an error", q, resp.StatusCode, b)
		}
	}
}

// TestStreamIsBounded opens the allowed number of live streams, checks
// each gets an overview event, and that one more is refused with 503.
func TestStreamIsBounded(t *testing.T) {
	e := newEnv(t, dashboard.Options{MaxStreams: 2})
	e.send("/api/x/200", "", 3)
	var open []*http.Response
	defer func() {
		for _, r := range open {
			r.Body.Close()
		}
	}()
	for i := 0; i < 2; i++ {
		resp, err := e.client.Get(e.admin.URL + "/api/dashboard/stream")
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, resp)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream %d: %d %s", i, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		if !sc.Scan() || sc.Text() != "event: overview" {
			t.Fatalf("stream %d: first line %q", i, sc.Text())
		}
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "data: {") {
			t.Fatalf("stream %d: data line %q", i, sc.Text())
		}
	}
	resp, err := e.client.Get(e.admin.URL + "/api/dashboard/stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third stream: %d, want 503", resp.StatusCode)
	}
	open[0].Body.Close()
	open = open[1:]
	// The slot frees once the server notices the closed stream (at its
	// next write, within a period).
	deadline := time.Now().Add(5 * time.Second)
	for e.dash.Streams() > 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := e.dash.Streams(); n != 1 {
		t.Fatalf("%d streams open after one closed, want 1", n)
	}
	// Close ends the open stream (its body reaches EOF) and refuses new ones.
	e.dash.Close()
	if _, err := io.Copy(io.Discard, open[0].Body); err != nil {
		t.Fatalf("reading the stream to its end after Close: %v", err)
	}
	resp, err = e.client.Get(e.admin.URL + "/api/dashboard/stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("stream after Close: %d, want 503", resp.StatusCode)
	}
}

// TestPagesAndHeaders checks that every page path (deep links included)
// serves the application with the strict CSP, that unknown paths are
// 404, and that the admin API is untouched.
func TestPagesAndHeaders(t *testing.T) {
	e := newEnv(t, dashboard.Options{})
	for _, p := range []string{"/", "/routes", "/route/api", "/traces/0af7651916cd43dd8448eb211c80319c", "/map", "/host", "/config", "/traffic", "/kpis", "/services", "/hosts", "/alerts", "/alerts/ApiErrors", "/rollouts"} {
		resp, err := e.client.Get(e.admin.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !regexp.MustCompile(`<script type="module" src="/assets/v-[0-9a-f]{12}/app.js">`).Match(b) {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != dashboard.CSP {
			t.Errorf("%s: CSP %q", p, got)
		}
	}
	for p, want := range map[string]int{"/nothing": 404, "/healthz": 200, "/api/routes": 200, "/api/history": 200, "/assets/app.js": 200} {
		resp, err := e.client.Get(e.admin.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", p, resp.StatusCode, want)
		}
	}
}

var assetRef = regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"|from '\./([^']+)'`)

// TestFirstLoadSize sums the bytes the first page load fetches: the HTML,
// every asset it references, and every module those import.
func TestFirstLoadSize(t *testing.T) {
	e := newEnv(t, dashboard.Options{})
	seen := map[string]bool{}
	total := 0
	var fetch func(path string)
	fetch = func(path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		resp, err := e.client.Get(e.admin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		total += len(b)
		for _, m := range assetRef.FindAllStringSubmatch(string(b), -1) {
			if m[1] != "" {
				fetch(m[1])
			} else {
				fetch("/assets/" + m[2])
			}
		}
	}
	fetch("/")
	t.Logf("first load: %d files, %d bytes", len(seen), total)
	if len(seen) < 8 {
		t.Errorf("only %d files found: %v", len(seen), seen)
	}
	if total > 300<<10 {
		t.Errorf("first load is %d bytes, over 300 KiB", total)
	}
}

// TestAssetCaching: the page names its assets by content and they are
// cached for a year; the page itself and unversioned asset paths are
// revalidated with their ETags (304); API answers are never stored.
func TestAssetCaching(t *testing.T) {
	e := newEnv(t, dashboard.Options{})
	get := func(path, inm string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", e.admin.URL+path, nil)
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, page := get("/", "")
	m := regexp.MustCompile(`src="(/assets/v-[0-9a-f]{12}/)app\.js"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the page does not load app.js from a content-named prefix:\n%s", page)
	}
	prefix := m[1]
	if cc, tag := resp.Header.Get("Cache-Control"), resp.Header.Get("ETag"); cc != "no-cache" || tag == "" {
		t.Errorf("page: Cache-Control %q, ETag %q", cc, tag)
	} else if r2, _ := get("/routes", tag); r2.StatusCode != http.StatusNotModified {
		t.Errorf("page revalidated with its ETag: %d, want 304", r2.StatusCode)
	}
	for _, a := range []string{"app.js", "dom.js", "app.css", "vendor/uplot/uPlot.iife.min.js", "favicon.svg"} {
		resp, body := get(prefix+a, "")
		tag := resp.Header.Get("ETag")
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "private, max-age=31536000, immutable" || tag == "" || body == "" {
			t.Errorf("%s: %d Cache-Control %q ETag %q", a, resp.StatusCode, resp.Header.Get("Cache-Control"), tag)
			continue
		}
		if r2, _ := get(prefix+a, tag); r2.StatusCode != http.StatusNotModified {
			t.Errorf("%s revalidated: %d, want 304", a, r2.StatusCode)
		}
		for _, other := range []string{"/assets/" + a, "/assets/v-000000000000/" + a} {
			r3, b3 := get(other, "")
			if r3.StatusCode != 200 || r3.Header.Get("Cache-Control") != "no-cache" || r3.Header.Get("ETag") != tag || b3 != body {
				t.Errorf("%s: %d Cache-Control %q ETag %q", other, r3.StatusCode, r3.Header.Get("Cache-Control"), r3.Header.Get("ETag"))
			}
		}
	}
	for p, want := range map[string]int{prefix + "nothing.js": 404, "/assets/../dashboard.go": 404} {
		if r, _ := get(p, ""); r.StatusCode != want {
			t.Errorf("%s: %d, want %d", p, r.StatusCode, want)
		}
	}
	for _, p := range []string{"/api/dashboard/overview", "/api/dashboard/traces", "/api/history"} {
		if r, _ := get(p, ""); r.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", p, r.Header.Get("Cache-Control"))
		}
	}
}

// TestStreamSendsNewSnapshotsOnly: while the stream's clock stands still
// the stream sends heartbeats, not the same event again; once the clock
// passes the period a new event follows.
func TestStreamSendsNewSnapshotsOnly(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := newEnv(t, dashboard.Options{Clock: clk, StreamEvery: 20 * time.Millisecond})
	e.send("/api/x/200", "", 2)
	resp, err := e.client.Get(e.admin.URL + "/api/dashboard/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	// next returns the next non-empty line.
	next := func() string {
		for sc.Scan() {
			if l := sc.Text(); l != "" {
				return l
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return ""
	}
	if l := next(); l != "event: overview" {
		t.Fatalf("first line %q", l)
	}
	next() // its data
	for i := 0; i < 5; i++ {
		if l := next(); l != ":" {
			t.Fatalf("line %d with the clock standing still: %q, want a heartbeat", i, l)
		}
	}
	clk.Advance(time.Second)
	for i := 0; i < 50; i++ {
		l := next()
		if l == "event: overview" {
			return
		}
		if l != ":" {
			t.Fatalf("unexpected line %q", l)
		}
	}
	t.Fatal("no new event in 50 periods after the clock moved on")
}
