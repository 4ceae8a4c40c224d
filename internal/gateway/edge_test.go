package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/listener"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// rawUpstream is an HTTP/1.1 upstream on a plain TCP listener that records
// every byte it receives, so a test can assert exactly what the gateway
// forwarded. It answers each request it parses with answer (default a 200
// with body "ok").
type rawUpstream struct {
	ln     net.Listener
	answer func(c net.Conn, req *http.Request)

	mu   sync.Mutex
	got  bytes.Buffer
	reqs int
}

type upstreamRecorder struct{ u *rawUpstream }

func (w upstreamRecorder) Write(p []byte) (int, error) {
	w.u.mu.Lock()
	defer w.u.mu.Unlock()
	return w.u.got.Write(p)
}

func newRawUpstream(t *testing.T) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); u.serve(c) }()
		}
	}()
	return u
}

// recConn records what is read from it.
type recConn struct {
	net.Conn
	u *rawUpstream
}

func (c recConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	upstreamRecorder{c.u}.Write(p[:n])
	return n, err
}

func (u *rawUpstream) serve(nc net.Conn) {
	defer nc.Close()
	c := recConn{nc, u}
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		u.mu.Lock()
		u.reqs++
		u.mu.Unlock()
		if u.answer != nil {
			u.answer(c, req)
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	}
}

func (u *rawUpstream) url() string { return "http://" + u.ln.Addr().String() }

// received returns every byte the upstream was sent.
func (u *rawUpstream) received() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.got.String()
}

// edgeGateway serves cfgYAML (with %q standing for the upstream URL) on a
// real listener and returns the listener's address.
func edgeGateway(t *testing.T, cfgYAML string, up *rawUpstream, opts ...Options) string {
	t.Helper()
	cfg := parse(t, cfgYAML, up.url())
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	g, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := listener.Listen(cfg.Listeners[0], g.Handler(cfg.Listeners[0].Name), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(); close(done) }()
	t.Cleanup(func() {
		srv.Shutdown(t.Context())
		<-done
		g.Close()
	})
	return srv.Addr().String()
}

const edgeYAML = `
listeners: [{name: public, address: "127.0.0.1:0"}]
services: [{name: s, upstreams: [{url: %q}]}]
routes: [{name: all, match: {path_prefix: /}, service: s}]
`

// rawResult is what a client saw on one connection.
type rawResult struct {
	raw    string         // every byte received
	first  *http.Response // the first response, nil if none parsed
	closed bool           // the gateway closed the connection
}

// rawExchange writes payload on a new connection and reads until the
// gateway closes it or wait passes.
func rawExchange(t *testing.T, addr, payload string, wait time.Duration) rawResult {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { io.WriteString(c, payload) }() // may block on a large payload the gateway stops reading
	c.SetReadDeadline(time.Now().Add(wait))
	var buf bytes.Buffer
	_, err = io.Copy(&buf, c)
	res := rawResult{raw: buf.String()}
	var ne net.Error
	res.closed = err == nil || !(errors.As(err, &ne) && ne.Timeout())
	if resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(buf.Bytes())), nil); err == nil {
		res.first = resp
	}
	return res
}

// expectRefused asserts the client got status with Connection: close, the
// connection was closed, and the upstream received nothing.
func expectRefused(t *testing.T, res rawResult, up *rawUpstream, status int) {
	t.Helper()
	if res.first == nil {
		t.Fatalf("no response; got %q", res.raw)
	}
	if res.first.StatusCode != status {
		t.Errorf("status %d, want %d; got %q", res.first.StatusCode, status, trunc(res.raw))
	}
	if !res.first.Close {
		t.Errorf("response lacks Connection: close; got %q", trunc(res.raw))
	}
	if !res.closed {
		t.Errorf("the gateway kept the connection open")
	}
	if n := len(statusLine.FindAllString(res.raw, -1)); n != 1 {
		t.Errorf("client got %d responses, want 1: %q", n, trunc(res.raw))
	}
	if got := up.received(); got != "" {
		t.Errorf("upstream received %q, want nothing", trunc(got))
	}
}

