package ratelimit

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/errorbody"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/observe/observetest"
)

// events records decision events.
type events = observetest.Recorder

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestBucketsExactSequence(t *testing.T) {
	b := NewBuckets(1, time.Second, 3, 100, t0)
	now := t0
	want := func(ok bool, remaining int, retry, reset time.Duration) {
		t.Helper()
		d := b.Allow(7, now)
		if d != (Decision{OK: ok, Remaining: remaining, RetryAfter: retry, Reset: reset}) {
			t.Fatalf("at +%s: %+v, want ok=%v remaining=%d retry=%s reset=%s", now.Sub(t0), d, ok, remaining, retry, reset)
		}
	}
	want(true, 2, 0, 1*time.Second)
	want(true, 1, 0, 2*time.Second)
	want(true, 0, 0, 3*time.Second)
	want(false, 0, time.Second, 3*time.Second)
	now = now.Add(500 * time.Millisecond)
	want(false, 0, 500*time.Millisecond, 2500*time.Millisecond)
	now = now.Add(500 * time.Millisecond)
	want(true, 0, 0, 3*time.Second)
	now = now.Add(time.Hour) // refills to the burst, no further
	want(true, 2, 0, time.Second)
	want(true, 1, 0, 2*time.Second)
	want(true, 0, 0, 3*time.Second)
	want(false, 0, time.Second, 3*time.Second)
}

func TestBucketsSustainedRate(t *testing.T) {
	for _, tc := range []struct {
		rate   float64
		period time.Duration
		burst  int
		span   time.Duration
		step   time.Duration
		want   int
	}{
		{2, time.Second, 5, 100 * time.Second, 100 * time.Millisecond, 5 + 200},
		{10, time.Minute, 10, 10 * time.Minute, time.Second, 10 + 100},
		{0.5, time.Second, 1, 60 * time.Second, 250 * time.Millisecond, 1 + 30},
	} {
		b := NewBuckets(tc.rate, tc.period, tc.burst, 10, t0)
		got := 0
		for at := time.Duration(0); at <= tc.span; at += tc.step {
			if b.Allow(1, t0.Add(at)).OK {
				got++
			}
		}
		if got != tc.want {
			t.Errorf("rate %g/%s burst %d over %s: %d allowed, want %d", tc.rate, tc.period, tc.burst, tc.span, got, tc.want)
		}
	}
}

func TestBucketsKeysAreIndependent(t *testing.T) {
	b := NewBuckets(1, time.Second, 1, 100, t0)
	if !b.Allow(1, t0).OK || b.Allow(1, t0).OK {
		t.Fatal("key 1: burst of 1 not enforced")
	}
	if !b.Allow(2, t0).OK {
		t.Fatal("key 2 limited by key 1")
	}
}

func TestBucketsBoundedKeys(t *testing.T) {
	b := NewBuckets(1, time.Second, 1, 4, t0)
	for k := uint64(1); k <= 4; k++ {
		if !b.Allow(k, t0).OK {
			t.Fatalf("key %d refused", k)
		}
	}
	// The table is full of active keys: newcomers share the overflow
	// bucket (burst 1), so the first is allowed and the rest limited.
	if !b.Allow(5, t0).OK {
		t.Fatal("first overflow key refused")
	}
	for k := uint64(6); k <= 50; k++ {
		if b.Allow(k, t0).OK {
			t.Fatalf("overflow key %d allowed past the shared bucket", k)
		}
	}
	if n := b.Keys(); n != 4 {
		t.Fatalf("Keys = %d, want the cap 4", n)
	}
	// Once the tracked buckets have refilled they are dropped, and new
	// keys are tracked again.
	later := t0.Add(2 * time.Second)
	if !b.Allow(60, later).OK {
		t.Fatal("new key refused after the idle keys refilled")
	}
	if n := b.Keys(); n != 1 {
		t.Fatalf("Keys after sweep = %d, want 1", n)
	}
}

