package breaker

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type events struct {
	mu  sync.Mutex
	evs []observe.Event
}

func (e *events) Observe(ev observe.Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

// transitions returns "from>to: reason" for each transition.
func (e *events) transitions() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.evs {
		if ev.Kind == observe.EventBreakerTransition {
			out = append(out, ev.Breaker.From.String()+">"+ev.Breaker.To.String()+" "+ev.Breaker.Reason.String()+": "+ev.Detail)
		}
	}
	return out
}

func intp(n int) *int                     { return &n }
func floatp(f float64) *float64           { return &f }
func dur(d time.Duration) config.Duration { return config.Duration(d) }

// cfg returns a defaulted breaker config edited by edit.
func cfg(edit func(c *config.CircuitBreaker)) *config.CircuitBreaker {
	c := &config.CircuitBreaker{}
	if edit != nil {
		edit(c)
	}
	// The defaults of config.CircuitBreaker.setDefaults, which is
	// unexported.
	if c.ConsecutiveFailures == nil {
		c.ConsecutiveFailures = intp(5)
	}
	if c.ErrorRatio == nil {
		c.ErrorRatio = floatp(0.5)
	}
	if c.SlowCallRatio == 0 {
		c.SlowCallRatio = 0.5
	}
	if c.MinRequests == 0 {
		c.MinRequests = 20
	}
	if c.Window == 0 {
		c.Window = dur(10 * time.Second)
	}
	if c.WindowBuckets == 0 {
		c.WindowBuckets = 10
	}
	if c.OpenDuration == 0 {
		c.OpenDuration = dur(30 * time.Second)
	}
	if c.HalfOpenProbes == 0 {
		c.HalfOpenProbes = 1
	}
	if c.HalfOpenSuccesses == 0 {
		c.HalfOpenSuccesses = 2
	}
	if len(c.FailureOn) == 0 {
		c.FailureOn = []string{"connect_error", "timeout", "reset", "protocol", "5xx"}
	}
	return c
}

type harness struct {
	t   *testing.T
	b   *Breaker
	clk *clock.Fake
	ev  *events
}

func newHarness(t *testing.T, c *config.CircuitBreaker) *harness {
	h := &harness{t: t, clk: clock.NewFake(t0), ev: &events{}}
	h.b = New("checkout", "", c, nil, h.ev, h.clk)
	return h
}

// do sends one request through the breaker with the given outcome and
// reports whether it was admitted.
func (h *harness) do(kind observe.ErrorKind, status int, latency time.Duration) bool {
	tk, ok := h.b.Allow()
	if ok {
		h.b.Done(tk, kind, status, latency)
	}
	return ok
}

func (h *harness) ok() bool   { return h.do(observe.ErrNone, 200, time.Millisecond) }
func (h *harness) fail() bool { return h.do(observe.ErrNone, 503, time.Millisecond) }

func (h *harness) wantState(want State) {
	h.t.Helper()
	if got := h.b.State(); got != want {
		h.t.Fatalf("state = %s, want %s (transitions %q)", got, want, h.ev.transitions())
	}
}

func (h *harness) wantTransitions(want ...string) {
	h.t.Helper()
	if got := h.ev.transitions(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		h.t.Fatalf("transitions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestConsecutiveFailures(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.CircuitBreaker) {
		c.ConsecutiveFailures = intp(3)
		c.ErrorRatio = floatp(0)
	}))
	h.fail()
	h.fail()
	h.ok() // resets the run
	h.fail()
	h.fail()
	h.wantState(Closed)
	h.fail()
	h.wantState(Open)
	h.wantTransitions("closed>open consecutive_failures: 3 consecutive failures")
	if h.ok() {
		t.Fatal("open breaker admitted a request")
	}
}

func TestErrorRatio(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.CircuitBreaker) {
		c.ConsecutiveFailures = intp(0)
		c.MinRequests = 10
	}))
	// 9 requests, 5 failing: over the ratio but under min_requests.
	for i := 0; i < 9; i++ {
		if i%2 == 0 {
			h.fail()
		} else {
			h.ok()
		}
	}
	h.wantState(Closed)
	// A success cannot trip the ratio; a 10th failure can (6/10 >= 0.5)...
	h.ok()
	h.wantState(Closed)
	h.fail()
	h.wantState(Open)
	h.wantTransitions("closed>open error_ratio: error ratio 0.55 >= 0.50 over 11 requests in 10s")
}

