package transport

import (
	"errors"
	"net"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// Error is the error the HTTP/1.1 client returns for every failure, from
// RoundTrip and from reads of a response body. Kind says whose fault it was
// and is what observe.Classify returns for it; Err is the cause and stays reachable with
// errors.Is and errors.As (for a dial failure it is the *net.OpError with Op
// "dial"; for a cancellation it wraps context.Canceled or
// context.DeadlineExceeded).
//
// *Error implements net.Error: Timeout reports true for ErrUpstreamTimeout
// and for a dial that timed out.
type Error struct {
	// Kind classifies the failure: ErrUpstreamConnect, ErrUpstreamTimeout,
	// ErrUpstreamReset, ErrUpstreamProtocol, ErrInternal (the request
	// itself could not be written, a gateway bug), or, when the request
	// context ended or reading the request body failed (Err then holds an
	// *observe.RequestBodyError), ErrClientCanceled, ErrClientBadRequest or
	// ErrClientTimeout.
	Kind observe.ErrorKind
	// Op is the step that failed: "dial", "write", "read", "body" (reading
	// the response body) or "request" (checking the request).
	Op string
	// Addr is the upstream's host:port.
	Addr string
	// Err is the cause. It is never nil.
	Err error
}

// Error returns "transport: <op> <addr>: <cause>".
func (e *Error) Error() string {
	return "transport: " + e.Op + " " + e.Addr + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrorKind returns Kind; it makes *Error an observe.KindError, whose kind
// observe.Classify trusts.
func (e *Error) ErrorKind() observe.ErrorKind { return e.Kind }

// Timeout reports whether the failure was a timeout: the response header
// timeout, the request's deadline, or a dial timeout.
func (e *Error) Timeout() bool {
	if e.Kind == observe.ErrUpstreamTimeout {
		return true
	}
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// Temporary reports false. It exists to satisfy net.Error.
func (e *Error) Temporary() bool { return false }

var _ net.Error = (*Error)(nil)

// Sentinel causes, wrapped in *Error.
var (
	// ErrResponseHeaderTimeout is the cause when response_header_timeout
	// expired before the upstream's response headers arrived.
	ErrResponseHeaderTimeout = errors.New("timeout awaiting response headers")
	// ErrHeaderTooLarge is the cause when the upstream's response headers
	// exceed MaxResponseHeaderBytes.
	ErrHeaderTooLarge = errors.New("response headers too large")
	// ErrBodyClosed is returned by Read on a response body after Close.
	ErrBodyClosed = errors.New("read on closed response body")
	// ErrUnsupportedScheme is the cause when the request URL's scheme is not
	// http, https or h2c.
	ErrUnsupportedScheme = errors.New("unsupported scheme")
)

// isTimeout reports whether err is a timeout (deadline) error.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
