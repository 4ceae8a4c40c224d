package tracing

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/otlptest"
)

// decide emits decision events the way traffic controls do, from inside
// the chain, and fills the Record fields they own.
func decide(obs observe.Observer) middleware.Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := observe.FromContext(r.Context())
			rec.Split = observe.SplitChoice{Rule: "items", Service: "svc", Reason: "weight"}
			rec.Breaker = "half_open"
			obs.Observe(observe.Event{Kind: observe.EventSplitChosen, Time: time.Now(), Ctx: r.Context(), Record: rec, Route: "items", Service: "svc", Split: observe.SplitWeight})
			obs.Observe(observe.Event{Kind: observe.EventBreakerTransition, Time: time.Now(), Ctx: r.Context(), Record: rec, Service: "svc",
				Breaker: observe.BreakerChange{From: observe.BreakerOpen, To: observe.BreakerHalfOpen, Reason: observe.BreakerCooldown}, Detail: "cool-down 30s elapsed"})
			// Uninteresting and background events are ignored.
			obs.Observe(observe.Event{Kind: observe.EventUpstreamPicked, Ctx: r.Context(), Record: rec})
			obs.Observe(observe.Event{Kind: observe.EventHealthChanged, Service: "svc"})
			next.ServeHTTP(w, r)
			obs.Observe(observe.Event{Kind: observe.EventRetry, Time: time.Now(), Ctx: r.Context(), Record: rec, Service: "svc", Retry: observe.RetryCause{Status: 503}})
		})
	}
}

