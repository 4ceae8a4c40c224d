package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// get sends a GET through rt and returns the status and body.
func get(t *testing.T, rt http.RoundTripper, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// idleConns returns the idle connections pooled for the URL's host.
func idleConns(tr *Transport, host string) int {
	p := (*tr.h1.pools.Load())[host]
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

func hostOf(url string) string {
	return strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://")
}

func TestKeepAliveReuse(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Query().Get("n"))
	}))
	tr := newTestTransport(t, testConfig(), Options{})
	for i := range 20 {
		code, body := get(t, tr, fmt.Sprintf("%s/x?n=%d", srv.URL, i))
		if code != 200 || body != fmt.Sprintf("hello %d", i) {
			t.Fatalf("request %d: got %d %q", i, code, body)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("server accepted %d connections, want 1", n)
	}
	if n := idleConns(tr, hostOf(srv.URL)); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
}

func TestRequestHead(t *testing.T) {
	heads := make(chan string, 4)
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			head, err := readHead(br, nil)
			if err != nil {
				return
			}
			heads <- string(head)
			io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
		}
	})
	tr := newTestTransport(t, testConfig(), Options{})

	req, _ := http.NewRequest("POST", srv.URL()+"/a%2Fb/c?q=1&r=%20", nil)
	req.Host = "api.example.com"
	req.Header.Set("X-One", "1")
	req.Header["User-Agent"] = []string{""}
	req.Header.Set("Content-Length", "999") // ignored: the transport frames the body
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	head := <-heads
	for _, want := range []string{
		"POST /a%2Fb/c?q=1&r=%20 HTTP/1.1\r\n",
		"Host: api.example.com\r\n",
		"X-One: 1\r\n",
		"Content-Length: 0\r\n",
	} {
		if !strings.Contains(head, want) {
			t.Errorf("head lacks %q:\n%s", want, head)
		}
	}
	if strings.Contains(head, "User-Agent") || strings.Contains(head, "999") {
		t.Errorf("head has an excluded field:\n%s", head)
	}

	// GET sends no Content-Length; an invalid field value is refused.
	req, _ = http.NewRequest("GET", srv.URL()+"/", nil)
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if head := <-heads; strings.Contains(head, "Content-Length") {
		t.Errorf("GET head has Content-Length:\n%s", head)
	}
	req.Header.Set("X-Bad", "a\r\nInjected: 1")
	if _, err := tr.RoundTrip(req); classify(err) != observe.ErrInternal {
		t.Fatalf("invalid header value: got %v (%v), want ErrInternal", err, classify(err))
	}
	req, _ = http.NewRequest("GET", srv.URL()+"/", nil)
	req.URL.RawQuery = "a=1 HTTP/1.1\r\nX-Injected: 1"
	if _, err := tr.RoundTrip(req); classify(err) != observe.ErrInternal {
		t.Fatalf("invalid query: got %v (%v), want ErrInternal", err, classify(err))
	}
}

func TestChunkedResponseTrailers(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		for i := range 3 {
			fmt.Fprintf(w, "part%d;", i)
			w.(http.Flusher).Flush()
		}
		w.Header().Set("X-Sum", "42")
	}))
	tr := newTestTransport(t, testConfig(), Options{})
	for range 2 {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 {
			t.Fatalf("not chunked: %d %v", resp.ContentLength, resp.TransferEncoding)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if string(b) != "part0;part1;part2;" {
			t.Fatalf("body %q", b)
		}
		if got := resp.Trailer.Get("X-Sum"); got != "42" {
			t.Fatalf("trailer X-Sum = %q, want 42", got)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("server accepted %d connections, want 1", n)
	}
}

func TestChunkedRequestBody(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%v %d %q %s", r.TransferEncoding, r.ContentLength, b, r.Trailer.Get("X-Req-Sum"))
	}))
	tr := newTestTransport(t, testConfig(), Options{})
	for _, size := range []int{0, 5, 100 << 10} { // sync and streamed paths
		pr, pw := io.Pipe()
		go func() {
			pw.Write(bytes.Repeat([]byte("a"), size))
			pw.Close()
		}()
		req, _ := http.NewRequest("PUT", srv.URL, pr)
		req.ContentLength = -1
		req.Trailer = http.Header{"X-Req-Sum": {"s" + strconv.Itoa(size)}}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := fmt.Sprintf("[chunked] -1 %q s%d", strings.Repeat("a", size), size)
		if string(b) != want {
			t.Fatalf("size %d: got %.80q, want %.80q", size, b, want)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("server accepted %d connections, want 1", n)
	}
}

