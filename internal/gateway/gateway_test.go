package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/observe/observetest"
)

// eventLog records decision events.
type eventLog = observetest.Recorder

// fixture is a gateway on a real loopback listener in front of real
// upstreams.
type fixture struct {
	t      *testing.T
	g      *Gateway
	front  *httptest.Server
	events *eventLog
}

func parse(t *testing.T, yaml string, args ...any) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yml", []byte(fmt.Sprintf(yaml, args...)), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func newFixture(t *testing.T, cfg *config.Config, opts Options) *fixture {
	t.Helper()
	ev := &eventLog{}
	opts.Observer = observe.Join(opts.Observer, ev)
	g, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	front := httptest.NewServer(g.Handler(cfg.Listeners[0].Name))
	t.Cleanup(func() { front.Close(); g.Close() })
	return &fixture{t: t, g: g, front: front, events: ev}
}

func (f *fixture) get(path string, hdr ...string) (*http.Response, string) {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.front.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.front.Client().Do(req)
	if err != nil {
		f.t.Fatalf("GET %s: %v", path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func echoUpstream(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", name)
		w.Header().Set("Connection", "X-Drop-Me")
		w.Header().Set("X-Drop-Me", "hop")
		fmt.Fprintf(w, "%s %s %s xff=%s proto=%s host=%s conn=%q keepalive=%q custom=%q",
			name, r.Method, r.URL.RequestURI(), r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"),
			r.Header.Get("X-Forwarded-Host"), r.Header.Get("Connection"), r.Header.Get("Keep-Alive"), r.Header.Get("X-Custom"))
	}))
	t.Cleanup(s.Close)
	return s
}

const basicYAML = `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - name: a
    upstreams: [{url: %q}]
routes:
  - name: api
    match: {path_prefix: /api}
    service: a
    strip_prefix: /api
    add_prefix: /v1
    request_headers: {set: {X-Custom: "set"}, remove: [X-Remove]}
    response_headers: {add: {X-Gateway: vantage}}
  - name: item
    match: {path: "/items/{id}"}
    service: a
`

func TestProxyBasics(t *testing.T) {
	up := echoUpstream(t, "a")
	f := newFixture(t, parse(t, basicYAML, up.URL), Options{})

	resp, body := f.get("/api/users?q=1", "Connection", "Keep-Alive, X-Hop", "Keep-Alive", "timeout=5", "X-Hop", "x", "X-Remove", "r", "X-Forwarded-For", "6.6.6.6")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, want := range []string{"a GET /v1/users?q=1", "xff=127.0.0.1 ", "proto=http", `conn=""`, `keepalive=""`, `custom="set"`} {
		if !strings.Contains(body, want) {
			t.Errorf("upstream saw %q, want it to contain %q", body, want)
		}
	}
	if resp.Header.Get("X-Drop-Me") != "" {
		t.Errorf("hop-by-hop response header named in Connection was forwarded")
	}
	if resp.Header.Get("X-Gateway") != "vantage" || resp.Header.Get("X-Upstream") != "a" {
		t.Errorf("response headers: %v", resp.Header)
	}

	// Dot segments are resolved before matching: this is not /api.
	resp, body = f.get("/api/../items/7")
	if resp.StatusCode != 200 || !strings.Contains(body, "a GET /items/7") {
		t.Fatalf("cleaned path: %d %s", resp.StatusCode, body)
	}

	resp, body = f.get("/nothing")
	if resp.StatusCode != 404 || !strings.Contains(body, `"error":"no_route"`) {
		t.Fatalf("unmatched: %d %s", resp.StatusCode, body)
	}
	if f.events.Count(observe.EventRouteNotMatched) != 1 || f.events.Count(observe.EventRouteMatched) != 2 {
		t.Fatalf("route events: %+v", f.events.Events())
	}
}

