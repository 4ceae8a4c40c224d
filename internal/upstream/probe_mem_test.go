package upstream

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
)

// TestHealthCheckCostsLittlePerPool: a health check adds little to a
// pool's memory, since pools share their probe client through the Checker
// (one http.Transport per pool cost about 1.2 KB each: 12 MB at 10,000
// services).
func TestHealthCheckCostsLittlePerPool(t *testing.T) {
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	const n = 5000
	perPool := map[bool]int64{}
	for _, hc := range []bool{false, true} {
		pools := make([]*Pool, 0, n)
		before := heap()
		for i := range n {
			svc := &config.Service{Name: fmt.Sprintf("s%d", i), Upstreams: []config.Upstream{{URL: "http://127.0.0.1:9"}}}
			if hc {
				svc.HealthCheck = &config.HealthCheck{Interval: config.Duration(time.Hour)}
			}
			p, err := NewPool(svc, nil, nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			pools = append(pools, p)
		}
		perPool[hc] = (int64(heap()) - int64(before)) / n
		runtime.KeepAlive(pools)
	}
	t.Logf("bytes per pool: %d without a health check, %d with", perPool[false], perPool[true])
	if extra := perPool[true] - perPool[false]; extra > 600 {
		t.Fatalf("a health check costs %d B per pool, want well under the 1.2 KB of a transport of its own", extra)
	}
}

func TestPoolsShareProbeClients(t *testing.T) {
	c := NewChecker(clock.NewFake(t0), 0, 1)
	c.Start()
	defer c.Close()
	mk := func(name string, edit func(*config.Service)) *Pool {
		s := withHealth(service(name, "http://127.0.0.1:9"), time.Hour, time.Second, 1, 1)
		if edit != nil {
			edit(s)
		}
		p := mustPool(t, s, nil, nil, clock.NewFake(t0))
		p.StartWith(c)
		t.Cleanup(p.Stop)
		return p
	}
	a := mk("a", nil)
	b := mk("b", nil)
	other := mk("c", func(s *config.Service) { s.Transport.ServerName = "other.test" })
	slow := mk("d", func(s *config.Service) { s.HealthCheck.Timeout = config.Duration(2 * time.Second) })
	if a.probeClient() != b.probeClient() {
		t.Fatal("same settings: probe clients not shared")
	}
	if other.probeClient() == a.probeClient() || slow.probeClient() == a.probeClient() {
		t.Fatal("other server_name or timeout: shares a probe client")
	}
	// Without a Checker a pool builds its own, once.
	lone := mustPool(t, withHealth(service("e", "http://127.0.0.1:9"), time.Hour, time.Second, 1, 1), nil, nil, clock.NewFake(t0))
	if cl := lone.probeClient(); cl == nil || cl != lone.probeClient() || cl == a.probeClient() {
		t.Fatal("a pool without a Checker: want one client of its own")
	}
}
