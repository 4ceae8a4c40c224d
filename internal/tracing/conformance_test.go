package tracing

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/tracing/propagation"
	vtransport "github.com/vantage-gateway/vantage/internal/transport"
)

const (
	inTID  = "4bf92f3577b34da6a3ce929d0e0e4736"
	inSID  = "00f067aa0ba902b7"
	inTID2 = "11111111111111112222222222222222"
	inSID2 = "3333333333333333"
)

// incoming is one header set a client may send, with what a correct
// extraction makes of it (under an extract list containing format).
type incoming struct {
	name     string
	h        http.Header
	format   string // format that carries a valid context, "" when none is valid
	traceID  string // the context's trace id (128-bit hex)
	spanID   string
	sampled  bool
	deferred bool
	baggage  string // a baggage member key=value the client sent, "" none
}

func h(kv ...string) http.Header {
	out := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		out.Add(kv[i], kv[i+1])
	}
	return out
}

var incomingSets = []incoming{
	{name: "none", h: h("Accept", "*/*")},
	{name: "w3c sampled with state and baggage", h: h("traceparent", "00-"+inTID+"-"+inSID+"-01", "tracestate", "congo=t61rcWkgMzE", "baggage", "tenant=acme"),
		format: "tracecontext", traceID: inTID, spanID: inSID, sampled: true, baggage: "tenant=acme"},
	{name: "w3c not sampled", h: h("traceparent", "00-"+inTID+"-"+inSID+"-00"), format: "tracecontext", traceID: inTID, spanID: inSID},
	{name: "w3c malformed hex", h: h("traceparent", "00-"+strings.Replace(inTID, "4", "g", 1)+"-"+inSID+"-01")},
	{name: "w3c all-zero trace id", h: h("traceparent", "00-00000000000000000000000000000000-"+inSID+"-01")},
	{name: "w3c all-zero span id", h: h("traceparent", "00-"+inTID+"-0000000000000000-01")},
	{name: "w3c wrong length", h: h("traceparent", "00-"+inTID[:30]+"-"+inSID+"-01")},
	{name: "w3c unknown future version", h: h("traceparent", "cc-"+inTID+"-"+inSID+"-01-future-fields"),
		format: "tracecontext", traceID: inTID, spanID: inSID, sampled: true},
	{name: "w3c version ff", h: h("traceparent", "ff-"+inTID+"-"+inSID+"-01")},
	{name: "w3c duplicate traceparent (conflicting)", h: h("traceparent", "00-"+inTID+"-"+inSID+"-01", "traceparent", "00-"+inTID2+"-"+inSID2+"-01")},
	{name: "w3c huge tracestate", h: h("traceparent", "00-"+inTID+"-"+inSID+"-01", "tracestate", hugeTraceState()),
		format: "tracecontext", traceID: inTID, spanID: inSID, sampled: true},
	{name: "conflicting w3c and b3", h: h("traceparent", "00-"+inTID+"-"+inSID+"-01", "b3", inTID2+"-"+inSID2+"-1"),
		format: "tracecontext", traceID: inTID, spanID: inSID, sampled: true},
	{name: "b3 single 64-bit", h: h("b3", inTID[16:]+"-"+inSID+"-1"), format: "b3", traceID: "0000000000000000" + inTID[16:], spanID: inSID, sampled: true},
	{name: "b3 single deferred", h: h("b3", inTID+"-"+inSID), format: "b3", traceID: inTID, spanID: inSID, deferred: true},
	{name: "b3 multi", h: h("X-B3-TraceId", inTID, "X-B3-SpanId", inSID, "X-B3-Sampled", "1"), format: "b3", traceID: inTID, spanID: inSID, sampled: true},
	{name: "b3 malformed", h: h("X-B3-TraceId", "xyz", "X-B3-SpanId", inSID, "X-B3-Sampled", "1")},
	{name: "jaeger with baggage", h: h("uber-trace-id", inTID+":"+inSID+":0:1", "uberctx-user", "alice"),
		format: "jaeger", traceID: inTID, spanID: inSID, sampled: true, baggage: "user=alice"},
	{name: "jaeger wrong parts", h: h("uber-trace-id", inTID+":"+inSID+":1")},
	{name: "datadog 128-bit", h: h("x-datadog-trace-id", strconv.FormatUint(0xa3ce929d0e0e4736, 10), "x-datadog-parent-id", strconv.FormatUint(0x00f067aa0ba902b7, 10),
		"x-datadog-sampling-priority", "1", "x-datadog-tags", "_dd.p.tid=4bf92f3577b34da6"), format: "datadog", traceID: inTID, spanID: inSID, sampled: true},
	{name: "datadog zero id", h: h("x-datadog-trace-id", "0", "x-datadog-parent-id", "5")},
	{name: "ot 64-bit", h: h("ot-tracer-traceid", inTID[16:], "ot-tracer-spanid", inSID, "ot-tracer-sampled", "true", "ot-baggage-region", "eu"),
		format: "ottrace", traceID: "0000000000000000" + inTID[16:], spanID: inSID, sampled: true, baggage: "region=eu"},
}

