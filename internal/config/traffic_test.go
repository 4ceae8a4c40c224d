package config

import (
	"strings"
	"testing"
	"time"
)

// trafficBase is a valid config with three services and one route, to which
// the cases below append YAML.
const trafficBase = `listeners:
  - address: ":1"
services:
  - name: checkout
    upstreams: [{url: "http://a:1"}]
  - name: checkout-v2
    upstreams: [{url: "http://b:1"}]
  - name: shadow
    upstreams: [{url: "http://c:1"}]
`

func TestTrafficValidation(t *testing.T) {
	route := func(body string) string {
		return trafficBase + "routes:\n  - name: r\n    service: checkout\n" + body
	}
	breaker := func(body string) string {
		return strings.Replace(trafficBase, "  - name: checkout\n    upstreams: [{url: \"http://a:1\"}]\n",
			"  - name: checkout\n    upstreams: [{url: \"http://a:1\"}]\n    circuit_breaker:\n"+body, 1)
	}
	split := func(body string) string {
		return trafficBase + "routes:\n  - name: r\n    split:\n" + body
	}
	cases := []struct {
		name, yaml, want string
	}{
		// Split.
		{"split duplicate leg", split("      services: [{service: checkout, weight: 1}, {service: checkout, weight: 1}]\n"),
			`routes[0].split.services[1].service: duplicate service "checkout" in split`},
		{"split negative weight", split("      services: [{service: checkout, weight: -1}, {service: checkout-v2, weight: 1}]\n"),
			`routes[0].split.services[0].weight: must be >= 0, got -1`},
		{"split unknown service", split("      services: [{service: nope, weight: 1}]\n"),
			`routes[0].split.services[0].service: unknown service "nope"`},
		{"sticky two keys", split("      services: [{service: checkout, weight: 1}]\n      sticky: {header: X-User, client_ip: true}\n"),
			`routes[0].split.sticky: set exactly one of header, cookie, client_ip`},
		{"sticky none", split("      services: [{service: checkout, weight: 1}]\n      sticky: {}\n"),
			`routes[0].split.sticky: set exactly one of header, cookie, client_ip`},
		{"override not a leg", split("      services: [{service: checkout, weight: 1}]\n      override: {header: X-Canary, values: {always: shadow}}\n"),
			`routes[0].split.override.values: value "always" selects "shadow", which is not a service of this split`},
		{"override no source", split("      services: [{service: checkout, weight: 1}]\n      override: {values: {always: checkout}}\n"),
			`routes[0].split.override: header or cookie is required`},
		{"override both sources", split("      services: [{service: checkout, weight: 1}]\n      override: {header: X-C, cookie: c, values: {always: checkout}}\n"),
			`routes[0].split.override: set header or cookie, not both`},
		{"override no values", split("      services: [{service: checkout, weight: 1}]\n      override: {header: X-C}\n"),
			`routes[0].split.override.values: must map at least one value to a service`},
		{"override bad header", split("      services: [{service: checkout, weight: 1}]\n      override: {header: \"X C\", values: {a: checkout}}\n"),
			`routes[0].split.override.header: invalid header name "X C"`},

		// Circuit breaker.
		{"breaker negative consecutive", breaker("      consecutive_failures: -1\n"),
			`services[0].circuit_breaker.consecutive_failures: must be >= 0, got -1`},
		{"breaker ratio above one", breaker("      error_ratio: 1.5\n"),
			`services[0].circuit_breaker.error_ratio: must be between 0 and 1, got 1.5`},
		{"breaker no trigger", breaker("      consecutive_failures: 0\n      error_ratio: 0\n"),
			`services[0].circuit_breaker: enable at least one trigger`},
		{"breaker slow ratio", breaker("      slow_call_duration: 1s\n      slow_call_ratio: 2\n"),
			`services[0].circuit_breaker.slow_call_ratio: must be > 0 and <= 1, got 2`},
		{"breaker min requests", breaker("      min_requests: -3\n"),
			`services[0].circuit_breaker.min_requests: must be >= 1, got -3`},
		{"breaker buckets", breaker("      window_buckets: 101\n"),
			`services[0].circuit_breaker.window_buckets: must be between 1 and 100, got 101`},
		{"breaker tiny buckets", breaker("      window: 5ms\n      window_buckets: 10\n"),
			`services[0].circuit_breaker.window_buckets: buckets must be at least 1ms long`},
		{"breaker negative window", breaker("      window: -1s\n"),
			`services[0].circuit_breaker.window: must be positive`},
		{"breaker open duration", breaker("      open_duration: -1s\n"),
			`services[0].circuit_breaker.open_duration: must be positive`},
		{"breaker probes", breaker("      half_open_probes: -1\n"),
			`services[0].circuit_breaker.half_open_probes: must be >= 1, got -1`},
		{"breaker successes", breaker("      half_open_successes: -2\n"),
			`services[0].circuit_breaker.half_open_successes: must be >= 1, got -2`},
		{"breaker failure token", breaker("      failure_on: [connect_error, 6xx, boom]\n"),
			`services[0].circuit_breaker.failure_on[1]: must be connect_error, timeout, reset, protocol, a status code`},

		// Rate limit.
		{"rate limit nothing", route("    rate_limit: {}\n"),
			`routes[0].rate_limit: set rate, max_in_flight or both`},
		{"rate limit burst", route("    rate_limit: {rate: 10, burst: -1}\n"),
			`routes[0].rate_limit.burst: must be >= 1`},
		{"rate limit negative rate", route("    rate_limit: {rate: -1}\n"),
			`routes[0].rate_limit.rate: must be >= 0, got -1`},
		{"rate limit period", route("    rate_limit: {rate: 1, period: -1s}\n"),
			`routes[0].rate_limit.period: must be positive`},
		{"rate limit header", route("    rate_limit: {rate: 1, key: {header: \"a b\"}}\n"),
			`routes[0].rate_limit.key.header: invalid header name "a b"`},
		{"rate limit max keys", route("    rate_limit: {rate: 1, max_keys: -1}\n"),
			`routes[0].rate_limit.max_keys: must be >= 1, got -1`},
		{"rate limit in-flight status", route("    rate_limit: {max_in_flight: 5, in_flight_status: 500}\n"),
			`routes[0].rate_limit.in_flight_status: must be 429 or 503, got 500`},
		{"rate limit headers", route("    rate_limit: {rate: 1, headers: sometimes}\n"),
			`routes[0].rate_limit.headers: must be rejected, always or off, got "sometimes"`},
		{"rate limit name", route("    rate_limit: {rate: 1, name: \"a b\"}\n"),
			`routes[0].rate_limit.name: must be letters, digits`},
		{"rate limit negative in flight", route("    rate_limit: {max_in_flight: -1}\n"),
			`routes[0].rate_limit.max_in_flight: must be >= 0, got -1`},

		// Mirror.
		{"mirror no service", route("    mirror: {percent: 5}\n"),
			`routes[0].mirror.service: is required`},
		{"mirror unknown service", route("    mirror: {service: nope}\n"),
			`routes[0].mirror.service: unknown service "nope"`},
		{"mirror percent", route("    mirror: {service: shadow, percent: 101}\n"),
			`routes[0].mirror.percent: must be between 0 and 100, got 101`},
		{"mirror body", route("    mirror: {service: shadow, max_body_bytes: -1}\n"),
			`routes[0].mirror.max_body_bytes: must not be negative`},
		{"mirror timeout", route("    mirror: {service: shadow, timeout: -1s}\n"),
			`routes[0].mirror.timeout: must be positive`},
		{"mirror in flight", route("    mirror: {service: shadow, max_in_flight: -1}\n"),
			`routes[0].mirror.max_in_flight: must be >= 1, got -1`},

		// Fault.
		{"fault empty", route("    fault: {}\n"),
			`routes[0].fault: set delay, abort or both`},
		{"fault delay duration", route("    fault: {delay: {percent: 5}}\n"),
			`routes[0].fault.delay.duration: must be positive`},
		{"fault delay percent", route("    fault: {delay: {duration: 1s, percent: -5}}\n"),
			`routes[0].fault.delay.percent: must be between 0 and 100, got -5`},
		{"fault abort status", route("    fault: {abort: {status: 200}}\n"),
			`routes[0].fault.abort.status: must be between 400 and 599, got 200`},
		{"fault abort percent", route("    fault: {abort: {status: 500, percent: 150}}\n"),
			`routes[0].fault.abort.percent: must be between 0 and 100, got 150`},

		// Retry.
		{"retry attempts", route("    retry: {attempts: 11}\n"),
			`routes[0].retry.attempts: must be between 1 and 10, got 11`},
		{"retry budget min", route("    retry: {budget: {min_retries_per_second: -1}}\n"),
			`routes[0].retry.budget.min_retries_per_second: must not be negative, got -1`},
		{"retry budget percent", route("    retry: {budget: {percent: 120}}\n"),
			`routes[0].retry.budget.percent: must be between 0 and 100, got 120`},
		{"retry on", route("    retry: {on: [sometimes]}\n"),
			`routes[0].retry.on[0]: must be connect_error, timeout, reset or a status code`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yml", []byte(tc.yaml), noEnv)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestTrafficValid(t *testing.T) {
	yml := strings.Replace(trafficBase, "  - name: checkout\n    upstreams: [{url: \"http://a:1\"}]\n",
		"  - name: checkout\n    upstreams: [{url: \"http://a:1\"}]\n    circuit_breaker: {fallback: shadow}\n", 1) + `routes:
  - name: r
    split:
      services:
        - {service: checkout, weight: 90}
        - {service: checkout-v2, weight: 10}
      sticky: {cookie: session}
      override:
        header: X-Canary
        values: {always: checkout-v2, never: checkout}
    rate_limit:
      rate: 10
      key: {client_ip: true}
    mirror: {service: shadow}
    fault:
      delay: {duration: 2s, percent: 10}
      abort: {percent: 1}
    retry: {}
`
	cfg, err := Parse("f.yml", []byte(yml), noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	r := cfg.Routes[0]
	if r.Split.Sticky.Cookie != "session" || r.Split.Override.Values["always"] != "checkout-v2" {
		t.Errorf("split = %+v", r.Split)
	}

	cb := cfg.Services[0].CircuitBreaker
	if *cb.ConsecutiveFailures != 5 || *cb.ErrorRatio != 0.5 || cb.MinRequests != 20 ||
		cb.Window.D() != 10*time.Second || cb.WindowBuckets != 10 || cb.OpenDuration.D() != 30*time.Second ||
		cb.HalfOpenProbes != 1 || cb.HalfOpenSuccesses != 2 || cb.SlowCallRatio != 0.5 || len(cb.FailureOn) != 5 {
		t.Errorf("breaker defaults = %+v", cb)
	}

	rl := r.RateLimit
	if rl.Burst != 10 || rl.Period.D() != time.Second || rl.MaxKeys != 100000 || rl.InFlightStatus != 503 ||
		rl.Headers != RateLimitHeadersRejected || rl.Key.Kind() != "client_ip" {
		t.Errorf("rate limit defaults = %+v", rl)
	}

	m := r.Mirror
	if *m.Percent != 100 || m.MaxBodyBytes != 64<<10 || m.Timeout.D() != 5*time.Second || m.MaxInFlight != 32 {
		t.Errorf("mirror defaults = %+v", m)
	}

	f := r.Fault
	if *f.Delay.Percent != 10 || f.Abort.Status != 503 || *f.Abort.Percent != 1 {
		t.Errorf("fault defaults = delay %+v abort %+v", f.Delay, f.Abort)
	}

	rt := r.Retry
	if rt.Attempts != 2 || rt.Budget.Percent != 20 || rt.Budget.MinRetriesPerSecond != 3 || rt.Budget.Window.D() != 10*time.Second {
		t.Errorf("retry defaults = %+v", rt)
	}
}

func TestBreakerTriggersCanBeDisabled(t *testing.T) {
	yml := strings.Replace(trafficBase, "  - name: checkout\n    upstreams: [{url: \"http://a:1\"}]\n",
		"  - name: checkout\n    upstreams: [{url: \"http://a:1\"}]\n    circuit_breaker: {consecutive_failures: 0, error_ratio: 0, slow_call_duration: 1s}\n", 1)
	cfg, err := Parse("f.yml", []byte(yml), noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	cb := cfg.Services[0].CircuitBreaker
	if *cb.ConsecutiveFailures != 0 || *cb.ErrorRatio != 0 {
		t.Errorf("explicit zeros were overwritten by defaults: %+v", cb)
	}
}

func TestBreakerFallbackRefs(t *testing.T) {
	cfg, err := Parse("f.yml", []byte(trafficBase), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ fallback, want string }{
		{"", ""},
		{"shadow", ""},
		{"checkout", `services[0].circuit_breaker.fallback: must name another service, not "checkout" itself`},
		{"nope", `services[0].circuit_breaker.fallback: unknown service "nope"`},
	} {
		v := newValidator(cfg)
		v.file = "" // the messages without a location
		cb := &CircuitBreaker{Fallback: tc.fallback}
		cb.validateRefs(v, "services[0].circuit_breaker", cfg, "checkout")
		got := ""
		if len(v.errs) > 0 {
			got = v.errs.Error()
		}
		if got != tc.want {
			t.Errorf("fallback %q: got %q, want %q", tc.fallback, got, tc.want)
		}
	}
}

func TestRateLimitKeyKind(t *testing.T) {
	for _, tc := range []struct {
		k    RateLimitKey
		want string
	}{
		{RateLimitKey{}, "route"},
		{RateLimitKey{ClientIP: true}, "client_ip"},
		{RateLimitKey{Header: "X-Key"}, "header"},
		{RateLimitKey{ClientIP: true, Header: "X-Key"}, "client_ip+header"},
	} {
		if got := tc.k.Kind(); got != tc.want {
			t.Errorf("%+v.Kind() = %q, want %q", tc.k, got, tc.want)
		}
	}
}
