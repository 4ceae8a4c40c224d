package proxy

import (
	"net/http"

	"github.com/vantage-gateway/vantage/internal/errorbody"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Errors the proxy itself causes, as causes of the attempt context. They
// are timeouts to observe.Classify.
var (
	errRouteTimeout error = timeoutError("route timeout")
	errTryTimeout   error = timeoutError("per-try timeout")
)

// timeoutError is an error that says it is a timeout.
type timeoutError string

func (e timeoutError) Error() string { return string(e) }

// Timeout reports true.
func (e timeoutError) Timeout() bool { return true }

// StatusFor is the status the gateway answers with for a failure kind.
func StatusFor(kind observe.ErrorKind) int {
	switch kind {
	case observe.ErrNoRoute:
		return http.StatusNotFound
	case observe.ErrUpstreamTimeout:
		return http.StatusGatewayTimeout
	case observe.ErrNoHealthyUpstream, observe.ErrBreakerOpen:
		return http.StatusServiceUnavailable
	case observe.ErrRateLimited:
		return http.StatusTooManyRequests
	case observe.ErrClientCanceled:
		return 499 // nginx's "client closed request"
	case observe.ErrClientBadRequest:
		return http.StatusBadRequest
	case observe.ErrClientTimeout:
		return http.StatusRequestTimeout
	case observe.ErrInternal:
		return http.StatusInternalServerError
	}
	return http.StatusBadGateway
}

var errorMessages = map[observe.ErrorKind]string{
	observe.ErrNoRoute:           "no route matches the request",
	observe.ErrUpstreamConnect:   "could not connect to the upstream",
	observe.ErrUpstreamTimeout:   "the upstream did not answer in time",
	observe.ErrUpstreamReset:     "the upstream closed the connection",
	observe.ErrUpstreamProtocol:  "the upstream sent an invalid response",
	observe.ErrNoHealthyUpstream: "no healthy upstream",
	observe.ErrBreakerOpen:       "the service's circuit breaker is open",
	observe.ErrRateLimited:       "rate limit exceeded",
	observe.ErrFaultInjected:     "fault injected",
	observe.ErrInternal:          "internal gateway error",
	observe.ErrClientCanceled:    "the client closed the request",
	observe.ErrClientBadRequest:  "the request body could not be read",
	observe.ErrClientTimeout:     "the request body was sent too slowly",
}

// WriteError answers the client with a small JSON body for kind, carrying
// the trace id when the request has one, and records the kind. For
// ErrClientCanceled the client went away, so the answer (499, connection
// closed) is for the record: it reaches only a client that closed just its
// sending side, which must not be left with an empty 200.
func WriteError(w http.ResponseWriter, rec *observe.Record, kind observe.ErrorKind) {
	if rec != nil {
		rec.ErrorKind = kind
	}
	if kind == observe.ErrClientCanceled {
		w.Header().Set("Connection", "close")
	}
	errorbody.Write(w, rec, StatusFor(kind), kind.String(), errorMessages[kind])
}
