// Package errorbody writes the one response shape every error the gateway
// itself answers takes (no route, upstream failures, open breakers, rate
// limits, injected faults):
//
//	{"error":"upstream_timeout","status":504,"message":"…","trace_id":"…"}
//
// trace_id is present when the request has a trace context, so a user's
// error report leads to the trace and the access log line.
package errorbody

import (
	"encoding/hex"
	"net/http"
	"strconv"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// Write answers with status and the JSON error body. code is a short
// snake_case reason (an observe.ErrorKind label), msg a sentence for people;
// rec may be nil.
func Write(w http.ResponseWriter, rec *observe.Record, status int, code, msg string) {
	buf := make([]byte, 0, 160)
	buf = append(buf, `{"error":`...)
	buf = strconv.AppendQuote(buf, code)
	buf = append(buf, `,"status":`...)
	buf = strconv.AppendInt(buf, int64(status), 10)
	if msg != "" {
		buf = append(buf, `,"message":`...)
		buf = strconv.AppendQuote(buf, msg)
	}
	if rec != nil && rec.Trace.Valid {
		buf = append(buf, `,"trace_id":"`...)
		buf = hex.AppendEncode(buf, rec.Trace.TraceID[:])
		buf = append(buf, '"')
	}
	buf = append(buf, "}\n"...)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf)
}