func TestErrorRatioWindowRolls(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.CircuitBreaker) {
		c.ConsecutiveFailures = intp(0)
		c.MinRequests = 10
	}))
	for i := 0; i < 8; i++ {
		h.fail()
	}
	h.ok()
	// Half a window later the old outcomes still count: 9 + 1 = 10 requests,
	// 9 failures.
	h.clk.Advance(5 * time.Second)
	h.fail()
	h.wantState(Open)

	h = newHarness(t, cfg(func(c *config.CircuitBreaker) {
		c.ConsecutiveFailures = intp(0)
		c.MinRequests = 10
	}))
	for i := 0; i < 8; i++ {
		h.fail()
	}
	h.ok()
	// A whole window later they have rolled out: 1 request.
	h.clk.Advance(10 * time.Second)
	h.fail()
	h.wantState(Closed)
	if s := h.b.Status(); s.WindowRequests != 1 || s.WindowFailures != 1 {
		t.Errorf("status = %+v, want 1 request, 1 failure in the window", s)
	}
}

func TestWindowBucketsRollOneAtATime(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.CircuitBreaker) {
		c.ConsecutiveFailures = intp(0)
		c.MinRequests = 1000 // never trips; we read the window
	}))
	for i := 0; i < 10; i++ {
		h.fail()
		h.clk.Advance(time.Second)
	}
	// Buckets t0..t0+9s hold one failure each; at t0+10s the first is out.
	if s := h.b.Status(); s.WindowRequests != 9 {
		t.Fatalf("window = %d requests, want 9", s.WindowRequests)
	}
	h.clk.Advance(5 * time.Second)
	if s := h.b.Status(); s.WindowRequests != 4 {
		t.Fatalf("window = %d requests, want 4", s.WindowRequests)
	}
}

func TestSlowCallRatio(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.CircuitBreaker) {
		c.ConsecutiveFailures = intp(0)
		c.ErrorRatio = floatp(0)
		c.SlowCallDuration = dur(time.Second)
		c.MinRequests = 4
	}))
	h.do(observe.ErrNone, 200, 2*time.Second)
	h.do(observe.ErrNone, 200, 10*time.Millisecond)
	h.do(observe.ErrNone, 200, time.Second) // exactly the threshold is not slow
	h.wantState(Closed)
	h.do(observe.ErrNone, 200, 1500*time.Millisecond)
	h.wantState(Open)
	h.wantTransitions("closed>open slow_call_ratio: slow call ratio 0.50 >= 0.50 (calls over 1s) over 4 requests in 10s")
}

func TestHalfOpenRecovers(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.CircuitBreaker) {
		c.ConsecutiveFailures = intp(2)
		c.HalfOpenProbes = 1
		c.HalfOpenSuccesses = 2
	}))
	h.fail()
	h.fail()
	h.wantState(Open)

	h.clk.Advance(29 * time.Second)
	if _, ok := h.b.Allow(); ok {
		t.Fatal("admitted during the cool-down")
	}
	h.clk.Advance(time.Second)
	probe, ok := h.b.Allow()
	if !ok || probe.State != HalfOpen {
		t.Fatalf("after cool-down: ok=%v state=%s, want a half-open probe", ok, probe.State)
	}
	if tk, ok := h.b.Allow(); ok || tk.State != HalfOpen {
		t.Fatalf("second concurrent probe admitted (ok=%v state=%s); probes are bounded to 1", ok, tk.State)
	}
	h.b.Done(probe, observe.ErrNone, 200, time.Millisecond)
	h.wantState(HalfOpen)
	if !h.ok() {
		t.Fatal("second probe refused after the first finished")
	}
	h.wantState(Closed)
	h.wantTransitions(
		"closed>open consecutive_failures: 2 consecutive failures",
		"open>half_open cooldown: cool-down 30s elapsed",
		"half_open>closed probe_success: 2 probes succeeded",
	)
	// Closed again with fresh counters: one failure does not reopen.
	h.fail()
	h.wantState(Closed)
}

