package balancer

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/upstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is a pool whose hosts can be ejected and restored at will: every
// connect failure ejects (when another host is available) for one minute of
// the fake clock.
type fixture struct {
	pool *upstream.Pool
	clk  *clock.Fake
	byID map[string]*upstream.Host
}

// newFixture builds a pool from specs "name" or "name:weight"; host "a" has
// the URL http://a and Addr "a:80".
func newFixture(t testing.TB, specs ...string) *fixture {
	t.Helper()
	svc := &config.Service{
		Name: "svc",
		OutlierDetection: &config.OutlierDetection{
			Consecutive5xx:             1,
			ConsecutiveConnectFailures: 1,
			BaseEjectionTime:           config.Duration(time.Minute),
			MaxEjectionTime:            config.Duration(time.Minute),
		},
	}
	for _, s := range specs {
		name, w, found := strings.Cut(s, ":")
		u := config.Upstream{URL: "http://" + name}
		if found {
			n, err := strconv.Atoi(w)
			if err != nil {
				t.Fatalf("bad spec %q", s)
			}
			u.Weight = &n
		}
		svc.Upstreams = append(svc.Upstreams, u)
	}
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	p, err := upstream.NewPool(svc, nil, nil, clk, nil)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	f := &fixture{pool: p, clk: clk, byID: map[string]*upstream.Host{}}
	for _, h := range p.Hosts() {
		f.byID[h.URL.Hostname()] = h
	}
	return f
}

func (f *fixture) host(id string) *upstream.Host { return f.byID[id] }

// eject ejects host id through passive outlier detection.
func (f *fixture) eject(t testing.TB, id string) {
	t.Helper()
	h := f.host(id)
	h.Begin()
	h.End(observe.ErrUpstreamConnect, 0)
	if !h.Ejected() {
		t.Fatalf("host %s was not ejected", id)
	}
}

// restoreAll ends every ejection.
func (f *fixture) restoreAll() { f.clk.Advance(time.Minute) }

func (f *fixture) picker(t testing.TB, lb config.LoadBalancing) Picker {
	t.Helper()
	p, err := New(lb, f.pool)
	if err != nil {
		t.Fatalf("New(%+v): %v", lb, err)
	}
	return p
}

// picks returns the ids of n picks as one string ("aabacaa").
func picks(t testing.TB, p Picker, r *http.Request, exclude *upstream.Host, n int) string {
	t.Helper()
	var b strings.Builder
	for range n {
		h, err := p.Pick(r, exclude)
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		b.WriteString(h.URL.Hostname())
	}
	return b.String()
}

func req() *http.Request { return httptest.NewRequest(http.MethodGet, "/", nil) }

var rr = config.LoadBalancing{Policy: config.PolicyRoundRobin}

func TestNewErrors(t *testing.T) {
	f := newFixture(t, "a")
	tests := []struct {
		name string
		lb   config.LoadBalancing
		pool *upstream.Pool
	}{
		{"nil pool", rr, nil},
		{"unknown policy", config.LoadBalancing{Policy: "random"}, f.pool},
		{"hash without key", config.LoadBalancing{Policy: config.PolicyHash}, f.pool},
		{"hash with two keys", config.LoadBalancing{Policy: config.PolicyHash, Hash: &config.HashKey{Header: "X", ClientIP: true}}, f.pool},
		{"hash with no key set", config.LoadBalancing{Policy: config.PolicyHash, Hash: &config.HashKey{}}, f.pool},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.lb, tt.pool); err == nil {
				t.Fatal("New succeeded, want an error")
			}
		})
	}
}

