package metrics

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/observe/observetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of httptest servers and clients.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// testConfig parses a config whose metrics section is metricsYAML (may be
// empty), so defaults and validation are the real ones.
func testConfig(t testing.TB, metricsYAML string) config.Metrics {
	t.Helper()
	// A checkout route exists so KPI configs can name it.
	y := "listeners:\n  - address: \"127.0.0.1:1\"\n" +
		"services: [{name: orders, upstreams: [{url: \"http://127.0.0.1:2\"}]}]\n" +
		"routes: [{name: checkout, match: {path_prefix: /checkout}, service: orders}]\n"
	if metricsYAML != "" {
		y += "metrics:\n" + metricsYAML
	}
	cfg, err := config.Parse("test.yml", []byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Metrics
}

func newTestMetrics(t testing.TB, metricsYAML string, clk clock.Clock) *Metrics {
	t.Helper()
	m, err := New(testConfig(t, metricsYAML), Options{Clock: clk, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// ---- The stand-in gateway -------------------------------------------------
//
// standIn does what the gateway's entry handler and proxy will do to the
// Record: the entry handler takes a Record, sets Start, the trace (as the
// tracing middleware would) and the route, counts body bytes and the
// status; the proxy picks the service (split), refuses (rate limit,
// breaker, fault), appends one Attempt per try before sending it to a real
// upstream, fills Duration, Status and ErrorKind after, retries, and maps
// failures to 502/503/504. Decisions go to the Metrics as events.

type testService struct {
	name        string
	upstreams   []string // host:port
	breakerOpen bool
	timeout     time.Duration // per try (default 2s)
}

type testLeg struct {
	service string
	weight  int
}

type testRoute struct {
	name       string
	prefix     string
	legs       []testLeg
	retries    int  // extra attempts
	budget     int  // retries allowed in total (-1: unlimited)
	retryOn503 bool // retry a 503 answer
	limit      int  // requests allowed before 429 (-1: no limit)
	fault      string

	n       atomic.Int64 // split counter
	seen    atomic.Int64 // rate-limit counter
	retried atomic.Int64 // retries spent
	chain   http.Handler
}

type standIn struct {
	m        *Metrics
	clk      clock.Clock
	services map[string]*testService
	routes   []*testRoute
	unmatch  http.Handler
	client   *http.Client
	finished atomic.Int64
}

func newStandIn(t *testing.T, m *Metrics, services []*testService, routes []*testRoute) *standIn {
	t.Helper()
	s := &standIn{m: m, clk: m.clock, services: map[string]*testService{}, routes: routes}
	tr := &http.Transport{DisableKeepAlives: true}
	s.client = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(tr.CloseIdleConnections)
	for _, svc := range services {
		if svc.timeout == 0 {
			svc.timeout = 2 * time.Second
		}
		s.services[svc.name] = svc
	}
	for _, r := range routes {
		var names []string
		for _, l := range r.legs {
			names = append(names, l.service)
		}
		mr := middleware.Route{Name: r.name, Template: r.prefix, Services: names}
		if len(r.legs) > 1 {
			split := &config.Split{}
			for _, l := range r.legs {
				split.Services = append(split.Services, config.SplitService{Service: l.service, Weight: l.weight})
			}
			mr.Config = &config.Route{Name: r.name, Split: split}
		}
		r.chain = middleware.Chain(&standInProxy{s: s, r: r}, ended(m, m.ForRoute(mr)))
	}
	s.unmatch = middleware.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		observe.FromContext(r.Context()).ErrorKind = observe.ErrNoRoute
		writeError(w, http.StatusNotFound)
	}), ended(m, m.ForRoute(middleware.Route{})))
	return s
}

// waitFinished waits until n requests have gone through the whole chain
// (metrics recorded), bounded in time.
func (s *standIn) waitFinished(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.finished.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests finished", s.finished.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Headers the test client uses to stand in for the tracing middleware.
const (
	hdrTrace   = "X-Test-Trace"   // 32 hex digits: rec.Trace.TraceID, Valid
	hdrSampled = "X-Test-Sampled" // "1": rec.Trace.Sampled
)

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer s.finished.Add(1)
	rec := observe.GetRecord()
	defer observe.PutRecord(rec)
	rec.Start = s.clk.Now()
	if tid := r.Header.Get(hdrTrace); tid != "" {
		if b, err := hex.DecodeString(tid); err == nil && len(b) == 16 {
			copy(rec.Trace.TraceID[:], b)
			rec.Trace.Valid = true
			rec.Trace.Sampled = r.Header.Get(hdrSampled) == "1"
		}
	}
	if r.Body != nil {
		r.Body = &countingBody{ReadCloser: r.Body, n: &rec.BytesIn}
	}
	rw := &observetest.ResponseWriter{ResponseWriter: w, Rec: rec}
	ctx := observe.NewContext(r.Context(), rec)
	r = r.WithContext(ctx)
	for _, rt := range s.routes {
		if strings.HasPrefix(r.URL.Path, rt.prefix) {
			rec.Route, rec.RouteTemplate = rt.name, rt.prefix
			s.m.Observe(observe.Event{Kind: observe.EventRouteMatched, Ctx: ctx, Record: rec, Route: rt.name})
			rt.chain.ServeHTTP(rw, r)
			return
		}
	}
	s.m.Observe(observe.Event{Kind: observe.EventRouteNotMatched, Ctx: ctx, Record: rec})
	s.unmatch.ServeHTTP(rw, r)
}

type countingBody struct {
	io.ReadCloser
	n *int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	*c.n += int64(n)
	return n, err
}

func writeError(w http.ResponseWriter, code int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"status":%d}`, code)
}

type standInProxy struct {
	s *standIn
	r *testRoute
}

func (p *standInProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s, rt := p.s, p.r
	rec := observe.FromContext(r.Context())
	ev := func(e observe.Event) {
		e.Time, e.Ctx, e.Record, e.Route = s.clk.Now(), r.Context(), rec, rt.name
		s.m.Observe(e)
	}
	if rt.fault == "abort" {
		rec.Fault = "abort"
		rec.ErrorKind = observe.ErrFaultInjected
		ev(observe.Event{Kind: observe.EventFaultInjected, Fault: observe.Fault{Kind: observe.FaultAbort}})
		writeError(w, http.StatusServiceUnavailable)
		return
	}
	if rt.limit >= 0 && rt.seen.Add(1) > int64(rt.limit) {
		rec.RateLimit = rt.name + "-policy"
		rec.ErrorKind = observe.ErrRateLimited
		ev(observe.Event{Kind: observe.EventRateLimited, RateLimit: observe.RateLimitHit{Policy: rec.RateLimit, Key: observe.RateLimitKeyClientIP}})
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests)
		return
	}
	leg := rt.legs[0]
	if len(rt.legs) > 1 {
		total := 0
		for _, l := range rt.legs {
			total += l.weight
		}
		n := int((rt.n.Add(1) - 1) % int64(total))
		for _, l := range rt.legs {
			if n < l.weight {
				leg = l
				break
			}
			n -= l.weight
		}
		rec.Split = observe.SplitChoice{Rule: rt.name, Service: leg.service, Reason: "weight"}
		ev(observe.Event{Kind: observe.EventSplitChosen, Service: leg.service, Split: observe.SplitWeight})
	}
	svc := s.services[leg.service]
	rec.Service = svc.name
	if svc.breakerOpen {
		rec.Breaker = "open"
		rec.ErrorKind = observe.ErrBreakerOpen
		ev(observe.Event{Kind: observe.EventBreakerRejected, Service: svc.name, Breaker: observe.BreakerChange{To: observe.BreakerOpen}})
		writeError(w, http.StatusServiceUnavailable)
		return
	}
	if len(svc.upstreams) == 0 {
		rec.ErrorKind = observe.ErrNoHealthyUpstream
		writeError(w, http.StatusServiceUnavailable)
		return
	}
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
	}
	reason := ""
	for try := 0; ; try++ {
		up := svc.upstreams[try%len(svc.upstreams)]
		a := rec.AddAttempt(observe.Attempt{Service: svc.name, Upstream: up, Start: s.clk.Now(), RetryReason: reason})
		rec.Upstream = up
		ctx, cancel := context.WithTimeout(r.Context(), svc.timeout)
		out, _ := http.NewRequestWithContext(ctx, r.Method, "http://"+up+r.URL.RequestURI(), bytes.NewReader(body))
		out.Header = r.Header.Clone()
		out.ContentLength = int64(len(body))
		start := time.Now()
		resp, err := s.client.Do(out)
		a.Duration = time.Since(start)
		if err != nil {
			cancel()
			kind := classify(err, r.Context())
			a.ErrorKind = kind
			if kind == observe.ErrClientCanceled {
				rec.ErrorKind = kind
				rec.Status = 499
				return
			}
			if try < rt.retries && kind.IsUpstreamFailure() {
				if rt.budget >= 0 && rt.retried.Add(1) > int64(rt.budget) {
					ev(observe.Event{Kind: observe.EventRetryBudgetExhausted, Service: svc.name, Upstream: up, Retry: observe.RetryCause{Kind: kind}})
				} else {
					cause := observe.RetryCause{Kind: kind}
					reason = cause.String()
					ev(observe.Event{Kind: observe.EventRetry, Service: svc.name, Upstream: up, Retry: cause})
					continue
				}
			}
			rec.ErrorKind = kind
			writeError(w, statusFor(kind))
			return
		}
		a.Status = resp.StatusCode
		if resp.StatusCode == http.StatusServiceUnavailable && rt.retryOn503 && try < rt.retries {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			cancel()
			cause := observe.RetryCause{Status: http.StatusServiceUnavailable}
			reason = cause.String()
			ev(observe.Event{Kind: observe.EventRetry, Service: svc.name, Upstream: up, Retry: cause})
			continue
		}
		if gs := resp.Header.Get("Grpc-Status"); gs != "" {
			rec.GRPCStatus, _ = strconv.Atoi(gs)
		}
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		bodyStart := time.Now()
		io.Copy(w, resp.Body)
		resp.Body.Close()
		cancel()
		a.BodyDuration = time.Since(bodyStart)
		return
	}
}

func classify(err error, client context.Context) observe.ErrorKind {
	if client.Err() != nil {
		return observe.ErrClientCanceled
	}
	var op *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return observe.ErrUpstreamTimeout
	case errors.As(err, &op) && op.Op == "dial":
		return observe.ErrUpstreamConnect
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), strings.Contains(err.Error(), "connection reset"):
		return observe.ErrUpstreamReset
	case strings.Contains(err.Error(), "malformed HTTP"):
		return observe.ErrUpstreamProtocol
	}
	return observe.ErrInternal
}

func statusFor(k observe.ErrorKind) int {
	switch k {
	case observe.ErrUpstreamTimeout:
		return http.StatusGatewayTimeout
	case observe.ErrNoHealthyUpstream, observe.ErrBreakerOpen:
		return http.StatusServiceUnavailable
	case observe.ErrInternal:
		return http.StatusInternalServerError
	}
	return http.StatusBadGateway
}

// ---- Real upstreams ---------------------------------------------------

type upstreams struct {
	ok, ok2  string // answer by path: /status/{code}, /grpc/{n}, /kpi?pay=&amount=, else 200 "ok"
	slow     string // waits for the request's end (timeout, cancel); signals arrival on slowHit
	reset    string // closes the connection without answering
	protocol string // answers garbage
	closed   string // nothing listens
	slowHit  chan struct{}
}

func startUpstreams(t *testing.T) *upstreams {
	t.Helper()
	u := &upstreams{slowHit: make(chan struct{}, 16)}
	answer := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch {
		case strings.HasPrefix(r.URL.Path, "/status/"), strings.Contains(r.URL.Path, "/status/"):
			code, _ := strconv.Atoi(r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
			w.WriteHeader(code)
		case strings.Contains(r.URL.Path, "/grpc/"):
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:])
			w.WriteHeader(http.StatusOK)
		case strings.Contains(r.URL.Path, "/kpi"):
			if p := r.URL.Query().Get("pay"); p != "" {
				w.Header().Set("X-Payment-Method", p)
			}
			if a := r.URL.Query().Get("amount"); a != "" {
				w.Header().Set("X-Order-Amount", a)
			}
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, "created")
		default:
			io.WriteString(w, "ok")
		}
	}
	srv := func(h http.HandlerFunc) string {
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return s.Listener.Addr().String()
	}
	u.ok = srv(answer)
	u.ok2 = srv(answer)
	u.slow = srv(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so the server notices the client leaving
		u.slowHit <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	u.reset = srv(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	})
	u.protocol = rawServer(t, "HELLO THIS IS NOT HTTP\r\n\r\n")
	// A refused address on a loopback IP no test server binds, so a later
	// server cannot be given the same port.
	ln, err := net.Listen("tcp", "127.0.0.254:0")
	if err != nil {
		t.Fatal(err)
	}
	u.closed = ln.Addr().String()
	ln.Close()
	return u
}

// rawServer answers every connection with reply after reading its request
// head, then closes it.
func rawServer(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(c)
			for {
				line, err := br.ReadString('\n')
				if err != nil || line == "\r\n" {
					break
				}
			}
			io.WriteString(c, reply)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// ---- Reading the registry ---------------------------------------------

// scrape returns the /metrics body for the given Accept header.
func scrape(t testing.TB, m *Metrics, accept string) string {
	t.Helper()
	rr := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	m.Handler().ServeHTTP(rr, r)
	if rr.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rr.Code, rr.Body.String())
	}
	return rr.Body.String()
}

const openMetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8"

// values returns every sample of family name as "labels → value", the
// labels rendered k=v sorted by name and joined by ",". For histograms the
// value is the sample count.
func values(t testing.TB, m *Metrics, name string) map[string]float64 {
	t.Helper()
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			var parts []string
			for _, lp := range mt.GetLabel() {
				parts = append(parts, lp.GetName()+"="+lp.GetValue())
			}
			key := strings.Join(parts, ",")
			switch {
			case mt.Counter != nil:
				out[key] = mt.Counter.GetValue()
			case mt.Gauge != nil:
				out[key] = mt.Gauge.GetValue()
			case mt.Histogram != nil:
				out[key] = float64(mt.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

func sum(vs map[string]float64) float64 {
	s := 0.0
	for _, v := range vs {
		s += v
	}
	return s
}

// requireBinary finds a Prometheus binary (promtool, prometheus). Without
// it the test is skipped, unless CI is set, where its absence fails the
// test.
func requireBinary(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/" + name); err == nil {
		return "/usr/bin/" + name
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed and CI is set: install the prometheus package (Debian: apt-get install prometheus)", name)
	}
	t.Skipf("%s is not installed (Debian package prometheus); skipping. With CI set this fails instead.", name)
	return ""
}

// ended puts the gateway's end stage inside mw, as the gateway does, so
// that mw reads a finished Record.
func ended(m *Metrics, mw middleware.Middleware) middleware.Middleware {
	if mw == nil {
		return nil
	}
	return func(next http.Handler) http.Handler { return mw(middleware.End(m.clock)(next)) }
}