func TestExportOTLPEndToEnd(t *testing.T) {
	for _, proto := range []string{"otlp_grpc", "otlp_http"} {
		t.Run(proto, func(t *testing.T) {
			var rcv *otlptest.Receiver
			var endpoint string
			if proto == "otlp_grpc" {
				rcv, endpoint = otlptest.StartGRPC(t)
				endpoint = "http://" + endpoint
			} else {
				rcv, endpoint = otlptest.StartHTTP(t)
			}
			cfg := parseTracing(t, fmt.Sprintf(`service_name: edge
resource_attributes: {deployment.environment: test}
record_request_headers: [X-Request-Id]
exporters:
  - type: %s
    endpoint: %q
    compression: gzip
    headers: {x-tenant: t1}
    flush_interval: 50ms
`, proto, endpoint), "")
			// An SDK exporter beside the OTLP one: it gets the same spans
			// as SDK snapshots, the OTLP one gets them encoded directly.
			mem := tracetest.NewInMemoryExporter()
			tr := newTracing(t, cfg, Options{Version: "1.2.3", Exporters: []sdktrace.SpanExporter{mem}})
			up := newUpstream(t, 503, 200)
			gw := startGateway(t, tr, cfg, "public", mustURL(t, up.srv.URL), 2, decide(tr))

			in := h("traceparent", "00-"+inTID+"-"+inSID+"-01", "Authorization", "Bearer secret-token", "X-Request-Id", "r-1")
			resp := gw.get(t, "/items/42?token=abc&page=2", in)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			spans := rcv.WaitSpans(t, 3, 10*time.Second)
			var server otlptest.Span
			var clients []otlptest.Span
			for _, s := range spans {
				if s.Kind == "server" {
					server = s
				} else {
					clients = append(clients, s)
				}
			}
			if server.Name != "GET /items/{id}" || server.TraceID != inTID || server.ParentSpanID != inSID {
				t.Fatalf("server span %q trace %s parent %s", server.Name, server.TraceID, server.ParentSpanID)
			}
			if len(clients) != 2 {
				t.Fatalf("client spans %d, want one per attempt (2)", len(clients))
			}
			if clients[0].Attrs["http.request.resend_count"] != nil {
				clients[0], clients[1] = clients[1], clients[0]
			}
			for i, c := range clients {
				if c.TraceID != inTID || c.ParentSpanID != server.SpanID || c.Name != "GET svc" {
					t.Errorf("client %d: %q trace %s parent %s", i, c.Name, c.TraceID, c.ParentSpanID)
				}
			}
			first, retry := clients[0], clients[1]
			if first.Attrs["http.response.status_code"] != int64(503) || !first.StatusError || first.Attrs["error.type"] != "503" {
				t.Errorf("first attempt attrs %v error %v", first.Attrs, first.StatusError)
			}
			if retry.Attrs["http.request.resend_count"] != int64(1) || retry.Attrs["vantage.retry.reason"] != "status_503" || retry.StatusError {
				t.Errorf("retry attrs %v", retry.Attrs)
			}
			// The upstream saw each attempt's own client span as parent.
			got := up.received()
			for i, c := range []otlptest.Span{first, retry} {
				if want := "00-" + inTID + "-" + c.SpanID + "-01"; got[i].Get("Traceparent") != want {
					t.Errorf("attempt %d traceparent %q, want %q", i, got[i].Get("Traceparent"), want)
				}
			}
			wantAttrs := map[string]any{
				"http.request.method":           "GET",
				"http.route":                    "/items/{id}",
				"url.path":                      "/items/42",
				"url.query":                     "token=REDACTED&page=2",
				"url.scheme":                    "http",
				"server.address":                "127.0.0.1",
				"http.response.status_code":     int64(200),
				"network.peer.address":          "127.0.0.1",
				"client.address":                "127.0.0.1",
				"vantage.listener":              "public",
				"vantage.route":                 "items",
				"vantage.service":               "svc",
				"vantage.split.service":         "svc",
				"vantage.breaker.state":         "half_open",
				"vantage.retries":               int64(1),
				"vantage.sampling.decision":     "parent",
				"vantage.trace.incoming_format": "tracecontext",
			}
			for k, v := range wantAttrs {
				if server.Attrs[k] != v {
					t.Errorf("server %s = %v, want %v", k, server.Attrs[k], v)
				}
			}
			if v, _ := server.Attrs["http.request.header.x-request-id"].([]any); len(v) != 1 || v[0] != "r-1" {
				t.Errorf("recorded header = %v", server.Attrs["http.request.header.x-request-id"])
			}
			for _, s := range spans {
				for k, v := range s.Attrs {
					if strings.Contains(fmt.Sprint(v), "secret-token") || strings.Contains(fmt.Sprint(v), "abc") || strings.Contains(k, "authorization") {
						t.Errorf("sensitive value recorded: %s=%v", k, v)
					}
				}
			}
			var evs []string
			for _, e := range server.Events {
				evs = append(evs, e.Name)
			}
			if strings.Join(evs, ",") != "split_chosen,breaker_transition,retry" {
				t.Errorf("events %v", evs)
			}
			if server.Events[1].Attrs["vantage.state.to"] != "half_open" || server.Events[1].Attrs["vantage.reason"] != "cooldown" ||
				server.Events[1].Attrs["vantage.detail"] != "cool-down 30s elapsed" || server.Events[2].Attrs["vantage.reason"] != "status_503" {
				t.Errorf("event attrs %v %v", server.Events[1].Attrs, server.Events[2].Attrs)
			}
			if server.Resource["service.name"] != "edge" || server.Resource["service.version"] != "1.2.3" || server.Resource["deployment.environment"] != "test" {
				t.Errorf("resource %v", server.Resource)
			}
			if server.Scope != InstrumentationName {
				t.Errorf("scope %q", server.Scope)
			}
			if hs := rcv.Headers(); hs[0].Get("x-tenant") != "t1" {
				t.Errorf("export headers %v", hs[0])
			}
			if !server.Start.Before(first.Start) && !server.Start.Equal(first.Start) || server.End.Before(retry.End) {
				t.Errorf("client spans not within the server span")
			}
			if err := tr.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			assertSameSpans(t, spans, mem.GetSpans())
		})
	}
}

func TestExportZipkinEndToEnd(t *testing.T) {
	rcv, url := otlptest.StartZipkin(t)
	cfg := parseTracing(t, fmt.Sprintf("exporters:\n  - type: zipkin\n    endpoint: %q\n    flush_interval: 50ms\n", url), "")
	tr := newTracing(t, cfg, Options{})
	up := newUpstream(t)
	gw := startGateway(t, tr, cfg, "public", mustURL(t, up.srv.URL), 1)
	gw.get(t, "/items/7", nil)
	spans := rcv.WaitSpans(t, 2, 10*time.Second)
	var server, client otlptest.ZipkinSpan
	for _, s := range spans {
		if s.Kind == "SERVER" {
			server = s
		} else {
			client = s
		}
	}
	if server.Tags["http.route"] != "/items/{id}" || client.ParentID != server.ID || server.LocalEndpoint.ServiceName != "vantage" {
		t.Fatalf("zipkin spans %+v", spans)
	}
}

