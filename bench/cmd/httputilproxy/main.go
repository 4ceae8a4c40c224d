// Command httputilproxy is the naive Go reverse proxy the load harness
// compares against: httputil.NewSingleHostReverseProxy with every default
// (http.DefaultTransport included, which keeps only two idle connections per
// host) served by a plain http.Server. It is the floor a Go proxy starts from.
//
//	httputilproxy -listen 127.0.0.1:18001 -upstream 127.0.0.1:18000
//
// -max-idle-per-host N (N > 0) swaps in a clone of http.DefaultTransport that
// keeps N idle connections per host, to separate the cost of reconnecting
// from the cost of proxying; 0 (the default) keeps every default.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"

	"github.com/vantage-gateway/vantage/bench/harness"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18001", "host:port to listen on (loopback only)")
	upstream := flag.String("upstream", "127.0.0.1:18000", "host:port of the upstream")
	maxIdle := flag.Int("max-idle-per-host", 0, "idle connections kept per upstream host; 0 keeps http.DefaultTransport (2)")
	flag.Parse()
	if err := run(*listen, *upstream, *maxIdle); err != nil {
		fmt.Fprintln(os.Stderr, "httputilproxy:", err)
		os.Exit(1)
	}
}

func run(listen, upstream string, maxIdle int) error {
	target, err := url.Parse("http://" + upstream)
	if err != nil {
		return fmt.Errorf("parsing -upstream %q: %w", upstream, err)
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("parsing -listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %q: only loopback addresses are allowed", listen)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	if maxIdle > 0 {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = maxIdle
		rp.Transport = tr
	}
	srv := &http.Server{Handler: rp}
	return harness.Serve(srv, ln)
}
