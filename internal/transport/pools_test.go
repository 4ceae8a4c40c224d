package transport

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// newPoolsTransport builds a transport of ps closed at the end of the test.
func newPoolsTransport(tb testing.TB, ps *Pools, cfg config.Transport) *Transport {
	tb.Helper()
	tr, err := ps.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tr.Close() })
	return tr
}

func TestPoolsShareIdleConnectionsBySettings(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	ps := NewPools(Options{})
	a := newPoolsTransport(t, ps, testConfig())
	b := newPoolsTransport(t, ps, testConfig())
	for i := range 10 {
		tr := a
		if i%2 == 1 {
			tr = b
		}
		if code, body := get(t, tr, srv.URL+"/x"); code != 200 || body != "/x" {
			t.Fatalf("got %d %q", code, body)
		}
	}
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("two transports with the same settings: %d connections, want 1 shared", n)
	}
	// TLS and protocol settings do not apply to http://: still shared.
	tlsOnly := testConfig()
	tlsOnly.ServerName, tlsOnly.Protocol = "other.example", config.ProtocolHTTP2
	c := newPoolsTransport(t, ps, tlsOnly)
	get(t, c, srv.URL)
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("TLS settings only: %d connections, want 1", n)
	}
	// Another idle timeout is another pool.
	other := testConfig()
	other.IdleConnTimeout = config.Duration(time.Minute)
	d := newPoolsTransport(t, ps, other)
	get(t, d, srv.URL)
	if n := srv.conns.Load(); n != 2 {
		t.Fatalf("other settings: %d connections, want 2", n)
	}
	if st := ps.Stats(); st.Clients != 2 || st.Addresses != 2 || st.Open != 2 || st.Idle != 2 {
		t.Fatalf("stats %+v, want 2 clients, 2 addresses, 2 open, 2 idle", st)
	}
	// A transport of other Pools shares nothing.
	e := newTestTransport(t, testConfig(), Options{})
	get(t, e, srv.URL)
	if n := srv.conns.Load(); n != 3 {
		t.Fatalf("other Pools: %d connections, want 3", n)
	}
}

func TestPoolsIdleCapIsShared(t *testing.T) {
	release := make(chan struct{})
	var arrived sync.WaitGroup
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-release
	}))
	cfg := testConfig()
	cfg.MaxIdleConnsPerHost = 3
	ps := NewPools(Options{})
	trs := []*Transport{newPoolsTransport(t, ps, cfg), newPoolsTransport(t, ps, cfg)}
	arrived.Add(6)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", srv.URL, nil)
			if resp, err := trs[i%2].RoundTrip(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	arrived.Wait()
	close(release)
	wg.Wait()
	if st := ps.Stats(); st.Idle != 3 || st.Open != 3 {
		t.Fatalf("stats %+v, want 3 idle and 3 open: max_idle_conns_per_host caps the shared pool", st)
	}
}

// TestPoolsMaxConnsPerHostIsPerTransport: a service at its cap waits, while
// another service sharing the pool is not held back by it.
func TestPoolsMaxConnsPerHostIsPerTransport(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan string, 4)
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		if r.URL.Path == "/hold" {
			<-release
		}
		io.WriteString(w, r.URL.Path)
	}))
	cfg := testConfig()
	cfg.MaxConnsPerHost = 1
	ps := NewPools(Options{})
	a := newPoolsTransport(t, ps, cfg)
	b := newPoolsTransport(t, ps, cfg)

	first := make(chan string)
	go func() {
		_, body := get(t, a, srv.URL+"/hold")
		first <- body
	}()
	<-arrived

	// b has a slot of its own.
	if code, body := get(t, b, srv.URL+"/b"); code != 200 || body != "/b" {
		t.Fatalf("b: %d %q", code, body)
	}
	<-arrived
	// a is at its cap even though b left a connection idle.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/late", nil)
	_, err := a.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) || classify(err) != observe.ErrUpstreamTimeout {
		t.Fatalf("a past its cap: %v (%v)", err, classify(err))
	}
	second := make(chan string)
	go func() {
		_, body := get(t, a, srv.URL+"/second")
		second <- body
	}()
	hl := a.lim.host(hostOf(srv.URL))
	waitFor(t, func() bool { hl.mu.Lock(); defer hl.mu.Unlock(); return len(hl.waiters) == 1 })
	close(release)
	if b := <-first; b != "/hold" {
		t.Fatalf("first: %q", b)
	}
	if b := <-second; b != "/second" {
		t.Fatalf("second: %q", b)
	}
	<-arrived
	if n := srv.conns.Load(); n != 2 {
		t.Fatalf("server accepted %d connections, want 2", n)
	}
	for _, tr := range []*Transport{a, b} {
		hl := tr.lim.host(hostOf(srv.URL))
		hl.mu.Lock()
		busy := hl.busy
		hl.mu.Unlock()
		if busy != 0 {
			t.Fatalf("%d slots held after every exchange ended", busy)
		}
	}
}