func hugeTraceState() string {
	var ms []string
	for i := 0; i < 30; i++ {
		ms = append(ms, fmt.Sprintf("v%02d=%s", i, strings.Repeat("x", 40)))
	}
	return strings.Join(ms, ",")
}

type suiteConfig struct {
	name     string
	tracing  string
	listener string
	trust    bool
	inject   []string
	respHdr  string // "traceresponse", "X-Trace-Id" or ""
	extract  []string
}

var suiteConfigs = []suiteConfig{
	{name: "defaults+traceresponse", tracing: "response_header: traceresponse\n", listener: "public",
		trust: true, inject: []string{"tracecontext", "baggage"}, respHdr: "traceresponse",
		extract: []string{"tracecontext", "baggage", "b3", "jaeger", "datadog", "ottrace"}},
	{name: "public edge untrusted", tracing: "response_header: traceresponse\nlisteners:\n  public: {trust_incoming: false, response_header: X-Trace-Id}\n", listener: "public",
		trust: false, inject: []string{"tracecontext", "baggage"}, respHdr: "X-Trace-Id",
		extract: []string{"tracecontext", "baggage", "b3", "jaeger", "datadog", "ottrace"}},
	{name: "internal listener of the same config stays trusted", tracing: "response_header: traceresponse\nlisteners:\n  public: {trust_incoming: false}\n", listener: "internal",
		trust: true, inject: []string{"tracecontext", "baggage"}, respHdr: "traceresponse",
		extract: []string{"tracecontext", "baggage", "b3", "jaeger", "datadog", "ottrace"}},
	{name: "mixed estate inject", tracing: "propagation:\n  inject: [tracecontext, b3multi, jaeger, datadog, baggage]\n", listener: "public",
		trust: true, inject: []string{"tracecontext", "b3multi", "jaeger", "datadog", "baggage"},
		extract: []string{"tracecontext", "baggage", "b3", "jaeger", "datadog", "ottrace"}},
	{name: "w3c-only extract, b3 inject", tracing: "propagation:\n  extract: [tracecontext]\n  inject: [b3]\n", listener: "public",
		trust: true, inject: []string{"b3"}, extract: []string{"tracecontext"}},
}

// injectedKeys are the canonical headers each inject format writes.
var injectedKeys = map[string][]string{
	"tracecontext": {"Traceparent"},
	"baggage":      {},
	"b3":           {"B3"},
	"b3multi":      {"X-B3-Traceid", "X-B3-Spanid", "X-B3-Sampled"},
	"jaeger":       {"Uber-Trace-Id"},
	"datadog":      {"X-Datadog-Trace-Id", "X-Datadog-Parent-Id", "X-Datadog-Sampling-Priority", "X-Datadog-Tags"},
	"ottrace":      {"Ot-Tracer-Traceid", "Ot-Tracer-Spanid", "Ot-Tracer-Sampled"},
}

var allTraceKeys = []string{"Traceparent", "Tracestate", "Baggage", "B3", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid",
	"X-B3-Sampled", "X-B3-Flags", "Uber-Trace-Id", "X-Datadog-Trace-Id", "X-Datadog-Parent-Id",
	"X-Datadog-Sampling-Priority", "X-Datadog-Tags", "X-Datadog-Origin", "Ot-Tracer-Traceid", "Ot-Tracer-Spanid", "Ot-Tracer-Sampled"}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestPropagationConformance sends every incoming header set through a real