func TestTrustedProxies(t *testing.T) {
	up := echoUpstream(t, "a")
	cfg := parse(t, basicYAML+"trusted_proxies: [127.0.0.0/8]\n", up.URL)
	var client atomic.Value
	f := newFixture(t, cfg, Options{Observer: observe.ObserverFunc(func(ev observe.Event) {
		if ev.Kind == observe.EventRouteMatched {
			client.Store(ev.Record.ClientAddr)
		}
	})})
	_, body := f.get("/items/1", "X-Forwarded-For", "203.0.113.9, 10.0.0.1", "X-Forwarded-Proto", "https")
	if !strings.Contains(body, "xff=203.0.113.9, 10.0.0.1, 127.0.0.1") || !strings.Contains(body, "proto=https") {
		t.Fatalf("trusted peer's forwarded headers not kept: %s", body)
	}
	if got := client.Load(); got != "10.0.0.1" {
		t.Fatalf("client address %v, want the right-most untrusted hop 10.0.0.1", got)
	}
}

func TestErrorMapping(t *testing.T) {
	// A port with nothing listening: connect refused → 502. It is on a
	// loopback IP no test server binds, so no later server reuses it.
	ln, err := net.Listen("tcp", "127.0.0.254:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	cfg := parse(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: dead, upstreams: [{url: %q}]}
  - {name: slow, upstreams: [{url: %q}]}
routes:
  - {name: dead, match: {path: /dead}, service: dead}
  - {name: slow, match: {path: /slow}, service: slow, timeout: 100ms}
`, dead, slow.URL)
	f := newFixture(t, cfg, Options{})
	resp, body := f.get("/dead")
	if resp.StatusCode != 502 || !strings.Contains(body, `"error":"upstream_connect"`) {
		t.Fatalf("dead upstream: %d %s", resp.StatusCode, body)
	}
	resp, body = f.get("/slow")
	if resp.StatusCode != 504 || !strings.Contains(body, `"error":"upstream_timeout"`) {
		t.Fatalf("slow upstream: %d %s", resp.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("error body is not JSON: %v", err)
	}
}

func TestRetryGoesToAnotherHost(t *testing.T) {
	var hitsBad, hitsGood atomic.Int64
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitsBad.Add(1)
		w.WriteHeader(503)
	}))
	defer bad.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitsGood.Add(1)
		io.WriteString(w, "good")
	}))
	defer good.Close()
	cfg := parse(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: s, upstreams: [{url: %q}, {url: %q}]}
routes:
  - {name: r, match: {path_prefix: /}, service: s, retry: {attempts: 2, on: ["503"], backoff: 1ms, max_backoff: 2ms}}
`, bad.URL, good.URL)
	f := newFixture(t, cfg, Options{})
	for i := 0; i < 10; i++ {
		resp, body := f.get("/x")
		if resp.StatusCode != 200 || body != "good" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if hitsBad.Load() != 5 || hitsGood.Load() != 10 {
		t.Fatalf("bad hit %d times (want 5: every other first try), good %d (want 10)", hitsBad.Load(), hitsGood.Load())
	}
	if n := f.events.Count(observe.EventRetry); n != 5 {
		t.Fatalf("retry events %d, want 5", n)
	}
	// POST is not idempotent: no retry on 503.
	req, _ := http.NewRequest("POST", f.front.URL+"/x", strings.NewReader("body"))
	for i := 0; i < 2; i++ {
		resp, err := f.front.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 503 {
			return
		}
		req, _ = http.NewRequest("POST", f.front.URL+"/x", strings.NewReader("body"))
	}
	t.Fatal("a POST answered 503 was retried")
}

func TestHotReloadUnderLoadLosesNothing(t *testing.T) {
	a, b := echoUpstream(t, "a"), echoUpstream(t, "b")
	yaml := `
listeners: [{name: public, address: "127.0.0.1:0"}]
services: [{name: s, upstreams: [{url: %q}]}]
routes: [{name: r, match: {path_prefix: /}, service: s}]
`
	f := newFixture(t, parse(t, yaml, a.URL), Options{})
	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(f.front.URL + "/x")
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		up := a.URL
		if i%2 == 0 {
			up = b.URL
		}
		if err := f.g.Reload(parse(t, yaml, up), observe.SourceAPI); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("during 20 reloads: %d ok, %d failed", ok.Load(), failed.Load())
	}
	if n := f.events.Count(observe.EventConfigReloaded); n != 20 {
		t.Fatalf("reload events %d, want 20", n)
	}
}

