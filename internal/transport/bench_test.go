package transport

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// netHTTPTransport is the comparison: a standard transport set up like a
// minimal reverse proxy's (keep-alive, no compression, no proxy).
func netHTTPTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// BenchmarkRoundTrip compares the built-in HTTP/1.1 client ("fast") with
// http.Transport ("net_http") on a tiny keep-alive httptest upstream, one
// request at a time and with b.RunParallel. ns/op and cpu-ns/op include the
// upstream's own work (same process).
func BenchmarkRoundTrip(b *testing.B) {
	srv := newCountingServer(b, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello")
	}))
	benchTransports(b, srv.URL)
}

// BenchmarkRoundTripCanned is BenchmarkRoundTrip against an upstream that
// answers every request head with canned bytes, so that most of the CPU
// measured is the client's.
func BenchmarkRoundTripCanned(b *testing.B) {
	srv := cannedServer(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello")
	benchTransports(b, srv.URL())
}

func benchTransports(b *testing.B, url string) {
	rts := []struct {
		name string
		rt   func(b *testing.B) http.RoundTripper
	}{
		{"fast", func(b *testing.B) http.RoundTripper { return newTestTransport(b, testConfig(), Options{}) }},
		{"net_http", func(b *testing.B) http.RoundTripper {
			t := netHTTPTransport()
			b.Cleanup(t.CloseIdleConnections)
			return t
		}},
	}
	for _, rt := range rts {
		b.Run(rt.name, func(b *testing.B) { benchSeq(b, rt.rt(b), url) })
	}
	for _, rt := range rts {
		b.Run(rt.name+"_parallel", func(b *testing.B) { benchPar(b, rt.rt(b), url) })
	}
}

// benchRequest is a GET carrying a cancelable context and the headers a
// proxied request typically has, as the proxy would send it.
func benchRequest(b *testing.B, url string) *http.Request {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/api/users/42?verbose=1", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("User-Agent", "bench/1.0")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	req.Header.Set("X-Forwarded-Proto", "http")
	req.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	return req
}

func doOne(b *testing.B, rt http.RoundTripper, req *http.Request, buf []byte) {
	resp, err := rt.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	for {
		_, err := resp.Body.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	resp.Body.Close()
}

func benchSeq(b *testing.B, rt http.RoundTripper, url string) {
	req := benchRequest(b, url)
	buf := make([]byte, 512)
	doOne(b, rt, req, buf) // warm the pool
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		doOne(b, rt, req, buf)
	}
	reportCPU(b, cpu0)
}

// reportCPU reports the process CPU time per op since cpu0: client,
// upstream and harness together, all in this process.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	if cpu := cpuTime() - cpu0; cpu > 0 && b.N > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func benchPar(b *testing.B, rt http.RoundTripper, url string) {
	req := benchRequest(b, url)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 512)
		for pb.Next() {
			doOne(b, rt, req, buf)
		}
	})
	reportCPU(b, cpu0)
}
