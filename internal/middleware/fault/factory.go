package fault

import (
	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Factory returns the middleware.Factory that builds the fault middleware
// of every route with a fault block (nil for the others), with New's
// dependencies.
func Factory(obs observe.Observer, clk clock.Clock, rnd func() uint64) middleware.Factory {
	return middleware.FactoryFunc(func(r middleware.Route) middleware.Middleware {
		if r.Config == nil {
			return nil
		}
		return New(r.Name, r.Config.Fault, obs, clk, rnd)
	})
}
