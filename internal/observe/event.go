package observe

import (
	"context"
	"time"
)

// EventKind names a decision. Each kind's doc says which of Event's
// fields it sets; the others are zero.
type EventKind uint8

// The decisions the gateway reports.
const (
	// EventRouteMatched: a request matched Route. Per request.
	EventRouteMatched EventKind = iota + 1
	// EventRouteNotMatched: no route matched the request. Per request.
	EventRouteNotMatched
	// EventSplitChosen: the weighted split of Route sent the request to
	// Service, for the reason Split. Per request.
	EventSplitChosen
	// EventUpstreamPicked: the balancer picked Upstream of Service. Per
	// attempt.
	EventUpstreamPicked
	// EventRetry: the proxy retries the request of Route on Service
	// (Upstream is the host that failed) because of Retry. Per retry.
	EventRetry
	// EventRetryBudgetExhausted: a retry of Route on Service was wanted for
	// Retry but the retry budget refused it. Per request.
	EventRetryBudgetExhausted
	// EventBreakerTransition: the breaker of Service (and Upstream, for a
	// per-host breaker) went Breaker.From → Breaker.To for Breaker.Reason;
	// Detail has the numbers that tripped it.
	EventBreakerTransition
	// EventBreakerRejected: the breaker of Service (and Upstream) refused a
	// request of Route in state Breaker.To. Per request.
	EventBreakerRejected
	// EventRateLimited: the rate limit RateLimit.Policy, counting by
	// RateLimit.Key, refused a request of Route. Per request.
	EventRateLimited
	// EventHealthChanged: active health checks moved Upstream of Service
	// from Health.From to Health.To; Health.Reason (and Health.Status) is
	// the outcome of the probe that reached the threshold, Err its error.
	EventHealthChanged
	// EventHostEjected: passive outlier detection ejected Upstream of
	// Service for Ejection.Reason after Ejection.Failures failures, for
	// Ejection.Duration.
	EventHostEjected
	// EventHostRestored: an ejection of Upstream of Service ended
	// (Ejection.Reason: expired, or detection removed).
	EventHostRestored
	// EventConfigReloaded: a new config is serving; Source says who loaded
	// it.
	EventConfigReloaded
	// EventConfigReloadFailed: a new config from Source was rejected and
	// the old one keeps serving; Err holds every error.
	EventConfigReloadFailed
	// EventSplitUpdated: Source changed the weights of Route's split at
	// runtime; Weights holds the new weights and PrevWeights the old ones,
	// in the split's config order. The slices are the event's: observers
	// may read them during Observe only.
	EventSplitUpdated
	// EventMirrored: a shadow copy of a request of Route to Service had
	// outcome Mirror (only MirrorSent means a copy went out). Per request.
	EventMirrored
	// EventFaultInjected: a configured fault (Fault) was applied to a
	// request of Route. Per request.
	EventFaultInjected
	// EventHostState: the state of Upstream of Service when a pool starts
	// serving it (at start and after each reload): Health.To and
	// Health.Ejected. It is not a transition; it lets observers show every
	// host's state before the first change.
	EventHostState
	// EventBreakerState: the state (Breaker.To) of the breaker of Service
	// (and Upstream, for a per-host breaker) when a config starts serving.
	// Not a transition, like EventHostState.
	EventBreakerState
	// EventHostRemoved: a reload removed Upstream of Service (Upstream ""
	// when it removed the service, or its service-wide breaker), so its
	// state is no longer reported.
	EventHostRemoved
	// EventRequestBodyTimeout: the client of a request of Route sent its
	// body too slowly and the gateway cut it (answered 408, error kind
	// client_timeout); BodyTimeout is the limit that fired. Per request.
	EventRequestBodyTimeout
	// EventRolloutTransition: a rollout of Route (canary Service) made a
	// decision; Detail reads "NAME: ACTION FROM → TO, canary W%: why".
	EventRolloutTransition

	numEventKinds
)

