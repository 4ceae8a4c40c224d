package transport

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/tracing/propagation"
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

// BenchmarkTraceHeader measures, on the client's side of one attempt, what
// adding a W3C trace context costs: checking the request and writing its
// head (to a discarding buffer) with no trace context ("none"), with the
// traceparent injected into the header map as net/http-based clients need
// ("header-map": a value allocated per attempt, then validated and written
// by the client), and as fields in wire form formatted on the stack
// ("fields", what RoundTripFields takes).
func BenchmarkTraceHeader(b *testing.B) {
	props, err := propagation.New(nil, []string{propagation.FormatTraceContext, propagation.FormatBaggage})
	if err != nil {
		b.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	})
	req := httptest.NewRequest("GET", "http://10.0.0.1:8080/items/42?full=1", nil)
	for k, v := range map[string]string{
		"User-Agent": "wrk", "Accept": "*/*", "Accept-Encoding": "gzip", "X-Request-Id": "f3c1e6d0",
		"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "api.example.com",
	} {
		req.Header.Set(k, v)
	}
	bw := bufio.NewWriterSize(io.Discard, bufSize)
	head := func(fields []byte) {
		var ri reqInfo
		if _, err := checkRequest(req, &ri); err != nil {
			b.Fatal(err)
		}
		writeHead(bw, req, &ri, fields)
		if err := bw.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			head(nil)
		}
	})
	b.Run("header-map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			props.Inject(req.Header, sc, baggage.Baggage{})
			head(nil)
			delete(req.Header, "Traceparent")
		}
	})
	b.Run("fields", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var buf [256]byte
			head(props.AppendFields(buf[:0], sc, baggage.Baggage{}))
		}
	})
}
