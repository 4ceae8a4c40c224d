package observe

import (
	"strconv"
	"time"
)

// This file holds the typed payloads of decision events. Every set is
// closed: its String gives the label value observers use (metric labels,
// span event attributes, log fields), so a label changes only when the enum
// does, never when a message is reworded. A value outside the set is
// "unknown".

// BreakerState is a circuit breaker's state. The zero value is
// BreakerClosed; the breaker package names the same values Closed, Open
// and HalfOpen.
type BreakerState uint8

// The breaker states.
const (
	// BreakerClosed: requests flow and their outcomes are counted.
	BreakerClosed BreakerState = iota
	// BreakerOpen: requests are refused until the cool-down ends.
	BreakerOpen
	// BreakerHalfOpen: a bounded number of probe requests go through.
	BreakerHalfOpen

	numBreakerStates
)

var breakerStateNames = [numBreakerStates]string{"closed", "open", "half_open"}

// String returns "closed", "open" or "half_open".
func (s BreakerState) String() string { return name(breakerStateNames[:], s) }

// BreakerStates lists every breaker state, in order.
func BreakerStates() []BreakerState {
	return []BreakerState{BreakerClosed, BreakerOpen, BreakerHalfOpen}
}

// BreakerReason says why a breaker changed state.
type BreakerReason uint8

// The breaker transition reasons.
const (
	// BreakerReasonNone: not a transition.
	BreakerReasonNone BreakerReason = iota
	// BreakerConsecutiveFailures: closed → open after consecutive failures.
	BreakerConsecutiveFailures
	// BreakerErrorRatio: closed → open on the window's error ratio.
	BreakerErrorRatio
	// BreakerSlowCallRatio: closed → open on the window's slow-call ratio.
	BreakerSlowCallRatio
	// BreakerCooldown: open → half_open when the cool-down elapsed.
	BreakerCooldown
	// BreakerProbeSuccess: half_open → closed when enough probes succeeded.
	BreakerProbeSuccess
	// BreakerProbeFailure: half_open → open when a probe failed or was slow.
	BreakerProbeFailure

	numBreakerReasons
)

var breakerReasonNames = [numBreakerReasons]string{
	"", "consecutive_failures", "error_ratio", "slow_call_ratio", "cooldown", "probe_success", "probe_failure",
}

// String returns the reason's label value; BreakerReasonNone is "".
func (r BreakerReason) String() string { return name(breakerReasonNames[:], r) }

// BreakerReasons lists every reason except BreakerReasonNone.
func BreakerReasons() []BreakerReason { return all[BreakerReason](numBreakerReasons) }

// BreakerChange is the payload of the breaker events: From → To for
// EventBreakerTransition (with Reason), To alone for EventBreakerState and
// EventBreakerRejected.
type BreakerChange struct {
	From, To BreakerState
	Reason   BreakerReason
}

// HealthState is an upstream host's health as active checks see it. The
// zero value is HealthUnknown, used by events that carry no state.
type HealthState uint8

// The health states.
const (
	HealthUnknown HealthState = iota
	HealthHealthy
	HealthUnhealthy

	numHealthStates
)

var healthStateNames = [numHealthStates]string{"", "healthy", "unhealthy"}

// String returns "healthy", "unhealthy", or "" for HealthUnknown.
func (s HealthState) String() string { return name(healthStateNames[:], s) }

// HealthReason says why an active health check changed a host's health:
// the outcome of the probe that reached the threshold.
type HealthReason uint8

// The health change reasons.
const (
	HealthReasonNone HealthReason = iota
	// HealthStatus: the probe got a response; HealthChange.Status holds
	// its code (expected or not).
	HealthStatus
	// HealthConnectRefused: the host refused the connection.
	HealthConnectRefused
	// HealthConnectError: dialing failed otherwise (DNS, unreachable).
	HealthConnectError
	// HealthTimeout: the probe did not complete within the check's timeout.
	HealthTimeout
	// HealthTLSError: the TLS handshake or certificate check failed.
	HealthTLSError
	// HealthConnectionReset: the connection broke mid-probe.
	HealthConnectionReset
	// HealthRequestError: any other failure to send the probe.
	HealthRequestError
	// HealthCheckRemoved: a reload removed the service's health check, so
	// its hosts count as healthy again.
	HealthCheckRemoved

	numHealthReasons
)

var healthReasonNames = [numHealthReasons]string{
	"", "status", "connect_refused", "connect_error", "timeout", "tls_error", "connection_reset", "request_error", "check_removed",
}

// String returns the reason's label value; HealthReasonNone is "".
func (r HealthReason) String() string { return name(healthReasonNames[:], r) }

// HealthReasons lists every reason except HealthReasonNone.
func HealthReasons() []HealthReason { return all[HealthReason](numHealthReasons) }