func TestBucketsManyShardsBounded(t *testing.T) {
	b := NewBuckets(1, time.Minute, 1, 2048, t0)
	if n := len(b.shardList()); n != manyShards {
		t.Fatalf("%d shards, want %d", n, manyShards)
	}
	for k := uint64(0); k < 100000; k++ {
		b.Allow(KeyHash(fmt.Sprint("client-", k)), t0)
	}
	if n := b.Keys(); n > 2048 {
		t.Fatalf("Keys = %d, over max_keys 2048", n)
	}
}

// TestBucketsCostLittleUntilUsed: a limit of a route that gets no traffic
// holds no shards; the first request allocates them, and later requests of
// a known key allocate nothing.
func TestBucketsCostLittleUntilUsed(t *testing.T) {
	b := NewBuckets(10, time.Second, 5, 100000, t0)
	if b.shards.Load() != nil || b.Keys() != 0 {
		t.Fatal("shards allocated before the first request")
	}
	if !b.Allow(7, t0).OK || b.Keys() != 1 {
		t.Fatal("first request refused or not tracked")
	}
	if n := len(b.shardList()); n != manyShards {
		t.Fatalf("%d shards, want %d", n, manyShards)
	}
	if n := testing.AllocsPerRun(100, func() { b.Allow(7, t0.Add(time.Hour)) }); n != 0 {
		t.Errorf("%v allocations per request of a known key", n)
	}
}

func TestKeyHash(t *testing.T) {
	if KeyHash("ab", "c") == KeyHash("a", "bc") {
		t.Error("part boundaries do not matter")
	}
	l, err := New("r", &config.RateLimit{Rate: 1, Period: config.Duration(time.Second), Burst: 1, MaxKeys: 10,
		Key: config.RateLimitKey{ClientIP: true, Header: "x-api-key"}, InFlightStatus: 503, Headers: "rejected"}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Api-Key", "k1")
	rec := &observe.Record{ClientAddr: "192.0.2.1"}
	if got, want := l.key(r, rec), KeyHash("192.0.2.1", "k1"); got != want {
		t.Errorf("middleware key %x != KeyHash %x", got, want)
	}
}

// --- the middleware, over real sockets ---

// recorded is what the stand-in entry handler saw on the record.
type recorded struct {
	RateLimit string
	ErrorKind observe.ErrorKind
}

// stack is a test gateway: a stand-in entry handler that fills a Record the
// way the gateway does, the middleware under test, and a proxy to a real
// upstream server.
type stack struct {
	t        *testing.T
	upstream *httptest.Server
	gateway  *httptest.Server
	client   *http.Client
	mu       sync.Mutex
	recs     []recorded
	release  chan struct{} // when set, the upstream waits for it
	arrived  chan struct{}
}

func newStack(t *testing.T, l *RateLimit, block bool) *stack {
	s := &stack{t: t}
	if block {
		s.release = make(chan struct{})
		s.arrived = make(chan struct{}, 16)
	}
	s.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.release != nil {
			s.arrived <- struct{}{}
			<-s.release
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.upstream.Close)
	upClient := s.upstream.Client()
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := upClient.Get(s.upstream.URL)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	chain := l.Middleware()(proxy)
	s.gateway = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.GetRecord()
		defer observe.PutRecord(rec)
		rec.ClientAddr, _, _ = net.SplitHostPort(r.RemoteAddr)
		if c := r.Header.Get("X-Test-Client"); c != "" {
			rec.ClientAddr = c
		}
		if r.Header.Get("X-Test-Traced") != "" {
			rec.Trace = observe.TraceContext{Valid: true, TraceID: [16]byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}}
		}
		rec.Route = "api"
		chain.ServeHTTP(w, r.WithContext(observe.NewContext(r.Context(), rec)))
		s.mu.Lock()
		s.recs = append(s.recs, recorded{rec.RateLimit, rec.ErrorKind})
		s.mu.Unlock()
	}))
	t.Cleanup(s.gateway.Close)
	s.client = s.gateway.Client()
	t.Cleanup(s.client.CloseIdleConnections)
	t.Cleanup(upClient.CloseIdleConnections)
	return s
}

