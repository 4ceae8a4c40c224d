package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// discardExporter accepts every batch at once.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// cannedTransport answers every request without a network.
type cannedTransport struct{}

func (cannedTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, ContentLength: 0}, nil
}

// benchProxy is the proxy's per-attempt work that touches tracing: an
// Attempt appended before the RoundTrip, an outgoing header map it owns.
type benchProxy struct{ rt http.RoundTripper }

func (p benchProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := observe.FromContext(r.Context())
	rec.Service = "svc"
	rec.Upstream = "10.0.0.1:8080"
	a := rec.AddAttempt(observe.Attempt{Service: "svc", Upstream: "10.0.0.1:8080", Start: rec.Start})
	out := r.Clone(r.Context())
	out.Header = r.Header.Clone()
	resp, err := p.rt.RoundTrip(out)
	if err != nil {
		w.WriteHeader(502)
		return
	}
	a = rec.LastAttempt()
	a.Status = resp.StatusCode
	a.Duration = time.Millisecond
	w.WriteHeader(resp.StatusCode)
}

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkMiddleware measures the tracing middleware and transport
// wrapper per request (with the stand-in entry and proxy work around them,
// which "off" measures alone).
func BenchmarkMiddleware(b *testing.B) {
	cases := []struct {
		name, tracing string
		incoming      string
	}{
		{"off", "enabled: false\n", ""},
		{"ratio=0.01", "sampling: {ratio: 0.01}\nresponse_header: traceresponse\n", ""},
		{"ratio=0.01/incoming-w3c-untrusted", "sampling: {ratio: 0.01}\ntrust_incoming: false\nresponse_header: traceresponse\n", "00-" + inTID + "-" + inSID + "-01"},
		{"ratio=1", "sampling: {ratio: 1}\nresponse_header: traceresponse\n", ""},
		{"ratio=1/incoming-w3c", "sampling: {ratio: 1}\nresponse_header: traceresponse\n", "00-" + inTID + "-" + inSID + "-01"},
		{"ratio=0.01/no-late", "sampling: {ratio: 0.01, late: {errors: false, retried: false}}\nresponse_header: traceresponse\n", ""},
		// Spans encoded for an OTLP exporter (whose receiver discards
		// them) instead of snapshots for an SDK one.
		{"ratio=1,otlp", "sampling: {ratio: 1}\nresponse_header: traceresponse\nexporters: [{type: otlp_http, endpoint: OTLP}]\n", ""},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			var extra []sdktrace.SpanExporter
			if strings.Contains(bc.tracing, "OTLP") {
				rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
				defer rcv.Close()
				bc.tracing = strings.Replace(bc.tracing, "OTLP", rcv.URL, 1)
			} else {
				extra = []sdktrace.SpanExporter{discardExporter{}}
			}
			cfg := parseTracing(b, bc.tracing, "")
			tr, err := New(cfg.Tracing, Options{Exporters: extra})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			route := itemsRoute(cfg)
			chain := middleware.Chain(benchProxy{rt: tr.WrapTransport("svc", cannedTransport{})}, ended(tr, tr.ForRoute(route)))
			h := entry("public", route, chain)
			req := benchRequest()
			if bc.incoming != "" {
				req.Header.Set("Traceparent", bc.incoming)
			}
			serveLoop(b, h, req)
		})
	}
}

// BenchmarkExtract isolates the incoming-context work.
func BenchmarkExtract(b *testing.B) {
	cfg := parseTracing(b, "", "")
	tr := newTracing(b, cfg, Options{})
	for _, hc := range []struct{ name, k, v string }{
		{"none", "Accept", "*/*"},
		{"w3c", "Traceparent", "00-" + inTID + "-" + inSID + "-01"},
		{"b3", "B3", inTID + "-" + inSID + "-1"},
	} {
		b.Run(hc.name, func(b *testing.B) {
			hd := http.Header{"User-Agent": {"x"}, "Accept-Encoding": {"gzip"}, hc.k: {hc.v}}
			b.ReportAllocs()
			for b.Loop() {
				_ = tr.props.Extract(hd)
			}
		})
	}
}

