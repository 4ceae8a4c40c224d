package dashboard_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/dashboard"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/middleware"
)

// BenchmarkLiveSnapshot measures the live stream's work per period: one
// overview of the last minute over every route, service and host of a real
// gateway's history (each route sent one request), encoded as JSON. The
// stream computes it once per second however many dashboards are open, so
// its time per op is the CPU a second of streaming costs (each open
// dashboard adds one write of the bytes reported).
func BenchmarkLiveSnapshot(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			defer up.Close()
			var y strings.Builder
			y.WriteString("listeners: [{name: public, address: \"127.0.0.1:0\"}]\nservices:\n")
			for i := 0; i < n; i++ {
				fmt.Fprintf(&y, "  - {name: s%d, upstreams: [{url: %q}]}\n", i, up.URL)
			}
			y.WriteString("routes:\n")
			for i := 0; i < n; i++ {
				fmt.Fprintf(&y, "  - {name: r%d, match: {path_prefix: /r%d/}, service: s%d}\n", i, i, i)
			}
			cfg, err := config.Parse("gw.yml", []byte(y.String()), nil)
			if err != nil {
				b.Fatal(err)
			}
			h, err := history.New(cfg.History, history.Options{NoMachine: true})
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			g, err := gateway.New(cfg, gateway.Options{Observer: h, Telemetry: middleware.Telemetry{History: h}})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			h.Start()
			pub := httptest.NewServer(g.Handler("public"))
			defer pub.Close()
			for i := 0; i < n; i++ {
				resp, err := pub.Client().Get(fmt.Sprintf("%s/r%d/x", pub.URL, i))
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
			start := time.Now()
			for !h.Latest().After(start.Add(time.Second)) && time.Since(start) < 5*time.Second {
				time.Sleep(50 * time.Millisecond)
			}
			d := dashboard.New(dashboard.Options{History: h.Source()})
			req := httptest.NewRequest("GET", "/api/dashboard/overview?window=1m", nil)
			var size int
			b.ResetTimer()
			cpu0 := processCPU(b)
			for i := 0; i < b.N; i++ {
				w := httptest.NewRecorder()
				d.ServeHTTP(w, req)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
				size = w.Body.Len()
			}
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(size), "bytes/snapshot")
		})
	}
}

// processCPU returns the process's user and system CPU time so far, in
// nanoseconds: the machine is shared, so wall time per op overstates the
// work when other processes take the cores.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