type response struct {
	status int
	header http.Header
	body   string
}

func (s *stack) get(header ...string) response {
	s.t.Helper()
	r, _ := http.NewRequest("GET", s.gateway.URL, nil)
	for i := 0; i < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(r)
	if err != nil {
		s.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return response{resp.StatusCode, resp.Header, string(body)}
}

func (s *stack) last() recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recs[len(s.recs)-1]
}

func rateCfg(edit func(c *config.RateLimit)) *config.RateLimit {
	c := &config.RateLimit{Rate: 1, Period: config.Duration(time.Second), Burst: 2, MaxKeys: 1000,
		InFlightStatus: 503, Headers: config.RateLimitHeadersRejected}
	if edit != nil {
		edit(c)
	}
	return c
}

func TestMiddlewareBurstThenRate(t *testing.T) {
	clk := clock.NewFake(t0)
	ev := &events{}
	l, err := New("api", rateCfg(func(c *config.RateLimit) {
		c.Name = "per-client"
		c.Key.ClientIP = true
	}), nil, ev, clk)
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, l, false)

	for i := 0; i < 2; i++ {
		if r := s.get(); r.status != 200 || r.body != "ok" {
			t.Fatalf("burst request %d: %d %q", i, r.status, r.body)
		}
		if r := s.last(); r.RateLimit != "" || r.ErrorKind != observe.ErrNone {
			t.Fatalf("allowed request recorded as limited: %+v", r)
		}
	}
	r := s.get("X-Test-Traced", "1")
	if r.status != 429 {
		t.Fatalf("third request: %d, want 429", r.status)
	}
	if want := `{"error":"rate_limited","status":429,"message":"rate limit exceeded","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}` + "\n"; r.body != want {
		t.Errorf("body %q, want %q", r.body, want)
	}
	for k, want := range map[string]string{
		"Retry-After":      "1",
		"RateLimit-Policy": `"per-client";q=2;w=2`,
		"RateLimit":        `"per-client";r=0;t=2`,
		"Content-Type":     "application/json",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if got := s.last(); got != (recorded{"per-client", observe.ErrRateLimited}) {
		t.Errorf("record = %+v", got)
	}
	evs := ev.Events()
	if len(evs) != 1 {
		t.Fatalf("events = %+v", evs)
	}
	if e := evs[0]; e.Kind != observe.EventRateLimited || e.Route != "api" || e.RateLimit != (observe.RateLimitHit{Policy: "per-client", Key: observe.RateLimitKeyClientIP}) || !e.Time.Equal(t0) {
		t.Errorf("event = %+v", e)
	}
	if strings.Contains(fmt.Sprintf("%+v", evs[0]), "127.0.0.1") {
		t.Error("the event carries the raw client address")
	}

	// No trace: no trace_id.
	if r := s.get(); !strings.HasPrefix(r.body, `{"error":"rate_limited","status":429,"message":"rate limit exceeded"}`) {
		t.Errorf("untraced body %q", r.body)
	}
	// Another client has its own bucket.
	if r := s.get("X-Test-Client", "198.51.100.9"); r.status != 200 {
		t.Errorf("other client: %d", r.status)
	}
	// One second later, one more request; then limited again.
	clk.Advance(time.Second)
	if r := s.get(); r.status != 200 {
		t.Fatalf("after 1s: %d", r.status)
	}
	if r := s.get(); r.status != 429 {
		t.Fatalf("after 1s, second request: %d", r.status)
	}
}

