package upstream

import (
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/observe/observetest"
)

// recorder records decision events.
type recorder = observetest.Recorder

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func intPtr(n int) *int { return &n }

// attempt runs one attempt on h with the given outcome.
func attempt(h *Host, kind observe.ErrorKind, status int) {
	h.Begin()
	h.End(kind, status)
}

// service builds a service of the given upstream URLs, weight 1 each.
func service(name string, urls ...string) *config.Service {
	s := &config.Service{Name: name}
	for _, u := range urls {
		s.Upstreams = append(s.Upstreams, config.Upstream{URL: u})
	}
	return s
}

func withOutlier(s *config.Service, c5xx, connect int, base, maxT time.Duration) *config.Service {
	s.OutlierDetection = &config.OutlierDetection{
		Consecutive5xx:             c5xx,
		ConsecutiveConnectFailures: connect,
		BaseEjectionTime:           config.Duration(base),
		MaxEjectionTime:            config.Duration(maxT),
	}
	return s
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustPool(t *testing.T, s *config.Service, prev *Pool, obs observe.Observer, clk clock.Clock) *Pool {
	t.Helper()
	p, err := NewPool(s, prev, obs, clk, nil)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(p.Stop)
	return p
}

func TestNewPoolHosts(t *testing.T) {
	s := service("svc", "http://a.internal", "https://b.internal", "h2c://10.0.0.3:9000", "http://[::1]:8080")
	s.Upstreams[1].Weight = intPtr(3)
	s.Upstreams[2].Weight = intPtr(0)
	p := mustPool(t, s, nil, nil, nil)
	if p.Name() != "svc" {
		t.Fatalf("Name = %q", p.Name())
	}
	want := []struct {
		key, addr, scheme string
		weight            int
	}{
		{"http://a.internal", "a.internal:80", "http", 1},
		{"https://b.internal", "b.internal:443", "https", 3},
		{"h2c://10.0.0.3:9000", "10.0.0.3:9000", "h2c", 0},
		{"http://[::1]:8080", "[::1]:8080", "http", 1},
	}
	hosts := p.Hosts()
	if len(hosts) != len(want) {
		t.Fatalf("got %d hosts, want %d", len(hosts), len(want))
	}
	for i, w := range want {
		h := hosts[i]
		if h.Key != w.key || h.Addr != w.addr || h.URL.Scheme != w.scheme || h.Weight != w.weight || h.Service != "svc" {
			t.Errorf("host %d = {%q %q %q %d %q}, want %+v", i, h.Key, h.Addr, h.URL.Scheme, h.Weight, h.Service, w)
		}
		if !h.Available() || !h.Healthy() || h.Ejected() || h.InFlight() != 0 {
			t.Errorf("host %d: a new host must be healthy, not ejected, idle", i)
		}
	}
}

func TestNewPoolErrors(t *testing.T) {
	tests := []struct {
		name string
		svc  *config.Service
	}{
		{"nil service", nil},
		{"bad scheme", service("s", "ftp://a:1")},
		{"no host", service("s", "http://")},
		{"duplicate", service("s", "http://a:1", "http://a:1")},
		{"negative weight", func() *config.Service {
			s := service("s", "http://a:1")
			s.Upstreams[0].Weight = intPtr(-1)
			return s
		}()},
		{"bad expected status", func() *config.Service {
			s := service("s", "http://a:1")
			s.HealthCheck = &config.HealthCheck{Path: "/", Interval: config.Duration(time.Second), ExpectedStatus: []string{"2yy"}}
			return s
		}()},
		{"missing ca file", func() *config.Service {
			s := service("s", "https://a:1")
			s.HealthCheck = &config.HealthCheck{Path: "/", Interval: config.Duration(time.Second)}
			s.Transport.CAFile = "testdata-does-not-exist.pem"
			return s
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := NewPool(tt.svc, nil, nil, nil, nil); err == nil {
				p.Stop()
				t.Fatalf("NewPool succeeded, want an error")
			}
		})
	}
}

func TestEndCountsOutcomes(t *testing.T) {
	type outcome struct {
		kind   observe.ErrorKind
		status int
	}
	f5xx := outcome{observe.ErrNone, 503}
	ok := outcome{observe.ErrNone, 200}
	notFound := outcome{observe.ErrNone, 404}
	conn := outcome{observe.ErrUpstreamConnect, 0}
	cancel := outcome{observe.ErrClientCanceled, 0}
	timeout := outcome{observe.ErrUpstreamTimeout, 0}
	reset := outcome{observe.ErrUpstreamReset, 0}
	tests := []struct {
		name       string
		outcomes   []outcome
		wantEject  bool
		wantReason observe.EjectionReason
		wantFails  int
	}{
		{"below threshold", []outcome{f5xx, f5xx}, false, 0, 0},
		{"three 5xx", []outcome{f5xx, f5xx, f5xx}, true, observe.EjectionConsecutive5xx, 3},
		{"success resets", []outcome{f5xx, f5xx, ok, f5xx, f5xx}, false, 0, 0},
		{"4xx resets", []outcome{f5xx, f5xx, notFound, f5xx, f5xx}, false, 0, 0},
		{"client cancel counts nothing", []outcome{f5xx, f5xx, cancel, f5xx}, true, observe.EjectionConsecutive5xx, 3},
		{"timeouts and resets count as 5xx", []outcome{timeout, reset, f5xx}, true, observe.EjectionConsecutive5xx, 3},
		{"two connect failures", []outcome{conn, conn}, true, observe.EjectionConsecutiveConnectFailures, 2},
		{"connect streak survives 5xx", []outcome{conn, f5xx, conn}, true, observe.EjectionConsecutiveConnectFailures, 2},
		{"response resets connect streak", []outcome{conn, ok, conn}, false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			clk := clock.NewFake(t0)
			p := mustPool(t, withOutlier(service("s", "http://a:1", "http://b:1"), 3, 2, 10*time.Second, time.Minute), nil, rec, clk)
			h := p.Hosts()[0]
			for _, o := range tt.outcomes {
				h.Begin()
				h.End(o.kind, o.status)
			}
			if h.InFlight() != 0 {
				t.Fatalf("InFlight = %d after balanced Begin/End", h.InFlight())
			}
			if h.Ejected() != tt.wantEject || h.Available() == tt.wantEject {
				t.Fatalf("Ejected = %v, Available = %v, want ejected %v", h.Ejected(), h.Available(), tt.wantEject)
			}
			evs := rec.Of(observe.EventHostEjected)
			if !tt.wantEject {
				if len(evs) != 0 {
					t.Fatalf("got %d ejection events, want none", len(evs))
				}
				return
			}
			if len(evs) != 1 {
				t.Fatalf("got %d ejection events, want 1", len(evs))
			}
			ev := evs[0]
			if ev.Ejection != (observe.Ejection{Reason: tt.wantReason, Failures: tt.wantFails, Duration: 10 * time.Second}) || ev.Service != "s" || ev.Upstream != "a:1" || !ev.Time.Equal(t0) {
				t.Fatalf("event = %+v", ev)
			}
		})
	}
}