func TestHalfOpenProbeFailureReopens(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.CircuitBreaker) { c.ConsecutiveFailures = intp(1) }))
	h.fail()
	h.clk.Advance(30 * time.Second)
	if !h.do(observe.ErrUpstreamConnect, 0, time.Millisecond) {
		t.Fatal("probe refused")
	}
	h.wantState(Open)
	h.clk.Advance(30 * time.Second)
	h.fail()
	h.wantTransitions(
		"closed>open consecutive_failures: 1 consecutive failures",
		"open>half_open cooldown: cool-down 30s elapsed",
		"half_open>open probe_failure: probe failed: upstream_connect",
		"open>half_open cooldown: cool-down 30s elapsed",
		"half_open>open probe_failure: probe failed: status 503",
	)
	// The cool-down restarted at the last failure.
	h.clk.Advance(29 * time.Second)
	if h.ok() {
		t.Fatal("admitted before the new cool-down ended")
	}
	if s := h.b.Status(); s.State != "open" || !s.OpenUntil.Equal(h.clk.Now().Add(time.Second)) || s.LastReason != "probe failed: status 503" {
		t.Errorf("status = %+v", s)
	}
}

func TestSlowProbeReopens(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.CircuitBreaker) {
		c.ConsecutiveFailures = intp(1)
		c.SlowCallDuration = dur(time.Second)
	}))
	h.fail()
	h.clk.Advance(30 * time.Second)
	h.do(observe.ErrNone, 200, 3*time.Second)
	h.wantState(Open)
	if tr := h.ev.transitions(); tr[len(tr)-1] != "half_open>open probe_failure: probe slow: 3s > 1s" {
		t.Errorf("last transition %q", tr[len(tr)-1])
	}
}

func TestConcurrentProbesBounded(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.CircuitBreaker) {
		c.ConsecutiveFailures = intp(1)
		c.HalfOpenProbes = 3
		c.HalfOpenSuccesses = 3
	}))
	h.fail()
	h.clk.Advance(30 * time.Second)
	var admitted atomic.Int64
	tickets := make(chan Ticket, 64)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 8; i++ {
				if tk, ok := h.b.Allow(); ok {
					admitted.Add(1)
					tickets <- tk
				}
			}
		}()
	}
	wg.Wait()
	close(tickets)
	if n := admitted.Load(); n != 3 {
		t.Fatalf("%d probes admitted at once, want 3", n)
	}
	for tk := range tickets {
		h.b.Done(tk, observe.ErrNone, 200, time.Millisecond)
	}
	h.wantState(Closed)
}

func TestStragglersDoNotCountAsProbes(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.CircuitBreaker) {
		c.ConsecutiveFailures = intp(2)
		c.HalfOpenSuccesses = 1
	}))
	straggler, ok := h.b.Allow() // admitted while closed, still running
	if !ok {
		t.Fatal("refused while closed")
	}
	h.fail()
	h.fail()
	h.clk.Advance(30 * time.Second)
	probe, ok := h.b.Allow()
	if !ok || probe.State != HalfOpen {
		t.Fatal("no probe")
	}
	// The straggler's success must neither close the breaker nor free the
	// probe's slot.
	h.b.Done(straggler, observe.ErrNone, 200, time.Millisecond)
	h.wantState(HalfOpen)
	if _, ok := h.b.Allow(); ok {
		t.Fatal("straggler freed the probe slot")
	}
	h.b.Done(probe, observe.ErrNone, 200, time.Millisecond)
	h.wantState(Closed)
	// Done with a refused ticket is ignored.
	h.b.Done(Ticket{State: Open}, observe.ErrNone, 500, 0)
	h.wantState(Closed)
}

func TestClientCanceledNeverCounts(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.CircuitBreaker) {
		c.ConsecutiveFailures = intp(1)
		c.MinRequests = 1
	}))
	for i := 0; i < 10; i++ {
		h.do(observe.ErrClientCanceled, 0, time.Hour)
	}
	h.wantState(Closed)
	if s := h.b.Status(); s.WindowRequests != 0 {
		t.Errorf("canceled requests counted: %+v", s)
	}
	h.fail()
	h.clk.Advance(30 * time.Second)
	// A canceled probe frees its slot without deciding anything.
	h.do(observe.ErrClientCanceled, 0, 0)
	h.wantState(HalfOpen)
	if !h.ok() {
		t.Fatal("slot not freed by the canceled probe")
	}
}