// sortHeads sorts the header lines of each request head in s (the
// transport writes them in map order), keeping request lines and bodies
// byte for byte.
func sortHeads(s string) string {
	var out strings.Builder
	for s != "" {
		i := strings.Index(s, "\r\n\r\n")
		if i < 0 {
			out.WriteString(s)
			break
		}
		lines := strings.Split(s[:i], "\r\n")
		sort.Strings(lines[1:])
		out.WriteString(strings.Join(lines, "\r\n") + "\r\n\r\n")
		s = s[i+4:]
		// The body: up to the next request line, which starts with an
		// upper-case method.
		j := 0
		for j < len(s) {
			k := strings.Index(s[j:], "POST /")
			if k < 0 {
				j = len(s)
				break
			}
			j += k
			break
		}
		out.WriteString(s[:j])
		s = s[j:]
	}
	return out.String()
}

var statusLine = regexp.MustCompile(`(?m)^HTTP/1\.[01] \d{3} `)

func trunc(s string) string {
	if len(s) > 400 {
		return s[:400] + "…"
	}
	return s
}

// TestSmugglingFramingRefused sends each ambiguous framing on a raw socket:
// each must be answered with a refusal and a closed connection, and nothing
// may reach the upstream — in particular not the request hidden in the body.
func TestSmugglingFramingRefused(t *testing.T) {
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	cases := []struct {
		name    string
		payload string
		status  int
	}{
		{"content-length and chunked", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"chunked and content-length", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"chunked on HTTP/1.0", "POST /x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"chunked on HTTP/1.0 without length", "POST /x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"folded transfer-encoding", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"differing content-lengths", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello" + smuggled, 400},
		{"content-length list", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 40\r\n\r\nhello" + smuggled, 400},
		// net/http answers a transfer coding it does not implement with 501
		// (RFC 9112 §6.1) and closes.
		{"gzip then chunked", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled, 501},
		{"chunked twice", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 501},
		{"chunked not last", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled, 501},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := newRawUpstream(t)
			addr := edgeGateway(t, edgeYAML, up)
			res := rawExchange(t, addr, tc.payload, 3*time.Second)
			expectRefused(t, res, up, tc.status)
		})
	}
}

// TestFramingRefusedAfterGoodRequests pipelines a good chunked request, a
// good sized one and then a smuggling attempt: the first two are forwarded
// byte for byte, the third refused and the connection closed.
func TestFramingRefusedAfterGoodRequests(t *testing.T) {
	up := newRawUpstream(t)
	addr := edgeGateway(t, edgeYAML, up)
	payload := "POST /one HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n" +
		"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz" +
		"POST /three HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
	res := rawExchange(t, addr, payload, 3*time.Second)
	if got := strings.Count(res.raw, "HTTP/1.1 200 OK"); got != 2 {
		t.Errorf("%d answers 200, want 2: %q", got, res.raw)
	}
	if !strings.Contains(res.raw, "HTTP/1.1 400 Bad Request") || !res.closed {
		t.Errorf("third request not refused with the connection closed (closed=%v): %q", res.closed, res.raw)
	}
	want := "POST /one HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
		"POST /two HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\nContent-Length: 3\r\n\r\nxyz"
	if got := up.received(); sortHeads(got) != sortHeads(want) {
		t.Errorf("upstream received\n%q\nwant\n%q", got, want)
	}
}