func TestMiddlewareKeys(t *testing.T) {
	cases := []struct {
		name string
		key  config.RateLimitKey
		// requests as (client, api key) pairs and whether each is allowed,
		// with a burst of 1 and no time passing.
		reqs [][3]string
	}{
		{"route", config.RateLimitKey{}, [][3]string{{"a", "k1", "200"}, {"b", "k2", "429"}}},
		{"client ip", config.RateLimitKey{ClientIP: true}, [][3]string{{"a", "k1", "200"}, {"a", "k2", "429"}, {"b", "k1", "200"}}},
		{"header", config.RateLimitKey{Header: "X-Api-Key"}, [][3]string{{"a", "k1", "200"}, {"b", "k1", "429"}, {"a", "k2", "200"}, {"a", "", "200"}, {"b", "", "429"}}},
		{"both", config.RateLimitKey{ClientIP: true, Header: "X-Api-Key"}, [][3]string{{"a", "k1", "200"}, {"a", "k1", "429"}, {"a", "k2", "200"}, {"b", "k1", "200"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := &events{}
			l, err := New("api", rateCfg(func(c *config.RateLimit) { c.Burst = 1; c.Key = tc.key }), nil, ev, clock.NewFake(t0))
			if err != nil {
				t.Fatal(err)
			}
			s := newStack(t, l, false)
			for i, q := range tc.reqs {
				h := []string{"X-Test-Client", q[0]}
				if q[1] != "" {
					h = append(h, "X-Api-Key", q[1])
				}
				if r := s.get(h...); fmt.Sprint(r.status) != q[2] {
					t.Fatalf("request %d %v: %d", i, q, r.status)
				}
			}
			for _, e := range ev.Events() {
				if e.RateLimit.Key.String() != tc.key.Kind() || e.RateLimit.Policy != "api" {
					t.Errorf("event %+v, want key %q and the route name", e.RateLimit, tc.key.Kind())
				}
			}
		})
	}
}

func TestMiddlewareHeadersAlways(t *testing.T) {
	l, err := New("api", rateCfg(func(c *config.RateLimit) { c.Burst = 5; c.Headers = config.RateLimitHeadersAlways }), nil, nil, clock.NewFake(t0))
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, l, false)
	r := s.get()
	if r.status != 200 || r.header.Get("RateLimit") != `"api";r=4;t=1` || r.header.Get("RateLimit-Policy") != `"api";q=5;w=5` {
		t.Errorf("allowed response: %d RateLimit=%q Policy=%q", r.status, r.header.Get("RateLimit"), r.header.Get("RateLimit-Policy"))
	}

	off, err := New("api", rateCfg(func(c *config.RateLimit) { c.Burst = 1; c.Headers = config.RateLimitHeadersOff }), nil, nil, clock.NewFake(t0))
	if err != nil {
		t.Fatal(err)
	}
	s = newStack(t, off, false)
	s.get()
	r = s.get()
	if r.status != 429 || r.header.Get("RateLimit") != "" || r.header.Get("RateLimit-Policy") != "" || r.header.Get("Retry-After") != "1" {
		t.Errorf("headers off: %d %v", r.status, r.header)
	}
}

func TestMiddlewareConcurrencyLimit(t *testing.T) {
	for _, status := range []int{503, 429} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			ev := &events{}
			l, err := New("api", &config.RateLimit{MaxInFlight: 2, InFlightStatus: status, Headers: "rejected"}, nil, ev, clock.NewFake(t0))
			if err != nil {
				t.Fatal(err)
			}
			s := newStack(t, l, true)
			done := make(chan response, 2)
			for i := 0; i < 2; i++ {
				go func() {
					r, _ := http.NewRequest("GET", s.gateway.URL, nil)
					resp, err := s.client.Do(r)
					if err != nil {
						done <- response{}
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					done <- response{status: resp.StatusCode}
				}()
			}
			for i := 0; i < 2; i++ {
				select {
				case <-s.arrived:
				case <-time.After(10 * time.Second):
					t.Fatal("requests did not reach the upstream")
				}
			}
			if n := l.InFlight(); n != 2 {
				t.Errorf("InFlight = %d, want 2", n)
			}
			r := s.get()
			if r.status != status || r.header.Get("Retry-After") != "1" || !strings.Contains(r.body, `"error":"concurrency_limited"`) {
				t.Errorf("third request: %d %q %v", r.status, r.body, r.header)
			}
			if got := s.last(); got != (recorded{"api", observe.ErrRateLimited}) {
				t.Errorf("record = %+v", got)
			}
			if e := ev.Events(); len(e) != 1 || e[0].RateLimit.Key != KeyInFlight {
				t.Errorf("events = %+v", e)
			}
			close(s.release)
			for i := 0; i < 2; i++ {
				if r := <-done; r.status != 200 {
					t.Errorf("held request: %d", r.status)
				}
			}
			if n := l.InFlight(); n != 0 {
				t.Errorf("InFlight after release = %d", n)
			}
			s.release = nil
			if r := s.get(); r.status != 200 {
				t.Errorf("after release: %d", r.status)
			}
		})
	}
}

