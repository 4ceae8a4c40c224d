package accesslog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/otlptest"
)

// otlpConfig parses a config whose tracing section has one exporter and
// whose access log exports through it.
func otlpConfig(t testing.TB, exporter, accessLog string) *config.Config {
	t.Helper()
	y := "listeners: [{name: public, address: \"127.0.0.1:0\"}]\n" +
		"tracing:\n  service_name: edge\n  resource_attributes: {deployment.environment: test}\n  exporters:\n    - " + exporter + "\n" +
		"access_log:\n" + accessLog
	cfg, err := config.Parse("t.yml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// serveOne sends one request through the stand-in gateway (entry handler,
// the access log of l, a proxy to upstream) and returns the response
// status.
func serveOne(t *testing.T, l *Logger, clk *clock.Fake, upstream, path string, hdr http.Header) int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	chain := middleware.Chain(proxyStandIn(clk, upstream, client), ended(l, l.ForRoute(routeOf("users"))))
	gw := httptest.NewServer(standIn(clk, chain))
	defer gw.Close()
	req, _ := http.NewRequest("GET", gw.URL+path, nil)
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	gc := gw.Client()
	defer gc.CloseIdleConnections()
	resp, err := gc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func testUpstream(t *testing.T) string {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Set-Cookie", "sid=secret")
		fmt.Fprint(w, "hello")
	}))
	t.Cleanup(up.Close)
	return up.URL
}

var secretHeaders = http.Header{
	"User-Agent":    {"probe/1.0"},
	"X-Request-Id":  {"abc"},
	"Authorization": {"Bearer secret-token"},
	"Cookie":        {"session=secret"},
	"X-Api-Key":     {"secret-key"},
	"Referer":       {"https://shop.example.com/cart?token=secret-ref&x=1"},
}

// assertNoSecret fails when any attribute of rec holds a secret value.
func assertNoSecret(t *testing.T, rec otlptest.Log) {
	t.Helper()
	s := fmt.Sprint(rec.Attrs, rec.Body)
	for _, secret := range []string{"secret-token", "session=secret", "secret-key", "secret-ref", "sid=secret", "s3cr3t"} {
		if strings.Contains(s, secret) {
			t.Errorf("secret %q exported: %s", secret, s)
		}
	}
	for k := range rec.Attrs {
		if strings.Contains(k, "authorization") || strings.Contains(k, "cookie") || strings.Contains(k, "api-key") {
			t.Errorf("credential header %s exported", k)
		}
	}
}

