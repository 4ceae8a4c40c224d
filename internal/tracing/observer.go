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
		st.events = append(st.events, spanEvent(&ev))
	}
	st.mu.Unlock()
}

// spanEvent projects a decision's typed payload onto the attributes of its
// span event: vantage.state.from and .to for state changes, vantage.reason
// for the payload's reason enum (its label, as in metrics),
// vantage.value for its number (ejection and delay seconds, the abort or
// probe status), vantage.policy for a rate limit's policy, and
// vantage.detail for the words meant for people. It does not allocate.
func spanEvent(ev *observe.Event) eventRecord {
	e := eventRecord{kind: ev.Kind, time: ev.Time, service: ev.Service, upstream: ev.Upstream, detail: ev.Detail}
	switch ev.Kind {
	case observe.EventSplitChosen:
		e.reason = ev.Split.String()
	case observe.EventRetry, observe.EventRetryBudgetExhausted:
		e.reason = ev.Retry.String()
	case observe.EventBreakerTransition:
		e.from, e.to, e.reason = ev.Breaker.From.String(), ev.Breaker.To.String(), ev.Breaker.Reason.String()
	case observe.EventBreakerRejected:
		e.to = ev.Breaker.To.String()
	case observe.EventRateLimited:
		e.reason, e.policy = ev.RateLimit.Key.String(), ev.RateLimit.Policy
	case observe.EventHealthChanged:
		e.from, e.to, e.reason = ev.Health.From.String(), ev.Health.To.String(), ev.Health.Reason.String()
		e.value = float64(ev.Health.Status)
	case observe.EventHostEjected, observe.EventHostRestored:
		e.reason, e.value = ev.Ejection.Reason.String(), ev.Ejection.Duration.Seconds()
	case observe.EventMirrored:
		e.reason = ev.Mirror.String()
	case observe.EventFaultInjected:
		e.reason = ev.Fault.Kind.String()
		if ev.Fault.Kind == observe.FaultAbort {
			e.value = float64(ev.Fault.Status)
		} else {
			e.value = ev.Fault.Delay.Seconds()
		}
	}
	return e
}
