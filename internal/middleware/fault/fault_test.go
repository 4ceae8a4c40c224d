package fault

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pct(p float64) *float64 { return &p }

type events struct {
	mu  sync.Mutex
	evs []observe.Event
	// delayed is signalled when a delay starts.
	delayed chan struct{}
}

func (e *events) Observe(ev observe.Event) {
	e.mu.Lock()
	ev.Ctx, ev.Record = nil, nil
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
	if ev.Fault.Kind == observe.FaultDelay && e.delayed != nil {
		e.delayed <- struct{}{}
	}
}

func (e *events) all() []observe.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]observe.Event(nil), e.evs...)
}

type recorded struct {
	Fault     string
	ErrorKind observe.ErrorKind
}

// stack is a stand-in entry handler filling a Record, the fault middleware,
// and a proxy to a real upstream.
type stack struct {
	gateway *httptest.Server
	client  *http.Client
	hits    atomic.Int64
	recs    chan recorded
}

func newStack(t *testing.T, mw middleware.Middleware) *stack {
	s := &stack{recs: make(chan recorded, 1000)}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(upstream.Close)
	upClient := upstream.Client()
	t.Cleanup(upClient.CloseIdleConnections)
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := upClient.Get(upstream.URL)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	})
	chain := mw(proxy)
	s.gateway = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.GetRecord()
		defer observe.PutRecord(rec)
		if r.Header.Get("X-Test-Traced") != "" {
			rec.Trace = observe.TraceContext{Valid: true, TraceID: [16]byte{15: 1}}
		}
		chain.ServeHTTP(w, r.WithContext(observe.NewContext(r.Context(), rec)))
		s.recs <- recorded{rec.Fault, rec.ErrorKind}
	}))
	t.Cleanup(s.gateway.Close)
	s.client = s.gateway.Client()
	t.Cleanup(s.client.CloseIdleConnections)
	return s
}

