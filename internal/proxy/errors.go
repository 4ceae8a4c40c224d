package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/vantage-gateway/vantage/internal/errorbody"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/transport"
)

// Errors the proxy itself causes, as causes of the attempt context.
var (
	errRouteTimeout = errors.New("route timeout")
	errTryTimeout   = errors.New("per-try timeout")
)

// Classify maps an error from a RoundTripper or from reading a response
// body to an ErrorKind. clientCtx is the client's own request context: when
// it is done, the client went away, which is not the upstream's failure.
func Classify(err error, clientCtx context.Context) observe.ErrorKind {
	if err == nil {
		return observe.ErrNone
	}
	if clientCtx != nil && clientCtx.Err() != nil {
		return observe.ErrClientCanceled
	}
	var te *transport.Error
	if errors.As(err, &te) && te.Kind != observe.ErrNone && te.Kind != observe.ErrClientCanceled {
		return te.Kind
	}
	if errors.Is(err, errRouteTimeout) || errors.Is(err, errTryTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return observe.ErrUpstreamTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return observe.ErrUpstreamTimeout
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return observe.ErrUpstreamConnect
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return observe.ErrUpstreamConnect
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return observe.ErrUpstreamReset
	}
	if errors.Is(err, context.Canceled) {
		return observe.ErrUpstreamReset
	}
	return observe.ErrUpstreamProtocol
}

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
		return 499 // nginx's "client closed request"; never sent, only recorded
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
}

// WriteError answers the client with a small JSON body for kind, carrying
// the trace id when the request has one, and records the kind. It does
// nothing but record when the client is gone.
func WriteError(w http.ResponseWriter, rec *observe.Record, kind observe.ErrorKind) {
	if rec != nil {
		rec.ErrorKind = kind
	}
	if kind == observe.ErrClientCanceled {
		if rec != nil {
			rec.Status = StatusFor(kind)
		}
		return
	}
	errorbody.Write(w, rec, StatusFor(kind), kind.String(), errorMessages[kind])
}
