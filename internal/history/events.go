package history

import (
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Observe implements observe.Observer: it turns decision events into
// decision series. Per-request decisions (status, error kind, retries,
// rate-limit and breaker rejections) are already in the Record and are not
// counted here; this adds what only events carry: retry-budget refusals
// (route), breaker state and transitions (service, or host for a per-host
// breaker), ejections and ejected state, active health (host), split
// weights changed at runtime (leg), config reloads (gateway) and rate-limit
// rejections by policy and key (ratelimit). Events
// never block and, once their series exist, never allocate.
func (h *History) Observe(ev observe.Event) {
	if !h.enabled {
		return
	}
	switch ev.Kind {
	case observe.EventRetryBudgetExhausted:
		h.addSide(ScopeRoute, orUnmatched(ev.Route), RetryBudgetExhausted, 1)
	case observe.EventBreakerTransition:
		sc, name := breakerSeries(ev)
		h.addSide(sc, name, BreakerTransitions, 1)
		h.setSide(sc, name, BreakerState, breakerValue(ev.Breaker.To))
	case observe.EventBreakerState:
		sc, name := breakerSeries(ev)
		h.setSide(sc, name, BreakerState, breakerValue(ev.Breaker.To))
	case observe.EventHostEjected:
		name := ev.Service + "/" + ev.Upstream
		h.addSide(ScopeHost, name, Ejections, 1)
		h.setSide(ScopeHost, name, Ejected, 1)
	case observe.EventHostRestored:
		h.setSide(ScopeHost, ev.Service+"/"+ev.Upstream, Ejected, 0)
	case observe.EventHostState:
		name := ev.Service + "/" + ev.Upstream
		h.setSide(ScopeHost, name, Unhealthy, unhealthyValue(ev.Health.To))
		ejected := uint64(0)
		if ev.Health.Ejected {
			ejected = 1
		}
		h.setSide(ScopeHost, name, Ejected, ejected)
	case observe.EventHealthChanged:
		name := ev.Service + "/" + ev.Upstream
		h.addSide(ScopeHost, name, HealthTransitions, 1)
		h.setSide(ScopeHost, name, Unhealthy, unhealthyValue(ev.Health.To))
	case observe.EventHostRemoved:
		// The series keeps its history; only its state gauges stop.
		if ev.Upstream == "" {
			if s := h.lookup(ScopeService, ev.Service); s != nil {
				s.side[BreakerState].Store(0)
			}
			return
		}
		if s := h.lookup(ScopeHost, ev.Service+"/"+ev.Upstream); s != nil {
			s.side[BreakerState].Store(0)
			s.side[Ejected].Store(0)
			s.side[Unhealthy].Store(0)
		}
	case observe.EventSplitUpdated:
		for _, leg := range ev.Weights {
			if s := h.lookup(ScopeLeg, ev.Route+"/"+leg.Service); s != nil && leg.Weight >= 0 {
				s.side[Weight].Store(uint64(leg.Weight))
				s.sideUsed.Store(true)
			}
		}
	case observe.EventRateLimited:
		h.rateLimited(ev.RateLimit)
	case observe.EventConfigReloaded:
		h.addSide(ScopeGateway, "", Reloads, 1)
	case observe.EventConfigReloadFailed:
		h.addSide(ScopeGateway, "", ReloadFailures, 1)
	}
}

func orUnmatched(route string) string {
	if route == "" {
		return UnmatchedRoute
	}
	return route
}

func breakerSeries(ev observe.Event) (Scope, string) {
	if ev.Upstream != "" {
		return ScopeHost, ev.Service + "/" + ev.Upstream
	}
	return ScopeService, ev.Service
}

// breakerValue maps a breaker state to the BreakerState gauge.
func breakerValue(s observe.BreakerState) uint64 {
	switch s {
	case observe.BreakerOpen:
		return 2
	case observe.BreakerHalfOpen:
		return 1
	}
	return 0
}

func unhealthyValue(s observe.HealthState) uint64 {
	if s == observe.HealthUnhealthy {
		return 1
	}
	return 0
}

// addSide adds n to a counter of a series' side block. An event for a
// series that does not exist yet creates it (within the cap); routes are
// not created by events, only by the gateway's snapshot build.
func (h *History) addSide(sc Scope, name string, f Field, n uint64) {
	s := h.eventSeries(sc, name)
	if s == nil {
		return
	}
	s.side[f].Add(n)
	s.sideUsed.Store(true)
}

func (h *History) setSide(sc Scope, name string, f Field, v uint64) {
	s := h.eventSeries(sc, name)
	if s == nil {
		return
	}
	s.side[f].Store(v)
	s.sideUsed.Store(true)
}

func (h *History) eventSeries(sc Scope, name string) *series {
	if sc == ScopeGateway {
		return h.gateway
	}
	if sc == ScopeRoute {
		return h.lookup(sc, name)
	}
	return h.sideSeries(sc, name)
}

var _ observe.Observer = (*History)(nil)
