package observe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"

	"golang.org/x/net/http2"
)

// kindErr is a KindError, as the gateway's HTTP/1.1 client returns.
type kindErr struct {
	kind ErrorKind
	err  error
}

func (e *kindErr) Error() string        { return "kind error: " + e.err.Error() }
func (e *kindErr) Unwrap() error        { return e.err }
func (e *kindErr) ErrorKind() ErrorKind { return e.kind }

// timeoutCause is a cause that says it is a timeout (the proxy's route
// and per-try timeouts are such errors).
type timeoutCause struct{}

func (timeoutCause) Error() string { return "route timeout" }
func (timeoutCause) Timeout() bool { return true }

func TestClassify(t *testing.T) {
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	alive := context.Background()
	body := func(err error) error { return &RequestBodyError{Err: err} }
	// What a transport makes of a body error: its own kind around it.
	inTransport := func(err error) error {
		return &kindErr{kind: ErrUpstreamReset, err: fmt.Errorf("write: %w", err)}
	}
	dial := func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: err} }

	tests := []struct {
		name   string
		err    error
		client context.Context
		want   ErrorKind
	}{
		{"nil", nil, alive, ErrNone},

		// Client body errors: never the upstream's.
		{"body malformed chunk", body(errors.New("invalid byte in chunk length")), alive, ErrClientBadRequest},
		{"body malformed chunk through a transport", inTransport(body(errors.New("malformed chunked encoding"))), alive, ErrClientBadRequest},
		{"body shorter than content-length (h2)", body(errors.New("request declared a Content-Length of 10 but only wrote 3 bytes")), alive, ErrClientBadRequest},
		{"body ended with the connection", body(io.ErrUnexpectedEOF), alive, ErrClientCanceled},
		{"body read reset", body(&net.OpError{Op: "read", Err: syscall.ECONNRESET}), alive, ErrClientCanceled},
		{"body client gone", body(errors.New("client disconnected")), gone, ErrClientCanceled},
		{"body deadline", body(&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}), alive, ErrClientTimeout},
		{"body deadline, client gone", body(os.ErrDeadlineExceeded), gone, ErrClientTimeout},
		{"body cut by min rate", &RequestBodyError{Err: errors.New("x"), Timeout: "min_rate"}, alive, ErrClientTimeout},
		{"body error wins over a kind", &kindErr{kind: ErrUpstreamProtocol, err: body(errors.New("bad chunk"))}, alive, ErrClientBadRequest},

		// The client went away.
		{"client gone", errors.New("anything"), gone, ErrClientCanceled},
		{"client gone beats a kind", &kindErr{kind: ErrUpstreamReset, err: io.EOF}, gone, ErrClientCanceled},
		{"canceled, no client context", fmt.Errorf("x: %w", context.Canceled), nil, ErrClientCanceled},
		{"canceled, client still there", fmt.Errorf("x: %w", context.Canceled), alive, ErrUpstreamReset},
		{"canceled by a timeout cause", &kindErr{kind: ErrClientCanceled, err: fmt.Errorf("%w: %w", context.Canceled, timeoutCause{})}, alive, ErrUpstreamTimeout},
		{"transport says canceled, no client context", &kindErr{kind: ErrClientCanceled, err: context.Canceled}, nil, ErrClientCanceled},

		// A kind the transport knows.
		{"own kind", &kindErr{kind: ErrUpstreamProtocol, err: io.EOF}, alive, ErrUpstreamProtocol},
		{"own kind internal", &kindErr{kind: ErrInternal, err: errors.New("invalid header")}, nil, ErrInternal},

		// Connect: dial, DNS, TLS.
		{"dial refused", dial(syscall.ECONNREFUSED), alive, ErrUpstreamConnect},
		{"dial timeout", dial(os.ErrDeadlineExceeded), alive, ErrUpstreamConnect},
		{"refused bare", syscall.ECONNREFUSED, alive, ErrUpstreamConnect},
		{"host unreachable", &net.OpError{Op: "write", Err: syscall.EHOSTUNREACH}, alive, ErrUpstreamConnect},
		{"dns", dial(&net.DNSError{Err: "no such host", Name: "nowhere.invalid", IsNotFound: true}), alive, ErrUpstreamConnect},
		{"dns bare, timed out", &net.DNSError{Err: "i/o timeout", Name: "slow.invalid", IsTimeout: true}, alive, ErrUpstreamConnect},
		{"tls unknown authority", fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), alive, ErrUpstreamConnect},
		{"tls verification", &tls.CertificateVerificationError{Err: x509.HostnameError{Host: "other.test", Certificate: &x509.Certificate{}}}, alive, ErrUpstreamConnect},
		{"tls not tls", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, alive, ErrUpstreamConnect},
		{"tls alert", fmt.Errorf("remote error: %w", tls.AlertError(40)), alive, ErrUpstreamConnect},

		// Timeouts.
		{"deadline", context.DeadlineExceeded, alive, ErrUpstreamTimeout},
		{"net timeout", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, alive, ErrUpstreamTimeout},
		{"timeout cause", fmt.Errorf("wrapped: %w", timeoutCause{}), nil, ErrUpstreamTimeout},

		// HTTP/2.
		{"h2 protocol", http2.StreamError{Code: http2.ErrCodeProtocol}, alive, ErrUpstreamProtocol},
		{"h2 compression", http2.StreamError{Code: http2.ErrCodeCompression}, alive, ErrUpstreamProtocol},
		{"h2 refused", http2.StreamError{Code: http2.ErrCodeRefusedStream}, alive, ErrUpstreamReset},
		{"h2 connection error", http2.ConnectionError(http2.ErrCodeProtocol), alive, ErrUpstreamProtocol},
		{"h2 goaway", http2.GoAwayError{ErrCode: http2.ErrCodeNo}, alive, ErrUpstreamReset},
		{"h2 bundled protocol", errors.New("stream error: stream ID 3; PROTOCOL_ERROR; received from peer"), alive, ErrUpstreamProtocol},
		{"h2 bundled cancel", errors.New("stream error: stream ID 1; CANCEL; received from peer"), alive, ErrUpstreamReset},
		{"h2 bundled goaway", errors.New("http2: server sent GOAWAY and closed the connection; LastStreamID=1, ErrCode=NO_ERROR"), alive, ErrUpstreamReset},

		// Resets and protocol errors.
		{"read reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, alive, ErrUpstreamReset},
		{"broken pipe", &net.OpError{Op: "write", Err: syscall.EPIPE}, alive, ErrUpstreamReset},
		{"unexpected EOF", io.ErrUnexpectedEOF, alive, ErrUpstreamReset},
		{"EOF", io.EOF, alive, ErrUpstreamReset},
		{"closed", net.ErrClosed, alive, ErrUpstreamReset},
		{"protocol error", &http.ProtocolError{ErrorString: "bad"}, alive, ErrUpstreamProtocol},
		{"std malformed", errors.New("net/http: HTTP/1.x transport connection broken: malformed HTTP response \"SMTP\""), alive, ErrUpstreamProtocol},
		{"http to https", errors.New("http: server gave HTTP response to HTTPS client"), alive, ErrUpstreamProtocol},
		{"unknown", errors.New("something"), alive, ErrUpstreamReset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err, tt.client); got != tt.want {
				t.Fatalf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestClientErrorKinds(t *testing.T) {
	for _, k := range ErrorKinds() {
		client := k == ErrClientCanceled || k == ErrClientBadRequest || k == ErrClientTimeout
		if k.IsClientError() != client {
			t.Errorf("%v.IsClientError() = %v", k, !client)
		}
		if client && k.IsUpstreamFailure() {
			t.Errorf("%v is both a client error and an upstream failure", k)
		}
		if k.String() == "" || k.String() == "unknown" {
			t.Errorf("kind %d has no name", k)
		}
	}
	if ErrClientBadRequest.String() != "client_bad_request" || ErrClientTimeout.String() != "client_timeout" {
		t.Fatalf("names: %s %s", ErrClientBadRequest, ErrClientTimeout)
	}
}

func TestRequestBodyError(t *testing.T) {
	cause := io.ErrUnexpectedEOF
	err := error(&RequestBodyError{Err: cause, Timeout: "idle"})
	if !errors.Is(err, cause) || err.Error() != "reading the request body: idle timeout: unexpected EOF" {
		t.Fatalf("got %q", err)
	}
}