// A request through the middleware becomes one OTLP log record with the
// JSON line's fields, the request's trace and span id, redacted values and
// the tracing resource; the local log is still written.
func TestOTLPExportHTTP(t *testing.T) {
	recv, base := otlptest.StartLogsHTTP(t)
	cfg := otlpConfig(t,
		`{name: collector, type: otlp_http, endpoint: "`+base+`/v1/traces", compression: gzip, headers: {X-Tenant: acme}}`,
		"  request_headers: [X-Request-Id]\n  response_headers: [Content-Type]\n  redact_query_params: [sso]\n  otlp: {exporter: collector, flush_interval: 10ms}\n")
	clk := clock.NewFake(t0)
	out := &syncBuffer{}
	reg := prometheus.NewRegistry()
	l, err := New(cfg.AccessLog, Options{Stdout: out, Clock: clk, Tracing: &cfg.Tracing, Version: "1.2.3", Registerer: reg, ReportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	status := serveOne(t, l, clk, testUpstream(t), "/users/7?x=1&token=s3cr3t&sso=s3cr3t", secretHeaders)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	got := recv.Wait(t, 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d records", len(got))
	}
	rec := got[0]
	if rec.Body != "GET /users/{id} 200" || rec.SeverityText != "INFO" || rec.Severity != 9 || rec.EventName != EventName {
		t.Errorf("body/severity/event: %q %q %d %q", rec.Body, rec.SeverityText, rec.Severity, rec.EventName)
	}
	if rec.TraceID != "01020300000000000000000000000000" || rec.SpanID != "0405000000000000" || rec.Flags != 0 {
		t.Errorf("trace: %s %s flags %d", rec.TraceID, rec.SpanID, rec.Flags)
	}
	// The fake clock moved 4ms during the request; the record ends then.
	if want := t0.Add(4 * time.Millisecond); !rec.Time.Equal(want) || !rec.Observed.Equal(want) {
		t.Errorf("time %v observed %v, want %v", rec.Time, rec.Observed, want)
	}
	want := map[string]any{
		"http.request.method":               "GET",
		"url.path":                          "/users/7",
		"url.query":                         "x=1&token=REDACTED&sso=REDACTED",
		"http.route":                        "/users/{id}",
		"network.protocol.version":          "1.1",
		"client.address":                    "127.0.0.1",
		"user_agent.original":               "probe/1.0",
		"http.request.header.referer":       []any{"https://shop.example.com/cart?token=REDACTED&x=1"},
		"http.response.status_code":         int64(200),
		"listener":                          "public",
		"route":                             "users",
		"service":                           "users",
		"attempts":                          int64(1),
		"http.request.body.size":            int64(0),
		"http.response.body.size":           int64(5),
		"duration_seconds":                  0.004,
		"upstream_duration_seconds":         0.003,
		"overhead_seconds":                  0.001,
		"http.request.header.x-request-id":  []any{"abc"},
		"http.response.header.content-type": []any{"text/plain"},
	}
	for k, v := range want {
		if fmt.Sprint(rec.Attrs[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %#v, want %#v", k, rec.Attrs[k], v)
		}
	}
	if _, ok := rec.Attrs["error.type"]; ok {
		t.Errorf("error.type on a success: %v", rec.Attrs)
	}
	if rec.Attrs["upstream"] == "" || rec.Attrs["server.address"] == "" {
		t.Errorf("upstream/server.address missing: %v", rec.Attrs)
	}
	assertNoSecret(t, rec)
	if rec.Resource["service.name"] != "edge" || rec.Resource["service.version"] != "1.2.3" || rec.Resource["deployment.environment"] != "test" {
		t.Errorf("resource: %v", rec.Resource)
	}
	if rec.Scope != InstrumentationName || rec.Version != "1.2.3" {
		t.Errorf("scope %q %q", rec.Scope, rec.Version)
	}
	_, headers := recv.Received()
	if headers[0].Get("X-Tenant") != "acme" || headers[0].Get("Content-Encoding") != "gzip" {
		t.Errorf("export headers: %v", headers[0])
	}
	if !strings.Contains(out.String(), `"url.path":"/users/7"`) {
		t.Errorf("local log not written: %q", out.String())
	}
	if st := l.Stats(); st.OTLPExported != 1 || st.Written != 1 || st.OTLPDroppedQueueFull != 0 {
		t.Errorf("stats: %+v", st)
	}
	if v := metricValue(t, reg, "vantage_accesslog_otlp_records_exported_total", ""); v != 1 {
		t.Errorf("exported metric = %v", v)
	}
}

// gRPC export with output none: severities follow the status, and the
// same filters apply as to the local log.
func TestOTLPExportGRPC(t *testing.T) {
	recv, addr := otlptest.StartLogsGRPC(t)
	cfg := otlpConfig(t,
		`{name: collector, type: otlp_grpc, endpoint: "http://`+addr+`", headers: {X-Tenant: acme}}`,
		"  output: none\n  filter: {status: [\"4xx\", \"5xx\", \"200\"], exclude_routes: []}\n  otlp: {exporter: collector, flush_interval: 10ms}\n")
	clk := clock.NewFake(t0)
	l, err := New(cfg.AccessLog, Options{Clock: clk, Tracing: &cfg.Tracing, ReportInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	up := testUpstream(t)
	serveOne(t, l, clk, up, "/users/1", secretHeaders)
	serveOne(t, l, clk, "http://127.0.0.1:1", "/users/2", nil) // connection refused: 502
	// 404 from the stand-in: a handler that answers itself.
	h := ended(l, l.ForRoute(routeOf("users")))(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) }))
	gw := httptest.NewServer(standIn(clk, h))
	defer gw.Close()
	resp, err := gw.Client().Get(gw.URL + "/users/3")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	gw.Client().CloseIdleConnections()

	got := recv.Wait(t, 3)
	sev := map[string]string{}
	for _, r := range got {
		sev[r.Attrs["url.path"].(string)] = r.SeverityText
		if r.TraceID != "01020300000000000000000000000000" {
			t.Errorf("trace id %s", r.TraceID)
		}
		assertNoSecret(t, r)
	}
	if sev["/users/1"] != "INFO" || sev["/users/2"] != "ERROR" || sev["/users/3"] != "WARN" {
		t.Errorf("severities: %v", sev)
	}
	for _, r := range got {
		if r.Attrs["url.path"] == "/users/2" && r.Attrs["error.type"] != "upstream_connect" {
			t.Errorf("error.type: %v", r.Attrs)
		}
	}
	_, headers := recv.Received()
	if headers[0].Get("X-Tenant") != "acme" {
		t.Errorf("metadata: %v", headers[0])
	}
	waitFor(t, "exports counted", func() bool { return l.Stats().OTLPExported == 3 })
	if st := l.Stats(); st.Written != 0 || st.OTLPExported != 3 {
		t.Errorf("stats: %+v", st)
	}
}

// A collector that accepts connections and never answers must not slow
// requests down: records beyond the queue are dropped and counted, the
// local log is complete, and Close gives up after its timeout.
func TestOTLPBlackHoleDoesNotBlock(t *testing.T) {
	for _, typ := range []string{"otlp_http", "otlp_grpc"} {
		t.Run(typ, func(t *testing.T) {
			addr := otlptest.StartBlackHole(t)
			cfg := otlpConfig(t,
				`{name: c, type: `+typ+`, endpoint: "http://`+addr+`", timeout: 60s}`,
				"  otlp: {exporter: c, queue_size: 8, batch_size: 4, flush_interval: 1ms}\n")
			reg := prometheus.NewRegistry()
			out := &syncBuffer{}
			l := newTestLogger(t, cfg.AccessLog, out, func(o *Options) {
				o.Tracing, o.Registerer, o.CloseTimeout = &cfg.Tracing, reg, 300*time.Millisecond
			})
			const n = 200
			finished := make(chan struct{})
			go func() {
				defer close(finished)
				for i := 0; i < n; i++ {
					logOne(l, "users", sampleRecord())
				}
			}()
			select {
			case <-finished:
			case <-time.After(30 * time.Second):
				t.Fatal("requests blocked behind the OTLP export")
			}
			st := l.Stats()
			// At most a queue and a batch are held; the rest is dropped.
			if st.OTLPDroppedQueueFull < n-8-4 || st.OTLPDroppedQueueFull > n || st.OTLPExported != 0 {
				t.Errorf("stats: %+v", st)
			}
			if v := metricValue(t, reg, "vantage_accesslog_records_dropped_total", "otlp_queue_full"); v < float64(st.OTLPDroppedQueueFull) {
				t.Errorf("dropped metric = %v, stats %+v", v, st)
			}
			waitFor(t, "local log", func() bool { return l.Stats().Written == n })
			start := time.Now()
			err := l.Close()
			if err == nil || !strings.Contains(err.Error(), "not exported") {
				t.Errorf("Close = %v, want a not-exported error", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Close took %v", d)
			}
			if st := l.Stats(); st.OTLPDroppedQueueFull+st.OTLPDroppedExportError+st.OTLPExported > n {
				t.Errorf("counted more records than sent: %+v", st)
			}
		})
	}
}

// memExporter keeps exported records in memory; block, when set, holds
// every Export until it is closed or the context ends.
type memExporter struct {
	mu      sync.Mutex
	records []sdklog.Record
	batches []int
	block   chan struct{}
	fail    error
}

func (m *memExporter) Export(ctx context.Context, recs []sdklog.Record) error {
	if m.block != nil {
		select {
		case <-m.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if m.fail != nil {
		return m.fail
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batches = append(m.batches, len(recs))
	for i := range recs {
		m.records = append(m.records, recs[i].Clone())
	}
	return nil
}

func (m *memExporter) Shutdown(context.Context) error   { return nil }
func (m *memExporter) ForceFlush(context.Context) error { return nil }

func (m *memExporter) attrs() []map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []map[string]string
	for i := range m.records {
		a := map[string]string{"body": m.records[i].Body().Emit()}
		m.records[i].WalkAttributes(func(kv attribute.KeyValue) bool {
			a[string(kv.Key)] = kv.Value.Emit()
			return true
		})
		out = append(out, a)
	}
	return out
}

// Client values that are not valid UTF-8 are repaired (OTLP refuses the
// whole batch otherwise), long ones cut, and the local log's filter
// decides for both outputs.
func TestOTLPValuesAndFilter(t *testing.T) {
	mem := &memExporter{}
	cfg := testConfig(func(a *config.AccessLog) {
		a.OTLP = &config.AccessLogOTLP{Exporter: "x", QueueSize: 16, BatchSize: 16, FlushInterval: config.Duration(time.Millisecond)}
		a.Filter.ExcludeRoutes = []string{"health"}
		a.RequestHeaders = []string{"X-Request-Id"}
	})
	l := newTestLogger(t, cfg, io.Discard, func(o *Options) { o.LogExporter = mem })
	if l.ForRoute(routeOf("health")) != nil {
		t.Fatal("excluded route logged")
	}
	mw := ended(l, l.ForRoute(routeOf("users")))
	h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := sampleRequest()
	r.RequestURI = "/users/\xff?q=" + strings.Repeat("a", 5000) + "&token=x"
	r.Header["User-Agent"] = []string{"bad\xc3"}
	r.Header["X-Request-Id"] = []string{"one", "two"}
	h.ServeHTTP(httptest.NewRecorder(), r.WithContext(observe.NewContext(r.Context(), sampleRecord())))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := mem.attrs()
	if len(got) != 1 {
		t.Fatalf("got %d records", len(got))
	}
	a := got[0]
	if a["url.path"] != "/users/\uFFFD" || a["user_agent.original"] != "bad\uFFFD" {
		t.Errorf("utf-8: %q %q", a["url.path"], a["user_agent.original"])
	}
	if q := a["url.query"]; len(q) != maxValueBytes+len(truncMark) || !strings.HasSuffix(q, truncMark) || strings.Contains(q, "token=x") {
		t.Errorf("query: %d bytes, ends %q", len(q), q[len(q)-10:])
	}
	if a["http.request.header.x-request-id"] != `["one","two"]` {
		t.Errorf("header: %q", a["http.request.header.x-request-id"])
	}
	if a["body"] != "GET /users/{id} 200" {
		t.Errorf("body %q", a["body"])
	}
}

// A full batch is exported when it is ready; the partial batch behind it
// waits for the flush interval (or Close) instead of going out at once.
func TestOTLPExportsFullBatches(t *testing.T) {
	mem := &memExporter{}
	cfg := testConfig(func(a *config.AccessLog) {
		a.Output = config.OutputNone
		a.OTLP = &config.AccessLogOTLP{Exporter: "x", QueueSize: 64, BatchSize: 4, FlushInterval: config.Duration(time.Hour)}
	})
	l := newTestLogger(t, cfg, io.Discard, func(o *Options) { o.LogExporter = mem })
	for range 6 {
		logOne(l, "users", sampleRecord())
	}
	waitFor(t, "the first batch", func() bool { return l.Stats().OTLPExported == 4 })
	time.Sleep(20 * time.Millisecond) // room for a wrong early export to show
	if got := l.Stats().OTLPExported; got != 4 {
		t.Errorf("exported %d before the interval, want 4", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mem.mu.Lock()
	defer mem.mu.Unlock()
	if !slices.Equal(mem.batches, []int{4, 2}) {
		t.Errorf("batches %v, want [4 2]", mem.batches)
	}
}

// Export errors are counted per record and reported on the operational
// log, once per report interval.
func TestOTLPExportErrorReported(t *testing.T) {
	mem := &memExporter{fail: fmt.Errorf("collector says no")}
	logs := &syncBuffer{}
	cfg := testConfig(func(a *config.AccessLog) {
		a.Output = config.OutputNone
		a.OTLP = &config.AccessLogOTLP{Exporter: "x", QueueSize: 16, BatchSize: 2, FlushInterval: config.Duration(time.Millisecond)}
	})
	l := newTestLogger(t, cfg, io.Discard, func(o *Options) {
		o.LogExporter = mem
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	for i := 0; i < 3; i++ {
		logOne(l, "users", sampleRecord())
	}
	waitFor(t, "failed exports", func() bool { return l.Stats().OTLPDroppedExportError == 3 })
	l.reportDrops()
	l.reportDrops()
	if s := logs.String(); strings.Count(s, "OTLP export failed") != 1 || !strings.Contains(s, "collector says no") {
		t.Errorf("operational log: %q", s)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// The request path copies the request into a recycled entry without
// allocating.
func TestOTLPCaptureDoesNotAllocate(t *testing.T) {
	cfg := testConfig(func(a *config.AccessLog) {
		a.RequestHeaders = []string{"X-Request-Id"}
		a.OTLP = &config.AccessLogOTLP{Exporter: "x", QueueSize: 256, BatchSize: 256, FlushInterval: config.Duration(time.Hour)}
	})
	l := newTestLogger(t, cfg, io.Discard, func(o *Options) { o.LogExporter = &memExporter{} })
	defer l.Close()
	s := l.otlp
	rec, r := sampleRecord(), sampleRequest()
	resp := http.Header{}
	now := t0
	// Steady state: every entry made and used once.
	for range s.entries.Max() {
		s.capture(rec, r, resp, now)
	}
	if err := s.queue.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 101 captures (AllocsPerRun's warm-up and 100 runs) fit in the queue
	// and stay there: the flush interval is an hour.
	allocs := testing.AllocsPerRun(100, func() {
		s.capture(rec, r, resp, now)
	})
	if n := s.queue.Len(); n != 101 {
		t.Fatalf("queued %d, want 101", n)
	}
	if allocs != 0 {
		t.Errorf("capture allocates %.1f times", allocs)
	}
}
