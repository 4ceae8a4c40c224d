package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
)

// cannedUpstream is a minimal keep-alive HTTP/1.1 server that answers every
// request (a proxied GET, or an OTLP export POST) with the same small
// response, so that nearly all the CPU a benchmark measures is the gateway's
// and its telemetry's.
func cannedUpstream(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
	var wg sync.WaitGroup
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	go func() { <-time.After(time.Hour); ln.Close() }() // bounded lifetime
	return ln.Addr().String()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkOverhead measures the whole process's CPU per request (client,
// gateway, canned upstream) with each telemetry signal and the traffic
// controls switched on alone, against the plain gateway. Run it with -count
// and compare with benchstat: the sub-benchmarks of one count run back to
// back, so machine noise hits them alike.
//
//	go test ./cmd/vantage -run XXX -bench Overhead -count 8 | benchstat -col /variant -
func BenchmarkOverhead(b *testing.B) {
	up := cannedUpstream(b)
	base := fmt.Sprintf(`
listeners: [{name: bench, address: "127.0.0.1:0"}]
admin: {address: "off"}
services:
  - name: upstream
    upstreams: [{url: "http://%s"}]
%%s
routes:
  - name: all
    match: {path_prefix: /}
    service: upstream
%%s
`, up)
	tracing := func(ratio string) string {
		return fmt.Sprintf("tracing: {enabled: true, response_header: traceresponse, sampling: {ratio: %s}, exporters: [{type: otlp_http, endpoint: \"http://%s\"}]}\n", ratio, up)
	}
	// The trace store is off except where a variant turns it on, so that
	// each signal is measured alone.
	off := "access_log: {enabled: false}\nmetrics: {enabled: false}\ntracing: {enabled: false}\ntrace_store: {enabled: false}\n"
	noStore := "trace_store: {enabled: false}\n"
	logFile := filepath.Join(b.TempDir(), "access.log")
	variants := []struct{ name, service, route, top string }{
		{"plain", "", "", off},
		{"controls", "    circuit_breaker: {consecutive_failures: 50, error_ratio: 0.9}",
			"    rate_limit: {rate: 1000000, burst: 1000000, key: {client_ip: true}, max_in_flight: 100000}\n    retry: {attempts: 2}\n    fault: {abort: {status: 503, percent: 0}}",
			off},
		{"tracing1", "", "", "access_log: {enabled: false}\nmetrics: {enabled: false}\n" + noStore + tracing("0.01")},
		{"tracing100", "", "", "access_log: {enabled: false}\nmetrics: {enabled: false}\n" + noStore + tracing("1.0")},
		// tracing100 with the trace store on: the store's cost at 100%.
		{"tracing100-store", "", "", "access_log: {enabled: false}\nmetrics: {enabled: false}\n" + tracing("1.0")},
		{"metrics", "", "", "access_log: {enabled: false}\nmetrics: {enabled: true, host: {enabled: false}}\ntracing: {enabled: false}\n" + noStore},
		{"accesslog", "", "", "access_log: {enabled: true, output: file, file: {path: \"" + logFile + "\"}}\nmetrics: {enabled: false}\ntracing: {enabled: false}\n" + noStore},
		// Every signal on at 100%, with the trace store off and on (it then
		// also keeps the access-log records).
		{"all100", "", "", "access_log: {enabled: true, output: file, file: {path: \"" + logFile + "\"}}\nmetrics: {enabled: true, host: {enabled: false}}\n" + noStore + tracing("1.0")},
		{"all100-store", "", "", "access_log: {enabled: true, output: file, file: {path: \"" + logFile + "\"}}\nmetrics: {enabled: true, host: {enabled: false}}\n" + tracing("1.0")},
		// plain again, last: how much of a difference is only the order.
		{"plain-last", "", "", off},
	}
	for _, v := range variants {
		cfg, err := config.Parse("bench.yml", []byte(fmt.Sprintf(base, v.service, v.route)+v.top), nil)
		if err != nil {
			b.Fatalf("%s: %v", v.name, err)
		}
		b.Run("variant="+v.name, func(b *testing.B) {
			logger := slog.New(slog.DiscardHandler)
			if _, set := os.LookupEnv("GOGC"); !set {
				applyRuntime(cfg.Runtime, logger) // as serve does; GOGC in the environment wins there too
			}
			tel, err := buildTelemetry(cfg, logger, io.Discard, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			defer tel.shutdown()
			g, err := gateway.New(cfg, gateway.Options{Logger: logger, Observer: tel.observer, Telemetry: tel.stages, WrapTransport: tel.wrapTransport})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			front := httptest.NewServer(g.Handler("bench"))
			defer front.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()
			get := func() {
				resp, err := client.Get(front.URL + "/x")
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			for i := 0; i < 200; i++ { // warm connections and pools
				get()
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get()
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