// BenchmarkGateway runs the real gateway (entry, router, proxy) with
// tracing off, at 1% (with and without the traceresponse header) and at
// 100%, with the upstream exchange replaced by a canned response: no
// network, so the relative overhead shown here is an upper bound of what a
// real exchange (socket I/O, HTTP parsing on both sides) would show. The
// canned transport takes the trace context in the header map (one
// allocation per attempt), as net/http's would; Vantage's own transport
// takes it as fields in wire form, which costs about 140 ns less per
// attempt (BenchmarkTraceHeader in internal/transport).
func BenchmarkGateway(b *testing.B) {
	for _, bc := range []struct{ name, tracing string }{
		{"off", "enabled: false\n"},
		{"ratio=0.01", "sampling: {ratio: 0.01}\n"},
		{"ratio=0.01/traceresponse", "sampling: {ratio: 0.01}\nresponse_header: traceresponse\n"},
		{"ratio=1", "sampling: {ratio: 1}\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			y := `listeners: [{name: public, address: "127.0.0.1:0"}]
services: [{name: svc, upstreams: [{url: "http://10.0.0.1:8080"}]}]
routes: [{name: items, match: {path: "/items/{id}"}, service: svc}]
tracing:
` + indent(bc.tracing, "  ")
			cfg, err := config.Parse("bench.yml", []byte(y), nil)
			if err != nil {
				b.Fatal(err)
			}
			tr, err := New(cfg.Tracing, Options{Exporters: []sdktrace.SpanExporter{discardExporter{}}})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			gw, err := gateway.New(cfg, gateway.Options{
				Observer:      tr,
				Telemetry:     middleware.Telemetry{Tracing: tr},
				WrapTransport: func(s string, _ http.RoundTripper) http.RoundTripper { return tr.WrapTransport(s, cannedTransport{}) },
			})
			if err != nil {
				b.Fatal(err)
			}
			defer gw.Close()
			h := gw.Handler("public")
			req := benchRequest()
			serveLoop(b, h, req)
		})
	}
}

// BenchmarkGatewayLoopback sends real HTTP/1.1 requests over loopback
// through the real gateway to a real upstream, all in this process: the
// process CPU per request includes the client's and the upstream's work,
// so the relative tracing overhead here is diluted; the gateway-only
// figure lies between this and BenchmarkGateway.
func BenchmarkGatewayLoopback(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	defer up.Close()
	// A collector that accepts OTLP/HTTP and discards it, so its own cost
	// stays small.
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer sink.Close()
	otlp := "exporters: [{type: otlp_http, endpoint: \"" + sink.URL + "\"}]\n"
	for _, bc := range []struct{ name, tracing string }{
		{"off", "enabled: false\n"},
		{"ratio=0.01", "sampling: {ratio: 0.01}\n"},
		{"ratio=1", "sampling: {ratio: 1}\n"},
		{"ratio=0.01/otlp", "sampling: {ratio: 0.01}\n" + otlp},
		{"ratio=1,otlp", "sampling: {ratio: 1}\n" + otlp},
	} {
		b.Run(bc.name, func(b *testing.B) {
			y := `listeners: [{name: public, address: "127.0.0.1:0"}]
services: [{name: svc, upstreams: [{url: "` + up.URL + `"}]}]
routes: [{name: items, match: {path: "/items/{id}"}, service: svc}]
tracing:
` + indent(bc.tracing, "  ")
			cfg, err := config.Parse("bench.yml", []byte(y), nil)
			if err != nil {
				b.Fatal(err)
			}
			tr, err := New(cfg.Tracing, Options{Exporters: []sdktrace.SpanExporter{discardExporter{}}})
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			gw, err := gateway.New(cfg, gateway.Options{Observer: tr, Telemetry: middleware.Telemetry{Tracing: tr}, WrapTransport: tr.WrapTransport})
			if err != nil {
				b.Fatal(err)
			}
			defer gw.Close()
			srv := httptest.NewServer(gw.Handler("public"))
			defer srv.Close()
			client := srv.Client()
			url := srv.URL + "/items/42"
			b.ReportAllocs()
			cpu0 := processCPU()
			n := 0
			for b.Loop() {
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				n++
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(n), "cpu-ns/op")
		})
	}
}

// benchRequest is the request the in-process benchmarks serve.
func benchRequest() *http.Request {
	req, _ := http.NewRequest(http.MethodGet, "http://gw.example/items/42?page=2", nil)
	req.RemoteAddr = "192.0.2.10:51234"
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	return req
}

// serveLoop serves req to h for the benchmark's iterations and reports the
// process CPU time per request (all threads: GC and the exporter goroutine
// included), steadier than wall time on a shared machine.
func serveLoop(b *testing.B, h http.Handler, req *http.Request) {
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	cpu0 := processCPU()
	n := 0
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
		n++
	}
	b.ReportMetric(float64(processCPU()-cpu0)/float64(n), "cpu-ns/op")
}