// TestOversizedRequestsRefused checks the request head limits.
func TestOversizedRequestsRefused(t *testing.T) {
	many := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("X-H-")
			b.WriteString(strings.Repeat("a", i%7))
			b.WriteString(": v\r\n")
		}
		return b.String()
	}
	cases := []struct {
		name    string
		payload string
		status  int
	}{
		{"1 MiB request line", "GET /" + strings.Repeat("a", 1<<20) + " HTTP/1.1\r\nHost: a\r\n\r\n", 431},
		{"20 KiB request line", "GET /" + strings.Repeat("a", 20<<10) + " HTTP/1.1\r\nHost: a\r\n\r\n", 414},
		{"1 MiB header", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", 1<<20) + "\r\n\r\n", 431},
		{"10000 headers", "GET / HTTP/1.1\r\nHost: a\r\n" + many(10000) + "\r\n", 431},
		{"101 headers", "GET / HTTP/1.1\r\nHost: a\r\n" + many(101) + "\r\n", 431},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := newRawUpstream(t)
			addr := edgeGateway(t, edgeYAML, up)
			res := rawExchange(t, addr, tc.payload, 3*time.Second)
			expectRefused(t, res, up, tc.status)
		})
	}
	t.Run("100 headers pass", func(t *testing.T) {
		up := newRawUpstream(t)
		addr := edgeGateway(t, edgeYAML, up)
		res := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"+many(99)+"\r\n", 3*time.Second)
		if res.first == nil || res.first.StatusCode != 200 {
			t.Fatalf("got %q", trunc(res.raw))
		}
		if got := up.received(); !strings.Contains(got, "X-H-Aaaaaa: v\r\n") {
			t.Errorf("upstream received %q", trunc(got))
		}
	})
	t.Run("configured limits", func(t *testing.T) {
		up := newRawUpstream(t)
		addr := edgeGateway(t, `
listeners: [{name: public, address: "127.0.0.1:0", max_headers: 3, max_uri_bytes: 10, max_header_bytes: 2048}]
services: [{name: s, upstreams: [{url: %q}]}]
routes: [{name: all, match: {path_prefix: /}, service: s}]
`, up)
		expectRefused(t, rawExchange(t, addr, "GET /0123456789 HTTP/1.1\r\nHost: a\r\n\r\n", 3*time.Second), up, 414)
		expectRefused(t, rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\n"+many(4)+"\r\n", 3*time.Second), up, 431)
		expectRefused(t, rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: "+strings.Repeat("b", 8<<10)+"\r\n\r\n", 3*time.Second), up, 431)
	})
}

// TestPRIRefused: the HTTP/2 preface sent to a listener without h2c is
// refused, not forwarded as "PRI /%2A".
func TestPRIRefused(t *testing.T) {
	up := newRawUpstream(t)
	addr := edgeGateway(t, edgeYAML, up)
	res := rawExchange(t, addr, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 3*time.Second)
	expectRefused(t, res, up, 505)
}

// TestConnectRefused: CONNECT is answered 405 and never forwarded.
func TestConnectRefused(t *testing.T) {
	up := newRawUpstream(t)
	addr := edgeGateway(t, edgeYAML, up)
	res := rawExchange(t, addr, "CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n", 3*time.Second)
	expectRefused(t, res, up, 405)
	if res.first != nil && res.first.Header.Get("Allow") == "" {
		t.Errorf("405 without Allow")
	}
}

// h2cAnswer answers 101 to any h2c upgrade request and then sends bytes no
// gateway should relay; other requests get 200.
func h2cAnswer(always bool) func(c net.Conn, req *http.Request) {
	return func(c net.Conn, req *http.Request) {
		if always || strings.EqualFold(req.Header.Get("Upgrade"), "h2c") {
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nRAW-H2-BYTES")
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	}
}

// TestH2CUpgradeStripped: an h2c upgrade is forwarded as a plain request,
// without Upgrade, Connection or HTTP2-Settings, and a 101 the upstream
// sends anyway is not relayed.
func TestH2CUpgradeStripped(t *testing.T) {
	const plain = "GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n"
	for _, tc := range []struct {
		name, payload string
		always        bool
		status        int
	}{
		{"listed settings", "GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n", false, 200},
		{"unlisted settings", "GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n", false, 200},
		{"upstream switches anyway", "GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n", true, 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newRawUpstream(t)
			up.answer = h2cAnswer(tc.always)
			addr := edgeGateway(t, edgeYAML, up)
			res := rawExchange(t, addr, tc.payload, time.Second)
			if res.first == nil || res.first.StatusCode != tc.status {
				t.Errorf("client got %q, want %d", res.raw, tc.status)
			}
			if strings.Contains(res.raw, "RAW-H2-BYTES") {
				t.Errorf("the upstream's raw bytes reached the client: %q", res.raw)
			}
			if got := up.received(); sortHeads(got) != sortHeads(plain) {
				t.Errorf("upstream received\n%q\nwant\n%q", got, plain)
			}
		})
	}
}

// wsAnswer answers a WebSocket upgrade with 101, reads 5 bytes and writes
// 6, then closes.
func wsAnswer(c net.Conn, req *http.Request) {
	if !strings.EqualFold(req.Header.Get("Upgrade"), "websocket") {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		return
	}
	io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	b := make([]byte, 5)
	if _, err := io.ReadFull(c, b); err == nil {
		io.WriteString(c, "world!")
	}
}

// TestWebSocketUpgradeRecorded: WebSocket is allowed by default; the
// upgraded connection's bytes both ways are recorded on the request.
func TestWebSocketUpgradeRecorded(t *testing.T) {
	up := newRawUpstream(t)
	up.answer = wsAnswer
	type seen struct {
		status          int
		bytesIn, bytesO int64
		route           string
	}
	got := make(chan seen, 1)
	capture := middlewareFactory(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			rec := observe.FromContext(r.Context())
			got <- seen{rec.Status, rec.BytesIn, rec.BytesOut, rec.Route}
		})
	})
	addr := edgeGateway(t, edgeYAML, up, Options{Telemetry: middleware.Telemetry{AccessLog: capture}})
	res := rawExchange(t, addr, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nhello", 3*time.Second)
	if res.first == nil || res.first.StatusCode != 101 || !strings.HasSuffix(res.raw, "\r\n\r\nworld!") {
		t.Fatalf("client got %q", res.raw)
	}
	if r := up.received(); !strings.Contains(r, "Upgrade: websocket\r\n") || !strings.HasSuffix(r, "\r\n\r\nhello") {
		t.Errorf("upstream received %q", r)
	}
	select {
	case s := <-got:
		if s.status != 101 || s.bytesIn != 5 || s.bytesO != 6 || s.route != "all" {
			t.Errorf("record: %+v, want status 101, 5 bytes in, 6 out, route all", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request was never recorded")
	}
}

// TestUpgradesOffByRoute: a route with upgrades: [] forwards a WebSocket
// request without its upgrade headers.
func TestUpgradesOffByRoute(t *testing.T) {
	up := newRawUpstream(t)
	up.answer = wsAnswer
	addr := edgeGateway(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
services: [{name: s, upstreams: [{url: %q}]}]
routes: [{name: all, match: {path_prefix: /}, service: s, upgrades: []}]
`, up)
	res := rawExchange(t, addr, "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", time.Second)
	if res.first == nil || res.first.StatusCode != 200 {
		t.Fatalf("client got %q", res.raw)
	}
	want := "GET /ws HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n\r\n"
	if r := up.received(); sortHeads(r) != sortHeads(want) {
		t.Errorf("upstream received %q, want %q", r, want)
	}
}

// TestXForwardedHostOmittedWithoutHost: an HTTP/1.0 request without Host
// gets no (empty) X-Forwarded-Host.
func TestXForwardedHostOmittedWithoutHost(t *testing.T) {
	up := newRawUpstream(t)
	addr := edgeGateway(t, edgeYAML, up)
	res := rawExchange(t, addr, "GET /x HTTP/1.0\r\n\r\n", 3*time.Second)
	if res.first == nil || res.first.StatusCode != 200 {
		t.Fatalf("client got %q", res.raw)
	}
	r := up.received()
	if strings.Contains(strings.ToLower(r), "x-forwarded-host") {
		t.Errorf("upstream received %q", r)
	}
	if !strings.Contains(r, "X-Forwarded-For: 127.0.0.1\r\n") {
		t.Errorf("upstream received %q", r)
	}
}
