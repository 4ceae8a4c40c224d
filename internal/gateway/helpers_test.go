package gateway

import (
	"net/http"

	"github.com/vantage-gateway/vantage/internal/middleware"
)

type middlewareFactory func(http.Handler) http.Handler

type middlewareFactories []middlewareFactory

func (ms middlewareFactories) factories() []middleware.Factory {
	var out []middleware.Factory
	for _, m := range ms {
		out = append(out, middleware.FactoryFunc(func(middleware.Route) middleware.Middleware { return middleware.Middleware(m) }))
	}
	return out
}
