package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/memsize"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// TestReloadReleasesOldSnapshotAfterDrain: at 10,000 routes and services
// (2,000 under the race detector),
// the serving and the replaced snapshot coexist only while a request of
// the old one runs; once it ends the old one's memory is released.
func TestReloadReleasesOldSnapshotAfterDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three 10,000-route snapshots")
	}
	release := make(chan struct{})
	held := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/svc1/hold" {
			held <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	n := 10000
	if raceEnabled {
		n = 2000
	}
	parseN := func() *config.Config {
		cfg, err := config.Parse("estate.yml", []byte(estateYAML(n, up.URL, "")+"shutdown_grace: 30s\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	f := newFixture(t, parseN(), Options{})
	if resp, _ := f.get("/svc5/x"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	before := memsize.LiveHeap()

	// A request holds the first snapshot while a reload replaces it.
	done := make(chan int, 1)
	go func() {
		resp, err := http.Get(f.front.URL + "/svc1/hold")
		if err != nil {
			done <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-held
	if err := f.g.Reload(parseN(), observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	during := memsize.LiveHeap()
	close(release)
	if code := <-done; code != 200 {
		t.Fatalf("the request across the reload got %d", code)
	}
	// The old snapshot retires once its request ended (polled every 50ms).
	var after uint64
	for i := 0; i < 100; i++ {
		time.Sleep(60 * time.Millisecond)
		if after = memsize.LiveHeap(); after < before+(during-before)/2 {
			break
		}
	}
	t.Logf("heap: before %.1f MB, during the drain %.1f MB, after %.1f MB", mb(before), mb(during), mb(after))
	if during <= before {
		t.Fatalf("during the drain the heap (%.1f MB) did not hold two snapshots (before %.1f MB)", mb(during), mb(before))
	}
	if after >= before+(during-before)/2 {
		t.Fatalf("after the drain the heap is %.1f MB: more than half the old snapshot (%.1f MB) is still held", mb(after), mb(during-before))
	}
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

// BenchmarkReloadEstate is a reload of a config of n routes and services
// (already parsed: config.Parse has its own benchmark), with no request in
// flight. cpu-ms/op is the process's CPU time per reload, the retiring of
// the old snapshot's health checks and pools included.
func BenchmarkReloadEstate(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			defer up.Close()
			data := []byte(estateYAML(n, up.URL, ""))
			cfgs := make([]*config.Config, 2)
			for i := range cfgs {
				cfg, err := config.Parse("estate.yml", data, nil)
				if err != nil {
					b.Fatal(err)
				}
				cfgs[i] = cfg
			}
			g, err := New(cfgs[0], Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			b.ReportAllocs()
			start := cpuTime()
			i := 0
			for b.Loop() {
				i++
				if err := g.Reload(cfgs[i%2], observe.SourceAPI); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime returns the CPU time (user + system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
