package metrics

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/observe/observetest"
)

// allEvents sends one event of every kind the metrics record.
func allEvents(m *Metrics) {
	for _, ev := range []observe.Event{
		{Kind: observe.EventBreakerTransition, Service: "orders", Breaker: observe.BreakerChange{From: observe.BreakerClosed, To: observe.BreakerOpen, Reason: observe.BreakerConsecutiveFailures}},
		{Kind: observe.EventBreakerTransition, Service: "orders", Breaker: observe.BreakerChange{From: observe.BreakerOpen, To: observe.BreakerHalfOpen, Reason: observe.BreakerCooldown}},
		{Kind: observe.EventBreakerTransition, Service: "orders", Upstream: "10.0.0.1:80", Breaker: observe.BreakerChange{From: observe.BreakerClosed, To: observe.BreakerOpen, Reason: observe.BreakerErrorRatio}},
		{Kind: observe.EventHealthChanged, Service: "orders", Upstream: "10.0.0.2:80", Health: observe.HealthChange{From: observe.HealthHealthy, To: observe.HealthUnhealthy, Reason: observe.HealthTimeout}},
		{Kind: observe.EventHostEjected, Service: "orders", Upstream: "10.0.0.3:80", Ejection: observe.Ejection{Reason: observe.EjectionConsecutive5xx, Failures: 5, Duration: 30 * time.Second}},
		{Kind: observe.EventHostRestored, Service: "orders", Upstream: "10.0.0.4:80", Ejection: observe.Ejection{Reason: observe.EjectionExpired}},
		{Kind: observe.EventConfigReloaded, Source: observe.SourceFile},
		{Kind: observe.EventConfigReloadFailed, Err: errors.New("bad")},
		{Kind: observe.EventMirrored, Route: "shop", Service: "shadow"},
		{Kind: observe.EventRequestBodyTimeout, Route: "shop", Service: "shop", BodyTimeout: observe.BodyLimitMinRate},
	} {
		m.Observe(ev)
	}
}

// populated returns Metrics holding a series in every family: the RED
// scenario's traffic plus every decision event.
func populated(t *testing.T) *Metrics {
	m := newTestMetrics(t, kpiYAML, nil)
	s, _ := scenario(t, m)
	gw := httptest.NewServer(s)
	defer gw.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	paths := []string{"/api/status/200", "/api/status/503", "/checkout/kpi?pay=card&amount=5", "/shop/", "/flaky/",
		"/down/", "/broken/", "/limited/", "/limited/", "/limited/", "/fault/", "/grpc/grpc/0", "/r503/status/503", "/nope"}
	for _, p := range paths {
		req, _ := http.NewRequest("POST", gw.URL+p, strings.NewReader("x"))
		req.Header.Set(hdrTrace, "4bf92f3577b34da6a3ce929d0e0e4736")
		req.Header.Set(hdrSampled, "1")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	s.waitFinished(t, int64(len(paths)))
	allEvents(m)
	return m
}

func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := requireBinary(t, "promtool")
	m := populated(t)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("default format %q, want text/plain", ct)
	}
	for _, fam := range []string{"vantage_requests_total", "vantage_circuit_breaker_state", "vantage_upstream_healthy",
		"vantage_kpi_purchases_total", "vantage_host_cpu_seconds_total", "go_goroutines", "process_cpu_seconds_total"} {
		if !bytes.Contains(body, []byte("\n"+fam)) {
			t.Errorf("%s missing from /metrics", fam)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestOpenMetricsNegotiationAndExemplars(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	m := newTestMetrics(t, "  exemplars: {min_interval: 1s}\n", clk)
	ids := []string{"0af7651916cd43dd8448eb211c80319c", "4bf92f3577b34da6a3ce929d0e0e4736", "11111111111111111111111111111111"}
	fail := false
	h := ended(m, m.ForRoute(middleware.Route{Name: "api", Services: []string{"users"}}))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.FromContext(r.Context())
		rec.Service = "users"
		a := rec.AddAttempt(observe.Attempt{Service: "users", Upstream: "10.0.0.1:8080", Start: clk.Now()})
		clk.Advance(20 * time.Millisecond)
		a.Duration = 20 * time.Millisecond
		if fail {
			a.ErrorKind = observe.ErrUpstreamTimeout
			rec.ErrorKind = observe.ErrUpstreamTimeout
			w.WriteHeader(http.StatusGatewayTimeout)
			return
		}
		a.Status = 200
		w.WriteHeader(http.StatusOK)
	}))
	serve := func(trace string, sampled bool) {
		rec := observe.GetRecord()
		defer observe.PutRecord(rec)
		rec.Start = clk.Now()
		rec.Route = "api"
		b, _ := hex.DecodeString(trace)
		copy(rec.Trace.TraceID[:], b)
		rec.Trace.Valid, rec.Trace.Sampled = true, sampled
		rw := &observetest.ResponseWriter{ResponseWriter: httptest.NewRecorder(), Rec: rec}
		h.ServeHTTP(rw, httptest.NewRequest("GET", "/api/x", nil).WithContext(observe.NewContext(context.Background(), rec)))
		clk.Advance(2 * time.Second) // past the exemplar interval
	}
	serve(ids[0], true)  // 2xx, sampled: exemplar on the latency histograms
	serve(ids[2], false) // not sampled: no exemplar
	fail = true
	serve(ids[1], true) // error: exemplar on the error counters

	text := scrape(t, m, "")
	if strings.Contains(text, "trace_id") {
		t.Error("classic text format carries exemplars")
	}
	om := scrape(t, m, openMetrics)
	if !strings.HasSuffix(om, "# EOF\n") {
		t.Fatal("not OpenMetrics: no # EOF")
	}
	for _, want := range []string{
		`vantage_request_duration_seconds_bucket{class="2xx",method="GET",route="api",service="users",le="0.025"} 2 # {trace_id="` + ids[0] + `"} 0.02`,
		`vantage_upstream_request_duration_seconds_bucket{route="api",service="users",upstream="10.0.0.1:8080",le="0.025"} 3 # {trace_id="` + ids[1] + `"} 0.02`,
		`vantage_request_errors_total{error_kind="upstream_timeout",route="api",service="users"} 1.0 # {trace_id="` + ids[1] + `"} 1.0`,
		`vantage_upstream_errors_total{error_kind="upstream_timeout",route="api",service="users",upstream="10.0.0.1:8080"} 1.0 # {trace_id="` + ids[1] + `"} 1.0`,
	} {
		if !strings.Contains(om, want) {
			t.Errorf("OpenMetrics output lacks\n  %s", want)
		}
	}
	if strings.Contains(om, ids[2]) {
		t.Error("an unsampled request's trace id became an exemplar")
	}
	// The text output parses.
	tp := expfmt.NewTextParser(model.LegacyValidation)
	if _, err := tp.TextToMetricFamilies(strings.NewReader(text)); err != nil {
		t.Errorf("text format does not parse: %v", err)
	}
}