// HealthChange is the payload of EventHealthChanged (From, To, Reason) and
// EventHostState (To, Ejected).
type HealthChange struct {
	From, To HealthState
	Reason   HealthReason
	// Ejected reports, for EventHostState, whether passive outlier
	// detection has the host ejected.
	Ejected bool
	// Status is the probe's response status for HealthStatus, else 0.
	Status int
}

// EjectionReason says why passive outlier detection ejected a host, or why
// an ejection ended.
type EjectionReason uint8

// The ejection reasons.
const (
	EjectionReasonNone EjectionReason = iota
	// EjectionConsecutive5xx: the host answered consecutive 5xx (or failed
	// in ways the gateway answers with 502/504).
	EjectionConsecutive5xx
	// EjectionConsecutiveConnectFailures: connecting to the host failed
	// consecutively.
	EjectionConsecutiveConnectFailures
	// EjectionExpired: the ejection's time ran out (EventHostRestored).
	EjectionExpired
	// EjectionDetectionRemoved: a reload removed outlier detection, ending
	// the ejection (EventHostRestored).
	EjectionDetectionRemoved

	numEjectionReasons
)

var ejectionReasonNames = [numEjectionReasons]string{
	"", "consecutive_5xx", "consecutive_connect_failures", "expired", "detection_removed",
}

// String returns the reason's label value; EjectionReasonNone is "".
func (r EjectionReason) String() string { return name(ejectionReasonNames[:], r) }

// EjectionReasons lists every reason except EjectionReasonNone.
func EjectionReasons() []EjectionReason { return all[EjectionReason](numEjectionReasons) }

// Ejection is the payload of EventHostEjected (Reason, Failures,
// Duration) and EventHostRestored (Reason).
type Ejection struct {
	Reason EjectionReason
	// Failures is the streak that reached the threshold.
	Failures int
	// Duration is how long the ejection lasts.
	Duration time.Duration
}

// SplitReason says why a weighted split chose its leg.
type SplitReason uint8

// The split reasons.
const (
	SplitReasonNone SplitReason = iota
	// SplitWeight: the weighted round robin chose.
	SplitWeight
	// SplitSticky: the client's key pinned the leg.
	SplitSticky
	// SplitOverride: an override header or cookie named the leg.
	SplitOverride

	numSplitReasons
)

var splitReasonNames = [numSplitReasons]string{"", "weight", "sticky", "override"}

// String returns "weight", "sticky" or "override" ("" for none), the value
// of SplitChoice.Reason.
func (r SplitReason) String() string { return name(splitReasonNames[:], r) }

// SplitReasons lists every reason except SplitReasonNone.
func SplitReasons() []SplitReason { return all[SplitReason](numSplitReasons) }

// SplitLeg is one leg of a split and its weight.
type SplitLeg struct {
	Service string
	Weight  int
}

// RetryCause says why an attempt is retried: a failure kind, or a status
// the route retries on. Its String is the retry reason label.
type RetryCause struct {
	// Kind is the failed attempt's error kind, ErrNone when it got a
	// response.
	Kind ErrorKind
	// Status is the response status that is retried on, 0 for a failure.
	Status int
}

// String returns "status_503" for a status, else the error kind's label
// ("upstream_connect", ...). It does not allocate.
func (c RetryCause) String() string {
	if c.Status > 0 {
		return StatusReason(c.Status)
	}
	return c.Kind.String()
}

var statusReasons = func() (t [1000]string) {
	for i := 100; i < len(t); i++ {
		t[i] = "status_" + strconv.Itoa(i)
	}
	return t
}()

// StatusReason returns "status_" and the code for a status in 100..999,
// "status_other" otherwise, without allocating.
func StatusReason(code int) string {
	if code >= 100 && code < len(statusReasons) {
		return statusReasons[code]
	}
	return "status_other"
}

// RateLimitKey is the kind of key a rate limit counts by.
type RateLimitKey uint8

// The rate-limit key kinds.
const (
	RateLimitKeyNone RateLimitKey = iota
	// RateLimitKeyRoute: one bucket for the whole route.
	RateLimitKeyRoute
	// RateLimitKeyClientIP: one bucket per client address.
	RateLimitKeyClientIP
	// RateLimitKeyHeader: one bucket per value of a request header.
	RateLimitKeyHeader
	// RateLimitKeyClientIPHeader: one bucket per client address and header
	// value.
	RateLimitKeyClientIPHeader
	// RateLimitKeyInFlight: the route's concurrency limit refused it.
	RateLimitKeyInFlight

	numRateLimitKeys
)

var rateLimitKeyNames = [numRateLimitKeys]string{"", "route", "client_ip", "header", "client_ip+header", "in_flight"}

