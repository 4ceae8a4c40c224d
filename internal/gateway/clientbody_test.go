package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/vantage-gateway/vantage/internal/breaker"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// outcome is what the outermost stage saw of a finished request.
type outcome struct {
	status int
	kind   observe.ErrorKind
}

// outcomes records the status and error kind of every request, read from
// its observe.Record once the chain returns (the outermost stage, where
// telemetry reads it).
type outcomes struct {
	mu  sync.Mutex
	all []outcome
}

func (o *outcomes) factory() middleware.Factory {
	return middleware.FactoryFunc(func(middleware.Route) middleware.Middleware {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next.ServeHTTP(w, r)
				if rec := observe.FromContext(r.Context()); rec != nil {
					o.mu.Lock()
					o.all = append(o.all, outcome{rec.Status, rec.ErrorKind})
					o.mu.Unlock()
				}
			})
		}
	})
}

// wait returns the first n outcomes, waiting (bounded) for them: the
// outcome of a request whose client left may be recorded after the client
// saw its connection end.
func (o *outcomes) wait(t *testing.T, n int) []outcome {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		o.mu.Lock()
		got := append([]outcome(nil), o.all...)
		o.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests recorded after 5s, want %d", len(got), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bodyReadingUpstreams starts n upstreams that read the whole request body
// and answer 200, counting the requests that reached them.
func bodyReadingUpstreams(t *testing.T, n int, hits *atomic.Int64) []string {
	t.Helper()
	var urls []string
	for i := 0; i < n; i++ {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			io.WriteString(w, "ok")
		}))
		t.Cleanup(s.Close)
		urls = append(urls, s.URL)
	}
	return urls
}

// guardedYAML is three upstreams behind passive outlier detection that
// ejects after 2 failures, and a breaker that opens after 3.
const guardedYAML = `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - name: s
    upstreams: [{url: %q}, {url: %q}, {url: %q}]
    outlier_detection: {consecutive_5xx: 2, consecutive_connect_failures: 2, base_ejection_time: 1m}
    circuit_breaker: {consecutive_failures: 3, open_duration: 1m}
routes:
  - {name: upload, match: {path_prefix: /}, service: s}
`

// assertUpstreamsUntouched checks that no host of service s was ejected or
// marked unhealthy and that its breaker is closed.
func assertUpstreamsUntouched(t *testing.T, f *fixture) {
	t.Helper()
	svc := f.g.cur.Load().services["s"]
	for _, h := range svc.pool.Hosts() {
		if !h.Available() {
			t.Errorf("upstream %s is no longer available (ejected: %v)", h.Addr, h.Ejected())
		}
	}
	if n := f.events.Count(observe.EventHostEjected); n != 0 {
		t.Errorf("%d ejections, want 0", n)
	}
	if st := svc.breaker.State(); st != breaker.Closed {
		t.Errorf("breaker %v, want closed", st)
	}
	if n := f.events.Count(observe.EventBreakerTransition); n != 0 {
		t.Errorf("%d breaker transitions, want 0", n)
	}
}