func TestNoBodyResponses(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.WriteHeader(304)
		case "/head":
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(200)
		case "/empty":
			w.Header().Set("Content-Length", "0")
		}
	}))
	tr := newTestTransport(t, testConfig(), Options{})
	for _, tc := range []struct{ method, path string }{
		{"GET", "/204"}, {"GET", "/304"}, {"HEAD", "/head"}, {"GET", "/empty"}, {"GET", "/204"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != 0 || err != nil {
			t.Fatalf("%s %s: body %d bytes, err %v", tc.method, tc.path, n, err)
		}
		if tc.method == "HEAD" && resp.ContentLength != 100 {
			t.Fatalf("HEAD Content-Length = %d", resp.ContentLength)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("server accepted %d connections, want 1", n)
	}
}

func TestConnectionClose(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, "ok")
	}))
	tr := newTestTransport(t, testConfig(), Options{})
	get(t, tr, srv.URL+"/close") // conn 1, closed by the server
	get(t, tr, srv.URL+"/")      // conn 2
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req.Close = true // conn 2 reused, then closed by us
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	get(t, tr, srv.URL+"/") // conn 3
	if n := srv.conns.Load(); n != 3 {
		t.Fatalf("server accepted %d connections, want 3", n)
	}
}

func TestLargeBodies(t *testing.T) {
	const size = 8 << 20
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Got", fmt.Sprintf("%d %x", n, h.Sum(nil)))
		w.Header().Set("Content-Length", strconv.Itoa(size))
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
		for sent := 0; sent < size; sent += len(chunk) {
			w.Write(chunk)
		}
	}))
	tr := newTestTransport(t, testConfig(), Options{})
	payload := bytes.Repeat([]byte("xyz"), size/3)
	sum := sha256.Sum256(payload)
	for _, chunked := range []bool{false, true} {
		req, _ := http.NewRequest("POST", srv.URL, bytes.NewReader(payload))
		if chunked {
			req.ContentLength = -1
			req.Body = io.NopCloser(bytes.NewReader(payload))
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := resp.Header.Get("X-Got"), fmt.Sprintf("%d %x", len(payload), sum); got != want {
			t.Fatalf("upstream got %q, want %q", got, want)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			t.Fatalf("response body: %d bytes, %v", n, err)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("server accepted %d connections, want 1", n)
	}
}

// TestFullDuplex checks that a streamed request body and the response flow
// at the same time: the upstream echoes each piece as it comes.
func TestFullDuplex(t *testing.T) {
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readHead(br, nil); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			n, _ := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
			data := make([]byte, n+2)
			if _, err := io.ReadFull(br, data); err != nil {
				return
			}
			if n == 0 {
				io.WriteString(c, "0\r\n\r\n")
				return
			}
			fmt.Fprintf(c, "%x\r\n%s", n, data)
		}
	})
	tr := newTestTransport(t, testConfig(), Options{})
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", srv.URL(), pr)
	req.ContentLength = -1
	resp, err := tr.RoundTrip(req) // returns before the body is done
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 16)
	for _, piece := range []string{"ping", "pong", "done"} {
		if _, err := io.WriteString(pw, piece); err != nil {
			t.Fatal(err)
		}
		n, err := io.ReadFull(resp.Body, buf[:len(piece)])
		if err != nil || string(buf[:n]) != piece {
			t.Fatalf("echo: %q %v", buf[:n], err)
		}
	}
	pw.Close()
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("end: %q %v", rest, err)
	}
}

// TestEarlyResponse checks that an upstream refusing a large body before
// reading it gets its answer through.
func TestEarlyResponse(t *testing.T) {
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readHead(br, nil); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbig")
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, br) // lingering close: let the client read the answer
	})
	tr := newTestTransport(t, testConfig(), Options{})
	for _, size := range []int{1 << 10, 4 << 20} {
		req, _ := http.NewRequest("POST", srv.URL(), bytes.NewReader(make([]byte, size)))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 || string(b) != "big" {
			t.Fatalf("size %d: %d %q", size, resp.StatusCode, b)
		}
	}
}

