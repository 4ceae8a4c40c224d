package ratelimit

import (
	"net/http"
	"sync"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/errorbody"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Factory builds the rate-limit middleware of every route that has a
// rate_limit block, for the gateway's chain. It remembers the policy it
// built for each route name, so the next snapshot's policy of the same route
// carries its buckets over (see New). It is safe for concurrent use.
type Factory struct {
	obs observe.Observer
	clk clock.Clock

	mu       sync.Mutex
	policies map[string]*RateLimit // by route name, from the latest build
}

// NewFactory returns a Factory whose policies report to obs and read clk
// (nil: none and the system clock).
func NewFactory(obs observe.Observer, clk clock.Clock) *Factory {
	return &Factory{obs: obs, clk: clk, policies: map[string]*RateLimit{}}
}

// ForRoute implements middleware.Factory: nil for a route without a rate
// limit. A policy that cannot be built (the config was not validated)
// refuses every request of the route with a 500 rather than letting it
// through unlimited.
func (f *Factory) ForRoute(r middleware.Route) middleware.Middleware {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Config == nil || r.Config.RateLimit == nil {
		delete(f.policies, r.Name)
		return nil
	}
	l, err := New(r.Name, r.Config.RateLimit, f.policies[r.Name], f.obs, f.clk)
	if err != nil {
		delete(f.policies, r.Name)
		return func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				rec := observe.FromContext(req.Context())
				if rec != nil {
					rec.ErrorKind = observe.ErrInternal
				}
				errorbody.Write(w, rec, http.StatusInternalServerError, observe.ErrInternal.String(), "rate limit misconfigured")
			})
		}
	}
	f.policies[r.Name] = l
	return l.Middleware()
}

// Policy returns the policy built for route by the latest ForRoute call, or
// nil (for the admin API).
func (f *Factory) Policy(route string) *RateLimit {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.policies[route]
}

var _ middleware.Factory = (*Factory)(nil)
