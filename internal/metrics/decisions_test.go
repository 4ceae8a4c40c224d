package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

func TestBreakerHealthEjectionReloadMetrics(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	m := newTestMetrics(t, "", clk)
	tr := func(up string, from, to observe.BreakerState, reason observe.BreakerReason) {
		m.Observe(observe.Event{Kind: observe.EventBreakerTransition, Service: "pay", Upstream: up,
			Breaker: observe.BreakerChange{From: from, To: to, Reason: reason}})
	}
	closed, open, half := observe.BreakerClosed, observe.BreakerOpen, observe.BreakerHalfOpen
	tr("", closed, open, observe.BreakerConsecutiveFailures)
	tr("", open, half, observe.BreakerCooldown)
	tr("", half, open, observe.BreakerProbeFailure)
	tr("", open, half, observe.BreakerCooldown)
	tr("", half, closed, observe.BreakerProbeSuccess)
	tr("10.0.0.9:80", closed, open, observe.BreakerSlowCallRatio)
	assertSeries(t, m, "vantage_circuit_breaker_state", map[string]float64{
		"service=pay,state=closed,upstream=none":           1,
		"service=pay,state=open,upstream=none":             0,
		"service=pay,state=half_open,upstream=none":        0,
		"service=pay,state=closed,upstream=10.0.0.9:80":    0,
		"service=pay,state=open,upstream=10.0.0.9:80":      1,
		"service=pay,state=half_open,upstream=10.0.0.9:80": 0,
	})
	assertSeries(t, m, "vantage_circuit_breaker_transitions_total", map[string]float64{
		"from=closed,reason=consecutive_failures,service=pay,to=open,upstream=none":   1,
		"from=open,reason=cooldown,service=pay,to=half_open,upstream=none":            2,
		"from=half_open,reason=probe_failure,service=pay,to=open,upstream=none":       1,
		"from=half_open,reason=probe_success,service=pay,to=closed,upstream=none":     1,
		"from=closed,reason=slow_call_ratio,service=pay,to=open,upstream=10.0.0.9:80": 1,
	})

	healthy, unhealthy := observe.HealthHealthy, observe.HealthUnhealthy
	m.Observe(observe.Event{Kind: observe.EventHealthChanged, Service: "pay", Upstream: "a:1",
		Health: observe.HealthChange{From: healthy, To: unhealthy, Reason: observe.HealthTimeout}})
	m.Observe(observe.Event{Kind: observe.EventHealthChanged, Service: "pay", Upstream: "b:1", Health: observe.HealthChange{From: healthy, To: unhealthy}})
	m.Observe(observe.Event{Kind: observe.EventHealthChanged, Service: "pay", Upstream: "b:1", Health: observe.HealthChange{From: unhealthy, To: healthy}})
	assertSeries(t, m, "vantage_upstream_healthy", map[string]float64{"service=pay,upstream=a:1": 0, "service=pay,upstream=b:1": 1})
	assertSeries(t, m, "vantage_upstream_health_transitions_total", map[string]float64{
		"service=pay,state=unhealthy,upstream=a:1": 1,
		"service=pay,state=unhealthy,upstream=b:1": 1,
		"service=pay,state=healthy,upstream=b:1":   1,
	})
	m.Observe(observe.Event{Kind: observe.EventHostEjected, Service: "pay", Upstream: "c:1",
		Ejection: observe.Ejection{Reason: observe.EjectionConsecutive5xx, Failures: 5, Duration: 30 * time.Second}})
	m.Observe(observe.Event{Kind: observe.EventHostEjected, Service: "pay", Upstream: "d:1"})
	m.Observe(observe.Event{Kind: observe.EventHostRestored, Service: "pay", Upstream: "d:1", Ejection: observe.Ejection{Reason: observe.EjectionExpired}})
	assertSeries(t, m, "vantage_upstream_ejected", map[string]float64{"service=pay,upstream=c:1": 1, "service=pay,upstream=d:1": 0})
	assertSeries(t, m, "vantage_upstream_ejections_total", map[string]float64{"service=pay,upstream=c:1": 1, "service=pay,upstream=d:1": 1})
	assertSeries(t, m, "vantage_upstream_restorations_total", map[string]float64{"service=pay,upstream=d:1": 1})

	// Reloads: the start counts as the first successful load.
	assertSeries(t, m, "vantage_config_last_reload_success_timestamp_seconds", map[string]float64{"": float64(start.Unix())})
	assertSeries(t, m, "vantage_config_last_reload_successful", map[string]float64{"": 1})
	clk.Advance(time.Minute)
	m.Observe(observe.Event{Kind: observe.EventConfigReloaded, Source: observe.SourceFile}) // no Time: the clock's
	clk.Advance(time.Minute)
	m.Observe(observe.Event{Kind: observe.EventConfigReloadFailed, Time: clk.Now(), Err: errors.New("routes[0].service: unknown")})
	assertSeries(t, m, "vantage_config_reloads_total", map[string]float64{"result=success": 1, "result=failure": 1})
	assertSeries(t, m, "vantage_config_last_reload_successful", map[string]float64{"": 0})
	assertSeries(t, m, "vantage_config_last_reload_success_timestamp_seconds", map[string]float64{"": float64(start.Add(time.Minute).Unix())})
	assertSeries(t, m, "vantage_config_last_reload_failure_timestamp_seconds", map[string]float64{"": float64(start.Add(2 * time.Minute).Unix())})

	// Runtime split weights update the weight gauge; the words in Detail
	// are for people and are never parsed.
	m.Observe(observe.Event{Kind: observe.EventSplitUpdated, Route: "shop", Source: observe.SourceAPI,
		Weights:     []observe.SplitLeg{{Service: "stable", Weight: 50}, {Service: "canary", Weight: 50}},
		PrevWeights: []observe.SplitLeg{{Service: "stable", Weight: 90}, {Service: "canary", Weight: 10}},
		Detail:      "stable=1,canary=99"})
	assertSeries(t, m, "vantage_split_weight", map[string]float64{"route=shop,service=stable": 50, "route=shop,service=canary": 50})

	// Detail never becomes a label; a reason outside its set is "other".
	m.Observe(observe.Event{Kind: observe.EventRetry, Route: "r", Service: "s", Retry: observe.RetryCause{Kind: observe.ErrorKind(200)}, Detail: "upstream said: no way"})
	assertSeries(t, m, "vantage_retries_total", map[string]float64{"reason=other,route=r,service=s": 1})
}

