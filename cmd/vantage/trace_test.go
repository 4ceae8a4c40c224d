package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/tracestore/queryapi"
)

// startStoreGateway runs a gateway with the trace store on (its default)
// in front of upstream, and returns its listener and admin addresses.
func startStoreGateway(t *testing.T, upstream string, extra string) (gw, admin string, logs *bytes.Buffer) {
	t.Helper()
	return startGatewayFile(t, fmt.Sprintf(`services: [{name: app, upstreams: [{url: %q}]}]
routes: [{name: hello, match: {path_prefix: /}, service: app}]
%s`, upstream, extra), false, 5*time.Second)
}

func TestTraceStoreEndToEnd(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "hello")
	}))
	defer up.Close()
	gw, admin, logs := startStoreGateway(t, up.URL, "")

	traceOf := func(path string) string {
		resp, err := http.Get(gw + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		tr := resp.Header.Get("Traceresponse")
		parts := strings.Split(tr, "-")
		if len(parts) != 4 {
			t.Fatalf("traceresponse %q", tr)
		}
		return parts[1]
	}
	okID := traceOf("/hello?x=1")
	badID := traceOf("/broken")

	var doc queryapi.TraceDoc
	waitUntil(t, func() bool {
		resp, err := http.Get("http://" + admin + "/api/traces/" + badID)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return false
		}
		json.NewDecoder(resp.Body).Decode(&doc)
		return len(doc.Logs) > 0
	}, logs)
	if len(doc.Spans) != 2 || doc.Class != "pinned" {
		t.Fatalf("spans %d, class %s: %+v", len(doc.Spans), doc.Class, doc)
	}
	var server, client *queryapi.SpanDoc
	for i := range doc.Spans {
		switch doc.Spans[i].Kind {
		case "server":
			server = &doc.Spans[i]
		case "client":
			client = &doc.Spans[i]
		}
	}
	if server == nil || client == nil || client.ParentSpanID != server.SpanID || server.Name != "GET /" || server.Status != "error" {
		t.Fatalf("spans: %+v", doc.Spans)
	}
	if !strings.Contains(doc.Logs[0].Body, badID) || !strings.Contains(doc.Logs[0].Body, `"http.response.status_code":503`) || doc.Logs[0].Severity != "ERROR" {
		t.Errorf("access-log record: %+v", doc.Logs[0])
	}

	// Jaeger's API sees the same trace; the error search finds it.
	if body := adminGet(t, admin, "/jaeger/api/traces/"+okID); !strings.Contains(body, `"operationName":"GET /"`) {
		t.Errorf("jaeger trace: %s", body)
	}
	if body := adminGet(t, admin, "/jaeger/api/services"); !strings.Contains(body, `"data":["vantage"]`) {
		t.Errorf("jaeger services: %s", body)
	}
	if body := adminGet(t, admin, "/api/traces?status=5xx"); !strings.Contains(body, badID) || strings.Contains(body, okID) {
		t.Errorf("search by status class: %s", body)
	}
	if body := adminGet(t, admin, "/metrics"); !strings.Contains(body, "vantage_tracestore_spans ") {
		t.Errorf("no trace store metrics")
	}

	// vantage trace prints the waterfall and the log line.
	var out, errb bytes.Buffer
	if code := run([]string{"trace", "--admin", admin, badID}, &out, &errb); code != 0 {
		t.Fatalf("vantage trace: exit %d: %s", code, errb.String())
	}
	o := out.String()
	for _, want := range []string{"trace " + badID, "SERVICE", "vantage", "GET /", "GET app", "error 503", "█", "logs", "ERROR", "GET /broken  → 503  route=hello"} {
		if !strings.Contains(o, want) {
			t.Errorf("vantage trace output lacks %q:\n%s", want, o)
		}
	}
	// A traceresponse value works as well as the id.
	out.Reset()
	if code := run([]string{"trace", "--admin", "http://" + admin, "00-" + okID + "-0000000000000001-01"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "GET /") {
		t.Errorf("vantage trace with a traceresponse value: %d %s %s", code, out.String(), errb.String())
	}
	// An unknown id: a clear message and exit 1.
	out.Reset()
	errb.Reset()
	if code := run([]string{"trace", "--admin", admin, "0af7651916cd43dd8448eb211c80319c"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "not found in the trace store") {
		t.Errorf("unknown id: exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"trace", "nonsense"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "not a trace id") {
		t.Errorf("bad id: exit %d, stderr %q", code, errb.String())
	}
}

func TestTraceStoreOff(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	_, admin, _ := startStoreGateway(t, up.URL, "trace_store: {enabled: false}\n")
	resp, err := http.Get("http://" + admin + "/jaeger/api/services")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("query API with the store off: %d", resp.StatusCode)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"trace", "--admin", admin, "0af7651916cd43dd8448eb211c80319c"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "trace_store") {
		t.Errorf("store off: exit %d, stderr %q", code, errb.String())
	}
}

// TestTraceStoreWithInstrumentedService sends a request through the gateway
// to a service instrumented with the OpenTelemetry Go SDK, which exports
// OTLP/HTTP to the gateway's receiver: the store holds one trace with the
// gateway's SERVER and CLIENT spans and the service's span under the
// CLIENT span, and the gateway's access-log line.
func TestTraceStoreWithInstrumentedService(t *testing.T) {
	var tracer atomic.Pointer[trace.Tracer]
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		if tr := tracer.Load(); tr != nil {
			_, span := (*tr).Start(ctx, "cart.load", trace.WithSpanKind(trace.SpanKindServer))
			span.SetAttributes(attribute.String("cart.user", "ann"))
			defer span.End()
		}
		fmt.Fprint(w, "cart")
	}))
	defer up.Close()
	gw, admin, logs := startStoreGateway(t, up.URL, "")

	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL("http://"+admin+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "shop"))))
	defer tp.Shutdown(context.Background())
	tr := tp.Tracer("shop")
	tracer.Store(&tr)

	resp, err := http.Get(gw + "/cart")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	id := strings.Split(resp.Header.Get("Traceresponse"), "-")[1]

	var doc queryapi.TraceDoc
	waitUntil(t, func() bool {
		r, err := http.Get("http://" + admin + "/api/traces/" + id)
		if err != nil {
			return false
		}
		defer r.Body.Close()
		doc = queryapi.TraceDoc{}
		json.NewDecoder(r.Body).Decode(&doc)
		return len(doc.Spans) == 3 && len(doc.Logs) == 1
	}, logs)
	byKind := map[string]queryapi.SpanDoc{}
	for _, s := range doc.Spans {
		byKind[s.Service+"/"+s.Kind] = s
	}
	server, client, svc := byKind["vantage/server"], byKind["vantage/client"], byKind["shop/server"]
	if client.ParentSpanID != server.SpanID || svc.ParentSpanID != client.SpanID || svc.Name != "cart.load" || svc.Attributes["cart.user"] != "ann" {
		t.Fatalf("spans not parented gateway SERVER → CLIENT → service: %+v", doc.Spans)
	}
	if body := adminGet(t, admin, "/jaeger/api/dependencies"); !strings.Contains(body, `{"parent":"vantage","child":"shop","callCount":1}`) {
		t.Errorf("dependencies: %s", body)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"trace", "--admin", admin, id}, &out, &errb); code != 0 || !strings.Contains(out.String(), "cart.load") {
		t.Errorf("vantage trace: %d %s %s", code, out.String(), errb.String())
	}
}
