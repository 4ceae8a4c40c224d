package history_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

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

// BenchmarkGatewayChain is the whole request path (entry, route match,
// split, proxy, transport) to a trivial upstream on loopback, without and
// with the history recording (its rotation running), in the same run.
// cpu-ns/op is the whole process's CPU per request (client, gateway and
// upstream): compare the two variants, not absolutes.
//
//	go test ./internal/history -run XXX -bench GatewayChain -count 6 | benchstat -col /history -
func BenchmarkGatewayChain(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	y := `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: stable, upstreams: [{url: "` + up.URL + `"}]}
  - {name: canary, upstreams: [{url: "` + up.URL + `"}]}
routes:
  - name: items
    match: {path_prefix: /items/}
    split: {services: [{service: stable, weight: 90}, {service: canary, weight: 10}]}
`
	cfg, err := config.Parse("bench.yml", []byte(y), nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, on := range []bool{false, true} {
		name := "history=off"
		if on {
			name = "history=on"
		}
		b.Run(name, func(b *testing.B) {
			opts := gateway.Options{}
			if on {
				h, err := history.New(cfg.History, history.Options{})
				if err != nil {
					b.Fatal(err)
				}
				h.Start()
				defer h.Close()
				opts.Observer, opts.Telemetry = h, middleware.Telemetry{History: h}
			}
			g, err := gateway.New(cfg, opts)
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			hd := g.Handler("public")
			b.ReportAllocs()
			cpu := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest("GET", "/items/42", nil)
				req.RemoteAddr = "127.0.0.1:5555"
				for pb.Next() {
					w := httptest.NewRecorder()
					hd.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