func TestUninterestingEventsDoNotAllocate(t *testing.T) {
	m := newTestMetrics(t, "", nil)
	rec := observe.GetRecord()
	defer observe.PutRecord(rec)
	evs := []observe.Event{
		{Kind: observe.EventRouteMatched, Route: "r", Record: rec},
		{Kind: observe.EventUpstreamPicked, Route: "r", Service: "s", Upstream: "a:1"},
		{Kind: observe.EventSplitChosen, Route: "r", Service: "s", Split: observe.SplitWeight, Record: rec},
		{Kind: observe.EventRetry, Route: "r", Service: "s", Retry: observe.RetryCause{Kind: observe.ErrUpstreamConnect}},
		{Kind: observe.EventRetry, Route: "r", Service: "s", Retry: observe.RetryCause{Status: 503}},
		{Kind: observe.EventRateLimited, Route: "r", RateLimit: observe.RateLimitHit{Policy: "p", Key: observe.RateLimitKeyClientIP}},
		{Kind: observe.EventFaultInjected, Route: "r", Fault: observe.Fault{Kind: observe.FaultDelay, Delay: time.Second}},
		{Kind: observe.EventMirrored, Route: "r", Service: "s", Mirror: observe.MirrorSent},
		{Kind: observe.EventBreakerRejected, Route: "r", Service: "s"},
	}
	for _, ev := range evs {
		m.Observe(ev) // create the series
	}
	for _, ev := range evs {
		if n := testing.AllocsPerRun(100, func() { m.Observe(ev) }); n != 0 {
			t.Errorf("%s: %v allocs per event", ev.Kind, n)
		}
	}
}