func TestEjectionExpiresAndDoubles(t *testing.T) {
	rec := &recorder{}
	clk := clock.NewFake(t0)
	p := mustPool(t, withOutlier(service("s", "http://a:1", "http://b:1"), 1, 1, 10*time.Second, 40*time.Second), nil, rec, clk)
	a := p.Hosts()[0]

	// Each ejection right after the previous one ends doubles, up to max.
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second} {
		attempt(a, observe.ErrNone, 500)
		if !a.Ejected() {
			t.Fatalf("ejection %d: host not ejected", i+1)
		}
		evs := rec.Of(observe.EventHostEjected)
		if got := evs[len(evs)-1].Ejection.Duration; got != want {
			t.Fatalf("ejection %d lasts %v, want %v", i+1, got, want)
		}
		until := p.Status().Hosts[0].EjectedUntil
		if until == nil || !until.Equal(clk.Now().Add(want)) {
			t.Fatalf("ejection %d: EjectedUntil = %v, want %v", i+1, until, clk.Now().Add(want))
		}
		clk.Advance(want - time.Nanosecond)
		if a.Available() {
			t.Fatalf("ejection %d: available 1ns before the end", i+1)
		}
		clk.Advance(time.Nanosecond)
		for range 3 { // restoration is reported once, however often it is noticed
			if !a.Available() {
				t.Fatalf("ejection %d: not available after the ejection time", i+1)
			}
		}
		if got := len(rec.Of(observe.EventHostRestored)); got != i+1 {
			t.Fatalf("after ejection %d: %d restored events, want %d", i+1, got, i+1)
		}
	}

	// Decay: every full max_ejection_time (40s) un-ejected forgives one
	// doubling. n is 4 now; 80s quiet brings it to 2, so the next is n=3:
	// 40s; another 80s quiet brings 3 to 1, so the next is n=2: 20s.
	clk.Advance(80 * time.Second)
	attempt(a, observe.ErrNone, 500)
	if got := rec.Of(observe.EventHostEjected); got[len(got)-1].Ejection.Duration != 40*time.Second {
		t.Fatalf("after 80s quiet: ejection lasts %v, want 40s", got[len(got)-1].Ejection.Duration)
	}
	clk.Advance(40*time.Second + 80*time.Second)
	attempt(a, observe.ErrNone, 500)
	if got := rec.Of(observe.EventHostEjected); got[len(got)-1].Ejection.Duration != 20*time.Second {
		t.Fatalf("after 80s quiet: ejection lasts %v, want 20s", got[len(got)-1].Ejection.Duration)
	}
	// A long quiet period resets the multiplier completely.
	clk.Advance(20*time.Second + 10*40*time.Second)
	attempt(a, observe.ErrNone, 500)
	if got := rec.Of(observe.EventHostEjected); got[len(got)-1].Ejection.Duration != 10*time.Second {
		t.Fatalf("after a long quiet: ejection lasts %v, want 10s", got[len(got)-1].Ejection.Duration)
	}
}

