package gateway

import (
	"net/http"

	"github.com/vantage-gateway/vantage/internal/config"
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

func parseBench(upstream string) (*config.Config, error) {
	return config.Parse("bench.yml", []byte(`
listeners: [{name: public, address: "127.0.0.1:0"}]
services: [{name: s, upstreams: [{url: "`+upstream+`"}]}]
routes:
  - {name: item, match: {path: "/items/{id}"}, service: s}
`), nil)
}
