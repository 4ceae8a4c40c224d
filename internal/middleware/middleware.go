// Package middleware defines the shape every handler-wrapping stage of the
// gateway takes, the helper that chains them, the typed slots of the
// telemetry stages (Telemetry) and the stage that ends every request's
// Record (End). The order of the chain is declared in one place
// (internal/gateway, Gateway.chain), not here.
package middleware

import "net/http"

// Middleware wraps a handler. The first middleware given to Chain is the
// outermost: it sees the request first and the response last.
type Middleware func(next http.Handler) http.Handler

// Chain wraps h in mws, the first being outermost. Nil middlewares are
// skipped, so optional stages can be passed unconditionally.
func Chain(h http.Handler, mws ...Middleware) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		if mws[i] != nil {
			h = mws[i](h)
		}
	}
	return h
}