func TestNeverEjectsTheLastAvailableHost(t *testing.T) {
	rec := &recorder{}
	clk := clock.NewFake(t0)
	s := withOutlier(service("s", "http://a:1", "http://b:1", "http://c:1"), 1, 1, 10*time.Second, time.Minute)
	s.Upstreams[2].Weight = intPtr(0) // out of rotation: does not count as a spare
	p := mustPool(t, s, nil, rec, clk)
	a, b := p.Hosts()[0], p.Hosts()[1]
	attempt(a, observe.ErrUpstreamConnect, 0)
	if !a.Ejected() {
		t.Fatalf("a not ejected")
	}
	for range 5 {
		attempt(b, observe.ErrUpstreamConnect, 0)
	}
	if b.Ejected() {
		t.Fatalf("b ejected although it is the last available host")
	}
	if st := p.Status().Hosts[1]; st.ConsecutiveConnectFailures != 0 {
		t.Fatalf("refused ejection must restart the streak, got %d", st.ConsecutiveConnectFailures)
	}
	// Once a is back, b may go.
	clk.Advance(10 * time.Second)
	attempt(b, observe.ErrUpstreamConnect, 0)
	if !b.Ejected() || !a.Available() {
		t.Fatalf("after a's return: b ejected %v, a available %v", b.Ejected(), a.Available())
	}
	if n := len(rec.Of(observe.EventHostEjected)); n != 2 {
		t.Fatalf("%d ejection events, want 2", n)
	}
}

func TestNeverEjectsBothOfTwoConcurrently(t *testing.T) {
	const trials = 200
	for trial := range trials {
		clk := clock.NewFake(t0)
		p, err := NewPool(withOutlier(service("s", "http://a:1", "http://b:1"), 3, 3, time.Second, time.Second), nil, nil, clk, nil)
		if err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, h := range p.Hosts() {
			for range 2 {
				wg.Go(func() {
					<-start
					for range 3 {
						h.Begin()
						h.End(observe.ErrNone, 502)
					}
				})
			}
		}
		close(start)
		wg.Wait()
		if p.Hosts()[0].Ejected() && p.Hosts()[1].Ejected() {
			t.Fatalf("trial %d: both hosts ejected", trial)
		}
		if !p.Hosts()[0].Ejected() && !p.Hosts()[1].Ejected() {
			t.Fatalf("trial %d: neither host ejected after 6 concurrent 5xx each", trial)
		}
	}
}

