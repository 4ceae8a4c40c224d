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

func (u *rawUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(io.TeeReader(c, upstreamRecorder{u}))
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
func edgeGateway(t *testing.T, cfgYAML string, up *rawUpstream) string {
	t.Helper()
	cfg := parse(t, cfgYAML, up.url())
	g, err := New(cfg, Options{})
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