func TestInformationalResponses(t *testing.T) {
	srv := cannedServer(t, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"+
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	tr := newTestTransport(t, testConfig(), Options{})
	for range 2 {
		if code, body := get(t, tr, srv.URL()); code != 200 || body != "ok" {
			t.Fatalf("got %d %q", code, body)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("server accepted %d connections, want 1", n)
	}
}

// closingServer answers each connection's first request, then closes it
// without saying so: an upstream whose keep-alive timeout is shorter than
// ours. closed receives after each close.
func closingServer(t *testing.T) (*rawServer, chan struct{}) {
	closed := make(chan struct{}, 16)
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readHead(br, nil); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.Close()
		closed <- struct{}{}
	})
	return srv, closed
}

func TestStaleConnRetry(t *testing.T) {
	fake := clock.NewFake(time.Unix(1000, 0))
	srv, closed := closingServer(t)
	tr := newTestTransport(t, testConfig(), Options{Clock: fake})
	get(t, tr, srv.URL())
	<-closed
	// The dead connection is reused at once (no probe): the GET fails on
	// it before any response byte and is retried on a fresh one.
	if code, body := get(t, tr, srv.URL()); code != 200 || body != "ok" {
		t.Fatalf("retried GET: %d %q", code, body)
	}
	<-closed
	if n := srv.conns.Load(); n != 2 {
		t.Fatalf("server accepted %d connections, want 2", n)
	}

	// A POST is not idempotent: it may have been processed, so it is not
	// retried...
	req, _ := http.NewRequest("POST", srv.URL(), strings.NewReader("x"))
	if _, err := tr.RoundTrip(req); classify(err) != observe.ErrUpstreamReset {
		t.Fatalf("POST on a dead conn: %v (%v), want reset", err, classify(err))
	}

	// ...unless it says it is idempotent and can be replayed.
	get(t, tr, srv.URL())
	<-closed
	req, _ = http.NewRequest("POST", srv.URL(), strings.NewReader("x")) // sets GetBody
	req.Header.Set("Idempotency-Key", "k1")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("idempotent POST: %v", err)
	}
	resp.Body.Close()
	<-closed

	// After idling a while the connection is probed before use: the dead
	// one is dropped without sending anything, so even a plain POST works.
	get(t, tr, srv.URL())
	<-closed
	fake.Advance(time.Second)
	before := srv.conns.Load()
	req, _ = http.NewRequest("POST", srv.URL(), strings.NewReader("x"))
	req.GetBody = nil
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("POST after probe: %v", err)
	}
	resp.Body.Close()
	if n := srv.conns.Load() - before; n != 1 {
		t.Fatalf("POST after probe used %d new connections, want 1", n)
	}
}

// TestNoRetryAfterResponseBytes: a connection that dies mid-head is not
// retried, even for a GET.
func TestNoRetryAfterResponseBytes(t *testing.T) {
	var mu sync.Mutex
	n := 0
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			if _, err := readHead(br, nil); err != nil {
				return
			}
			mu.Lock()
			n++
			k := n
			mu.Unlock()
			if k == 1 {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Le")
			return
		}
	})
	tr := newTestTransport(t, testConfig(), Options{})
	get(t, tr, srv.URL())
	req, _ := http.NewRequest("GET", srv.URL(), nil)
	_, err := tr.RoundTrip(req)
	if classify(err) != observe.ErrUpstreamReset {
		t.Fatalf("got %v (%v), want reset", err, classify(err))
	}
	mu.Lock()
	defer mu.Unlock()
	if n != 2 {
		t.Fatalf("upstream saw %d requests, want 2 (no retry)", n)
	}
}

func TestIdleTimeout(t *testing.T) {
	fake := clock.NewFake(time.Unix(1000, 0))
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	cfg := testConfig()
	cfg.IdleConnTimeout = config.Duration(time.Minute)
	tr := newTestTransport(t, cfg, Options{Clock: fake})
	get(t, tr, srv.URL)
	fake.Advance(59 * time.Second)
	get(t, tr, srv.URL) // reused (probed: still alive)
	fake.Advance(61 * time.Second)
	get(t, tr, srv.URL) // expired: a new one
	if n := srv.conns.Load(); n != 2 {
		t.Fatalf("server accepted %d connections, want 2", n)
	}
	if n := idleConns(tr, hostOf(srv.URL)); n != 1 {
		t.Fatalf("%d idle, want 1", n)
	}
	// The janitor closes what no request comes to collect.
	fake.Advance(2 * time.Minute)
	p := (*tr.h1.pools.Load())[hostOf(srv.URL)]
	p.janitor()
	if n := idleConns(tr, hostOf(srv.URL)); n != 0 {
		t.Fatalf("%d idle after janitor, want 0", n)
	}
}