// rawRequest sends req on a new connection and returns the response status
// (0 when the connection ended without one).
func rawRequest(t *testing.T, addr, req string, halfClose bool) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		c.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMalformedBodiesDoNotEjectUpstreams: POSTs whose chunked body is
// malformed are the client's fault. Each is answered 400 and recorded as
// client_bad_request, and 20 of them leave all three upstreams available
// and the breaker closed (they used to be answered 502 "the upstream sent
// an invalid response" and eject the hosts).
func TestMalformedBodiesDoNotEjectUpstreams(t *testing.T) {
	var hits atomic.Int64
	u := bodyReadingUpstreams(t, 3, &hits)
	var out outcomes
	f := newFixture(t, parse(t, guardedYAML, u[0], u[1], u[2]), Options{Telemetry: middleware.Telemetry{Metrics: out.factory()}})
	addr := strings.TrimPrefix(f.front.URL, "http://")

	bad := []string{
		"5\r\nhello\r\nzz\r\n",                   // invalid chunk size
		"5\r\nhello\r\n3\r\nabcXY\r\n",           // chunk longer than its size
		"5\r\nhello\r\n0\r\nBad Trailer\r\n\r\n", // trailer line without a colon
	}
	const n = 20
	for i := 0; i < n; i++ {
		req := "POST /upload HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n" + bad[i%len(bad)]
		if st := rawRequest(t, addr, req, false); st != http.StatusBadRequest {
			t.Fatalf("request %d: status %d, want 400", i, st)
		}
	}
	for i, o := range out.wait(t, n) {
		if o.status != http.StatusBadRequest || o.kind != observe.ErrClientBadRequest {
			t.Fatalf("request %d recorded as %d %v, want 400 client_bad_request", i, o.status, o.kind)
		}
	}
	assertUpstreamsUntouched(t, f)

	// The upstreams still serve a good body.
	resp, err := http.Post(f.front.URL+"/upload", "text/plain", strings.NewReader("fine"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("good POST: %d", resp.StatusCode)
	}
}

// TestClientGoneMidUploadIsNotAnUpstreamFailure: clients that stop sending
// before the end of their body and close their side (a body shorter than
// its Content-Length, over HTTP/1.1 only possible by ending the
// connection) are recorded as client_canceled (499) and leave the
// upstreams and the breaker alone — whether the body was being streamed
// (chunked, or larger than the retry buffer) or buffered for a retry.
func TestClientGoneMidUploadIsNotAnUpstreamFailure(t *testing.T) {
	var hits atomic.Int64
	u := bodyReadingUpstreams(t, 3, &hits)
	var out outcomes
	yaml := guardedYAML + `
  - name: buffered
    match: {path_prefix: /buffered}
    service: s
    retry: {attempts: 2, on: [reset], non_idempotent: true}
`
	f := newFixture(t, parse(t, yaml, u[0], u[1], u[2]), Options{Telemetry: middleware.Telemetry{Metrics: out.factory()}})
	addr := strings.TrimPrefix(f.front.URL, "http://")

	reqs := []string{
		// Shorter than its Content-Length, streamed (past the 64 KiB
		// threshold of the HTTP/1.1 client's synchronous write).
		"POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 70000),
		// Shorter than its Content-Length, small.
		"POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\nabc",
		// Chunked, cut between chunks.
		"POST /upload HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
		// Buffered for a retry, cut short.
		"POST /buffered HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\nabc",
	}
	const rounds = 5
	for i := 0; i < rounds; i++ {
		for j, req := range reqs {
			// The client only closed its sending side, so it reads the
			// answer: the 499 recorded, never an empty 200 for a request
			// that was not served (0: the connection ended first).
			if st := rawRequest(t, addr, req, true); st != 499 && st != 0 {
				t.Fatalf("round %d, request %d: status %d for a body cut short, want 499", i, j, st)
			}
		}
	}
	for i, o := range out.wait(t, rounds*len(reqs)) {
		if o.kind != observe.ErrClientCanceled || o.status != 499 {
			t.Fatalf("request %d recorded as %d %v, want 499 client_canceled", i, o.status, o.kind)
		}
	}
	assertUpstreamsUntouched(t, f)
}

// TestClassifyThroughProxy applies the one classifier through the real
// proxy path: real upstreams that reset, time out, send garbage or speak
// TLS to a client that does not trust them, each answered with the status
// and error kind the classifier gives.
func TestClassifyThroughProxy(t *testing.T) {
	raw := func(handle func(c net.Conn)) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					br := bufio.NewReader(c)
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
					handle(c)
				}()
			}
		}()
		t.Cleanup(func() { ln.Close(); <-done })
		return "http://" + ln.Addr().String()
	}
	reset := raw(func(c net.Conn) {
		c.(*net.TCPConn).SetLinger(0) // RST on close
	})
	garbage := raw(func(c net.Conn) { io.WriteString(c, "SMTP ready\r\n\r\n") })
	release := make(chan struct{})
	slow := raw(func(c net.Conn) {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
	})
	t.Cleanup(func() { close(release) })
	tlsUp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tlsUp.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	tlsUp.StartTLS()
	t.Cleanup(tlsUp.Close)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	// An HTTP/2 (h2c) upstream that resets its streams (RST_STREAM).
	h2reset := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler)
	}))
	h2reset.Config.Protocols = new(http.Protocols)
	h2reset.Config.Protocols.SetUnencryptedHTTP2(true)
	h2reset.Config.ErrorLog = log.New(io.Discard, "", 0)
	h2reset.Start()
	t.Cleanup(h2reset.Close)

	cfg := parse(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: reset, upstreams: [{url: %q}]}
  - {name: garbage, upstreams: [{url: %q}]}
  - {name: slow, upstreams: [{url: %q}]}
  - {name: tls, upstreams: [{url: %q}], transport: {tls_handshake_timeout: 30s}}
  - {name: dead, upstreams: [{url: %q}]}
  - {name: h2reset, upstreams: [{url: %q}]}
