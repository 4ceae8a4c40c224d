package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

const controlsYAML = `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - name: pay
    upstreams: [{url: "http://10.0.0.1:8080"}, {url: "http://10.0.0.2"}]
    circuit_breaker: {consecutive_failures: 3, per_host: true}
    outlier_detection: {consecutive_5xx: 5}
    health_check: {path: /healthz}
  - name: shadow
    upstreams: [{url: "http://10.0.0.9:80"}]
routes:
  - name: checkout
    match: {path_prefix: /checkout}
    service: pay
    rate_limit: {name: per-ip, rate: 10, key: {client_ip: true}, max_in_flight: 100}
    retry: {attempts: 3, on: [connect_error, reset, "503"]}
    fault: {abort: {status: 503, percent: 1}}
    mirror: {service: shadow}
    request_body: {idle_timeout: 0s}
%s`

func loadControls(t *testing.T, extraRoutes string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("controls.yml", []byte(fmt.Sprintf(controlsYAML, extraRoutes)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestConfiguredCountersStartAtZero: once a config serves, the counters of
// every control it configures exist at zero, survive idle expiry while
// configured, keep counting from there, and go when a reload removes their
// control.
func TestConfiguredCountersStartAtZero(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	m := newTestMetrics(t, "  series_idle_timeout: 5m\n  host: {enabled: false}\n", clk)
	m.Configured(loadControls(t, `  - {name: plain, match: {path_prefix: /}, service: shadow, request_body: {min_rate: 0}}
`))

	want := map[string]map[string]float64{
		"vantage_rate_limit_rejections_total": {
			"key=client_ip,policy=per-ip,route=checkout": 0,
			"key=in_flight,policy=per-ip,route=checkout": 0,
		},
		"vantage_circuit_breaker_rejections_total": {
			"route=checkout,service=pay,upstream=none":          0,
			"route=checkout,service=pay,upstream=10.0.0.1:8080": 0,
			"route=checkout,service=pay,upstream=10.0.0.2:80":   0,
		},
		"vantage_retries_total": {
			"reason=upstream_connect,route=checkout,service=pay":  0,
			"reason=upstream_reset,route=checkout,service=pay":    0,
			"reason=upstream_protocol,route=checkout,service=pay": 0,
			"reason=status_503,route=checkout,service=pay":        0,
		},
		"vantage_retry_budget_exhausted_total": {"route=checkout,service=pay": 0},
		"vantage_request_body_timeouts_total": {
			"reason=min_rate,route=checkout": 0,
			"reason=idle,route=plain":        0,
		},
		"vantage_faults_injected_total":       {"fault=abort,route=checkout": 0},
		"vantage_mirrored_requests_total":     {"route=checkout,service=shadow": 0},
		"vantage_upstream_ejections_total":    {"service=pay,upstream=10.0.0.1:8080": 0, "service=pay,upstream=10.0.0.2:80": 0},
		"vantage_upstream_restorations_total": {"service=pay,upstream=10.0.0.1:8080": 0, "service=pay,upstream=10.0.0.2:80": 0},
		"vantage_upstream_health_transitions_total": {
			"service=pay,state=healthy,upstream=10.0.0.1:8080":   0,
			"service=pay,state=unhealthy,upstream=10.0.0.1:8080": 0,
			"service=pay,state=healthy,upstream=10.0.0.2:80":     0,
			"service=pay,state=unhealthy,upstream=10.0.0.2:80":   0,
		},
	}
	for name, series := range want {
		assertSeries(t, m, name, series)
	}

	// The first rejection counts from zero; an hour without traffic does
	// not expire the configured counters.
	m.Observe(observe.Event{Kind: observe.EventRateLimited, Route: "checkout", RateLimit: observe.RateLimitHit{Policy: "per-ip", Key: observe.RateLimitKeyClientIP}})
	for i := 0; i < 60; i++ {
		clk.Advance(time.Minute)
		m.sweep(clk.Now())
	}
	assertSeries(t, m, "vantage_rate_limit_rejections_total", map[string]float64{
		"key=client_ip,policy=per-ip,route=checkout": 1,
		"key=in_flight,policy=per-ip,route=checkout": 0,
	})
	assertSeries(t, m, "vantage_request_body_timeouts_total", want["vantage_request_body_timeouts_total"])

	// A reload that removes the route "plain" and the rate limit drops
	// their counters and keeps the others.
	m.Configured(loadControls(t, ""))
	assertSeries(t, m, "vantage_request_body_timeouts_total", map[string]float64{"reason=min_rate,route=checkout": 0})
	assertSeries(t, m, "vantage_faults_injected_total", want["vantage_faults_injected_total"])
	cfg := loadControls(t, "")
	cfg.Routes[0].RateLimit = nil
	m.Configured(cfg)
	assertSeries(t, m, "vantage_rate_limit_rejections_total", map[string]float64{})
}
