package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

func TestRouteOverrides(t *testing.T) {
	t.Run("route trust and response header win over the listener", func(t *testing.T) {
		cfg := parseTracing(t, "listeners:\n  public: {trust_incoming: false, response_header: X-Trace-Id}\n",
			"trust_incoming: true\nresponse_header: traceresponse\n")
		tr := newTracing(t, cfg, Options{})
		up := newUpstream(t)
		gw := startGateway(t, tr, cfg, "public", mustURL(t, up.srv.URL), 1)
		resp := gw.get(t, "/items/1", h("traceparent", "00-"+inTID+"-"+inSID+"-01"))
		if !strings.HasPrefix(resp.Header.Get("Traceresponse"), "00-"+inTID) || resp.Header.Get("X-Trace-Id") != "" {
			t.Errorf("response headers %v", resp.Header)
		}
	})
	t.Run("route ratio", func(t *testing.T) {
		cfg := parseTracing(t, "sampling: {ratio: 1, late: {errors: false, retried: false}}\n", "ratio: 0\n")
		mem := tracetest.NewInMemoryExporter()
		tr := newTracing(t, cfg, Options{Exporters: []sdktrace.SpanExporter{mem}})
		up := newUpstream(t)
		gw := startGateway(t, tr, cfg, "public", mustURL(t, up.srv.URL), 1)
		gw.get(t, "/items/1", nil)
		_ = tr.ForceFlush(context.Background())
		if n := len(mem.GetSpans()); n != 0 {
			t.Errorf("route ratio 0 exported %d spans", n)
		}
	})
	t.Run("route tracing disabled is transparent", func(t *testing.T) {
		cfg := parseTracing(t, "response_header: traceresponse\n", "enabled: false\n")
		tr := newTracing(t, cfg, Options{})
		if tr.ForRoute(itemsRoute(cfg)) != nil {
			t.Fatal("ForRoute must return nil for a route with tracing off")
		}
		up := newUpstream(t)
		base := &http.Transport{}
		defer base.CloseIdleConnections()
		proxy := &standInProxy{service: "svc", target: mustURL(t, up.srv.URL), rt: tr.WrapTransport("svc", base), attempts: 1}
		srv := httptest.NewServer(entry("public", itemsRoute(cfg), middleware.Chain(proxy, ended(tr, tr.ForRoute(itemsRoute(cfg))))))
		defer srv.Close()
		in := h("traceparent", "00-"+inTID+"-"+inSID+"-01", "b3", inTID2+"-"+inSID2+"-1")
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/items/1", nil)
		req.Header = in
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := up.received()[0]
		if got.Get("Traceparent") != in.Get("Traceparent") || got.Get("B3") != in.Get("B3") || resp.Header.Get("Traceresponse") != "" {
			t.Errorf("headers changed: upstream %v, response %v", got, resp.Header)
		}
	})
	t.Run("tracing disabled globally", func(t *testing.T) {
		cfg := parseTracing(t, "enabled: false\n", "")
		tr := newTracing(t, cfg, Options{})
		rt := http.DefaultTransport
		if tr.ForRoute(itemsRoute(cfg)) != nil || tr.WrapTransport("svc", rt) != rt || tr.Enabled() {
			t.Error("a disabled Tracing must do nothing")
		}
		tr.Observe(observe.Event{Kind: observe.EventRetry, Ctx: context.Background()})
	})
}

func TestRecordTraceIsSetBeforeNext(t *testing.T) {
	cfg := parseTracing(t, "sampling: {ratio: 0}\n", "")
	tr := newTracing(t, cfg, Options{})
	var seen observe.TraceContext
	var otelSC trace.SpanContext
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = observe.FromContext(r.Context()).Trace
		otelSC = SpanContextFromRequest(r.Context())
	})
	h := entry("public", itemsRoute(cfg), ended(tr, tr.ForRoute(itemsRoute(cfg)))(next))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/items/1", nil))
	if !seen.Valid || seen.Sampled || seen.TraceID == [16]byte{} || seen.SpanID == [8]byte{} {
		t.Fatalf("rec.Trace = %+v", seen)
	}
	if otelSC.TraceID() != trace.TraceID(seen.TraceID) || otelSC.SpanID() != trace.SpanID(seen.SpanID) || otelSC.IsSampled() {
		t.Fatalf("SpanContextFromRequest %v, record %+v", otelSC, seen)
	}

	// Without a gateway Record the middleware keeps one of its own.
	var ok bool
	h2 := ended(tr, tr.ForRoute(itemsRoute(cfg)))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok = observe.FromContext(r.Context()) != nil && observe.FromContext(r.Context()).Trace.Valid
	}))
	h2.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/items/1", nil))
	if !ok {
		t.Error("no record without the gateway")
	}
}