func TestBadReloadKeepsServing(t *testing.T) {
	up := echoUpstream(t, "a")
	f := newFixture(t, parse(t, basicYAML, up.URL), Options{})
	_, err := config.Parse("test.yml", []byte("listeners: []\nroutes: [{name: x}]\n"), nil)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	f.g.ReloadFailed(observe.SourceFile, err)
	st := f.g.LastReload()
	if st.Success || len(st.Errors) < 2 || st.LastSuccess.IsZero() {
		t.Fatalf("reload status %+v", st)
	}
	if resp, _ := f.get("/items/1"); resp.StatusCode != 200 {
		t.Fatalf("old config stopped serving: %d", resp.StatusCode)
	}
}

func TestHealthChecksEjectAndRestore(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && !healthy.Load() {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "up")
	}))
	defer up.Close()
	cfg := parse(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - name: s
    upstreams: [{url: %q}]
    health_check: {interval: 20ms, timeout: 10ms, healthy_threshold: 1, unhealthy_threshold: 1}
routes: [{name: r, match: {path_prefix: /}, service: s}]
`, up.URL)
	f := newFixture(t, cfg, Options{})
	waitFor := func(want int) {
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			if resp, _ := f.get("/x"); resp.StatusCode == want {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("status never became %d", want)
	}
	waitFor(200)
	healthy.Store(false)
	waitFor(503)
	if rs := f.g.Routes(); rs[0].Status != "warning" {
		t.Fatalf("route status %+v", rs[0])
	}
	healthy.Store(true)
	waitFor(200)
	if f.events.Count(observe.EventHealthChanged) < 2 {
		t.Fatalf("health events: %d", f.events.Count(observe.EventHealthChanged))
	}
}

func TestStreamingIsFlushed(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "data: second\n\n")
	}))
	defer up.Close()
	defer close(release)
	f := newFixture(t, parse(t, basicYAML, up.URL), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.front.URL+"/items/1", nil)
	resp, err := f.front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event not flushed before the stream ended: %q %v", line, err)
	}
}

func TestWebSocketUpgrade(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	}))
	defer up.Close()
	f := newFixture(t, parse(t, basicYAML, up.URL), Options{})
	conn, err := net.Dial("tcp", f.front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(conn, "GET /items/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade response: %v %v", resp, err)
	}
	fmt.Fprintf(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: hello\n" {
		t.Fatalf("echo over upgraded conn: %q %v", line, err)
	}
}

func TestClientCancelIsNotUpstreamFailure(t *testing.T) {
	started := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
	}))
	defer up.Close()
	kinds := make(chan observe.ErrorKind, 1)
	spy := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			kinds <- observe.FromContext(r.Context()).ErrorKind
		})
	}
	cfg := parse(t, basicYAML, up.URL)
	f := newFixture(t, cfg, Options{Telemetry: middleware.Telemetry{Metrics: middlewareFactory(spy)}})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", f.front.URL+"/items/1", nil)
	go func() { <-started; cancel() }()
	_, err := f.front.Client().Do(req)
	if err == nil {
		t.Fatal("request succeeded after cancel")
	}
	select {
	case k := <-kinds:
		if k != observe.ErrClientCanceled {
			t.Fatalf("error kind %q, want client_canceled", k)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("request never finished in the gateway")
	}
}
