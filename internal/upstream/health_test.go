package upstream

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// statusServer answers every request with the status in code.
func statusServer(t *testing.T, code *atomic.Int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(code.Load()))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func withHealth(s *config.Service, interval, timeout time.Duration, healthy, unhealthy int, expected ...string) *config.Service {
	s.HealthCheck = &config.HealthCheck{
		Path:               "/healthz",
		Interval:           config.Duration(interval),
		Timeout:            config.Duration(timeout),
		HealthyThreshold:   healthy,
		UnhealthyThreshold: unhealthy,
		ExpectedStatus:     expected,
	}
	return s
}

// probeOnce runs one probe of host i synchronously.
func probeOnce(p *Pool, i int) {
	h := p.Hosts()[i]
	p.probe(context.Background(), h, probeURL(h, p.hc.path))
}

func TestProbeExpectedStatus(t *testing.T) {
	var code atomic.Int64
	srv := statusServer(t, &code)
	tests := []struct {
		expected []string
		status   int
		ok       bool
	}{
		{nil, 200, true}, // default 2xx
		{nil, 299, true},
		{nil, 301, false}, // redirects are not followed
		{nil, 503, false},
		{[]string{"204"}, 204, true},
		{[]string{"204"}, 200, false},
		{[]string{"2xx", "3xx"}, 302, true},
		{[]string{"200", "5xx"}, 503, true},
		{[]string{"200", "5xx"}, 404, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.expected, ",")+"/"+http.StatusText(tt.status), func(t *testing.T) {
			code.Store(int64(tt.status))
			p := mustPool(t, withHealth(service("s", srv.URL), time.Hour, time.Second, 1, 1, tt.expected...), nil, nil, clock.NewFake(t0))
			probeOnce(p, 0)
			st := p.Status().Hosts[0]
			if st.Healthy != tt.ok {
				t.Fatalf("healthy = %v after status %d, want %v (%+v)", st.Healthy, tt.status, tt.ok, st)
			}
			if want := "status " + strconv.Itoa(tt.status); st.LastCheckResult != want {
				t.Fatalf("LastCheckResult = %q, want %q", st.LastCheckResult, want)
			}
			if st.LastCheck == nil || !st.LastCheck.Equal(t0) {
				t.Fatalf("LastCheck = %v, want %v", st.LastCheck, t0)
			}
			if (st.LastCheckError == "") != tt.ok {
				t.Fatalf("LastCheckError = %q", st.LastCheckError)
			}
		})
	}
}

func TestProbeThresholds(t *testing.T) {
	var code atomic.Int64
	srv := statusServer(t, &code)
	rec := &recorder{}
	p := mustPool(t, withHealth(service("s", srv.URL), time.Hour, time.Second, 2, 3), nil, rec, clock.NewFake(t0))
	h := p.Hosts()[0]
	steps := []struct {
		status      int
		wantHealthy bool
	}{
		{503, true}, {503, true}, {200, true}, // a success restarts the failure count
		{503, true}, {503, true}, {503, false}, // third consecutive failure
		{503, false}, {200, false}, {503, false}, // a failure restarts the success count
		{200, false}, {200, true}, // second consecutive success
		{200, true},
	}
	for i, s := range steps {
		code.Store(int64(s.status))
		probeOnce(p, 0)
		if h.Healthy() != s.wantHealthy || h.Available() != s.wantHealthy {
			t.Fatalf("step %d (status %d): healthy %v, want %v", i, s.status, h.Healthy(), s.wantHealthy)
		}
	}
	evs := rec.Of(observe.EventHealthChanged)
	if len(evs) != 2 {
		t.Fatalf("%d health events, want 2: %+v", len(evs), evs)
	}
	if e := evs[0]; e.Health != (observe.HealthChange{From: observe.HealthHealthy, To: observe.HealthUnhealthy, Reason: observe.HealthStatus, Status: 503}) || e.Detail != "status 503" || e.Err == nil || e.Service != "s" || e.Upstream != h.Addr {
		t.Fatalf("first event = %+v", e)
	}
	if e := evs[1]; e.Health != (observe.HealthChange{From: observe.HealthUnhealthy, To: observe.HealthHealthy, Reason: observe.HealthStatus, Status: 200}) || e.Err != nil {
		t.Fatalf("second event = %+v", e)
	}
}