var eventKindNames = [numEventKinds]string{
	EventRouteMatched:         "route_matched",
	EventRouteNotMatched:      "route_not_matched",
	EventSplitChosen:          "split_chosen",
	EventUpstreamPicked:       "upstream_picked",
	EventRetry:                "retry",
	EventRetryBudgetExhausted: "retry_budget_exhausted",
	EventBreakerTransition:    "breaker_transition",
	EventBreakerRejected:      "breaker_rejected",
	EventRateLimited:          "rate_limited",
	EventHealthChanged:        "health_changed",
	EventHostEjected:          "host_ejected",
	EventHostRestored:         "host_restored",
	EventConfigReloaded:       "config_reloaded",
	EventConfigReloadFailed:   "config_reload_failed",
	EventSplitUpdated:         "split_updated",
	EventMirrored:             "mirrored",
	EventFaultInjected:        "fault_injected",
	EventHostState:            "host_state",
	EventBreakerState:         "breaker_state",
	EventHostRemoved:          "host_removed",
	EventRequestBodyTimeout:   "request_body_timeout",
	EventRolloutTransition:    "rollout_transition",
}

// String returns the kind's snake_case name.
func (k EventKind) String() string {
	if k == 0 || k >= numEventKinds {
		return "unknown"
	}
	return eventKindNames[k]
}

// EventKinds lists every kind, in order.
func EventKinds() []EventKind { return all[EventKind](numEventKinds) }

// Event is one decision. It is passed by value so that reporting it does not
// allocate: every payload is a plain typed field (no interface), and the
// fields that do not apply to Kind are zero (each kind's doc names its
// fields). Label values come from the payload enums' String methods, never
// from Detail.
type Event struct {
	Kind EventKind
	// Time is when the decision was made, by the producer's clock.
	Time time.Time
	// Ctx is the request's context for per-request events (it carries the
	// server span, so a tracer can add a span event), nil otherwise.
	Ctx context.Context
	// Record is the request's record for per-request events, nil for
	// background events (health, reloads). Observers must not keep it.
	Record *Record

	// Route, Service and Upstream name what the decision is about, by
	// their config names ("host:port" for Upstream).
	Route    string
	Service  string
	Upstream string

	// Breaker: EventBreakerTransition, EventBreakerState,
	// EventBreakerRejected.
	Breaker BreakerChange
	// Split: EventSplitChosen.
	Split SplitReason
	// Mirror: EventMirrored.
	Mirror MirrorOutcome
	// Source: EventConfigReloaded, EventConfigReloadFailed,
	// EventSplitUpdated.
	Source ChangeSource
	// Health: EventHealthChanged, EventHostState.
	Health HealthChange
	// Ejection: EventHostEjected, EventHostRestored.
	Ejection Ejection
	// Retry: EventRetry, EventRetryBudgetExhausted.
	Retry RetryCause
	// RateLimit: EventRateLimited.
	RateLimit RateLimitHit
	// Fault: EventFaultInjected.
	Fault Fault
	// BodyTimeout: EventRequestBodyTimeout.
	BodyTimeout BodyLimit
	// Weights and PrevWeights: EventSplitUpdated.
	Weights, PrevWeights []SplitLeg

	// Detail is the decision's evidence in words, for people (log lines,
	// span events, the admin API): "error ratio 0.62 >= 0.50 over 40
	// requests in 10s". It is never a label value and never parsed.
	Detail string
	// Err is the error behind a failure event (health check, reload).
	Err error
}

// Observer receives decision events. Observe is called synchronously on the
// goroutine that made the decision, often the request's: it must be safe for
// concurrent use, must not block, and must not keep ev.Record or ev.Ctx.
type Observer interface {
	Observe(ev Event)
}

// Observers fans one event out to several observers in order.
type Observers []Observer

// Observe implements Observer.
func (os Observers) Observe(ev Event) {
	for _, o := range os {
		o.Observe(ev)
	}
}

// Nop is an Observer that ignores every event.
type Nop struct{}

// Observe implements Observer.
func (Nop) Observe(Event) {}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Event)

// Observe implements Observer.
func (f ObserverFunc) Observe(ev Event) { f(ev) }

// Join returns one Observer for all non-nil observers given: Nop for none,
// the observer itself for one.
func Join(obs ...Observer) Observer {
	var out Observers
	for _, o := range obs {
		switch o := o.(type) {
		case nil:
		case Nop:
		case Observers:
			out = append(out, o...)
		default:
			out = append(out, o)
		}
	}
	switch len(out) {
	case 0:
		return Nop{}
	case 1:
		return out[0]
	}
	return out
}

var (
	_ Observer = Observers(nil)
	_ Observer = Nop{}
	_ Observer = ObserverFunc(nil)
)
