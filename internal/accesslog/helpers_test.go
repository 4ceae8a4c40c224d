package accesslog

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/observe/observetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the fixed start of every test request.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

// testConfig is an access log config with defaults applied.
func testConfig(mod func(*config.AccessLog)) config.AccessLog {
	c := config.Config{}
	c.SetDefaults()
	a := c.AccessLog
	if mod != nil {
		mod(&a)
	}
	return a
}

// syncBuffer is an io.Writer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// blockingWriter blocks every Write until release is closed, announcing
// each Write on entered first.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	out     syncBuffer
}

func newBlockingWriter() *blockingWriter {
	return &blockingWriter{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.entered <- struct{}{}
	<-w.release
	return w.out.Write(p)
}

// newTestLogger builds a Logger writing to out with a fake clock.
func newTestLogger(t testing.TB, cfg config.AccessLog, out io.Writer, mod func(*Options)) *Logger {
	t.Helper()
	opts := Options{Stdout: out, Clock: clock.NewFake(t0.Add(time.Second)), ReportInterval: time.Hour}
	if mod != nil {
		mod(&opts)
	}
	l, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// The request and record of a typical proxied request.
func sampleRequest() *http.Request {
	r := &http.Request{
		Method:     "GET",
		RequestURI: "/users/42?page=2&token=abc",
		URL:        &url.URL{Path: "/users/42", RawQuery: "page=2&token=abc"},
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Host: "api.example.com",
		Header: http.Header{
			"User-Agent":    {"curl/8.5.0"},
			"X-Request-Id":  {"req-1"},
			"Authorization": {"Bearer secret-token"},
			"Referer":       {"https://shop.example.com/cart?token=secret-ref&x=1"},
		},
	}
	return r
}

func sampleRecord() *observe.Record {
	rec := new(observe.Record)
	rec.Reset()
	rec.Start = t0
	rec.End = t0.Add(12345678 * time.Nanosecond)
	rec.Listener = "public"
	rec.ClientAddr = "203.0.113.7"
	rec.Route = "users"
	rec.RouteTemplate = "/users/{id}"
	rec.Service = "users"
	rec.Upstream = "10.0.0.5:8080"
	rec.AddAttempt(observe.Attempt{Service: "users", Upstream: "10.0.0.5:8080", Start: t0.Add(time.Millisecond),
		Duration: 9 * time.Millisecond, BodyDuration: 500 * time.Microsecond, Status: 200})
	rec.Status = 200
	rec.BytesIn = 0
	rec.BytesOut = 1532
	rec.Trace = observe.TraceContext{
		TraceID: [16]byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  [8]byte{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		Sampled: true, Valid: true,
	}
	return rec
}

// standIn is a minimal gateway around chain: it does what the entry
// handler does (a Record in the context, a recorder for the status and
// bytes), and the tracing stage (rec.Trace) before chain.
func standIn(clk clock.Clock, chain http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.GetRecord()
		defer observe.PutRecord(rec)
		rec.Start = clk.Now()
		rec.Listener = "public"
		rec.ClientAddr, _, _ = net.SplitHostPort(r.RemoteAddr)
		rec.Trace = observe.TraceContext{TraceID: [16]byte{1, 2, 3}, SpanID: [8]byte{4, 5}, Valid: true}
		rw := &observetest.ResponseWriter{ResponseWriter: w, Rec: rec}
		chain.ServeHTTP(rw, r.WithContext(observe.NewContext(r.Context(), rec)))
	})
}

// proxyStandIn forwards to upstream the way the proxy will: it names the
// route and service and appends one attempt per try.
func proxyStandIn(clk *clock.Fake, upstream string, client *http.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.FromContext(r.Context())
		rec.Route, rec.RouteTemplate, rec.Service = "users", "/users/{id}", "users"
		u, _ := url.Parse(upstream)
		rec.Upstream = u.Host
		a := rec.AddAttempt(observe.Attempt{Service: "users", Upstream: u.Host, Start: clk.Now()})
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.RequestURI(), nil)
		resp, err := client.Do(req)
		clk.Advance(3 * time.Millisecond)
		a.Duration = 3 * time.Millisecond
		if err != nil {
			a.ErrorKind = observe.ErrUpstreamConnect
			rec.ErrorKind = observe.ErrUpstreamConnect
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		a.Status = resp.StatusCode
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		clk.Advance(time.Millisecond)
	})
}

func routeOf(name string) middleware.Route { return middleware.Route{Name: name, Template: "/" + name} }