func TestProbeRequest(t *testing.T) {
	got := make(chan *http.Request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r
	}))
	defer srv.Close()
	u := strings.Replace(srv.URL, "http://", "h2c://", 1) // h2c hosts are probed with HTTP/1.1
	s := withHealth(service("s", u), time.Hour, time.Second, 1, 1)
	s.HealthCheck.Host = "health.internal"
	p := mustPool(t, s, nil, nil, clock.NewFake(t0))
	probeOnce(p, 0)
	r := <-got
	if r.Method != http.MethodGet || r.URL.Path != "/healthz" || r.Host != "health.internal" || r.UserAgent() != "vantage-health-check" {
		t.Fatalf("probe = %s %s Host=%q UA=%q", r.Method, r.URL.Path, r.Host, r.UserAgent())
	}
	if !p.Hosts()[0].Healthy() {
		t.Fatalf("host not healthy after a 200")
	}
}

func TestProbeFailureReasons(t *testing.T) {
	t.Run("connect refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.254:0") // an IP no test server binds
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		p := mustPool(t, withHealth(service("s", "http://"+addr), time.Hour, time.Second, 1, 1), nil, nil, clock.NewFake(t0))
		probeOnce(p, 0)
		if st := p.Status().Hosts[0]; st.Healthy || st.LastCheckResult != "connect refused" || st.LastCheckError == "" {
			t.Fatalf("status = %+v", st)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}))
		defer srv.Close()
		p := mustPool(t, withHealth(service("s", srv.URL), time.Hour, 50*time.Millisecond, 1, 1), nil, nil, clock.NewFake(t0))
		probeOnce(p, 0)
		if st := p.Status().Hosts[0]; st.Healthy || st.LastCheckResult != "timeout" {
			t.Fatalf("status = %+v", st)
		}
	})
	t.Run("reset", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			panic(http.ErrAbortHandler) // closes the connection without a response
		}))
		defer srv.Close()
		p := mustPool(t, withHealth(service("s", srv.URL), time.Hour, time.Second, 1, 1), nil, nil, clock.NewFake(t0))
		probeOnce(p, 0)
		if st := p.Status().Hosts[0]; st.Healthy || st.LastCheckResult != "connection reset" {
			t.Fatalf("status = %+v", st)
		}
	})
}

// TestActiveChecksFollowAKilledHost runs the real checker: a host whose
// server is closed becomes unhealthy, and healthy again when a server listens
// on its address again.
func TestActiveChecksFollowAKilledHost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewUnstartedServer(handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer func() { srv.Close() }()

	rec := &recorder{}
	s := withHealth(service("s", "http://"+addr, "http://127.0.0.1:1"), 20*time.Millisecond, 15*time.Millisecond, 2, 2)
	p := mustPool(t, s, nil, rec, nil)
	h := p.Hosts()[0]
	p.Start()
	defer p.Stop()

	waitFor(t, "a first successful probe", func() bool {
		st := p.Status().Hosts[0]
		return st.LastCheck != nil && st.LastCheckResult == "status 204"
	})
	waitFor(t, "the dead second host to turn unhealthy", func() bool { return !p.Hosts()[1].Healthy() })
	if !h.Healthy() {
		t.Fatalf("host unhealthy while its server is up")
	}

	srv.Close()
	waitFor(t, "the killed host to turn unhealthy", func() bool { return !h.Healthy() })
	if h.Available() {
		t.Fatalf("an unhealthy host is available")
	}

	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s was taken by someone else before it could be reused: %v", addr, err)
	}
	srv = httptest.NewUnstartedServer(handler)
	srv.Listener.Close()
	srv.Listener = ln2
	srv.Start()
	waitFor(t, "the restarted host to turn healthy", func() bool { return h.Healthy() })

	var mine []observe.Event
	for _, ev := range rec.Of(observe.EventHealthChanged) {
		if ev.Upstream == addr {
			mine = append(mine, ev)
		}
	}
	if len(mine) != 2 || mine[0].Health.To != observe.HealthUnhealthy || mine[0].Health.Reason != observe.HealthConnectRefused ||
		mine[1].Health.To != observe.HealthHealthy || mine[1].Health.Reason != observe.HealthStatus || mine[1].Health.Status != 204 {
		t.Fatalf("health events for %s = %+v", addr, mine)
	}
	p.Stop()
	p.Stop()
}

// waitFor polls cond until it holds, failing the test after 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
