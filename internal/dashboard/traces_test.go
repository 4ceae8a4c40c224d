package dashboard_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/dashboard"
	"github.com/vantage-gateway/vantage/internal/tracestore"
	"github.com/vantage-gateway/vantage/internal/tracestore/queryapi"
)

// storeWithTrace returns a real trace store holding one trace: a web
// SERVER span calling a db SERVER span, with an event on the web span.
func storeWithTrace(t *testing.T) (*tracestore.Store, string) {
	t.Helper()
	st, err := tracestore.New(tracestore.Options{Budget: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tp := func(name string) *sdktrace.TracerProvider {
		p := sdktrace.NewTracerProvider(sdktrace.WithSyncer(st.SpanExporter()),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))))
		t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
		return p
	}
	web, db := tp("web").Tracer("web"), tp("db").Tracer("db")
	ctx, root := web.Start(context.Background(), "GET /orders", trace.WithSpanKind(trace.SpanKindServer))
	root.AddEvent("retry", trace.WithAttributes(attribute.Int("attempt", 2)))
	_, child := db.Start(ctx, "SELECT orders", trace.WithSpanKind(trace.SpanKindServer))
	child.End()
	root.End()
	if err := st.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st, root.SpanContext().TraceID().String()
}

func getJSON(t *testing.T, srv *httptest.Server, path string, v any) int {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v: %s", path, err, b)
		}
	}
	return resp.StatusCode
}

// TestTracesThroughTheSource: the dashboard's trace endpoints read the
// real store through StoreTraces.
func TestTracesThroughTheSource(t *testing.T) {
	st, id := storeWithTrace(t)
	srv := httptest.NewServer(dashboard.New(dashboard.Options{Traces: dashboard.StoreTraces(st)}))
	t.Cleanup(srv.Close)

	var doc queryapi.TraceDoc
	if c := getJSON(t, srv, "/api/dashboard/traces/"+id, &doc); c != 200 {
		t.Fatalf("trace: %d", c)
	}
	services := map[string]bool{}
	events := 0
	for _, s := range doc.Spans {
		services[s.Service] = true
		events += len(s.Events)
	}
	if len(doc.Spans) != 2 || !services["web"] || !services["db"] || events != 1 {
		t.Errorf("trace: %+v", doc)
	}

	var search struct {
		Traces []queryapi.SummaryDoc `json:"traces"`
	}
	if c := getJSON(t, srv, "/api/dashboard/traces?service=db&since=1h", &search); c != 200 || len(search.Traces) != 1 || search.Traces[0].TraceID != id || search.Traces[0].Spans != 2 {
		t.Errorf("search: %d %+v", c, search)
	}
	if c := getJSON(t, srv, "/api/dashboard/traces?service=nobody", &search); c != 200 || len(search.Traces) != 0 {
		t.Errorf("search of an unknown service: %d %+v", c, search)
	}

	var deps struct {
		Lookback     string                 `json:"lookback"`
		Dependencies []dashboard.Dependency `json:"dependencies"`
	}
	if c := getJSON(t, srv, "/api/dashboard/dependencies?lookback=5m", &deps); c != 200 || deps.Lookback != "5m0s" ||
		len(deps.Dependencies) != 1 || deps.Dependencies[0] != (dashboard.Dependency{Parent: "web", Child: "db", CallCount: 1}) {
		t.Errorf("dependencies: %d %+v", c, deps)
	}
}

// TestTracesErrors: bad ids and parameters are 400s that name them; an
// absent trace is a 404; without a source every trace endpoint is a 404
// that says so.
func TestTracesErrors(t *testing.T) {
	st, _ := storeWithTrace(t)
	srv := httptest.NewServer(dashboard.New(dashboard.Options{Traces: dashboard.StoreTraces(st)}))
	t.Cleanup(srv.Close)
	none := httptest.NewServer(dashboard.New(dashboard.Options{}))
	t.Cleanup(none.Close)
	for _, c := range []struct {
		srv  *httptest.Server
		path string
		code int
		msg  string
	}{
		{srv, "/api/dashboard/traces/xyz", 400, `trace id "xyz"`},
		{srv, "/api/dashboard/traces/0af7651916cd43dd8448eb211c80319c", 404, "not in the trace store"},
		{srv, "/api/dashboard/traces?status=700", 400, "status"},
		{srv, "/api/dashboard/traces?colour=red", 400, "unknown parameter"},
		{srv, "/api/dashboard/dependencies?lookback=2d", 400, "lookback"},
		{srv, "/api/dashboard/dependencies?end=1", 400, `unknown parameter "end"`},
		{none, "/api/dashboard/traces", 404, "no trace store"},
		{none, "/api/dashboard/traces/0af7651916cd43dd8448eb211c80319c", 404, "no trace store"},
		{none, "/api/dashboard/dependencies", 404, "no trace store"},
	} {
		var body map[string]string
		if code := getJSON(t, c.srv, c.path, &body); code != c.code || !strings.Contains(body["error"], c.msg) {
			t.Errorf("%s: %d %q, want %d and %q", c.path, code, body["error"], c.code, c.msg)
		}
	}
}

// FuzzSpanParameters: the window and lookback parameters never crash the
// handler and answer 200 or 400.
func FuzzSpanParameters(f *testing.F) {
	for _, s := range []string{"", "5m", "1s", "24h", "86400", "0", "-1s", "25h", "1e9", "9999999999999999999", "1h1m1s", "300ms", strings.Repeat("9", 40)} {
		f.Add(s)
	}
	st, err := tracestore.New(tracestore.Options{Budget: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	h := dashboard.New(dashboard.Options{Traces: dashboard.StoreTraces(st)})
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range []string{"/api/dashboard/overview?window=", "/api/dashboard/dependencies?lookback="} {
			req := httptest.NewRequest("GET", p+url.QueryEscape(s), nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 && w.Code != 400 {
				t.Fatalf("%q: %d %s", s, w.Code, w.Body.String())
			}
		}
	})
}