func TestRoundRobinSequences(t *testing.T) {
	tests := []struct {
		hosts []string
		want  string
	}{
		{[]string{"a:5", "b:1", "c:1"}, "aabacaa" + "aabacaa"}, // nginx's sequence
		{[]string{"a", "b", "c"}, "abcabc"},
		{[]string{"a:2", "b:1"}, "aba" + "aba"},
		{[]string{"a:3", "b:2"}, "ababa" + "ababa"},
		{[]string{"a:1", "b:0", "c:1"}, "acac"}, // weight 0 is out of rotation
		{[]string{"a:0", "b:4"}, "bbbb"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.hosts, ","), func(t *testing.T) {
			f := newFixture(t, tt.hosts...)
			if got := picks(t, f.picker(t, rr), req(), nil, len(tt.want)); got != tt.want {
				t.Fatalf("picks = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRoundRobinSkipsUnavailable(t *testing.T) {
	f := newFixture(t, "a:5", "b:1", "c:1")
	p := f.picker(t, rr)
	if got := picks(t, p, req(), nil, 7); got != "aabacaa" {
		t.Fatalf("all up: %s", got)
	}
	f.eject(t, "b")
	if got := picks(t, p, req(), nil, 12); got != "aaacaa"+"aaacaa" {
		t.Fatalf("b ejected: %s, want a 5:1 cycle of a and c", got)
	}
	f.restoreAll()
	if got := picks(t, p, req(), nil, 7); got != "aabacaa" {
		t.Fatalf("b back: %s, want the original cycle", got)
	}
	// Ejected mid-cycle: the others keep their order, b resumes after.
	if got := picks(t, p, req(), nil, 2); got != "aa" {
		t.Fatalf("start of cycle: %s", got)
	}
	f.eject(t, "c")
	if got := picks(t, p, req(), nil, 4); got != "baaa" {
		t.Fatalf("c ejected mid-cycle: %s, want baaa", got)
	}
}

func TestExclude(t *testing.T) {
	for _, policy := range []string{config.PolicyRoundRobin, config.PolicyLeastRequest, config.PolicyHash} {
		t.Run(policy, func(t *testing.T) {
			f := newFixture(t, "a:5", "b:1", "c:1")
			lb := config.LoadBalancing{Policy: policy}
			if policy == config.PolicyHash {
				lb.Hash = &config.HashKey{Header: "X-Key"}
			}
			p := f.picker(t, lb)
			r := req()
			for i := range 50 {
				r.Header.Set("X-Key", "k"+strconv.Itoa(i))
				h, err := p.Pick(r, f.host("a"))
				if err != nil || h == f.host("a") {
					t.Fatalf("Pick excluding a = %v, %v", h, err)
				}
			}
			// The excluded host is returned when it is the only one left.
			f.eject(t, "b")
			f.eject(t, "c")
			for i := range 10 {
				r.Header.Set("X-Key", "k"+strconv.Itoa(i))
				if h, err := p.Pick(r, f.host("a")); err != nil || h != f.host("a") {
					t.Fatalf("Pick with only the excluded host available = %v, %v", h, err)
				}
			}
		})
	}
}

func TestNoHealthyUpstream(t *testing.T) {
	for _, policy := range []string{config.PolicyRoundRobin, config.PolicyLeastRequest, config.PolicyHash} {
		t.Run(policy, func(t *testing.T) {
			lb := config.LoadBalancing{Policy: policy}
			if policy == config.PolicyHash {
				lb.Hash = &config.HashKey{Header: "X-Key"}
			}
			// Only weight 0: nothing to pick.
			f := newFixture(t, "a:0", "b:0")
			r := req()
			r.Header.Set("X-Key", "k")
			if h, err := f.picker(t, lb).Pick(r, nil); !errors.Is(err, ErrNoHealthyUpstream) || h != nil {
				t.Fatalf("weight 0 only: Pick = %v, %v", h, err)
			}
			// Every host unhealthy by active health checks.
			svc := &config.Service{Name: "dead", Upstreams: []config.Upstream{{URL: "http://127.0.0.1:1"}, {URL: "http://127.0.0.1:2"}},
				HealthCheck: &config.HealthCheck{Path: "/", Interval: config.Duration(20 * time.Millisecond), Timeout: config.Duration(10 * time.Millisecond),
					HealthyThreshold: 1, UnhealthyThreshold: 1, ExpectedStatus: []string{"2xx"}}}
			pool, err := upstream.NewPool(svc, nil, nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			pool.Start()
			defer pool.Stop()
			p, err := New(lb, pool)
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for pool.Hosts()[0].Healthy() || pool.Hosts()[1].Healthy() {
				if time.Now().After(deadline) {
					t.Fatal("hosts on closed ports did not turn unhealthy")
				}
				time.Sleep(5 * time.Millisecond)
			}
			for _, ex := range []*upstream.Host{nil, pool.Hosts()[0]} {
				if h, err := p.Pick(r, ex); !errors.Is(err, ErrNoHealthyUpstream) || h != nil {
					t.Fatalf("all unhealthy (exclude %v): Pick = %v, %v", ex, h, err)
				}
			}
		})
	}
}

func TestRoundRobinConcurrentShares(t *testing.T) {
	f := newFixture(t, "a:5", "b:1", "c:1")
	p := f.picker(t, rr)
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			local := map[string]int{}
			for range 700 {
				h, err := p.Pick(nil, nil)
				if err != nil {
					t.Error(err)
					return
				}
				local[h.URL.Hostname()]++
			}
			mu.Lock()
			for k, v := range local {
				counts[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	// 2800 picks are 400 whole cycles of 7, whatever the interleaving.
	if counts["a"] != 2000 || counts["b"] != 400 || counts["c"] != 400 {
		t.Fatalf("counts = %v, want a:2000 b:400 c:400", counts)
	}
}

func TestPickAllocs(t *testing.T) {
	f := newFixture(t, "a:3", "b:1", "c:1", "d:2")
	r := req()
	r.Header.Set("X-User", "alice")
	r.Header.Set("Cookie", "theme=dark; session=\"s-123\"; lang=en")
	r.RemoteAddr = "192.0.2.7:51234"
	rec := observe.GetRecord()
	defer observe.PutRecord(rec)
	rec.ClientAddr = "198.51.100.9"
	withRec := r.WithContext(observe.NewContext(r.Context(), rec))
	tests := []struct {
		name string
		lb   config.LoadBalancing
		r    *http.Request
	}{
		{"round_robin", rr, r},
		{"least_request", config.LoadBalancing{Policy: config.PolicyLeastRequest}, r},
		{"hash_header", config.LoadBalancing{Policy: config.PolicyHash, Hash: &config.HashKey{Header: "x-user"}}, r},
		{"hash_cookie", config.LoadBalancing{Policy: config.PolicyHash, Hash: &config.HashKey{Cookie: "session"}}, r},
		{"hash_client_ip_remote", config.LoadBalancing{Policy: config.PolicyHash, Hash: &config.HashKey{ClientIP: true}}, r},
		{"hash_client_ip_record", config.LoadBalancing{Policy: config.PolicyHash, Hash: &config.HashKey{ClientIP: true}}, withRec},
		{"hash_fallback", config.LoadBalancing{Policy: config.PolicyHash, Hash: &config.HashKey{Header: "x-missing"}}, r},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := f.picker(t, tt.lb)
			if n := testing.AllocsPerRun(1000, func() {
				if _, err := p.Pick(tt.r, f.host("a")); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Fatalf("Pick allocates %v times", n)
			}
		})
	}
}

// BenchmarkPick measures one pick over 8 available hosts.
func BenchmarkPick(b *testing.B) {
	f := newFixture(b, "h0:3", "h1", "h2", "h3:2", "h4", "h5", "h6", "h7:5")
	r := req()
	r.Header.Set("X-User", "alice")
	r.Header.Set("Cookie", "theme=dark; session=s-123")
	benches := []struct {
		name string
		lb   config.LoadBalancing
	}{
		{"round_robin", rr},
		{"least_request", config.LoadBalancing{Policy: config.PolicyLeastRequest}},
		{"hash_header", config.LoadBalancing{Policy: config.PolicyHash, Hash: &config.HashKey{Header: "X-User"}}},
		{"hash_cookie", config.LoadBalancing{Policy: config.PolicyHash, Hash: &config.HashKey{Cookie: "session"}}},
	}
	for _, bb := range benches {
		p := f.picker(b, bb.lb)
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = p.Pick(r, nil)
			}
		})
		b.Run(bb.name+"_parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, _ = p.Pick(r, nil)
				}
			})
		})
	}
}

// BenchmarkPickHosts measures each policy's pick at 10, 100 and 1,000 hosts
// of equal weight, all available: a policy whose cost grows with the host
// count shows it here.
func BenchmarkPickHosts(b *testing.B) {
	r := req()
	r.Header.Set("X-User", "alice")
	policies := []struct {
		name string
		lb   config.LoadBalancing
	}{
		{"round_robin", rr},
		{"least_request", config.LoadBalancing{Policy: config.PolicyLeastRequest}},
		{"hash_header", config.LoadBalancing{Policy: config.PolicyHash, Hash: &config.HashKey{Header: "X-User"}}},
	}
	for _, n := range []int{10, 100, 1000} {
		specs := make([]string, n)
		for i := range specs {
			specs[i] = "h" + strconv.Itoa(i)
		}
		f := newFixture(b, specs...)
		for _, pol := range policies {
			p := f.picker(b, pol.lb)
			b.Run(pol.name+"/hosts="+strconv.Itoa(n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					_, _ = p.Pick(r, nil)
				}
			})
		}
	}
}
