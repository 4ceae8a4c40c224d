package observe

import (
	"fmt"
	"testing"
)

// TestLabelValues pins the label value of every enum of the event contract.
// Metric labels, span event attributes and log fields are these strings: a
// change here is a change users see on dashboards and alerts, and must be
// made on purpose (and noted as such), never by rewording a message.
func TestLabelValues(t *testing.T) {
	type enum interface{ String() string }
	check := func(t *testing.T, got []string, want ...string) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("labels %q, want %q", got, want)
		}
	}
	labels := func(vs ...enum) []string {
		out := make([]string, len(vs))
		for i, v := range vs {
			out[i] = v.String()
		}
		return out
	}
	of := func(n int, f func(i int) enum) []enum {
		out := make([]enum, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	t.Run("breaker state", func(t *testing.T) {
		vs := BreakerStates()
		check(t, labels(of(len(vs), func(i int) enum { return vs[i] })...), "closed", "open", "half_open")
	})
	t.Run("breaker reason", func(t *testing.T) {
		vs := BreakerReasons()
		check(t, labels(of(len(vs), func(i int) enum { return vs[i] })...),
			"consecutive_failures", "error_ratio", "slow_call_ratio", "cooldown", "probe_success", "probe_failure")
	})
	t.Run("health state", func(t *testing.T) {
		check(t, labels(HealthUnknown, HealthHealthy, HealthUnhealthy), "", "healthy", "unhealthy")
	})
	t.Run("health reason", func(t *testing.T) {
		vs := HealthReasons()
		check(t, labels(of(len(vs), func(i int) enum { return vs[i] })...),
			"status", "connect_refused", "connect_error", "timeout", "tls_error", "connection_reset", "request_error", "check_removed")
	})
	t.Run("ejection reason", func(t *testing.T) {
		vs := EjectionReasons()
		check(t, labels(of(len(vs), func(i int) enum { return vs[i] })...),
			"consecutive_5xx", "consecutive_connect_failures", "expired", "detection_removed")
	})
	t.Run("split reason", func(t *testing.T) {
		vs := SplitReasons()
		check(t, labels(of(len(vs), func(i int) enum { return vs[i] })...), "weight", "sticky", "override")
	})
	t.Run("rate-limit key", func(t *testing.T) {
		vs := RateLimitKeys()
		check(t, labels(of(len(vs), func(i int) enum { return vs[i] })...),
			"route", "client_ip", "header", "client_ip+header", "in_flight")
	})
	t.Run("mirror outcome", func(t *testing.T) {
		vs := MirrorOutcomes()
		check(t, labels(of(len(vs), func(i int) enum { return vs[i] })...), "sent", "dropped", "body_too_large", "body_incomplete")
	})
	t.Run("fault kind", func(t *testing.T) {
		vs := FaultKinds()
		check(t, labels(of(len(vs), func(i int) enum { return vs[i] })...), "delay", "abort")
	})
	t.Run("change source", func(t *testing.T) {
		vs := ChangeSources()
		check(t, labels(of(len(vs), func(i int) enum { return vs[i] })...), "start", "file", "signal", "api", "rollout")
	})
	t.Run("event kind", func(t *testing.T) {
		vs := EventKinds()
		check(t, labels(of(len(vs), func(i int) enum { return vs[i] })...),
			"route_matched", "route_not_matched", "split_chosen", "upstream_picked", "retry", "retry_budget_exhausted",
			"breaker_transition", "breaker_rejected", "rate_limited", "health_changed", "host_ejected", "host_restored",
			"config_reloaded", "config_reload_failed", "split_updated", "mirrored", "fault_injected", "host_state",
			"breaker_state", "host_removed", "request_body_timeout", "rollout_transition")
	})
	t.Run("body limit", func(t *testing.T) {
		vs := BodyLimits()
		check(t, labels(of(len(vs), func(i int) enum { return vs[i] })...), "idle", "min_rate", "read_timeout")
	})
	t.Run("retry cause", func(t *testing.T) {
		check(t, labels(RetryCause{Status: 503}, RetryCause{Kind: ErrUpstreamConnect}, RetryCause{Status: 99}),
			"status_503", "upstream_connect", "status_other")
	})
	t.Run("out of range", func(t *testing.T) {
		check(t, labels(BreakerState(200), BreakerReason(200), HealthState(200), HealthReason(200), EjectionReason(200),
			SplitReason(200), RateLimitKey(200), MirrorOutcome(200), FaultKind(200), ChangeSource(200), EventKind(200), EventKind(0)),
			"unknown", "unknown", "unknown", "unknown", "unknown", "unknown", "unknown", "unknown", "unknown", "unknown", "unknown", "unknown")
	})
}

// TestReportingDoesNotAllocate: an Event with every payload set goes
// through a fan-out by value without allocating.
func TestReportingDoesNotAllocate(t *testing.T) {
	var n int
	var sink Observer = Join(ObserverFunc(func(ev Event) { n += len(ev.Breaker.Reason.String()) }), ObserverFunc(func(ev Event) { n++ }))
	rec := GetRecord()
	defer PutRecord(rec)
	allocs := testing.AllocsPerRun(100, func() {
		sink.Observe(Event{Kind: EventBreakerTransition, Record: rec, Service: "s",
			Breaker: BreakerChange{From: BreakerClosed, To: BreakerOpen, Reason: BreakerErrorRatio},
			Retry:   RetryCause{Status: 503}, RateLimit: RateLimitHit{Policy: "p", Key: RateLimitKeyClientIP}})
	})
	if allocs != 0 || n == 0 {
		t.Fatalf("%v allocations per event", allocs)
	}
}
