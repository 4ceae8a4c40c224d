package metrics

import (
	"time"

	"github.com/vantage-gateway/vantage/internal/metrics/series"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Observe implements observe.Observer: it records decision metrics. Per
// request events (split, retry, rate limit, breaker rejection, mirror,
// fault) cost a read-locked map lookup and do not allocate once their
// series exist; kinds it does not record (route matched, upstream picked)
// return at once. It never blocks on a scrape.
func (m *Metrics) Observe(ev observe.Event) {
	if !m.enabled {
		return
	}
	f := &m.f
	switch ev.Kind {
	case observe.EventSplitChosen:
		rule := ev.Route
		if ev.Record != nil && ev.Record.Split.Rule != "" {
			rule = ev.Record.Split.Rule
		}
		k := series.Key{orNone(ev.Route), orNone(rule), orNone(ev.Service), splitReason(ev.Split)}
		f.splitRequests.Get(&k).Inc()

	case observe.EventRetry:
		k := series.Key{orNone(ev.Route), orNone(ev.Service), retryReason(ev.Retry)}
		f.retries.Get(&k).Inc()

	case observe.EventRetryBudgetExhausted:
		k := series.Key{orNone(ev.Route), orNone(ev.Service)}
		f.retryBudget.Get(&k).Inc()

	case observe.EventBreakerRejected:
		k := series.Key{orNone(ev.Route), orNone(ev.Service), orNone(ev.Upstream)}
		f.breakerRejections.Get(&k).Inc()

	case observe.EventBreakerTransition:
		svc, up := orNone(ev.Service), orNone(ev.Upstream)
		to := orOther(ev.Breaker.To.String())
		k := series.Key{svc, up, orOther(ev.Breaker.From.String()), to, orOther(ev.Breaker.Reason.String())}
		f.breakerTransitions.Get(&k).Inc()
		f.setBreakerState(svc, up, to)

	case observe.EventBreakerState:
		f.setBreakerState(orNone(ev.Service), orNone(ev.Upstream), orOther(ev.Breaker.To.String()))

	case observe.EventRateLimited:
		k := series.Key{orNone(ev.Route), boundedValue(ev.RateLimit.Policy), orOther(ev.RateLimit.Key.String())}
		f.rateLimited.Get(&k).Inc()

	case observe.EventHealthChanged:
		svc, up := orNone(ev.Service), orNone(ev.Upstream)
		st := healthState(ev.Health.To)
		k := series.Key{svc, up, st}
		f.healthTransitions.Get(&k).Inc()
		f.setHealthy(svc, up, st)

	case observe.EventHostState:
		svc, up := orNone(ev.Service), orNone(ev.Upstream)
		f.setHealthy(svc, up, healthState(ev.Health.To))
		k := series.Key{svc, up}
		ejected := 0.0
		if ev.Health.Ejected {
			ejected = 1
		}
		f.ejected.Get(&k).Set(ejected)

	case observe.EventHostRemoved:
		svc, up := orNone(ev.Service), orNone(ev.Upstream)
		k := series.Key{svc, up}
		f.healthy.Delete(&k)
		f.ejected.Delete(&k)
		for _, st := range breakerStates {
			k := series.Key{svc, up, st}
			f.breakerState.Delete(&k)
		}

	case observe.EventHostEjected:
		k := series.Key{orNone(ev.Service), orNone(ev.Upstream)}
		f.ejections.Get(&k).Inc()
		f.ejected.Get(&k).Set(1)

	case observe.EventHostRestored:
		k := series.Key{orNone(ev.Service), orNone(ev.Upstream)}
		f.restored.Get(&k).Inc()
		f.ejected.Get(&k).Set(0)

	case observe.EventConfigReloaded:
		m.reloads.WithLabelValues("success").Inc()
		m.reloadOK.Set(1)
		m.reloadSuccTS.Set(unixSeconds(m.eventTime(ev)))

	case observe.EventConfigReloadFailed:
		m.reloads.WithLabelValues("failure").Inc()
		m.reloadOK.Set(0)
		m.reloadFailTS.Set(unixSeconds(m.eventTime(ev)))

	case observe.EventSplitUpdated:
		for _, leg := range ev.Weights {
			k := series.Key{orNone(ev.Route), leg.Service}
			f.splitWeight.Get(&k).Set(float64(leg.Weight))
		}

	case observe.EventMirrored:
		k := series.Key{orNone(ev.Route), orNone(ev.Service)}
		f.mirrored.Get(&k).Inc()

	case observe.EventRequestBodyTimeout:
		k := series.Key{orNone(ev.Route), orOther(ev.BodyTimeout.String())}
		f.bodyTimeouts.Get(&k).Inc()

	case observe.EventFaultInjected:
		k := series.Key{orNone(ev.Route), orOther(ev.Fault.Kind.String())}
		f.faults.Get(&k).Inc()
	}
}

func (m *Metrics) eventTime(ev observe.Event) time.Time {
	if ev.Time.IsZero() {
		return m.clock.Now()
	}
	return ev.Time
}

// setBreakerState sets the breaker state gauges of svc and up: 1 for state,
// 0 for the others. An unknown state leaves them alone.
func (f *families) setBreakerState(svc, up, state string) {
	if state == other {
		return
	}
	for _, st := range breakerStates {
		k := series.Key{svc, up, st}
		v := 0.0
		if st == state {
			v = 1
		}
		f.breakerState.Get(&k).Set(v)
	}
}

// setHealthy sets the health gauge of svc and up from a health state. An
// unknown state leaves it alone.
func (f *families) setHealthy(svc, up, state string) {
	if state == other {
		return
	}
	v := 0.0
	if state == "healthy" {
		v = 1
	}
	k := series.Key{svc, up}
	f.healthy.Get(&k).Set(v)
}
