package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/vantage-gateway/vantage/internal/accesslog"
	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/metrics"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/tracing"
)

// syncBuffer is an access log output safe to read while the writer runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// readerFunc adapts a function to observe.RecordReader.
type readerFunc func(rec *observe.Record)

func (f readerFunc) ReadRecord(rec *observe.Record) { f(rec) }

// TestEveryReaderSeesTheSameEnd: the gateway stamps Start and End with its
// clock, once, before any reader reads the record. With a fake clock that
// the upstream moves on by 40ms, the metrics histogram, the access log
// line, the server span and a RecordReader all see Start = t0 and End =
// t0+40ms; none of them reads a clock of its own for the request.
func TestEveryReaderSeesTheSameEnd(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const took = 40 * time.Millisecond
	clk := clock.NewFake(t0)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clk.Advance(took)
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	cfg, err := config.Parse("lifecycle.yml", []byte(`
listeners: [{name: public, address: "127.0.0.1:0"}]
services: [{name: items, upstreams: [{url: "`+up.URL+`"}]}]
routes:
  - {name: item, match: {path: "/items/{id}"}, service: items}
`), nil)
	if err != nil {
		t.Fatal(err)
	}

	// Each reader gets a clock that is wrong on purpose: a reader that
	// read its own clock for the request's end would show it.
	wrong := clock.NewFake(t0.Add(time.Hour))
	m, err := metrics.New(cfg.Metrics, metrics.Options{Clock: wrong})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	spans := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(cfg.Tracing, tracing.Options{Clock: wrong, Exporters: []sdktrace.SpanExporter{spans}})
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	al, err := accesslog.New(cfg.AccessLog, accesslog.Options{Stdout: out, Clock: wrong})
	if err != nil {
		t.Fatal(err)
	}
	var seen []observe.Record
	var mu sync.Mutex
	reader := readerFunc(func(rec *observe.Record) {
		mu.Lock()
		seen = append(seen, observe.Record{Start: rec.Start, End: rec.End, Status: rec.Status, Trace: rec.Trace})
		mu.Unlock()
	})
	g, err := gateway.New(cfg, gateway.Options{Clock: clk, Observer: observe.Join(m, tr), WrapTransport: tr.WrapTransport,
		Telemetry: middleware.Telemetry{Tracing: tr, Metrics: m, AccessLog: al, Readers: []observe.RecordReader{reader}}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g.Handler("public"))
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL + "/items/1")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	want := t0.Add(took)

	mu.Lock()
	if len(seen) != 1 || !seen[0].Start.Equal(t0) || !seen[0].End.Equal(want) || seen[0].Status != 200 || !seen[0].Trace.Valid {
		t.Errorf("reader saw %+v, want Start %v, End %v, status 200 and the trace", seen, t0, want)
	}
	mu.Unlock()

	// Metrics: the duration histogram's sum is End-Start.
	rr := httptest.NewRecorder()
	m.Handler().ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rr.Body.String(), `vantage_request_duration_seconds_sum{class="2xx",method="GET",route="item",service="items"} 0.04`+"\n") {
		t.Errorf("metrics duration is not 0.04s:\n%s", grepLines(rr.Body.String(), "vantage_request_duration_seconds_sum"))
	}

	// Span: flushed by ForceFlush.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(ctx)
	var server int
	for _, s := range spans.GetSpans() {
		if s.SpanKind.String() != "server" {
			continue
		}
		server++
		if !s.StartTime.Equal(t0) || !s.EndTime.Equal(want) {
			t.Errorf("server span %v → %v, want %v → %v", s.StartTime, s.EndTime, t0, want)
		}
	}
	if server != 1 {
		t.Errorf("%d server spans, want 1", server)
	}

	// Access log: flushed by Close.
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	var line struct {
		Duration float64 `json:"duration_seconds"`
		Status   int     `json:"http.response.status_code"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out.String())), &line); err != nil {
		t.Fatalf("access log %q: %v", out.String(), err)
	}
	if line.Duration != took.Seconds() || line.Status != 200 {
		t.Errorf("access log duration %v status %d, want %v and 200", line.Duration, line.Status, took.Seconds())
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestChainOrderIsFixed: whatever the slots hold, the gateway runs them in
// one order, tracing outermost, and the record is finished (End and the
// final status fixed) before any of them reads it, including when a
// traffic control (the rate limit, inside the end stage) answers.
func TestChainOrderIsFixed(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer up.Close()
	cfg, err := config.Parse("order.yml", []byte(`
listeners: [{name: public, address: "127.0.0.1:0"}]
services: [{name: items, upstreams: [{url: "`+up.URL+`"}]}]
routes:
  - {name: item, match: {path: "/items/{id}"}, service: items}
  - name: limited
    match: {path: "/limited"}
    service: items
    rate_limit: {rate: 1, burst: 1}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var trail []string
	note := func(s string) {
		mu.Lock()
		trail = append(trail, s)
		mu.Unlock()
	}
	spy := func(name string) middleware.Factory {
		return middleware.FactoryFunc(func(middleware.Route) middleware.Middleware {
			return func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					rec := observe.FromContext(r.Context())
					note(name + ">" + finished(rec))
					next.ServeHTTP(w, r)
					note("<" + name + finished(rec))
				})
			}
		})
	}
	reader := readerFunc(func(rec *observe.Record) { note("reader" + finished(rec)) })
	g, err := gateway.New(cfg, gateway.Options{Telemetry: middleware.Telemetry{
		// Filled in the "wrong" order on purpose: the slots decide.
		AccessLog: spy("accesslog"), Metrics: spy("metrics"), Tracing: spy("tracing"), Readers: []observe.RecordReader{reader},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g.Handler("public"))
	defer srv.Close()

	for _, tc := range []struct{ path, status string }{
		{"/items/1", "200"}, {"/limited", "200"}, {"/limited", "429"}, {"/nowhere", "404"},
	} {
		mu.Lock()
		trail = nil
		mu.Unlock()
		resp, err := srv.Client().Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		want := "tracing> metrics> accesslog> reader(" + tc.status + ") <accesslog(" + tc.status + ") <metrics(" + tc.status + ") <tracing(" + tc.status + ")"
		mu.Lock()
		got := strings.Join(trail, " ")
		mu.Unlock()
		if got != want {
			t.Errorf("%s:\n got  %s\n want %s", tc.path, got, want)
		}
	}
}

// finished describes what a stage sees of rec: nothing while it is not
// finished, "(status)" once End and the status are fixed.
func finished(rec *observe.Record) string {
	if rec == nil || !rec.Finished() {
		return ""
	}
	return "(" + strconv.Itoa(rec.Status) + ")"
}
