package observe

import (
	"context"
	"time"
)

// EventKind names a decision.
type EventKind uint8

// The decisions the gateway reports.
const (
	// EventRouteMatched: a request matched Route. Per request.
	EventRouteMatched EventKind = iota + 1
	// EventRouteNotMatched: no route matched the request. Per request.
	EventRouteNotMatched
	// EventSplitChosen: a weighted split sent the request to Service;
	// Reason is "weight", "sticky" or "override". Per request.
	EventSplitChosen
	// EventUpstreamPicked: the balancer picked Upstream of Service. Per attempt.
	EventUpstreamPicked
	// EventRetry: the proxy retries; Reason says why. Per retry.
	EventRetry
	// EventRetryBudgetExhausted: a retry was wanted but the budget refused it.
	EventRetryBudgetExhausted
	// EventBreakerTransition: the breaker of Service (and Upstream, for a
	// per-host breaker) went From → To; Reason holds the numbers that
	// tripped it.
	EventBreakerTransition
	// EventBreakerRejected: an open breaker refused a request. Per request.
	EventBreakerRejected
	// EventRateLimited: the policy named in Reason refused a request of
	// Route; To names the key kind ("client_ip", "header", ...). Per request.
	EventRateLimited
	// EventHealthChanged: Upstream of Service went From → To ("healthy",
	// "unhealthy") by an active health check; Reason says why.
	EventHealthChanged
	// EventHostEjected: passive outlier detection ejected Upstream of
	// Service; Reason holds the failure count, Value the ejection seconds.
	EventHostEjected
	// EventHostRestored: an ejected Upstream came back after its ejection.
	EventHostRestored
	// EventConfigReloaded: a new config is serving; Reason names the source
	// ("file", "signal", "api").
	EventConfigReloaded
	// EventConfigReloadFailed: a new config was rejected and the old one
	// keeps serving; Err holds every error.
	EventConfigReloadFailed
	// EventSplitUpdated: the weights of Route's split were changed at
	// runtime; From and To are the old and new weights ("a=90,b=10") and
	// Reason carries the new weights and who changed them.
	EventSplitUpdated
	// EventMirrored: a copy of the request went to the shadow Service
	// (Reason "sent"), or was not sent: Reason "dropped" (workers busy),
	// "body_too_large" or "body_incomplete".
	EventMirrored
	// EventFaultInjected: a configured fault (Reason: "delay" or "abort")
	// was applied to a request of Route.
	EventFaultInjected
	// EventHostState: the state of Upstream of Service when a pool starts
	// serving it (at start and after each reload): To is "healthy" or
	// "unhealthy", Value is 1 when the host is ejected. It is not a
	// transition; it lets observers show every host's state before the
	// first change.
	EventHostState
	// EventBreakerState: the state (To: "closed", "open", "half_open") of
	// the breaker of Service (and Upstream, for a per-host breaker) when a
	// config starts serving. Not a transition, like EventHostState.
	EventBreakerState
	// EventHostRemoved: a reload removed Upstream of Service (Upstream ""
	// when it removed the service, or its service-wide breaker), so its
	// state is no longer reported.
	EventHostRemoved
	// EventRequestBodyTimeout: the client of a request of Route sent its
	// body too slowly and the gateway cut it (answered 408, error kind
	// client_timeout); Reason is the limit that fired: "idle",
	// "min_rate", or "read_timeout" (the listener's timeouts.read, which
	// caps them). Per request.
	EventRequestBodyTimeout
)

var eventKindNames = map[EventKind]string{
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
}

// String returns the kind's snake_case name.
func (k EventKind) String() string {
	if s, ok := eventKindNames[k]; ok {
		return s
	}
	return "unknown"
}

// Event is one decision. It is passed by value so that reporting it does not
// allocate; fields that do not apply to a kind are zero.
type Event struct {
	Kind EventKind
	Time time.Time
	// Ctx is the request's context for per-request events (it carries the
	// server span, so a tracer can add a span event), nil otherwise.
	Ctx context.Context
	// Record is the request's record for per-request events, nil for
	// background events (health, reloads). Observers must not keep it.
	Record *Record

	Route    string
	Service  string
	Upstream string
	From, To string
	Reason   string
	Value    float64
	Err      error
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