func TestStateCarriesOverByKey(t *testing.T) {
	rec := &recorder{}
	clk := clock.NewFake(t0)
	s1 := withOutlier(service("s", "http://a:1", "http://b:1", "http://c:1"), 1, 1, 10*time.Second, time.Minute)
	p1 := mustPool(t, s1, nil, rec, clk)
	a1, b1, c1 := p1.Hosts()[0], p1.Hosts()[1], p1.Hosts()[2]
	attempt(a1, observe.ErrNone, 500) // eject a
	b1.Begin()                        // an attempt in flight on b
	c1.st.healthy.Store(false)        // c unhealthy by active checks

	s2 := withOutlier(service("s", "http://c:1", "http://b:1", "http://d:1", "http://a:1"), 1, 1, 10*time.Second, time.Minute)
	s2.HealthCheck = &config.HealthCheck{Path: "/", Interval: config.Duration(time.Hour), Timeout: config.Duration(time.Second)}
	p2 := mustPool(t, s2, p1, rec, clk)
	c2, b2, d2, a2 := p2.Hosts()[0], p2.Hosts()[1], p2.Hosts()[2], p2.Hosts()[3]
	if !a2.Ejected() || c2.Healthy() || b2.InFlight() != 1 {
		t.Fatalf("carried state lost: a ejected %v, c healthy %v, b in flight %d", a2.Ejected(), c2.Healthy(), b2.InFlight())
	}
	if !d2.Available() {
		t.Fatalf("new host d must start available")
	}
	b1.End(observe.ErrNone, 200) // the old pool's attempt ends on the shared state
	if b2.InFlight() != 0 {
		t.Fatalf("b in flight = %d after the old attempt ended", b2.InFlight())
	}

	// A third config without health check or outlier detection clears
	// what they decided.
	p3 := mustPool(t, service("s", "http://a:1", "http://c:1"), p2, rec, clk)
	if !p3.Hosts()[0].Available() || !p3.Hosts()[1].Available() {
		t.Fatalf("without checks every host must be available: %+v", p3.Status())
	}
	if evs := rec.Of(observe.EventHealthChanged); len(evs) != 1 || evs[0].Health.From != observe.HealthUnhealthy || evs[0].Health.To != observe.HealthHealthy ||
		evs[0].Health.Reason != observe.HealthCheckRemoved || evs[0].Upstream != "c:1" {
		t.Fatalf("health events = %+v", evs)
	}
	if evs := rec.Of(observe.EventHostRestored); len(evs) != 1 || evs[0].Upstream != "a:1" || evs[0].Ejection.Reason != observe.EjectionDetectionRemoved {
		t.Fatalf("restored events = %+v", evs)
	}

	// A pool of another service does not share state.
	other := mustPool(t, service("t", "http://c:1"), p2, rec, clk)
	if !other.Hosts()[0].Healthy() || other.Hosts()[0].st == c2.st {
		t.Fatalf("state shared across services")
	}
}

func TestStartStopIdempotent(t *testing.T) {
	// Without a health check Start is a no-op.
	p := mustPool(t, service("s", "http://a:1"), nil, nil, nil)
	p.Start()
	p.Stop()
	p.Stop()

	// With one: Start twice, Stop twice (also concurrently), Start after
	// Stop. goleak in TestMain checks that nothing is left running.
	s := service("s", "http://127.0.0.1:1")
	s.HealthCheck = &config.HealthCheck{Path: "/", Interval: config.Duration(20 * time.Millisecond), Timeout: config.Duration(10 * time.Millisecond)}
	p = mustPool(t, s, nil, nil, nil)
	p.Start()
	p.Start()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(p.Stop)
	}
	wg.Wait()
	p.Start()
	p.Stop()
}

