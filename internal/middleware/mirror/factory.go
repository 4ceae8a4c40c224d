package mirror

import (
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Factory returns the middleware.Factory that builds the mirror middleware
// of every route with a mirror block (nil for the others). sender returns
// the Sender for a shadow service of the snapshot being built (nil when it
// has none, which skips mirroring for the route).
func Factory(sender func(service string) Sender, obs observe.Observer, rnd func() uint64) middleware.Factory {
	return middleware.FactoryFunc(func(r middleware.Route) middleware.Middleware {
		if r.Config == nil || r.Config.Mirror == nil || sender == nil {
			return nil
		}
		s := sender(r.Config.Mirror.Service)
		if s == nil {
			return nil
		}
		return New(r.Name, r.Config.Mirror, s, obs, rnd)
	})
}
