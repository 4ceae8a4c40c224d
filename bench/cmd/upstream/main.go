// Command upstream is the load harness's upstream: a tiny HTTP/1.1 server
// that answers every request with a fixed body and keeps connections alive.
// It is deliberately minimal so that the cost measured in front of it is the
// proxy's, not the upstream's. It also stands in for an OTLP/HTTP trace
// collector: POST /v1/traces and POST /v1/logs are read and answered with
// an empty export response, so the tracing and OTLP access log variants pay
// the whole cost of exporting.
//
// GET /_harness/conns (harness.ConnsPath) answers the number of connections
// accepted so far, so that the harness can count the connections a proxy
// opens per request.
//
// With -delay it waits that long before answering (requests in flight for
// drain tests); it reads the body of any request that is not a GET, so a
// slow request body reaches the upstream the way it would a real service.
//
//	upstream -addr 127.0.0.1:18000 -size 64
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/bench/harness"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18000", "host:port to listen on (loopback only)")
	size := flag.Int("size", 64, "response body size in bytes")
	delay := flag.Duration("delay", 0, "wait this long before answering each request")
	flag.Parse()
	if err := run(*addr, *size, *delay); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

func run(addr string, size int, delay time.Duration) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("parsing -addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: only loopback addresses are allowed", addr)
	}
	if size < 0 {
		return fmt.Errorf("-size must be >= 0, got %d", size)
	}
	body := bytes.Repeat([]byte("v"), size)
	length := strconv.Itoa(size)
	var conns atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == harness.ConnsPath {
			w.Header()["Content-Type"] = []string{"text/plain"}
			fmt.Fprintf(w, "%d\n", conns.Load())
			return
		}
		if r.Method == http.MethodPost && (r.URL.Path == "/v1/traces" || r.URL.Path == "/v1/logs") {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header()["Content-Type"] = []string{"application/x-protobuf"}
			w.Header()["Content-Length"] = []string{"0"}
			w.WriteHeader(http.StatusOK)
			return
		}
		if r.Method != http.MethodGet {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		if delay > 0 {
			time.Sleep(delay)
		}
		hdr := w.Header()
		hdr["Content-Type"] = []string{"text/plain"}
		hdr["Content-Length"] = []string{length}
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		},
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	return harness.Serve(srv, ln)
}