func TestLateSampling(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	cfg := parseTracing(t, "sampling:\n  ratio: 0\n  late:\n    max_per_second: 2\n", "slower_than: 1s\n")
	mem := tracetest.NewInMemoryExporter()
	reg := prometheus.NewPedanticRegistry()
	tr := newTracing(t, cfg, Options{Exporters: []sdktrace.SpanExporter{mem}, Clock: clk, Registerer: reg})

	var mu sync.Mutex
	slow := false
	up := newUpstream(t)
	up.onRequest = func(*http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if slow {
			clk.Advance(2 * time.Second)
		}
	}
	// The fake clock times the request: Start from it, End via Finish.
	startAt := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			observe.FromContext(r.Context()).Start = clk.Now()
			next.ServeHTTP(w, r)
		})
	}
	gwOK := startGateway(t, tr, cfg, "public", mustURL(t, up.srv.URL), 2, startAt)
	up503 := newUpstream(t, 503, 200)
	gwRetry := startGateway(t, tr, cfg, "public", mustURL(t, up503.srv.URL), 2, startAt)
	up500 := newUpstream(t, 500)
	gwErr := startGateway(t, tr, cfg, "public", mustURL(t, up500.srv.URL), 1, startAt)

	run := func(gw *gatewayUnderTest) (string, []tracetest.SpanStub) {
		mem.Reset()
		resp := gw.get(t, "/items/1", nil)
		_ = tr.ForceFlush(context.Background())
		return resp.Header.Get("Traceresponse"), mem.GetSpans()
	}
	decision := func(spans []tracetest.SpanStub) string {
		for _, s := range spans {
			for _, a := range s.Attributes {
				if a.Key == "vantage.sampling.decision" {
					return a.Value.AsString()
				}
			}
		}
		return ""
	}

	if _, spans := run(gwOK); len(spans) != 0 {
		t.Fatalf("fast 200 at ratio 0 exported %d spans", len(spans))
	}
	if got := up.received()[0].Get("Traceparent"); !strings.HasSuffix(got, "-00") {
		t.Fatalf("head decision not propagated as unsampled: %q", got)
	}
	if _, spans := run(gwErr); len(spans) != 2 || decision(spans) != "late_error" {
		t.Fatalf("500: %d spans decision %q", len(spans), decision(spans))
	}
	if _, spans := run(gwRetry); len(spans) != 3 || decision(spans) != "late_retried" {
		t.Fatalf("retried: %d spans decision %q", len(spans), decision(spans))
	}
	clk.Advance(time.Hour) // refill the late budget
	mu.Lock()
	slow = true
	mu.Unlock()
	if _, spans := run(gwOK); len(spans) != 2 || decision(spans) != "late_slow" {
		t.Fatalf("slow: %d spans decision %q", len(spans), decision(spans))
	}
	mu.Lock()
	slow = false
	mu.Unlock()

	// The late budget: 2 per second, burst 2; the clock stands still.
	clk.Advance(time.Hour)
	kept := 0
	for i := 0; i < 5; i++ {
		if _, spans := run(gwErr); len(spans) > 0 {
			kept++
		}
	}
	if kept != 2 {
		t.Fatalf("late cap kept %d of 5, want 2", kept)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "vantage_tracing_traces_total" {
			for _, m := range mf.GetMetric() {
				counts[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if counts["dropped"] != 1 || counts["late_error"] != 3 || counts["late_retried"] != 1 || counts["late_slow"] != 1 || counts["rate_limited"] != 3 {
		t.Errorf("decision counts %v", counts)
	}
}

func TestHeadRateLimit(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	cfg := parseTracing(t, "sampling:\n  max_per_second: 1\n  late: {errors: false, retried: false}\n", "")
	mem := tracetest.NewInMemoryExporter()
	tr := newTracing(t, cfg, Options{Exporters: []sdktrace.SpanExporter{mem}, Clock: clk})
	up := newUpstream(t)
	gw := startGateway(t, tr, cfg, "public", mustURL(t, up.srv.URL), 1)
	for i := 0; i < 3; i++ {
		// A sampled caller cannot exceed the cap either.
		gw.get(t, "/items/1", h("traceparent", "00-"+inTID+"-"+inSID+"-01"))
	}
	_ = tr.ForceFlush(context.Background())
	if n := len(mem.GetSpans()); n != 2 {
		t.Fatalf("exported %d spans, want one trace (2 spans)", n)
	}
	var flags []string
	for _, hd := range up.received() {
		tp := hd.Get("Traceparent")
		flags = append(flags, tp[len(tp)-2:])
	}
	if strings.Join(flags, ",") != "01,00,00" {
		t.Fatalf("propagated flags %v: downstream must follow the decision", flags)
	}
}

func TestBlackHoledExporterLeavesRequestsUnblocked(t *testing.T) {
	hole := otlptest.StartBlackHole(t)
	cfg := parseTracing(t, fmt.Sprintf(`exporters:
  - name: hole
    type: otlp_grpc
    endpoint: "http://%s"
    timeout: 1s
    queue_size: 4
    batch_size: 2
    flush_interval: 10ms
  - name: hole-http
    type: otlp_http
    endpoint: "http://%s"
    timeout: 1s
    queue_size: 4
    batch_size: 2
    flush_interval: 10ms
`, hole, hole), "")
	reg := prometheus.NewPedanticRegistry()
	mem := tracetest.NewInMemoryExporter()
	tr, err := New(cfg.Tracing, Options{Registerer: reg, Exporters: []sdktrace.SpanExporter{mem}})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	gw := startGateway(t, tr, cfg, "public", mustURL(t, up.srv.URL), 1)

	const n = 100
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i++ {
			gw.get(t, "/items/1", nil)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("requests blocked behind a black-holed exporter")
	}
	// The healthy exporter beside the dead ones got everything.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = tr.ForceFlush(ctx)
	if got := len(mem.GetSpans()); got != 2*n {
		t.Errorf("healthy exporter got %d spans, want %d", got, 2*n)
	}
	if err := tr.Shutdown(ctx); err != nil {
		t.Logf("shutdown: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	dropped := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "vantage_tracing_spans_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var exp, reason string
			for _, l := range m.GetLabel() {
				if l.GetName() == "exporter" {
					exp = l.GetValue()
				} else {
					reason = l.GetValue()
				}
			}
			dropped[exp+"/"+reason] += m.GetCounter().GetValue()
		}
	}
	for _, exp := range []string{"hole", "hole-http"} {
		total := dropped[exp+"/queue_full"] + dropped[exp+"/export_error"] + dropped[exp+"/shutdown"]
		if dropped[exp+"/queue_full"] == 0 || total != 2*n {
			t.Errorf("%s: dropped %v, want queue_full > 0 and %d in all", exp, dropped, 2*n)
		}
	}
}

// assertSameSpans checks that the spans an OTLP receiver got (encoded
// straight from the Record) are those an SDK exporter got (as snapshots),
// field by field.
func assertSameSpans(t *testing.T, got []otlptest.Span, want tracetest.SpanStubs) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("OTLP receiver got %d spans, SDK exporter %d", len(got), len(want))
	}
	byID := map[string]tracetest.SpanStub{}
	for _, w := range want {
		byID[w.SpanContext.SpanID().String()] = w
	}
	for _, g := range got {
		w, ok := byID[g.SpanID]
		if !ok {
			t.Errorf("span %s %q: not among the SDK exporter's", g.SpanID, g.Name)
			continue
		}
		parent := ""
		if w.Parent.SpanID().IsValid() {
			parent = w.Parent.SpanID().String()
		}
		if g.Name != w.Name || g.TraceID != w.SpanContext.TraceID().String() || g.ParentSpanID != parent ||
			!g.Start.Equal(w.StartTime) || !g.End.Equal(w.EndTime) ||
			g.StatusError != (w.Status.Code == codes.Error) || g.StatusMessage != w.Status.Description {
			t.Errorf("span %s: OTLP %+v\nSDK %+v", g.SpanID, g, w)
		}
		if fmt.Sprint(g.Attrs) != fmt.Sprint(attrMap(w.Attributes)) {
			t.Errorf("span %s %q attributes:\nOTLP %v\nSDK  %v", g.SpanID, g.Name, g.Attrs, attrMap(w.Attributes))
		}
		if len(g.Events) != len(w.Events) {
			t.Errorf("span %s: %d events, SDK %d", g.SpanID, len(g.Events), len(w.Events))
			continue
		}
		for i, e := range w.Events {
			if g.Events[i].Name != e.Name || fmt.Sprint(g.Events[i].Attrs) != fmt.Sprint(attrMap(e.Attributes)) {
				t.Errorf("span %s event %d: OTLP %v, SDK %v %v", g.SpanID, i, g.Events[i], e.Name, e.Attributes)
			}
		}
	}
}

// attrMap flattens attributes the way otlptest does.
func attrMap(kvs []attribute.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		switch kv.Value.Type() {
		case attribute.STRINGSLICE:
			var out []any
			for _, v := range kv.Value.AsStringSlice() {
				out = append(out, v)
			}
			m[string(kv.Key)] = out
		default:
			m[string(kv.Key)] = kv.Value.AsInterface()
		}
	}
	return m
}