// gateway-like stack under every config and asserts exactly what the
// upstream receives, what the client gets back and what is exported.
//
// It runs over both ways the trace context reaches the upstream: through
// the outgoing header map (net/http's transport, and Vantage's for formats
// other than W3C), and, with Vantage's own transport and W3C formats only,
// as fields in wire form (transport.Transport.RoundTripFields).
func TestPropagationConformance(t *testing.T) {
	bases := []struct {
		name string
		new  func(t *testing.T) http.RoundTripper
	}{
		{"net_http", func(t *testing.T) http.RoundTripper {
			rt := &http.Transport{}
			t.Cleanup(rt.CloseIdleConnections)
			return rt
		}},
		{"vantage", func(t *testing.T) http.RoundTripper {
			rt, err := vtransport.New(config.Transport{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rt.Close() })
			return rt
		}},
	}
	for _, base := range bases {
		for _, sc := range suiteConfigs {
			t.Run(base.name+"/"+sc.name, func(t *testing.T) {
				cfg := parseTracing(t, sc.tracing, "")
				mem := tracetest.NewInMemoryExporter()
				tr := newTracing(t, cfg, Options{Exporters: []sdktrace.SpanExporter{mem}})
				up := newUpstream(t)
				gw := startGatewayWith(t, tr, cfg, sc.listener, mustURL(t, up.srv.URL), 1, base.new(t))
				for i, in := range incomingSets {
					t.Run(in.name, func(t *testing.T) {
						mem.Reset()
						resp := gw.get(t, "/items/42", in.h)
						if resp.StatusCode != 200 {
							t.Fatalf("status %d", resp.StatusCode)
						}
						got := up.received()[i]
						if err := tr.ForceFlush(context.Background()); err != nil {
							t.Fatal(err)
						}
						checkCase(t, sc, in, got, resp, mem.GetSpans())
					})
				}
			})
		}
	}
}

