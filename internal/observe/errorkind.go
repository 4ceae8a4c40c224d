package observe

// ErrorKind classifies why a request or an attempt failed. The set is closed
// and small, so it is safe as a metric label.
type ErrorKind uint8

// The error kinds, in label form by String.
const (
	// ErrNone: the request got a response from an upstream (whatever its
	// status) or was answered by the gateway on purpose.
	ErrNone ErrorKind = iota
	// ErrNoRoute: no route matched (404).
	ErrNoRoute
	// ErrUpstreamConnect: dialing the upstream failed (502).
	ErrUpstreamConnect
	// ErrUpstreamTimeout: the upstream did not answer in time (504).
	ErrUpstreamTimeout
	// ErrUpstreamReset: the connection broke mid-request or mid-response (502).
	ErrUpstreamReset
	// ErrUpstreamProtocol: the upstream sent something that is not valid HTTP (502).
	ErrUpstreamProtocol
	// ErrNoHealthyUpstream: the service had no healthy host (503).
	ErrNoHealthyUpstream
	// ErrBreakerOpen: a circuit breaker refused the request (503).
	ErrBreakerOpen
	// ErrRateLimited: a rate limit refused the request (429).
	ErrRateLimited
	// ErrClientCanceled: the client went away before the response was done.
	// It is not an upstream failure.
	ErrClientCanceled
	// ErrFaultInjected: a configured fault aborted the request.
	ErrFaultInjected
	// ErrInternal: a bug or an unexpected condition in the gateway (500).
	ErrInternal
	// ErrClientBadRequest: the client's request body could not be read as
	// sent — malformed chunked coding, or a body shorter than its
	// Content-Length on a stream the client kept open (400). It is not an
	// upstream failure.
	ErrClientBadRequest
	// ErrClientTimeout: the client sent its request body too slowly — idle
	// longer than the route's request_body.idle_timeout, or below its
	// request_body.min_rate after the grace period (408). It is not an
	// upstream failure.
	ErrClientTimeout

	numErrorKinds
)

var errorKindNames = [numErrorKinds]string{
	ErrNone:              "",
	ErrNoRoute:           "no_route",
	ErrUpstreamConnect:   "upstream_connect",
	ErrUpstreamTimeout:   "upstream_timeout",
	ErrUpstreamReset:     "upstream_reset",
	ErrUpstreamProtocol:  "upstream_protocol",
	ErrNoHealthyUpstream: "no_healthy_upstream",
	ErrBreakerOpen:       "breaker_open",
	ErrRateLimited:       "rate_limited",
	ErrClientCanceled:    "client_canceled",
	ErrFaultInjected:     "fault_injected",
	ErrInternal:          "internal",
	ErrClientBadRequest:  "client_bad_request",
	ErrClientTimeout:     "client_timeout",
}

// String returns the kind's label value; ErrNone is "".
func (k ErrorKind) String() string {
	if k < numErrorKinds {
		return errorKindNames[k]
	}
	return "unknown"
}

// ErrorKinds lists every kind except ErrNone, for pre-resolving instruments.
func ErrorKinds() []ErrorKind {
	ks := make([]ErrorKind, 0, numErrorKinds-1)
	for k := ErrNone + 1; k < numErrorKinds; k++ {
		ks = append(ks, k)
	}
	return ks
}

// IsUpstreamFailure reports whether k counts against an upstream's health
// (connect, timeout, reset, protocol).
func (k ErrorKind) IsUpstreamFailure() bool {
	switch k {
	case ErrUpstreamConnect, ErrUpstreamTimeout, ErrUpstreamReset, ErrUpstreamProtocol:
		return true
	}
	return false
}

// IsClientError reports whether k is the client's doing (canceled, a bad
// request body, a body too slow): it never counts against an upstream's
// health, a breaker or a retry, and an attempt failing with it is not the
// attempt's fault.
func (k ErrorKind) IsClientError() bool {
	switch k {
	case ErrClientCanceled, ErrClientBadRequest, ErrClientTimeout:
		return true
	}
	return false
}