func TestFailureOn(t *testing.T) {
	cases := []struct {
		failureOn []string
		kind      observe.ErrorKind
		status    int
		want      outcome
	}{
		{nil, observe.ErrUpstreamConnect, 0, failure},
		{nil, observe.ErrUpstreamTimeout, 0, failure},
		{nil, observe.ErrUpstreamReset, 0, failure},
		{nil, observe.ErrUpstreamProtocol, 0, failure},
		{nil, observe.ErrNone, 500, failure},
		{nil, observe.ErrNone, 599, failure},
		{nil, observe.ErrNone, 404, success},
		{nil, observe.ErrNone, 200, success},
		{nil, observe.ErrClientCanceled, 0, neutral},
		{nil, observe.ErrNoHealthyUpstream, 0, neutral},
		{[]string{"503", "429"}, observe.ErrNone, 503, failure},
		{[]string{"503", "429"}, observe.ErrNone, 429, failure},
		{[]string{"503", "429"}, observe.ErrNone, 500, success},
		{[]string{"503", "429"}, observe.ErrUpstreamConnect, 0, neutral},
		{[]string{"timeout", "4xx"}, observe.ErrUpstreamTimeout, 0, failure},
		{[]string{"timeout", "4xx"}, observe.ErrNone, 404, failure},
	}
	for _, tc := range cases {
		c := cfg(func(c *config.CircuitBreaker) { c.FailureOn = tc.failureOn })
		b := New("s", "", c, nil, nil, clock.NewFake(t0))
		if got := b.set.classify(tc.kind, tc.status); got != tc.want {
			t.Errorf("failure_on %v: classify(%s, %d) = %d, want %d", c.FailureOn, tc.kind, tc.status, got, tc.want)
		}
	}
}

func TestReloadCarriesState(t *testing.T) {
	h := newHarness(t, cfg(func(c *config.CircuitBreaker) { c.ConsecutiveFailures = intp(1) }))
	h.fail()
	h.wantState(Open)

	same := New("checkout", "", cfg(func(c *config.CircuitBreaker) { c.ConsecutiveFailures = intp(1) }), h.b, h.ev, h.clk)
	if same.State() != Open {
		t.Fatal("unchanged config: state not carried over")
	}
	// A request of the old snapshot still draining reports to the shared
	// state.
	h.clk.Advance(30 * time.Second)
	tk, ok := same.Allow()
	if !ok {
		t.Fatal("no probe")
	}
	h.b.Done(tk, observe.ErrNone, 200, 0)
	if s := same.Status(); s.ProbeSuccesses != 1 {
		t.Errorf("old snapshot's Done not seen by the new breaker: %+v", s)
	}

	changed := New("checkout", "", cfg(func(c *config.CircuitBreaker) { c.ConsecutiveFailures = intp(2) }), same, h.ev, h.clk)
	if changed.State() != Closed {
		t.Error("changed config: want a fresh closed breaker")
	}
	otherHost := New("checkout", "10.0.0.1:80", cfg(func(c *config.CircuitBreaker) { c.ConsecutiveFailures = intp(1) }), same, h.ev, h.clk)
	if otherHost.State() != Closed {
		t.Error("another host must not inherit the state")
	}
}

func TestNilBreaker(t *testing.T) {
	var b *Breaker
	if New("s", "", nil, nil, nil, nil) != nil {
		t.Fatal("New with nil config must return nil")
	}
	tk, ok := b.Allow()
	if !ok || tk.State != Closed {
		t.Fatal("nil breaker refused")
	}
	b.Done(tk, observe.ErrUpstreamConnect, 0, 0)
	if b.State() != Closed || b.Fallback() != "" || b.Status().State != "closed" {
		t.Fatal("nil breaker state")
	}
}

