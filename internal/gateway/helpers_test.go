package gateway

import (
	"net/http"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
)

// middlewareFactory is a middleware.Factory of the same middleware for
// every route.
type middlewareFactory func(http.Handler) http.Handler

func (m middlewareFactory) ForRoute(middleware.Route) middleware.Middleware {
	return middleware.Middleware(m)
}

func parseBench(upstream string) (*config.Config, error) {
	return config.Parse("bench.yml", []byte(`
listeners: [{name: public, address: "127.0.0.1:0"}]
services: [{name: s, upstreams: [{url: "`+upstream+`"}]}]
routes:
  - {name: item, match: {path: "/items/{id}"}, service: s}
`), nil)
}