// String returns the key kind's label value.
func (k RateLimitKey) String() string { return name(rateLimitKeyNames[:], k) }

// RateLimitKeys lists every key kind except RateLimitKeyNone.
func RateLimitKeys() []RateLimitKey { return all[RateLimitKey](numRateLimitKeys) }

// RateLimitHit is the payload of EventRateLimited.
type RateLimitHit struct {
	// Policy names the rate-limit policy, as configured (a route name when
	// the route has its own).
	Policy string
	Key    RateLimitKey
}

// MirrorOutcome says what became of a request's shadow copy.
type MirrorOutcome uint8

// The mirror outcomes. Only MirrorSent means a copy went out.
const (
	MirrorOutcomeNone MirrorOutcome = iota
	// MirrorSent: the copy was handed to the shadow service's sender.
	MirrorSent
	// MirrorDropped: max_in_flight copies were already in flight.
	MirrorDropped
	// MirrorBodyTooLarge: the request body is over max_body_bytes.
	MirrorBodyTooLarge
	// MirrorBodyIncomplete: the upstream did not read the whole body, so
	// there is no whole copy to send.
	MirrorBodyIncomplete

	numMirrorOutcomes
)

var mirrorOutcomeNames = [numMirrorOutcomes]string{"", "sent", "dropped", "body_too_large", "body_incomplete"}

// String returns the outcome's label value.
func (o MirrorOutcome) String() string { return name(mirrorOutcomeNames[:], o) }

// MirrorOutcomes lists every outcome except MirrorOutcomeNone.
func MirrorOutcomes() []MirrorOutcome { return all[MirrorOutcome](numMirrorOutcomes) }

// FaultKind is a kind of injected fault.
type FaultKind uint8

// The fault kinds.
const (
	FaultNone FaultKind = iota
	// FaultDelay: the request was held before going on.
	FaultDelay
	// FaultAbort: the gateway answered with the configured status.
	FaultAbort

	numFaultKinds
)

var faultKindNames = [numFaultKinds]string{"", "delay", "abort"}

// String returns "delay" or "abort".
func (k FaultKind) String() string { return name(faultKindNames[:], k) }

// FaultKinds lists every kind except FaultNone.
func FaultKinds() []FaultKind { return all[FaultKind](numFaultKinds) }

// Fault is the payload of EventFaultInjected.
type Fault struct {
	Kind FaultKind
	// Delay is how long a FaultDelay held the request.
	Delay time.Duration
	// Status is the status a FaultAbort answered with.
	Status int
}

// BodyLimit is the request-body limit that cut a slow client.
type BodyLimit uint8

// The request-body limits.
const (
	BodyLimitNone BodyLimit = iota
	// BodyLimitIdle: no body bytes arrived for the route's idle timeout.
	BodyLimitIdle
	// BodyLimitMinRate: the body arrived slower than the route's minimum
	// rate after its grace period.
	BodyLimitMinRate
	// BodyLimitRead: the listener's timeouts.read, which bounds the whole
	// request and caps the other limits.
	BodyLimitRead

	numBodyLimits
)

var bodyLimitNames = [numBodyLimits]string{"", "idle", "min_rate", "read_timeout"}

// String returns "idle", "min_rate" or "read_timeout".
func (l BodyLimit) String() string { return name(bodyLimitNames[:], l) }

// BodyLimits lists every limit except BodyLimitNone.
func BodyLimits() []BodyLimit { return all[BodyLimit](numBodyLimits) }

// ChangeSource names who changed the serving configuration or a split's
// weights.
type ChangeSource uint8

// The change sources.
const (
	SourceNone ChangeSource = iota
	// SourceStart: the config loaded at start.
	SourceStart
	// SourceFile: the config file changed on disk.
	SourceFile
	// SourceSignal: the process got SIGHUP.
	SourceSignal
	// SourceAPI: the admin API asked.
	SourceAPI
	// SourceRollout: a rollout's controller (split weights).
	SourceRollout

	numChangeSources
)

var changeSourceNames = [numChangeSources]string{"", "start", "file", "signal", "api", "rollout"}

// String returns the source's label value.
func (s ChangeSource) String() string { return name(changeSourceNames[:], s) }

// ChangeSources lists every source except SourceNone.
func ChangeSources() []ChangeSource { return all[ChangeSource](numChangeSources) }

// name returns names[v], or "unknown" past its end.
func name[T ~uint8](names []string, v T) string {
	if int(v) < len(names) {
		return names[v]
	}
	return "unknown"
}

// all lists the values 1..n-1 of an enum whose zero value means none.
func all[T ~uint8](n T) []T {
	out := make([]T, 0, n-1)
	for v := T(1); v < n; v++ {
		out = append(out, v)
	}
	return out
}