func TestTransitionEventAndStatusJSON(t *testing.T) {
	h := newHarness(t, nil)
	h.b = New("checkout", "10.0.0.7:8080", cfg(func(c *config.CircuitBreaker) {
		c.ConsecutiveFailures = intp(1)
		c.Fallback = "checkout-static"
	}), nil, h.ev, h.clk)
	h.fail()
	tk, ok := h.b.Allow()
	if ok || tk.State != Open || h.b.Fallback() != "checkout-static" {
		t.Fatalf("Allow = %+v, %v", tk, ok)
	}
	h.ev.mu.Lock()
	evs := append([]observe.Event(nil), h.ev.evs...)
	h.ev.mu.Unlock()
	if len(evs) != 1 {
		t.Fatalf("events = %+v", evs)
	}
	if ev := evs[0]; ev.Kind != observe.EventBreakerTransition || ev.Upstream != "10.0.0.7:8080" || ev.Service != "checkout" ||
		!ev.Time.Equal(t0) || ev.Breaker != (observe.BreakerChange{From: Closed, To: Open, Reason: observe.BreakerConsecutiveFailures}) ||
		ev.Detail != "1 consecutive failures" {
		t.Errorf("transition event = %+v", ev)
	}

	js, err := json.Marshal(h.b.Status())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"service":"checkout","upstream":"10.0.0.7:8080","state":"open","since":"2026-01-02T03:04:05Z","open_until":"2026-01-02T03:04:35Z","window_requests":0,"window_failures":0,"window_slow_calls":0,"consecutive_failures":1,"probes_in_flight":0,"probe_successes":0,"last_reason":"1 consecutive failures","fallback":"checkout-static"}`
	if string(js) != want {
		t.Errorf("status JSON:\n%s\nwant:\n%s", js, want)
	}
}

// TestBreakerOverRealUpstream sends requests through a minimal proxy that
// checks the breaker before forwarding to a real upstream server, the way
// the gateway's proxy does.
func TestBreakerOverRealUpstream(t *testing.T) {
	var failing atomic.Bool
	var hits atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	clk := clock.NewFake(t0)
	ev := &events{}
	b := New("checkout", "", cfg(func(c *config.CircuitBreaker) {
		c.ConsecutiveFailures = intp(3)
		c.HalfOpenSuccesses = 1
	}), nil, ev, clk)
	client := upstream.Client()
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tk, ok := b.Allow()
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"breaker_open","status":503}`)
			return
		}
		start := clk.Now()
		resp, err := client.Get(upstream.URL)
		if err != nil {
			b.Done(tk, observe.ErrUpstreamConnect, 0, clk.Now().Sub(start))
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		b.Done(tk, observe.ErrNone, resp.StatusCode, clk.Now().Sub(start))
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		resp.Body.Close()
	}))
	defer gateway.Close()
	get := func() (int, string) {
		resp, err := client.Get(gateway.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}

	failing.Store(true)
	for i := 0; i < 3; i++ {
		if code, _ := get(); code != 503 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if b.State() != Open {
		t.Fatal("breaker did not open after 3 failures")
	}
	before := hits.Load()
	for i := 0; i < 5; i++ {
		if code, body := get(); code != 503 || !strings.Contains(body, "breaker_open") {
			t.Fatalf("open breaker: %d %q", code, body)
		}
	}
	if hits.Load() != before {
		t.Fatal("open breaker let requests reach the upstream")
	}
	failing.Store(false)
	clk.Advance(30 * time.Second)
	if code, body := get(); code != 200 || body != "ok" {
		t.Fatalf("probe: %d %q", code, body)
	}
	if b.State() != Closed {
		t.Fatalf("state after a successful probe = %s", b.State())
	}
	client.CloseIdleConnections()
}

func BenchmarkAllowDone(b *testing.B) {
	c := cfg(func(c *config.CircuitBreaker) { c.SlowCallDuration = dur(time.Second) })
	b.Run("closed", func(b *testing.B) {
		br := New("s", "", c, nil, observe.Nop{}, clock.Real{})
		b.ReportAllocs()
		for b.Loop() {
			tk, _ := br.Allow()
			br.Done(tk, observe.ErrNone, 200, time.Millisecond)
		}
	})
	b.Run("closed-parallel", func(b *testing.B) {
		br := New("s", "", c, nil, observe.Nop{}, clock.Real{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tk, _ := br.Allow()
				br.Done(tk, observe.ErrNone, 200, time.Millisecond)
			}
		})
	})
	b.Run("open-refused", func(b *testing.B) {
		br := New("s", "", cfg(func(c *config.CircuitBreaker) {
			c.ConsecutiveFailures = intp(1)
			c.OpenDuration = dur(time.Hour)
		}), nil, observe.Nop{}, clock.Real{})
		tk, _ := br.Allow()
		br.Done(tk, observe.ErrUpstreamConnect, 0, 0)
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := br.Allow(); ok {
				b.Fatal("admitted")
			}
		}
	})
}

func ExampleBreaker() {
	clk := clock.NewFake(t0)
	obs := observe.ObserverFunc(func(ev observe.Event) {
		if ev.Kind == observe.EventBreakerTransition {
			fmt.Printf("%s: %s -> %s (%s: %s)\n", ev.Service, ev.Breaker.From, ev.Breaker.To, ev.Breaker.Reason, ev.Detail)
		}
	})
	b := New("checkout", "", cfg(nil), nil, obs, clk)
	for i := 0; i < 5; i++ {
		tk, _ := b.Allow()
		b.Done(tk, observe.ErrUpstreamConnect, 0, time.Millisecond)
	}
	_, ok := b.Allow()
	fmt.Println("allowed:", ok)
	// Output:
	// checkout: closed -> open (consecutive_failures: 5 consecutive failures)
	// allowed: false
}