// TestDecisionLabelsComeFromTheEnums: every label value of the decision
// metrics is the String of a payload enum (pinned in observe's
// TestLabelValues), so rewording an event's Detail cannot change one.
func TestDecisionLabelsComeFromTheEnums(t *testing.T) {
	m := newTestMetrics(t, "", nil)
	want := map[string]float64{}
	for _, r := range observe.BreakerReasons() {
		for _, detail := range []string{"", "the old words", "new words: " + r.String()} {
			m.Observe(observe.Event{Kind: observe.EventBreakerTransition, Service: "pay",
				Breaker: observe.BreakerChange{From: observe.BreakerClosed, To: observe.BreakerOpen, Reason: r}, Detail: detail})
		}
		want["from=closed,reason="+r.String()+",service=pay,to=open,upstream=none"] = 3
	}
	// A value outside the enum is "other", never "unknown" or a number.
	m.Observe(observe.Event{Kind: observe.EventBreakerTransition, Service: "pay",
		Breaker: observe.BreakerChange{From: observe.BreakerState(9), To: observe.BreakerOpen, Reason: observe.BreakerReason(99)}})
	want["from=other,reason=other,service=pay,to=open,upstream=none"] = 1
	assertSeries(t, m, "vantage_circuit_breaker_transitions_total", want)

	want = map[string]float64{}
	for _, k := range observe.RateLimitKeys() {
		m.Observe(observe.Event{Kind: observe.EventRateLimited, Route: "r", RateLimit: observe.RateLimitHit{Policy: "p", Key: k}, Detail: "x"})
		want["key="+k.String()+",policy=p,route=r"] = 1
	}
	assertSeries(t, m, "vantage_rate_limit_rejections_total", want)

	want = map[string]float64{}
	for _, k := range observe.FaultKinds() {
		m.Observe(observe.Event{Kind: observe.EventFaultInjected, Route: "r", Fault: observe.Fault{Kind: k}})
		want["fault="+k.String()+",route=r"] = 1
	}
	assertSeries(t, m, "vantage_faults_injected_total", want)

	want = map[string]float64{}
	for _, r := range observe.SplitReasons() {
		m.Observe(observe.Event{Kind: observe.EventSplitChosen, Route: "r", Service: "s", Split: r})
		want["reason="+r.String()+",route=r,rule=r,service=s"] = 1
	}
	assertSeries(t, m, "vantage_split_requests_total", want)
}

func TestMethodSanitising(t *testing.T) {
	for in, want := range map[string]string{"GET": "GET", "POST": "POST", "get": "other", "PURGE": "other", "": "other", "PROPFIND": "other", "TRACE": "TRACE"} {
		if got := methodNames[methodIndex(in)]; got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
	for code, want := range map[int]string{0: "other", 99: "other", 100: "100", 200: "200", 599: "599", 600: "other", -1: "other"} {
		if got := codeName(code); got != want {
			t.Errorf("code %d → %q, want %q", code, got, want)
		}
	}
}

func TestDisabled(t *testing.T) {
	m := newTestMetrics(t, "  enabled: false\n", nil)
	if mw := m.ForRoute(middleware.Route{Name: "r"}); mw != nil {
		t.Error("ForRoute returned a middleware while disabled")
	}
	m.Observe(observe.Event{Kind: observe.EventRetry})
	rr := httptest.NewRecorder()
	m.Handler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	if rr.Code != http.StatusNotFound {
		t.Errorf("handler answered %d", rr.Code)
	}
	if m.Registerer() == nil {
		t.Error("no registerer")
	}
	m.Close()
	m.Close()
}

// TestSeriesExpireAndRouteRecovers drives expiry through a route's
// pre-resolved series: after the idle timeout they are gone from /metrics,
// and the next request brings them back from zero.
func TestSeriesExpireAndRouteRecovers(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	m := newTestMetrics(t, "  series_idle_timeout: 8m\n  host: {enabled: false}\n", clk)
	h := ended(m, m.ForRoute(middleware.Route{Name: "r", Services: []string{"s"}}))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.FromContext(r.Context())
		rec.Service = "s"
		rec.AddAttempt(observe.Attempt{Service: "s", Upstream: "u:1", Status: 200})
	}))
	serve := func() {
		rec := observe.GetRecord()
		defer observe.PutRecord(rec)
		rec.Start = clk.Now()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(observe.NewContext(context.Background(), rec)))
	}
	serve()
	serve()
	assertSeries(t, m, "vantage_requests_total", map[string]float64{"class=2xx,code=200,method=GET,route=r,service=s": 2})
	for i := 1; i <= 10; i++ {
		clk.Advance(time.Minute)
		m.set.Sweep(clk.Now())
	}
	if got := values(t, m, "vantage_requests_total"); len(got) != 0 {
		t.Fatalf("series survived 10 idle minutes: %v", got)
	}
	if got := values(t, m, "vantage_upstream_requests_total"); len(got) != 0 {
		t.Fatalf("upstream series survived: %v", got)
	}
	if v := values(t, m, "vantage_metrics_series_expired_total")["metric=vantage_requests_total"]; v != 1 {
		t.Errorf("expired counter = %v", v)
	}
	serve()
	assertSeries(t, m, "vantage_requests_total", map[string]float64{"class=2xx,code=200,method=GET,route=r,service=s": 1})
	assertSeries(t, m, "vantage_upstream_requests_total", map[string]float64{"class=2xx,route=r,service=s,upstream=u:1": 1})
}

