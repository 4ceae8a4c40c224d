package middleware

import "github.com/vantage-gateway/vantage/internal/config"

// Route describes, at build time, the route a middleware instance will wrap,
// so that a middleware can pre-resolve per-route state (metric series,
// sampling settings) once instead of per request.
type Route struct {
	// Name is the route name; "" for the handler of unmatched requests.
	Name string
	// Template is the route's path pattern (http.route), "" when unmatched.
	Template string
	// Services lists the services the route can send to (one, or the legs
	// of a split, plus a mirror or fallback service), for pre-resolving
	// per-service state.
	Services []string
	// Config is the route's config, nil for the unmatched handler. It is
	// read-only.
	Config *config.Route
}

// Factory builds one middleware instance per route. The gateway calls
// ForRoute for every route (and once with an empty Route for unmatched
// requests) each time it builds a config snapshot, including on hot reload;
// instances of the previous snapshot are dropped once it has drained.
// ForRoute may return nil to skip the route.
type Factory interface {
	ForRoute(r Route) Middleware
}

// FactoryFunc adapts a function to Factory.
type FactoryFunc func(r Route) Middleware

// ForRoute implements Factory.
func (f FactoryFunc) ForRoute(r Route) Middleware { return f(r) }