func TestMaxIdleAndCloseIdle(t *testing.T) {
	release := make(chan struct{})
	var arrived sync.WaitGroup
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			arrived.Done()
			<-release
		}
	}))
	cfg := testConfig()
	cfg.MaxIdleConnsPerHost = 2
	tr := newTestTransport(t, cfg, Options{})
	arrived.Add(4)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", srv.URL+"/hold", nil)
			if resp, err := tr.RoundTrip(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	arrived.Wait()
	close(release)
	wg.Wait()
	if n := idleConns(tr, hostOf(srv.URL)); n != 2 {
		t.Fatalf("%d idle, want 2", n)
	}
	tr.CloseIdleConnections()
	if n := idleConns(tr, hostOf(srv.URL)); n != 0 {
		t.Fatalf("%d idle after CloseIdleConnections, want 0", n)
	}
	get(t, tr, srv.URL)
	if n := srv.conns.Load(); n != 5 {
		t.Fatalf("server accepted %d connections, want 5", n)
	}
}

func TestMaxConnsPerHost(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 4)
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		if r.URL.Path == "/hold" {
			<-release
		}
		io.WriteString(w, r.URL.Path)
	}))
	cfg := testConfig()
	cfg.MaxConnsPerHost = 1
	tr := newTestTransport(t, cfg, Options{})

	first := make(chan string)
	go func() {
		_, body := get(t, tr, srv.URL+"/hold")
		first <- body
	}()
	<-arrived

	// A request that cannot get a slot before its deadline fails.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/late", nil)
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) || classify(err) != observe.ErrUpstreamTimeout {
		t.Fatalf("waiting past deadline: %v (%v)", err, classify(err))
	}

	second := make(chan string)
	go func() {
		_, body := get(t, tr, srv.URL+"/second")
		second <- body
	}()
	// The second waits for the first's connection.
	hl := tr.lim.host(hostOf(srv.URL))
	waitFor(t, func() bool { hl.mu.Lock(); defer hl.mu.Unlock(); return len(hl.waiters) == 1 })
	close(release)
	if b := <-first; b != "/hold" {
		t.Fatalf("first: %q", b)
	}
	if b := <-second; b != "/second" {
		t.Fatalf("second: %q", b)
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("server accepted %d connections, want 1", n)
	}
}

// waitFor polls cond until it holds or five seconds pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCancel(t *testing.T) {
	t.Run("dial", func(t *testing.T) {
		tr := newTestTransport(t, testConfig(), Options{})
		dialing := make(chan struct{})
		tr.h1.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			close(dialing)
			<-ctx.Done()
			return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
		}
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://upstream.invalid:80/", nil)
		go func() { <-dialing; cancel() }()
		_, err := tr.RoundTrip(req)
		if !errors.Is(err, context.Canceled) || classify(err) != observe.ErrClientCanceled {
			t.Fatalf("got %v (%v)", err, classify(err))
		}
	})

	t.Run("headers", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		release := make(chan struct{})
		defer close(release)
		srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		tr := newTestTransport(t, testConfig(), Options{})
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		go func() { <-arrived; cancel() }()
		_, err := tr.RoundTrip(req)
		if !errors.Is(err, context.Canceled) || classify(err) != observe.ErrClientCanceled {
			t.Fatalf("got %v (%v)", err, classify(err))
		}
		if n := idleConns(tr, hostOf(srv.URL)); n != 0 {
			t.Fatalf("canceled conn pooled")
		}
	})

	t.Run("deadline", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		tr := newTestTransport(t, testConfig(), Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		_, err := tr.RoundTrip(req)
		var ne net.Error
		if !errors.Is(err, context.DeadlineExceeded) || classify(err) != observe.ErrUpstreamTimeout ||
			!errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("got %v (%v)", err, classify(err))
		}
	})

	t.Run("body", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/" {
				io.WriteString(w, "first")
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
		}))
		tr := newTestTransport(t, testConfig(), Options{})
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		cancel()
		_, err = resp.Body.Read(buf)
		if !errors.Is(err, context.Canceled) || classify(err) != observe.ErrClientCanceled {
			t.Fatalf("got %v (%v)", err, classify(err))
		}
		resp.Body.Close()
		get(t, tr, srv.URL+"/after")
		if n := srv.conns.Load(); n != 2 {
			t.Fatalf("server accepted %d connections, want 2 (canceled conn not reused)", n)
		}
	})
}

func TestResponseHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readall" {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%d", len(b))
			return
		}
		if r.URL.Path == "/slowbody" {
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			time.Sleep(150 * time.Millisecond) // longer than the header timeout
			io.WriteString(w, "b")
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	cfg := testConfig()
	cfg.ResponseHeaderTimeout = config.Duration(50 * time.Millisecond)
	tr := newTestTransport(t, cfg, Options{})
	req, _ := http.NewRequest("GET", srv.URL, nil)
	_, err := tr.RoundTrip(req)
	var ne net.Error
	if !errors.Is(err, ErrResponseHeaderTimeout) || classify(err) != observe.ErrUpstreamTimeout ||
		!errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("got %v (%v)", err, classify(err))
	}
	// The timeout covers the headers only, not a slow body.
	if code, body := get(t, tr, srv.URL+"/slowbody"); code != 200 || body != "ab" {
		t.Fatalf("slow body: %d %q", code, body)
	}
	// Streamed bodies: the timeout starts once the body is sent, so an
	// upload slower than it is fine when the upstream answers after it.
	pr, pw := io.Pipe()
	req, _ = http.NewRequest("POST", srv.URL+"/readall", pr)
	req.ContentLength = -1
	go func() {
		pw.Write([]byte("abc"))
		time.Sleep(150 * time.Millisecond) // longer than the header timeout
		pw.Write([]byte("de"))
		pw.Close()
	}()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("slow upload: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "5" {
		t.Fatalf("slow upload: upstream read %q bytes", b)
	}
}

func TestUpgrade(t *testing.T) {
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		head, err := readHead(br, nil)
		if err != nil {
			return
		}
		if !bytes.Contains(head, []byte("Upgrade: echo\r\n")) {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
			return
		}
		// The greeting rides in the same segment as the 101.
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello")
		io.Copy(c, br)
	})
	tr := newTestTransport(t, testConfig(), Options{})
	req, _ := http.NewRequest("GET", srv.URL()+"/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("body %T is not an io.ReadWriteCloser", resp.Body)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(rwc, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("greeting %q %v", buf, err)
	}
	for _, msg := range []string{"ping!", "pong!"} {
		if _, err := io.WriteString(rwc, msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rwc, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q %v", buf, err)
		}
	}
	rwc.Close()
	if n := idleConns(tr, hostOf(srv.URL())); n != 0 {
		t.Fatalf("upgraded conn pooled")
	}

	// A 101 nobody asked for is a protocol error.
	req, _ = http.NewRequest("GET", srv.URL()+"/ws", nil)
	req.Header.Set("Upgrade", "echo") // but no Connection: Upgrade
	_, err = tr.RoundTrip(req)
	if classify(err) != observe.ErrUpstreamProtocol {
		t.Fatalf("unasked 101: %v (%v), want protocol error", err, classify(err))
	}
}

func TestUnsupportedScheme(t *testing.T) {
	tr := newTestTransport(t, testConfig(), Options{})
	req, _ := http.NewRequest("GET", "ftp://example.com/", nil)
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, ErrUnsupportedScheme) {
		t.Fatalf("got %v", err)
	}
}

func TestDisableFastHTTP1(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "std")
	}))
	tr := newTestTransport(t, testConfig(), Options{DisableFastHTTP1: true})
	if tr.h1 != nil {
		t.Fatal("fast client built")
	}
	if code, body := get(t, tr, srv.URL); code != 200 || body != "std" {
		t.Fatalf("got %d %q", code, body)
	}
}

// TestConcurrentMix runs a bounded mix of exchanges from several goroutines
// over a capped pool (run it with -race): every exchange must end with its
// slot released and no connection left half-used.
func TestConcurrentMix(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		case "/big":
			w.Write(bytes.Repeat([]byte("z"), 256<<10))
		default:
			io.WriteString(w, "ok")
		}
	}))
	cfg := testConfig()
	cfg.MaxConnsPerHost = 4
	cfg.MaxIdleConnsPerHost = 2
	tr := newTestTransport(t, cfg, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 8*40)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				ctx, cancel := context.WithCancel(context.Background())
				var req *http.Request
				switch (g + i) % 5 {
				case 0:
					req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL+"/", nil)
				case 1:
					req, _ = http.NewRequestWithContext(ctx, "POST", srv.URL+"/echo", strings.NewReader("payload"))
				case 2:
					req, _ = http.NewRequestWithContext(ctx, "POST", srv.URL+"/echo", io.NopCloser(strings.NewReader("chunked")))
					req.ContentLength = -1
				case 3, 4:
					req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL+"/big", nil)
				}
				resp, err := tr.RoundTrip(req)
				if err != nil {
					errs <- err
					cancel()
					continue
				}
				switch (g + i) % 5 {
				case 3: // abandon the body half way
					io.CopyN(io.Discard, resp.Body, 1000)
				case 4: // cancel half way
					io.CopyN(io.Discard, resp.Body, 1000)
					cancel()
					io.Copy(io.Discard, resp.Body)
				default:
					if _, err := io.Copy(io.Discard, resp.Body); err != nil {
						errs <- err
					}
				}
				resp.Body.Close()
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	p := (*tr.h1.pools.Load())[hostOf(srv.URL)]
	p.mu.Lock()
	defer p.mu.Unlock()
	hl := tr.lim.host(hostOf(srv.URL))
	hl.mu.Lock()
	defer hl.mu.Unlock()
	if p.numConns != len(p.idle) || hl.busy != 0 || len(hl.waiters) != 0 {
		t.Fatalf("%d open, %d idle, %d busy, %d waiters after all exchanges ended", p.numConns, len(p.idle), hl.busy, len(hl.waiters))
	}
}

