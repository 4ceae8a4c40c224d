package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"golang.org/x/net/http2"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// Error is the error the HTTP/1.1 client returns for every failure, from
// RoundTrip and from reads of a response body. Kind says whose fault it was
// and is what Classify returns; Err is the cause and stays reachable with
// errors.Is and errors.As (for a dial failure it is the *net.OpError with Op
// "dial"; for a cancellation it wraps context.Canceled or
// context.DeadlineExceeded).
//
// *Error implements net.Error: Timeout reports true for ErrUpstreamTimeout
// and for a dial that timed out.
type Error struct {
	// Kind classifies the failure: ErrUpstreamConnect, ErrUpstreamTimeout,
	// ErrUpstreamReset, ErrUpstreamProtocol, ErrClientCanceled or
	// ErrInternal (the request itself could not be written, a gateway bug).
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

// Classify maps an error returned by Transport.RoundTrip, or by a read of a
// response body it returned, to the error kind the gateway records and maps
// to a status. It also understands errors of the standard and HTTP/2
// transports used for https and h2c upstreams. A nil error is ErrNone; an
// error it cannot place is ErrUpstreamReset (the connection failed in a way
// the transport did not explain).
//
// The order matters: a client cancellation (context.Canceled anywhere in the
// chain) wins over everything, so a client going away never counts against
// an upstream's health.
func Classify(err error) observe.ErrorKind {
	if err == nil {
		return observe.ErrNone
	}
	if errors.Is(err, context.Canceled) {
		return observe.ErrClientCanceled
	}
	var te *Error
	if errors.As(err, &te) {
		return te.Kind
	}
	// Errors of the standard library and x/net transports (https, h2c).
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return observe.ErrUpstreamConnect
	}
	if isTLSError(err) {
		return observe.ErrUpstreamConnect
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return observe.ErrUpstreamTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return observe.ErrUpstreamTimeout
	}
	var se http2.StreamError
	if errors.As(err, &se) {
		if se.Code == http2.ErrCodeProtocol || se.Code == http2.ErrCodeCompression {
			return observe.ErrUpstreamProtocol
		}
		return observe.ErrUpstreamReset
	}
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		return observe.ErrUpstreamProtocol
	}
	var pe *http.ProtocolError
	if errors.As(err, &pe) {
		return observe.ErrUpstreamProtocol
	}
	if isConnBroken(err) {
		return observe.ErrUpstreamReset
	}
	// net/http reports malformed responses only as strings.
	msg := err.Error()
	if strings.Contains(msg, "malformed") || strings.Contains(msg, "HTTP response to HTTPS client") {
		return observe.ErrUpstreamProtocol
	}
	return observe.ErrUpstreamReset
}

// isTLSError reports whether err comes from a failed TLS handshake or
// certificate verification.
func isTLSError(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		rhe tls.RecordHeaderError
		ae  tls.AlertError
		uae x509.UnknownAuthorityError
		he  x509.HostnameError
		cie x509.CertificateInvalidError
	)
	return errors.As(err, &cve) || errors.As(err, &rhe) || errors.As(err, &ae) ||
		errors.As(err, &uae) || errors.As(err, &he) || errors.As(err, &cie)
}

// isConnBroken reports whether err says the connection ended or was reset.
func isConnBroken(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// isTimeout reports whether err is a timeout (deadline) error.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