func TestStatusJSON(t *testing.T) {
	clk := clock.NewFake(t0)
	p := mustPool(t, withOutlier(service("s", "http://a:1", "http://b:2"), 1, 1, 10*time.Second, time.Minute), nil, nil, clk)
	attempt(p.Hosts()[0], observe.ErrNone, 503)
	p.Hosts()[1].Begin()
	defer p.Hosts()[1].End(observe.ErrNone, 200)
	b, err := json.Marshal(p.Status())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"service":"s","health_check":false,"outlier_detection":true,"hosts":[` +
		`{"url":"http://a:1","addr":"a:1","weight":1,"available":false,"healthy":true,"ejected":true,"ejected_until":"2026-03-01T12:00:10Z","ejections":1,"in_flight":0,"consecutive_5xx":0,"consecutive_connect_failures":0,"consecutive_check_successes":0,"consecutive_check_failures":0},` +
		`{"url":"http://b:2","addr":"b:2","weight":1,"available":true,"healthy":true,"ejected":false,"ejections":0,"in_flight":1,"consecutive_5xx":0,"consecutive_connect_failures":0,"consecutive_check_successes":0,"consecutive_check_failures":0}]}`
	if string(b) != want {
		t.Fatalf("Status JSON:\n got %s\nwant %s", b, want)
	}
}

func TestHotPathAllocs(t *testing.T) {
	clk := clock.NewFake(t0)
	p := mustPool(t, withOutlier(service("s", "http://a:1", "http://b:1"), 5, 3, time.Second, time.Minute), nil, nil, clk)
	h := p.Hosts()[0]
	if n := testing.AllocsPerRun(1000, func() {
		_ = h.Available()
		h.Begin()
		h.End(observe.ErrNone, 200)
		h.Begin()
		h.End(observe.ErrNone, 503)
		h.Begin()
		h.End(observe.ErrClientCanceled, 0)
	}); n != 0 {
		t.Fatalf("hot path allocates %v times per run", n)
	}
	attempt(p.Hosts()[1], observe.ErrUpstreamConnect, 0)
	attempt(p.Hosts()[1], observe.ErrUpstreamConnect, 0)
	attempt(p.Hosts()[1], observe.ErrUpstreamConnect, 0)
	if !p.Hosts()[1].Ejected() {
		t.Fatal("b not ejected")
	}
	e := p.Hosts()[1]
	if n := testing.AllocsPerRun(1000, func() { _ = e.Available() }); n != 0 {
		t.Fatalf("Available of an ejected host allocates %v times", n)
	}
}

func BenchmarkAvailable(b *testing.B) {
	p, err := NewPool(service("s", "http://a:1"), nil, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	h := p.Hosts()[0]
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Available()
	}
}

func BenchmarkBeginEnd(b *testing.B) {
	p, err := NewPool(withOutlier(service("s", "http://a:1", "http://b:1"), 5, 3, time.Second, time.Minute), nil, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	h := p.Hosts()[0]
	b.ReportAllocs()
	for b.Loop() {
		h.Begin()
		h.End(observe.ErrNone, 200)
	}
}

func TestStartReportsEveryHostsState(t *testing.T) {
	rec := &recorder{}
	clk := clock.NewFake(t0)
	// No health check: Start starts no probes but still reports the hosts.
	p := mustPool(t, withOutlier(service("s", "http://a:1", "http://b:1", "http://c:1"), 3, 3, time.Second, time.Minute), nil, rec, clk)
	p.Hosts()[0].st.healthy.Store(false)                     // unhealthy (as carried over from a previous pool)
	p.Hosts()[1].tryEject(observe.EjectionConsecutive5xx, 3) // c stays available, so b may go
	rec.Reset()
	p.Start()
	p.Start() // once only
	evs := rec.Of(observe.EventHostState)
	if len(evs) != 3 {
		t.Fatalf("%d host_state events: %+v", len(evs), rec.Events())
	}
	got := map[string]string{}
	for _, ev := range evs {
		got[ev.Upstream] = ev.Health.To.String() + "/" + strconv.FormatBool(ev.Health.Ejected)
	}
	if got["a:1"] != "unhealthy/false" || got["b:1"] != "healthy/true" || got["c:1"] != "healthy/false" || evs[0].Service != "s" {
		t.Errorf("states %v", got)
	}
}