routes:
  - {name: reset, match: {path_prefix: /reset}, service: reset}
  - {name: garbage, match: {path_prefix: /garbage}, service: garbage}
  - {name: slow, match: {path_prefix: /slow}, service: slow, timeout: 200ms}
  - {name: tls, match: {path_prefix: /tls}, service: tls}
  - {name: dead, match: {path_prefix: /dead}, service: dead}
  - {name: h2reset, match: {path_prefix: /h2reset}, service: h2reset}
`, reset, garbage, slow, tlsUp.URL, dead, "h2c://"+h2reset.Listener.Addr().String())
	var out outcomes
	f := newFixture(t, cfg, Options{Telemetry: middleware.Telemetry{Metrics: out.factory()}})
	cases := []struct {
		path   string
		status int
		kind   observe.ErrorKind
	}{
		{"/reset", 502, observe.ErrUpstreamReset},
		{"/garbage", 502, observe.ErrUpstreamProtocol},
		{"/slow", 504, observe.ErrUpstreamTimeout},
		{"/tls", 502, observe.ErrUpstreamConnect},
		{"/dead", 502, observe.ErrUpstreamConnect},
		{"/h2reset", 502, observe.ErrUpstreamReset},
	}
	for i, tc := range cases {
		resp, body := f.get(tc.path)
		if resp.StatusCode != tc.status || !strings.Contains(body, fmt.Sprintf("%q", tc.kind.String())) {
			t.Errorf("%s: %d %s, want %d %s", tc.path, resp.StatusCode, body, tc.status, tc.kind)
		}
		if o := out.wait(t, i+1)[i]; o.kind != tc.kind {
			t.Errorf("%s: recorded %v, want %v", tc.path, o.kind, tc.kind)
		}
	}
}

// TestSlowBodyIsCut: a client that sends its body too slowly is answered
// 408 and recorded as client_timeout, with EventRequestBodyTimeout naming
// the limit that fired, and the upstreams are untouched. The idle limit is
// met by a client that stops sending (a body small enough to be written
// synchronously, where the route timeout could not interrupt the read),
// the minimum rate by one that trickles a chunked body a byte at a time.
// The limits are short configured values; every client is bounded.
func TestSlowBodyIsCut(t *testing.T) {
	var hits atomic.Int64
	u := bodyReadingUpstreams(t, 3, &hits)
	var out outcomes
	yaml := guardedYAML + `
  - name: idle
    match: {path_prefix: /idle}
    service: s
    request_body: {idle_timeout: 300ms, min_rate: 0}
  - name: rate
    match: {path_prefix: /rate}
    service: s
    request_body: {idle_timeout: 10s, min_rate: 100, min_rate_grace: 300ms}