func TestAbortedResponseIsRecorded(t *testing.T) {
	cfg := parseTracing(t, "sampling: {ratio: 0}\n", "")
	mem := tracetest.NewInMemoryExporter()
	tr := newTracing(t, cfg, Options{Exporters: []sdktrace.SpanExporter{mem}})
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		observe.FromContext(r.Context()).ErrorKind = observe.ErrUpstreamReset
		w.WriteHeader(200)
		panic(http.ErrAbortHandler)
	})
	h := entry("public", itemsRoute(cfg), ended(tr, tr.ForRoute(itemsRoute(cfg)))(next))
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Errorf("panic %v not propagated", p)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/items/1", nil))
	}()
	_ = tr.ForceFlush(context.Background())
	spans := mem.GetSpans()
	if len(spans) != 1 || spans[0].Status.Description != "upstream_reset" {
		t.Fatalf("aborted request spans %+v", spans)
	}
}

func TestTransportWithoutTraceContextPassesThrough(t *testing.T) {
	cfg := parseTracing(t, "", "")
	tr := newTracing(t, cfg, Options{})
	var got http.Header
	rt := tr.WrapTransport("svc", roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Header
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	}))
	req := httptest.NewRequest(http.MethodGet, "http://up/x", nil)
	req.Header.Set("Traceparent", "00-"+inTID+"-"+inSID+"-01")
	if _, err := rt.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if got.Get("Traceparent") != "00-"+inTID+"-"+inSID+"-01" {
		t.Errorf("background request headers changed: %v", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestObserveDoesNotAllocate(t *testing.T) {
	cfg := parseTracing(t, "", "")
	tr := newTracing(t, cfg, Options{Exporters: []sdktrace.SpanExporter{tracetest.NewInMemoryExporter()}})
	ctx := context.Background()
	cases := []observe.Event{
		{Kind: observe.EventUpstreamPicked, Ctx: ctx},
		{Kind: observe.EventRetry, Ctx: ctx},
		{Kind: observe.EventHealthChanged},
		{Kind: observe.EventConfigReloaded},
	}
	for _, ev := range cases {
		if n := testing.AllocsPerRun(100, func() { tr.Observe(ev) }); n != 0 {
			t.Errorf("Observe(%v) allocates %v", ev.Kind, n)
		}
	}
}

func TestNewWithoutDefaults(t *testing.T) {
	// A config built in code, without SetDefaults, still propagates W3C.
	tr, err := New(config.Tracing{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out http.Header
	rt := tr.WrapTransport("svc", roundTripFunc(func(r *http.Request) (*http.Response, error) {
		out = r.Header
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	}))
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := httptest.NewRequest(http.MethodGet, "http://up/x", nil).WithContext(r.Context())
		_, _ = rt.RoundTrip(req)
	})
	ended(tr, tr.ForRoute(middleware.Route{}))(next).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if !strings.HasSuffix(out.Get("Traceparent"), "-01") {
		t.Fatalf("traceparent %q", out.Get("Traceparent"))
	}
}

func TestGRPCStatusOnSpans(t *testing.T) {
	cfg := parseTracing(t, "", "")
	mem := tracetest.NewInMemoryExporter()
	tr := newTracing(t, cfg, Options{Exporters: []sdktrace.SpanExporter{mem}})
	rt := tr.WrapTransport("svc", roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	}))
	// A gRPC call answered 200 with grpc-status 14 (UNAVAILABLE) in the
	// trailers, as the proxy records it.
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.FromContext(r.Context())
		rec.AddAttempt(observe.Attempt{Service: "svc", Upstream: "10.1.2.3:50051", Start: rec.Start})
		req := httptest.NewRequest(http.MethodPost, "http://10.1.2.3:50051/shop.Cart/Add", nil).WithContext(r.Context())
		_, _ = rt.RoundTrip(req)
		rec.LastAttempt().Status = 200
		rec.GRPCStatus = 14
		w.WriteHeader(200)
	})
	h := entry("public", itemsRoute(cfg), ended(tr, tr.ForRoute(itemsRoute(cfg)))(next))
	req := httptest.NewRequest(http.MethodPost, "/shop.Cart/Add", nil)
	req.Header.Set("Content-Type", "application/grpc")
	h.ServeHTTP(httptest.NewRecorder(), req)
	_ = tr.ForceFlush(context.Background())
	spans := mem.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	for _, s := range spans {
		attrs := map[string]any{}
		for _, a := range s.Attributes {
			attrs[string(a.Key)] = a.Value.AsInterface()
		}
		if attrs["rpc.grpc.status_code"] != int64(14) || attrs["rpc.system"] != "grpc" {
			t.Errorf("%s attrs %v", s.Name, attrs)
		}
		if s.SpanKind == trace.SpanKindServer && s.Status.Code.String() != "Error" {
			t.Errorf("server span status %v, want Error for UNAVAILABLE", s.Status)
		}
		if s.SpanKind == trace.SpanKindClient && attrs["network.peer.address"] != "10.1.2.3" {
			t.Errorf("client peer %v", attrs["network.peer.address"])
		}
	}
}