func TestCloseRetires(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	}))
	tr := newTestTransport(t, testConfig(), Options{})
	get(t, tr, srv.URL)
	done := make(chan struct{})
	go func() {
		defer close(done)
		get(t, tr, srv.URL+"/hold") // takes the idle conn
	}()
	<-arrived
	get(t, tr, srv.URL) // a second conn, pooled
	tr.Close()
	if n := idleConns(tr, hostOf(srv.URL)); n != 0 {
		t.Fatalf("%d idle after Close", n)
	}
	close(release)
	<-done // the busy conn ends after Close: closed, not pooled
	if n := idleConns(tr, hostOf(srv.URL)); n != 0 {
		t.Fatalf("%d idle after a busy conn ended", n)
	}
	if code, body := get(t, tr, srv.URL); code != 200 || body != "ok" {
		t.Fatalf("after Close: %d %q", code, body)
	}
}

// TestRoundTripFields checks that fields passed in wire form are written
// after the request's own header fields, before the framing the transport
// adds, on every try (here: a retry after a dead reused connection), and
// that only the built-in client takes them.
func TestRoundTripFields(t *testing.T) {
	heads := make(chan string, 4)
	srv := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		head, err := readHead(br, nil)
		if err != nil {
			return
		}
		heads <- string(head)
		if _, err := io.CopyN(io.Discard, br, 4); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.Close() // the next request finds a dead connection and is retried
	})
	tr := newTestTransport(t, testConfig(), Options{})
	// Together longer than the write buffer (bufSize), to cross a flush;
	// each shorter than the test server's line buffer.
	long := "X-Long: " + strings.Repeat("v", 3000) + "\r\nX-Long: " + strings.Repeat("w", 3000) + "\r\n"
	fields := []byte("Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n" + long)
	for i := range 2 {
		req, _ := http.NewRequest("PUT", srv.URL()+"/p", strings.NewReader("body"))
		req.Header.Set("Idempotency-Key", "k") // replayable, so the second PUT is retried
		if !tr.TakesFields(req) {
			t.Fatal("TakesFields false for http://")
		}
		resp, err := tr.RoundTripFields(req, fields)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		head := <-heads
		want := "Idempotency-Key: k\r\n" + string(fields) + "Content-Length: 4\r\n\r\n"
		if !strings.HasPrefix(head, "PUT /p HTTP/1.1\r\nHost: ") || !strings.HasSuffix(head, want) {
			t.Fatalf("request %d head:\n%.300s", i, head)
		}
	}
	if n := srv.conns.Load(); n != 2 {
		t.Fatalf("server accepted %d connections, want 2 (one retry on a fresh one)", n)
	}

	// The other clients write heads from the header map: they take no
	// fields, and RoundTripFields refuses such a request.
	std := newTestTransport(t, testConfig(), Options{DisableFastHTTP1: true})
	for _, c := range []struct {
		tr  *Transport
		url string
	}{{tr, "https://127.0.0.1:1/"}, {tr, "h2c://127.0.0.1:1/"}, {std, srv.URL()}} {
		req, _ := http.NewRequest("GET", c.url, nil)
		if c.tr.TakesFields(req) {
			t.Errorf("%s (fast client %v): TakesFields true", c.url, c.tr.h1 != nil)
		}
		if _, err := c.tr.RoundTripFields(req, fields); classify(err) != observe.ErrInternal {
			t.Errorf("%s: RoundTripFields: %v, want an internal error", c.url, err)
		}
	}
}