`
	f := newFixture(t, parse(t, yaml, u[0], u[1], u[2]), Options{Telemetry: middleware.Telemetry{Metrics: out.factory()}})
	addr := strings.TrimPrefix(f.front.URL, "http://")

	// slowClient sends head, then one byte of body every gap (at most
	// 200), and returns the response status and how long it took.
	slowClient := func(head string, gap time.Duration, chunked bool) (int, time.Duration) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(8 * time.Second))
		start := time.Now()
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			if gap == 0 {
				return
			}
			for i := 0; i < 200; i++ {
				select {
				case <-stop:
					return
				case <-time.After(gap):
				}
				b := "x"
				if chunked {
					b = "1\r\nx\r\n"
				}
				if _, err := io.WriteString(c, b); err != nil {
					return
				}
			}
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		close(stop)
		<-done
		if err != nil {
			return 0, time.Since(start)
		}
		resp.Body.Close()
		if !resp.Close {
			t.Errorf("%s: the connection of a cut body is kept open", head)
		}
		return resp.StatusCode, time.Since(start)
	}

	st, took := slowClient("POST /idle HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\nab", 0, false)
	if st != http.StatusRequestTimeout || took < 300*time.Millisecond {
		t.Fatalf("stalled body: %d after %v, want 408 after the 300ms idle timeout", st, took)
	}
	st, took = slowClient("POST /rate HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n", 20*time.Millisecond, true)
	if st != http.StatusRequestTimeout || took < 300*time.Millisecond {
		t.Fatalf("trickled body: %d after %v, want 408 once below 100 bytes/s after the 300ms grace", st, took)
	}

	for i, o := range out.wait(t, 2) {
		if o.status != http.StatusRequestTimeout || o.kind != observe.ErrClientTimeout {
			t.Fatalf("request %d recorded as %d %v, want 408 client_timeout", i, o.status, o.kind)
		}
	}
	var reasons []string
	for _, ev := range f.events.Events() {
		if ev.Kind == observe.EventRequestBodyTimeout {
			reasons = append(reasons, ev.Route+":"+ev.BodyTimeout.String())
		}
	}
	if strings.Join(reasons, " ") != "idle:idle rate:min_rate" {
		t.Fatalf("body timeout events %v, want idle:idle rate:min_rate", reasons)
	}
	assertUpstreamsUntouched(t, f)
}

// TestShortBodyOverHTTP2: an HTTP/2 request whose stream ends before its
// declared Content-Length, on a connection the client keeps open, is
// answered 400 and recorded as client_bad_request (over HTTP/1.1 a short
// body can only end with the connection: see
// TestClientGoneMidUploadIsNotAnUpstreamFailure).
func TestShortBodyOverHTTP2(t *testing.T) {
	var hits atomic.Int64
	u := bodyReadingUpstreams(t, 3, &hits)
	var out outcomes
	f := newFixture(t, parse(t, guardedYAML, u[0], u[1], u[2]), Options{Telemetry: middleware.Telemetry{Metrics: out.factory()}})
	h2 := httptest.NewUnstartedServer(f.g.Handler("public"))
	h2.Config.Protocols = new(http.Protocols)
	h2.Config.Protocols.SetHTTP1(true)
	h2.Config.Protocols.SetUnencryptedHTTP2(true)
	h2.Start()
	defer h2.Close()

	for i := 0; i < 5; i++ {
		if st := shortH2Post(t, h2.Listener.Addr().String()); st != "400" {
			t.Fatalf("request %d: status %s, want 400", i, st)
		}
	}
	for i, o := range out.wait(t, 5) {
		if o.status != http.StatusBadRequest || o.kind != observe.ErrClientBadRequest {
			t.Fatalf("request %d recorded as %d %v, want 400 client_bad_request", i, o.status, o.kind)
		}
	}
	assertUpstreamsUntouched(t, f)
}

// shortH2Post sends, with prior knowledge, an HTTP/2 POST declaring a
// 10-byte body and ending its stream after 3 bytes, and returns the
// response's :status ("" when the stream was reset or the connection
// ended).
func shortH2Post(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/upload"}, {":authority", "gw"}, {"content-length", "10"}} {
		enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteData(1, true, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 100; n++ {
		fm, err := fr.ReadFrame()
		if err != nil {
			return ""
		}
		switch fm := fm.(type) {
		case *http2.SettingsFrame:
			if !fm.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if fm.StreamID == 1 {
				return fm.PseudoValue("status")
			}
		case *http2.RSTStreamFrame:
			if fm.StreamID == 1 {
				return ""
			}
		case *http2.GoAwayFrame:
			return ""
		}
	}
	return ""
}

// TestListenerReadTimeoutStillBoundsTheBody: a listener's read timeout
// (http.Server.ReadTimeout, from listeners[].timeouts.read) bounds the
// whole request even though the body limits set their own read deadlines:
// a stalled body on a route whose idle timeout is longer is cut by it,
// answered 408 and counted as read_timeout.
func TestListenerReadTimeoutStillBoundsTheBody(t *testing.T) {
	var hits atomic.Int64
	u := bodyReadingUpstreams(t, 3, &hits)
	f := newFixture(t, parse(t, guardedYAML, u[0], u[1], u[2]), Options{})
	front := httptest.NewUnstartedServer(f.g.Handler("public"))
	front.Config.ReadTimeout = 400 * time.Millisecond
	front.Start()
	defer front.Close()
	st := rawRequest(t, front.Listener.Addr().String(), "POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\nab", false)
	if st != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408", st)
	}
	evs := f.events.Of(observe.EventRequestBodyTimeout)
	if len(evs) != 1 || evs[0].BodyTimeout != observe.BodyLimitRead {
		t.Fatalf("body timeout events %+v, want one read_timeout", evs)
	}
	assertUpstreamsUntouched(t, f)
}