func TestReloadKeepsBuckets(t *testing.T) {
	clk := clock.NewFake(t0)
	cfg := rateCfg(func(c *config.RateLimit) { c.Burst = 1; c.Key.ClientIP = true; c.MaxInFlight = 10 })
	old, err := New("api", cfg, nil, nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	if !old.limiter.Allow(KeyHash("a"), clk.Now()).OK {
		t.Fatal("first request refused")
	}
	old.inFlight.Add(3) // requests of the old snapshot still running

	same, err := New("api", rateCfg(func(c *config.RateLimit) { c.Burst = 1; c.Key.ClientIP = true; c.MaxInFlight = 10 }), old, nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	if same.limiter.Allow(KeyHash("a"), clk.Now()).OK {
		t.Error("unchanged policy: the exhausted bucket was refilled by the reload")
	}
	if same.InFlight() != 3 {
		t.Errorf("unchanged policy: in-flight count %d, want 3 carried", same.InFlight())
	}

	changed, err := New("api", rateCfg(func(c *config.RateLimit) { c.Burst = 2; c.Key.ClientIP = true; c.MaxInFlight = 10 }), same, nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	if !changed.limiter.Allow(KeyHash("a"), clk.Now()).OK || changed.InFlight() != 0 {
		t.Error("changed policy: want fresh buckets and count")
	}
}

func TestNewRejectsInvalid(t *testing.T) {
	for _, c := range []*config.RateLimit{
		nil,
		{Rate: -1},
		{Rate: 1, Burst: 0, Period: config.Duration(time.Second)},
		{Rate: 1, Burst: 1},
		{MaxInFlight: -1},
	} {
		if _, err := New("r", c, nil, nil, nil); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
}

func TestJSONBodyIsValid(t *testing.T) {
	w := httptest.NewRecorder()
	errorbody.Write(w, &observe.Record{Trace: observe.TraceContext{Valid: true}}, 429, "rate_limited", `a "quoted" msg`)
	var v map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("%v: %s", err, w.Body.Bytes())
	}
	if v["status"] != float64(429) || v["trace_id"] != "00000000000000000000000000000000" {
		t.Errorf("body %v", v)
	}
}

func BenchmarkLimiter(b *testing.B) {
	bk := NewBuckets(1e9, time.Second, 100, 100000, time.Now())
	key := KeyHash("203.0.113.7")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		bk.Allow(key, now)
	}
}

func BenchmarkMiddleware(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  *config.RateLimit
	}{
		{"client-ip", rateCfg(func(c *config.RateLimit) { c.Rate = 1e9; c.Burst = 1000; c.Key.ClientIP = true })},
		{"header+in-flight", rateCfg(func(c *config.RateLimit) {
			c.Rate = 1e9
			c.Burst = 1000
			c.Key.Header = "X-Api-Key"
			c.MaxInFlight = 1000
		})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := New("api", bc.cfg, nil, observe.Nop{}, clock.Real{})
			if err != nil {
				b.Fatal(err)
			}
			h := l.Middleware()(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			rec := observe.GetRecord()
			rec.ClientAddr = "203.0.113.7"
			r := httptest.NewRequest("GET", "/", nil).WithContext(observe.NewContext(b.Context(), rec))
			r.Header.Set("X-Api-Key", "key-123")
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
			if w.Code != 200 {
				b.Fatalf("status %d", w.Code)
			}
		})
	}
}