// TestSeriesCapFoldsUpstreams sends attempts to more upstreams than the cap.
func TestSeriesCapFoldsUpstreams(t *testing.T) {
	m := newTestMetrics(t, "  max_series_per_metric: 5\n  host: {enabled: false}\n", nil)
	i := 0
	h := ended(m, m.ForRoute(middleware.Route{Name: "r", Services: []string{"s"}}))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.FromContext(r.Context())
		rec.Service = "s"
		rec.AddAttempt(observe.Attempt{Service: "s", Upstream: "10.0.0." + strconv.Itoa(i) + ":80", Status: 200})
	}))
	for i = 0; i < 20; i++ {
		rec := observe.GetRecord()
		rec.Start = time.Now()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil).WithContext(observe.NewContext(context.Background(), rec)))
		observe.PutRecord(rec)
	}
	got := values(t, m, "vantage_upstream_requests_total")
	if len(got) != 6 || got["class=other,route=other,service=other,upstream=other"] != 15 {
		t.Fatalf("want 5 series and other=15, got %v", got)
	}
	if v := values(t, m, "vantage_metrics_series_folded_total")["metric=vantage_upstream_requests_total"]; v != 15 {
		t.Errorf("folded = %v, want 15", v)
	}
	if sum(got) != 20 {
		t.Errorf("attempts lost: %v", sum(got))
	}
}

// TestHostStateSetsGaugesWithoutATransition: every host has its health
// and ejection gauges from the start, before any change.
func TestHostStateSetsGaugesWithoutATransition(t *testing.T) {
	m := newTestMetrics(t, "", nil)
	m.Observe(observe.Event{Kind: observe.EventHostState, Service: "pay", Upstream: "a:1", Health: observe.HealthChange{To: observe.HealthHealthy}})
	m.Observe(observe.Event{Kind: observe.EventHostState, Service: "pay", Upstream: "b:1", Health: observe.HealthChange{To: observe.HealthUnhealthy, Ejected: true}})
	assertSeries(t, m, "vantage_upstream_healthy", map[string]float64{"service=pay,upstream=a:1": 1, "service=pay,upstream=b:1": 0})
	assertSeries(t, m, "vantage_upstream_ejected", map[string]float64{"service=pay,upstream=a:1": 0, "service=pay,upstream=b:1": 1})
	assertSeries(t, m, "vantage_upstream_health_transitions_total", map[string]float64{})
}

// TestBreakerStateSetsGaugesWithoutATransition: every breaker has its state
// gauges from the start.
func TestBreakerStateSetsGaugesWithoutATransition(t *testing.T) {
	m := newTestMetrics(t, "", nil)
	m.Observe(observe.Event{Kind: observe.EventBreakerState, Service: "pay", Breaker: observe.BreakerChange{To: observe.BreakerClosed}})
	m.Observe(observe.Event{Kind: observe.EventBreakerState, Service: "pay", Upstream: "a:1", Breaker: observe.BreakerChange{To: observe.BreakerOpen}})
	assertSeries(t, m, "vantage_circuit_breaker_state", map[string]float64{
		"service=pay,state=closed,upstream=none": 1, "service=pay,state=open,upstream=none": 0, "service=pay,state=half_open,upstream=none": 0,
		"service=pay,state=closed,upstream=a:1": 0, "service=pay,state=open,upstream=a:1": 1, "service=pay,state=half_open,upstream=a:1": 0,
	})
	assertSeries(t, m, "vantage_circuit_breaker_transitions_total", map[string]float64{})
}
