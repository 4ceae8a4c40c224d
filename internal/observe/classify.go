package observe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"

	"golang.org/x/net/http2"
)

// KindError is implemented by errors that know their own ErrorKind (the
// gateway's HTTP/1.1 client returns them). Classify trusts the kind of the
// outermost one in an error's chain.
type KindError interface {
	error
	ErrorKind() ErrorKind
}

// RequestBodyError marks a failure to read the client's request body while
// sending it upstream: malformed chunked coding, a body shorter than its
// Content-Length, a client that went away mid-upload, or a client too slow
// to send it. The proxy wraps the outgoing body so that its read errors
// carry this type, whichever transport reads them; Classify then blames the
// client, never the upstream.
type RequestBodyError struct {
	// Err is what the read of the client's body returned. It is never nil.
	Err error
	// Timeout, when set, says the gateway cut the body for being too slow;
	// its value is the limit that fired ("idle" or "min_rate").
	Timeout string
}

// Error returns "reading the request body: <cause>".
func (e *RequestBodyError) Error() string {
	if e.Timeout != "" {
		return "reading the request body: " + e.Timeout + " timeout: " + e.Err.Error()
	}
	return "reading the request body: " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *RequestBodyError) Unwrap() error { return e.Err }

// Classify maps an error met while proxying a request — returned by a
// transport's RoundTrip, by a read of the response body, or by a read of
// the client's request body — to the ErrorKind the gateway records and
// answers with. It is the gateway's only error classifier. client is the
// client's own request context (nil when there is none, as for a mirrored
// copy): when it is done the client went away, which is not the upstream's
// failure. A nil error is ErrNone.
//
// The order, first match wins:
//
//  1. A RequestBodyError anywhere in the chain is the client's fault:
//     ErrClientTimeout when the gateway cut a slow body (or a read
//     deadline expired), ErrClientCanceled when the client went away
//     (client done, or the body ended with the connection),
//     ErrClientBadRequest otherwise (malformed chunking, a body shorter
//     than its Content-Length on a stream still open).
//  2. A done client context: ErrClientCanceled.
//  3. A KindError's own kind (the HTTP/1.1 client's), except
//     ErrClientCanceled from a client that is still there.
//  4. context.Canceled, when there is no client context: ErrClientCanceled
//     (the caller canceled). With a client that is still there something
//     else canceled the exchange (a timeout, whose cause the next steps
//     find in the chain).
//  5. A failed dial (a *net.OpError with Op "dial", a *net.DNSError,
//     ECONNREFUSED, EHOSTUNREACH, ENETUNREACH), or a failed TLS handshake
//     or certificate check: ErrUpstreamConnect. The upstream never saw the
//     request, so even a dial timeout counts here.
//  6. context.DeadlineExceeded, or any error whose Timeout method reports
//     true: ErrUpstreamTimeout.
//  7. HTTP/2 stream errors PROTOCOL_ERROR and COMPRESSION_ERROR, HTTP/2
//     connection errors, *http.ProtocolError, and net/http's malformed
//     response messages: ErrUpstreamProtocol. Other HTTP/2 stream errors
//     and GOAWAY: ErrUpstreamReset.
//  8. A broken connection (EOF, unexpected EOF, closed, ECONNRESET, EPIPE,
//     ECONNABORTED): ErrUpstreamReset.
//  9. Anything else: ErrUpstreamReset — the exchange failed in a way no
//     layer explained, and the upstream's side is the one to look at.
//
// Classify runs on failure paths only; it may allocate.
func Classify(err error, client context.Context) ErrorKind {
	if err == nil {
		return ErrNone
	}
	clientGone := client != nil && client.Err() != nil
	var be *RequestBodyError
	if errors.As(err, &be) {
		return classifyBody(be, clientGone)
	}
	if clientGone {
		return ErrClientCanceled
	}
	var ke KindError
	if errors.As(err, &ke) {
		if k := ke.ErrorKind(); k != ErrNone && !(k == ErrClientCanceled && client != nil) {
			return k
		}
	}
	if client == nil && errors.Is(err, context.Canceled) {
		return ErrClientCanceled
	}
	if isConnectError(err) {
		return ErrUpstreamConnect
	}
	if isTimeout(err) {
		return ErrUpstreamTimeout
	}
	if k := classifyHTTP2(err); k != ErrNone {
		return k
	}
	var pe *http.ProtocolError
	if errors.As(err, &pe) {
		return ErrUpstreamProtocol
	}
	if isConnBroken(err) {
		return ErrUpstreamReset
	}
	// net/http reports malformed responses only as text.
	msg := err.Error()
	if strings.Contains(msg, "malformed") || strings.Contains(msg, "HTTP response to HTTPS client") {
		return ErrUpstreamProtocol
	}
	return ErrUpstreamReset
}

// classifyBody places a failure to read the client's request body.
func classifyBody(be *RequestBodyError, clientGone bool) ErrorKind {
	switch {
	case be.Timeout != "" || errors.Is(be.Err, os.ErrDeadlineExceeded) || isTimeout(be.Err):
		return ErrClientTimeout
	case clientGone || errors.Is(be.Err, context.Canceled) || isConnBroken(be.Err):
		return ErrClientCanceled
	}
	return ErrClientBadRequest
}

// isConnectError reports whether err says the upstream could not be
// reached: a failed dial or name lookup, or a failed TLS handshake.
func isConnectError(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	return isTLSError(err)
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

// isTimeout reports whether err is a deadline or says it is a timeout.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// classifyHTTP2 places HTTP/2 errors: x/net's typed ones (h2c upstreams)
// and, by their text, those of the HTTP/2 client bundled in net/http
// (https upstreams), whose types are not exported. ErrNone: not HTTP/2.
func classifyHTTP2(err error) ErrorKind {
	var se http2.StreamError
	if errors.As(err, &se) {
		if se.Code == http2.ErrCodeProtocol || se.Code == http2.ErrCodeCompression {
			return ErrUpstreamProtocol
		}
		return ErrUpstreamReset
	}
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		return ErrUpstreamProtocol
	}
	var ge http2.GoAwayError
	if errors.As(err, &ge) {
		return ErrUpstreamReset
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "stream error:"):
		if strings.Contains(msg, "PROTOCOL_ERROR") || strings.Contains(msg, "COMPRESSION_ERROR") {
			return ErrUpstreamProtocol
		}
		return ErrUpstreamReset
	case strings.Contains(msg, "connection error:"):
		return ErrUpstreamProtocol
	case strings.Contains(msg, "server sent GOAWAY"):
		return ErrUpstreamReset
	}
	return ErrNone
}

// isConnBroken reports whether err says the connection ended or was reset.
func isConnBroken(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}
