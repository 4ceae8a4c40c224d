package middleware

import (
	"net/http"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Telemetry is the chain's observing stages, one typed slot each. The
// gateway assembles every route's chain from these slots in one fixed order
// (internal/gateway, chain), so no caller can put one stage outside another
// that it depends on:
//
//	Tracing → Metrics → AccessLog → History → End → rate limit → fault → mirror → proxy
//
// Tracing is outermost: before anything else runs it sets Record.Trace and
// the trace response header, so every other stage, and every response the
// gateway writes itself, carries the trace id. End is the gateway's own
// stage, inside every reader: when the rest of the chain returns it fixes
// the Record's End and final Status with the gateway's clock (see
// observe.Record.Finish) and calls Readers, before any reader's code after
// its next handler runs. A nil slot is skipped. The zero value observes
// nothing, and a route nothing observes has no end stage (its record is
// never read, so End is never fixed).
type Telemetry struct {
	// Tracing builds each route's tracing stage (server span, trace
	// context, late sampling).
	Tracing Factory
	// Metrics builds each route's RED metrics stage.
	Metrics Factory
	// AccessLog builds each route's access log stage.
	AccessLog Factory
	// History builds each route's per-second history stage.
	History Factory
	// Readers read every finished Record, in order, from the end stage:
	// for observers that need nothing before the request runs.
	Readers []observe.RecordReader
}

// End returns the stage that ends every request: when next returns or
// panics, it calls Finish on the request's Record with clk's time, then
// each reader in order (the panic goes on afterwards). Requests without a
// Record pass through. The gateway places it inside the telemetry stages;
// tests of one stage place it inside that stage the same way. It does not
// allocate.
func End(clk clock.Clock, readers ...observe.RecordReader) Middleware {
	return func(next http.Handler) http.Handler {
		return &endStage{clk: clk, readers: readers, next: next}
	}
}

type endStage struct {
	clk     clock.Clock
	readers []observe.RecordReader
	next    http.Handler
}

func (e *endStage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := observe.FromContext(r.Context())
	if rec == nil {
		e.next.ServeHTTP(w, r)
		return
	}
	defer e.end(rec)
	e.next.ServeHTTP(w, r)
}

func (e *endStage) end(rec *observe.Record) {
	rec.Finish(e.clk.Now())
	for _, rd := range e.readers {
		rd.ReadRecord(rec)
	}
}