func TestExemplarInterval(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	m := newTestMetrics(t, "  exemplars: {min_interval: 10s}\n", clk)
	h := ended(m, m.ForRoute(middleware.Route{Name: "r"}))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		observe.FromContext(r.Context()).ErrorKind = observe.ErrInternal
		w.WriteHeader(500)
	}))
	serve := func(id byte) {
		rec := observe.GetRecord()
		defer observe.PutRecord(rec)
		rec.Start = clk.Now()
		rec.Trace = observe.TraceContext{TraceID: [16]byte{id}, Valid: true, Sampled: true}
		rw := &observetest.ResponseWriter{ResponseWriter: httptest.NewRecorder(), Rec: rec}
		h.ServeHTTP(rw, httptest.NewRequest("GET", "/", nil).WithContext(observe.NewContext(context.Background(), rec)))
	}
	serve(0xa1)
	clk.Advance(time.Second)
	serve(0xb2) // within 10s: keeps the first exemplar
	if om := scrape(t, m, openMetrics); !strings.Contains(om, `trace_id="a1`) || strings.Contains(om, `trace_id="b2`) {
		t.Fatalf("within the interval the exemplar must stay the first one:\n%s", grepLines(om, "vantage_request_errors_total{"))
	}
	clk.Advance(10 * time.Second)
	serve(0xc3)
	if om := scrape(t, m, openMetrics); !strings.Contains(om, `trace_id="c3`) {
		t.Fatalf("after the interval the exemplar must be replaced:\n%s", grepLines(om, "vantage_request_errors_total{"))
	}
}

func TestNativeHistogramsOverProtobuf(t *testing.T) {
	m := newTestMetrics(t, "  native_histograms: {enabled: true}\n", nil)
	h := ended(m, m.ForRoute(middleware.Route{Name: "r"}))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rec := observe.GetRecord()
	rec.Start = time.Now().Add(-3 * time.Millisecond)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(observe.NewContext(context.Background(), rec)))
	observe.PutRecord(rec)
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "vantage_request_duration_seconds" {
			hg := f.GetMetric()[0].GetHistogram()
			if hg.Schema == nil || len(hg.GetPositiveSpan()) == 0 {
				t.Fatalf("no native buckets: %v", hg)
			}
			if len(hg.GetBucket()) == 0 {
				t.Fatal("classic buckets gone")
			}
			return
		}
	}
	t.Fatal("no duration histogram")
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