func (s *stack) get(t *testing.T, ctx context.Context, header ...string) (int, string, error) {
	r, _ := http.NewRequestWithContext(ctx, "GET", s.gateway.URL, nil)
	for i := 0; i < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(r)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

func (s *stack) rec(t *testing.T) recorded {
	t.Helper()
	select {
	case r := <-s.recs:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("request did not finish")
	}
	return recorded{}
}

// seq returns a rnd that yields 0, step, 2·step, ... modulo one million.
func seq(step uint64) func() uint64 {
	var n atomic.Uint64
	return func() uint64 { return (n.Add(1) - 1) * step % perMillion }
}

func TestAbort(t *testing.T) {
	ev := &events{}
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := newStack(t, New("checkout", &config.Fault{Abort: &config.FaultAbort{Status: 503, Percent: pct(100)}}, ev, clk, nil))
	code, body, err := s.get(t, context.Background(), "X-Test-Traced", "1")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"error":"fault_injected","status":503,"message":"fault injected","trace_id":"00000000000000000000000000000001"}` + "\n"; code != 503 || body != want {
		t.Errorf("got %d %q, want 503 %q", code, body, want)
	}
	if r := s.rec(t); r != (recorded{Abort, observe.ErrFaultInjected}) {
		t.Errorf("record = %+v", r)
	}
	if s.hits.Load() != 0 {
		t.Error("aborted request reached the upstream")
	}
	evs := ev.all()
	if len(evs) != 1 || evs[0].Kind != observe.EventFaultInjected || evs[0].Fault != (observe.Fault{Kind: observe.FaultAbort, Status: 503}) || evs[0].Route != "checkout" || !evs[0].Time.Equal(clk.Now()) {
		t.Errorf("events = %+v", evs)
	}
}

func TestAbortPercentageIsExact(t *testing.T) {
	// rnd walks 0, 1%, 2%, ... of the range, so 25% hits exactly 25 of 100.
	s := newStack(t, New("r", &config.Fault{Abort: &config.FaultAbort{Status: 500, Percent: pct(25)}}, nil, nil, seq(10_000)))
	aborted := 0
	for i := 0; i < 100; i++ {
		code, _, err := s.get(t, context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if code == 500 {
			aborted++
		}
		s.rec(t)
	}
	if aborted != 25 || s.hits.Load() != 75 {
		t.Errorf("aborted %d, upstream %d; want 25 and 75", aborted, s.hits.Load())
	}
}

func TestZeroPercentNeverFires(t *testing.T) {
	s := newStack(t, New("r", &config.Fault{
		Abort: &config.FaultAbort{Status: 500, Percent: pct(0)},
		Delay: &config.FaultDelay{Duration: config.Duration(time.Hour), Percent: pct(0)},
	}, nil, nil, func() uint64 { return 0 }))
	for i := 0; i < 10; i++ {
		if code, _, err := s.get(t, context.Background()); err != nil || code != 200 {
			t.Fatalf("%d %v", code, err)
		}
		if r := s.rec(t); r != (recorded{}) {
			t.Fatalf("record = %+v", r)
		}
	}
}

func TestDelay(t *testing.T) {
	ev := &events{}
	const d = 50 * time.Millisecond
	s := newStack(t, New("r", &config.Fault{Delay: &config.FaultDelay{Duration: config.Duration(d), Percent: pct(100)}}, ev, nil, nil))
	start := time.Now()
	code, body, err := s.get(t, context.Background())
	if err != nil || code != 200 || body != "ok" {
		t.Fatalf("%d %q %v", code, body, err)
	}
	// A lower bound only: a delay may not be shorter than configured.
	if el := time.Since(start); el < d {
		t.Errorf("request took %s, less than the %s delay", el, d)
	}
	if r := s.rec(t); r != (recorded{Delay, observe.ErrNone}) {
		t.Errorf("record = %+v", r)
	}
	if evs := ev.all(); len(evs) != 1 || evs[0].Fault != (observe.Fault{Kind: observe.FaultDelay, Delay: d}) {
		t.Errorf("events = %+v", evs)
	}
}

func TestDelayRespectsClientCancel(t *testing.T) {
	ev := &events{delayed: make(chan struct{}, 1)}
	s := newStack(t, New("r", &config.Fault{Delay: &config.FaultDelay{Duration: config.Duration(time.Hour), Percent: pct(100)}}, ev, nil, nil))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := s.get(t, ctx)
		errc <- err
	}()
	select {
	case <-ev.delayed:
	case <-time.After(10 * time.Second):
		t.Fatal("delay never started")
	}
	cancel()
	if err := <-errc; err == nil {
		t.Error("canceled request succeeded")
	}
	// The handler returns promptly instead of sleeping out the hour.
	if r := s.rec(t); r != (recorded{Delay, observe.ErrClientCanceled}) {
		t.Errorf("record = %+v", r)
	}
	if s.hits.Load() != 0 {
		t.Error("canceled request was sent upstream")
	}
}

func TestDelayThenAbort(t *testing.T) {
	s := newStack(t, New("r", &config.Fault{
		Delay: &config.FaultDelay{Duration: config.Duration(time.Millisecond), Percent: pct(100)},
		Abort: &config.FaultAbort{Status: 429, Percent: pct(100)},
	}, nil, nil, nil))
	if code, _, _ := s.get(t, context.Background()); code != 429 {
		t.Errorf("status %d", code)
	}
	if r := s.rec(t); r != (recorded{DelayAbort, observe.ErrFaultInjected}) {
		t.Errorf("record = %+v", r)
	}
}

func TestNilConfig(t *testing.T) {
	if New("r", nil, nil, nil, nil) != nil || New("r", &config.Fault{}, nil, nil, nil) != nil {
		t.Error("want a nil middleware without faults")
	}
}

func BenchmarkNoFault(b *testing.B) {
	mw := New("r", &config.Fault{Abort: &config.FaultAbort{Status: 503, Percent: pct(0.1)}}, observe.Nop{}, clock.Real{}, func() uint64 { return perMillion - 1 })
	h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	rec := observe.GetRecord()
	r := httptest.NewRequest("GET", "/", nil).WithContext(observe.NewContext(b.Context(), rec))
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
