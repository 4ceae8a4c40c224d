package tracing

import (
	"github.com/vantage-gateway/vantage/internal/observe"
)

// maxEventsPerRequest bounds the decision events kept per request.
const maxEventsPerRequest = 32

// spanEventKinds are the decisions that become span events of the request's
// SERVER span. Route matching and upstream picks are already attributes.
var spanEventKinds = func() (k [256]bool) {
	for _, e := range []observe.EventKind{
		observe.EventSplitChosen,
		observe.EventRetry,
		observe.EventRetryBudgetExhausted,
		observe.EventBreakerTransition,
		observe.EventBreakerRejected,
		observe.EventRateLimited,
		observe.EventHealthChanged,
		observe.EventHostEjected,
		observe.EventHostRestored,
		observe.EventMirrored,
		observe.EventFaultInjected,
	} {
		k[e] = true
	}
	return k
}()

// Observe turns per-request traffic-control decisions (split choice,
// retries and why, breaker transitions and rejections, rate-limit
// rejections, health changes and ejections, mirroring, faults) into span
// events of the request's SERVER span. Events without a request context
// (background health checks) and events of requests whose trace cannot be
// kept are ignored without allocating. It never blocks; it implements
// observe.Observer.
func (t *Tracing) Observe(ev observe.Event) {
	if !spanEventKinds[ev.Kind] || ev.Ctx == nil || !t.Exporting() {
		return
	}
	rec := ev.Record
	if rec == nil {
		rec = observe.FromContext(ev.Ctx)
	}
	st := stateOf(rec)
	if st == nil || !st.record {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = t.now()
	}
	st.mu.Lock()
	if !st.done && len(st.events) < maxEventsPerRequest {
		if st.events == nil {
			st.events = make([]eventRecord, 0, 4)
		}
		st.events = append(st.events, eventRecord{
			kind: ev.Kind, time: ev.Time, service: ev.Service, upstream: ev.Upstream,
			from: ev.From, to: ev.To, reason: ev.Reason, value: ev.Value,
		})
	}
	st.mu.Unlock()
}