func TestPoolsCloseReleasesShare(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	ps := NewPools(Options{})
	a, err := ps.New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ps.New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	get(t, a, srv.URL)
	a.Close()
	a.Close() // idempotent: b's share stays
	get(t, b, srv.URL)
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("after the first Close: %d connections, want the shared one reused", n)
	}
	if st := ps.Stats(); st.Idle != 1 {
		t.Fatalf("stats %+v, want 1 idle", st)
	}
	// A reload's new transport takes over before the old one goes.
	c, err := ps.New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	get(t, c, srv.URL)
	if n := srv.conns.Load(); n != 1 {
		t.Fatalf("after hand-over: %d connections, want 1", n)
	}
	c.Close()
	if st := ps.Stats(); st != (PoolStats{}) {
		t.Fatalf("stats %+v after the last Close, want nothing", st)
	}
	// A closed transport still works, without pooling.
	get(t, c, srv.URL)
	if n := srv.conns.Load(); n != 2 {
		t.Fatalf("after the last Close: %d connections, want 2", n)
	}
	if st := ps.Stats(); st != (PoolStats{}) {
		t.Fatalf("stats %+v after a closed transport's request, want nothing", st)
	}
}

// TestPoolsConcurrentShare runs bounded traffic through several transports
// of one Pools, capped and not, while others are built and closed (run it
// with -race): every slot and connection must be accounted for at the end.
func TestPoolsConcurrentShare(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	ps := NewPools(Options{})
	capped := testConfig()
	capped.MaxConnsPerHost = 2
	trs := []*Transport{newPoolsTransport(t, ps, testConfig()), newPoolsTransport(t, ps, capped), newPoolsTransport(t, ps, capped)}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				tr := trs[(g+i)%len(trs)]
				if i%10 == 9 { // a transport that comes and goes
					x, err := ps.New(testConfig())
					if err != nil {
						t.Error(err)
						return
					}
					tr = x
					defer x.Close()
				}
				req, _ := http.NewRequest("GET", srv.URL, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Error(err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	st := ps.Stats()
	if st.Open != st.Idle || st.Open == 0 {
		t.Fatalf("stats %+v: every open connection should be idle", st)
	}
	for _, tr := range trs[1:] {
		hl := tr.lim.host(hostOf(srv.URL))
		hl.mu.Lock()
		busy, waiting := hl.busy, len(hl.waiters)
		hl.mu.Unlock()
		if busy != 0 || waiting != 0 {
			t.Fatalf("%d slots held, %d waiting after every exchange ended", busy, waiting)
		}
	}
}

func TestPoolsShareStdAndH2C(t *testing.T) {
	ps := NewPools(Options{})
	a := newPoolsTransport(t, ps, testConfig())
	b := newPoolsTransport(t, ps, testConfig())
	if a.std != b.std || a.h2c != b.h2c || a.h1 != b.h1 {
		t.Fatal("same settings: the clients are not shared")
	}
	tlsCfg := testConfig()
	tlsCfg.ServerName = "other.example"
	c := newPoolsTransport(t, ps, tlsCfg)
	if c.std == a.std || c.h2c != a.h2c || c.h1 != a.h1 {
		t.Fatal("other TLS settings: want its own https client, the same h2c and http clients")
	}
	capped := testConfig()
	capped.MaxConnsPerHost = 3
	d := newPoolsTransport(t, ps, capped)
	e := newPoolsTransport(t, ps, capped)
	if d.std == e.std || d.stdE != nil || d.std.MaxConnsPerHost != 3 {
		t.Fatal("max_conns_per_host: want an https client of its own, with the cap")
	}
	if d.h1 != e.h1 || d.lim == e.lim {
		t.Fatal("max_conns_per_host: want the shared http pool with a limit of its own")
	}
	bad := testConfig()
	bad.CAFile = "/nonexistent/ca.pem"
	if _, err := ps.New(bad); err == nil {
		t.Fatal("unreadable ca_file accepted")
	}
	if st := ps.Stats(); st.Clients != 1 {
		t.Fatalf("stats %+v after a failed New, want 1 client", st)
	}
}
