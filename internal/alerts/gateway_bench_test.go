package alerts_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/alerts"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/middleware"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGatewayWithRules is the whole request path (entry, route
// match, split, proxy, transport, the history's recording with its
// exemplar capture) to a trivial upstream on loopback, with the history
// rotating and an alerts manager evaluating every second in the
// background over that history: with no rules (rules=0) and with 100
// (rules=100: error ratio, request rate, latency and overhead rules over
// every route, windows 10s to 1h, and two SLOs), in the same run.
// Every tenth request fails with a 502, so that the failing-request
// exemplars are captured too. cpu-ns/op is the whole process's CPU per
// request (client, gateway, upstream, history rotation and alert
// evaluation): compare the two variants, not absolutes; allocs/op shows
// that the request path allocates the same with rules loaded.
//
//	go test ./internal/alerts -run XXX -bench GatewayWithRules -benchtime 2s -count 6
func BenchmarkGatewayWithRules(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		if strings.HasSuffix(r.URL.Path, "/0") {
			w.WriteHeader(http.StatusBadGateway)
		}
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	base := `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: stable, upstreams: [{url: "` + up.URL + `"}]}
  - {name: canary, upstreams: [{url: "` + up.URL + `"}]}
routes:
  - name: items
    match: {path_prefix: /items/}
    split: {services: [{service: stable, weight: 90}, {service: canary, weight: 10}]}
  - {name: users, match: {path_prefix: /users/}, service: stable}
  - {name: orders, match: {path_prefix: /orders/}, service: canary}
`
	var rules strings.Builder
	rules.WriteString("alerts:\n  rules:\n")
	metrics := []string{"error_ratio", "request_rate", "latency", "overhead"}
	windows := []string{"10s", "30s", "1m", "5m", "1h"}
	for i := 0; i < 98; i++ {
		fmt.Fprintf(&rules, "    - {name: R%d, scope: route, metric: %s, window: %s, threshold: %d, min_requests: 5}\n", i, metrics[i%4], windows[i%5], 1000+i)
	}
	rules.WriteString("  slos:\n    - {name: items-avail, scope: route, target: items, objective: 0.999, alerts: [page]}\n")
	rules.WriteString("    - {name: users-avail, scope: route, target: users, objective: 0.99, latency: 100ms, alerts: [page]}\n")
	for _, nr := range []int{0, 100} {
		y := base
		if nr > 0 {
			y += rules.String()
		}
		cfg, err := config.Parse("bench.yml", []byte(y), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("rules=%d", nr), func(b *testing.B) {
			h, err := history.New(cfg.History, history.Options{NoMachine: true})
			if err != nil {
				b.Fatal(err)
			}
			h.Start()
			defer h.Close()
			m, err := alerts.New(cfg, alerts.Options{Source: h.Source()})
			if err != nil {
				b.Fatal(err)
			}
			m.Start()
			defer m.Close()
			g, err := gateway.New(cfg, gateway.Options{Observer: h, Telemetry: middleware.Telemetry{History: h}})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			hd := g.Handler("public")
			paths := []string{"/items/1", "/users/1", "/orders/1", "/items/2", "/users/2", "/orders/2", "/items/3", "/users/3", "/orders/3", "/items/0"}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				reqs := make([]*http.Request, len(paths))
				for j, p := range paths {
					reqs[j] = httptest.NewRequest("GET", p, nil)
					reqs[j].RemoteAddr = "127.0.0.1:5555"
				}
				for pb.Next() {
					w := httptest.NewRecorder()
					hd.ServeHTTP(w, reqs[i%len(reqs)])
					i++
				}
			})
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			if nr > 0 && len(m.Rules()) != nr {
				b.Fatalf("%d rules loaded", len(m.Rules()))
			}
		})
	}
}