func checkCase(t *testing.T, sc suiteConfig, in incoming, got http.Header, resp *http.Response, spans tracetest.SpanStubs) {
	t.Helper()
	found := in.format != "" && (contains(sc.extract, in.format) || in.format == "b3" && contains(sc.extract, "b3multi"))
	continued := found && sc.trust

	// 1. Only the injected formats reach the upstream, once each; every
	// stale incoming header is gone.
	want := map[string]bool{}
	for _, f := range sc.inject {
		for _, k := range injectedKeys[f] {
			want[k] = true
		}
	}
	for _, k := range allTraceKeys {
		n := len(got.Values(k))
		switch {
		case want[k] && k == "X-Datadog-Tags":
			if n > 1 {
				t.Errorf("%s sent %d times", k, n)
			}
		case want[k] && n != 1:
			t.Errorf("%s: upstream got %d values %q, want exactly 1", k, n, got.Values(k))
		case !want[k] && k != "Tracestate" && k != "Baggage" && n != 0:
			t.Errorf("stale %s reached the upstream: %q", k, got.Values(k))
		}
	}
	for k := range got {
		if strings.HasPrefix(k, "Uberctx-") && !contains(sc.inject, "jaeger") || strings.HasPrefix(k, "Ot-Baggage-") && !contains(sc.inject, "ottrace") {
			t.Errorf("stale %s reached the upstream", k)
		}
	}

	// 2. What the upstream extracts is the gateway's context.
	var up trace.SpanContext
	for _, f := range sc.inject {
		if f == "baggage" {
			continue
		}
		p, err := propagation.New([]string{f}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ex := p.Extract(got)
		if !ex.Found() {
			t.Fatalf("%s: upstream cannot extract what was injected: %v", f, got)
		}
		if up.IsValid() && (ex.SpanContext.TraceID() != up.TraceID() || ex.SpanContext.SpanID() != up.SpanID() || ex.SpanContext.IsSampled() != up.IsSampled()) {
			t.Fatalf("formats disagree: %v vs %v", ex.SpanContext, up)
		}
		up = ex.SpanContext
	}
	if continued && up.TraceID().String() != in.traceID {
		t.Errorf("trace not continued: upstream trace %s, incoming %s", up.TraceID(), in.traceID)
	}
	if !continued && up.TraceID().String() == in.traceID {
		t.Errorf("incoming trace %s continued although it must not be", in.traceID)
	}
	wantSampled := !continued || in.sampled || in.deferred // ratio is 1
	if up.IsSampled() != wantSampled {
		t.Errorf("upstream sampled = %v, want %v", up.IsSampled(), wantSampled)
	}
	if ts := got.Get("Tracestate"); len(ts) > propagation.MaxTraceStateLen {
		t.Errorf("tracestate of %d bytes forwarded", len(ts))
	}
	if continued && in.name == "w3c sampled with state and baggage" && contains(sc.inject, "tracecontext") && got.Get("Tracestate") != "congo=t61rcWkgMzE" {
		t.Errorf("tracestate not forwarded: %q", got.Get("Tracestate"))
	}
	if !continued && got.Get("Tracestate") != "" {
		t.Errorf("untrusted tracestate forwarded: %q", got.Get("Tracestate"))
	}
	bag := got.Get("Baggage")
	switch {
	case in.baggage != "" && continued && contains(sc.inject, "baggage"):
		if !strings.Contains(bag, in.baggage) {
			t.Errorf("baggage %q not forwarded: %q", in.baggage, bag)
		}
	case !continued && bag != "":
		t.Errorf("untrusted baggage forwarded: %q", bag)
	}

	// 3. The spans: server span continues or links, the client span is the
	// upstream's parent.
	var server, client *tracetest.SpanStub
	for i := range spans {
		switch spans[i].SpanKind {
		case trace.SpanKindServer:
			server = &spans[i]
		case trace.SpanKindClient:
			client = &spans[i]
		}
	}
	if !wantSampled {
		if len(spans) != 0 {
			t.Errorf("unsampled request exported %d spans", len(spans))
		}
	} else {
		if server == nil || client == nil {
			t.Fatalf("spans: %d, want server and client", len(spans))
		}
		if client.Parent.SpanID() != server.SpanContext.SpanID() || client.SpanContext.TraceID() != server.SpanContext.TraceID() {
			t.Errorf("client span not a child of the server span")
		}
		if client.SpanContext.SpanID() != up.SpanID() || server.SpanContext.TraceID() != up.TraceID() {
			t.Errorf("upstream's parent %s is not the client span %s", up.SpanID(), client.SpanContext.SpanID())
		}
		if continued {
			if server.Parent.SpanID().String() != in.spanID || !server.Parent.IsRemote() {
				t.Errorf("server parent %s, want incoming %s", server.Parent.SpanID(), in.spanID)
			}
		} else if server.Parent.IsValid() {
			t.Errorf("server span has a parent %v, want a root", server.Parent)
		}
		if found && !sc.trust {
			if len(server.Links) != 1 || server.Links[0].SpanContext.TraceID().String() != in.traceID || server.Links[0].SpanContext.SpanID().String() != in.spanID {
				t.Errorf("untrusted incoming context not linked: %+v", server.Links)
			}
		} else if len(server.Links) != 0 {
			t.Errorf("unexpected links %+v", server.Links)
		}
	}

	// 4. The client gets the trace id back.
	switch sc.respHdr {
	case "traceresponse":
		v := resp.Header.Values("Traceresponse")
		if len(v) != 1 || !strings.HasPrefix(v[0], "00-"+up.TraceID().String()+"-") {
			t.Fatalf("traceresponse %q, trace %s", v, up.TraceID())
		}
		flags := "-00"
		if wantSampled {
			flags = "-01"
		}
		if !strings.HasSuffix(v[0], flags) || len(v[0]) != 55 {
			t.Errorf("traceresponse %q, want flags %s", v[0], flags)
		}
		if server != nil && !strings.Contains(v[0], server.SpanContext.SpanID().String()) {
			t.Errorf("traceresponse %q does not name the server span %s", v[0], server.SpanContext.SpanID())
		}
	case "":
		if resp.Header.Get("Traceresponse") != "" || resp.Header.Get("X-Trace-Id") != "" {
			t.Errorf("trace id returned although response_header is off")
		}
	default:
		if got := resp.Header.Get(sc.respHdr); got != up.TraceID().String() {
			t.Errorf("%s = %q, want %s", sc.respHdr, got, up.TraceID())
		}
	}
}

// TestTraceIDOnGatewayErrors checks that errors the gateway writes itself
// (here a 502 after every attempt failed) carry the trace id in the header
// and the body, and are kept by late sampling although the ratio is 0.
func TestTraceIDOnGatewayErrors(t *testing.T) {
	cfg := parseTracing(t, "response_header: X-Trace-Id\nsampling:\n  ratio: 0\n", "")
	mem := tracetest.NewInMemoryExporter()
	tr := newTracing(t, cfg, Options{Exporters: []sdktrace.SpanExporter{mem}})
	dead := mustURL(t, "http://"+deadAddr(t))
	gw := startGateway(t, tr, cfg, "public", dead, 2)
	req, _ := http.NewRequest(http.MethodGet, gw.srv.URL+"/items/1", nil)
	resp, err := gw.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		TraceID string `json:"trace_id"`
	}
	if err := decodeJSON(resp, &body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadGateway || body.TraceID == "" || resp.Header.Get("X-Trace-Id") != body.TraceID {
		t.Fatalf("status %d header %q body %q", resp.StatusCode, resp.Header.Get("X-Trace-Id"), body.TraceID)
	}
	if err := tr.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := mem.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("exported %d spans, want server + 2 client", len(spans))
	}
	for _, s := range spans {
		if s.SpanContext.TraceID().String() != body.TraceID {
			t.Errorf("span %s in trace %s, want %s", s.Name, s.SpanContext.TraceID(), body.TraceID)
		}
		if s.Status.Code.String() != "Error" {
			t.Errorf("span %s status %v, want Error", s.Name, s.Status)
		}
	}
}

// deadAddr returns an address nothing listens on.
// It is on a loopback IP no test server binds, so a server started later
// cannot be given the same port.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.254:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return jsonNewDecoder(resp).Decode(v)
}
