package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/tlsclient"
)

// DefaultMaxResponseHeaderBytes bounds the response headers (status line,
// fields, 1xx responses included) read from an upstream when
// Options.MaxResponseHeaderBytes is 0.
const DefaultMaxResponseHeaderBytes = 1 << 20

// Options are the knobs of a Transport that are not part of the service's
// configuration. The zero value is the production setting.
type Options struct {
	// Clock tells the time for idle-connection expiry (default clock.Real).
	Clock clock.Clock
	// DisableFastHTTP1 sends http:// requests through a standard
	// *http.Transport (configured like the https one, HTTP/1.1 only)
	// instead of the built-in HTTP/1.1 client. It exists for comparison and
	// as an escape hatch.
	DisableFastHTTP1 bool
	// MaxResponseHeaderBytes bounds the response headers of the HTTP/1.1
	// client and of the standard transports (default
	// DefaultMaxResponseHeaderBytes).
	MaxResponseHeaderBytes int64
}

// Transport is the http.RoundTripper for one service. It routes by the
// request URL's scheme: "http" to the built-in HTTP/1.1 client, "https" to
// an *http.Transport (HTTP/2 by ALPN unless the protocol is http1), "h2c" to
// an HTTP/2 transport over plain TCP. It never falls back to
// http.DefaultTransport and never consults proxy environment variables.
//
// The connections it keeps idle live in the Pools it was built from, shared
// with the other Transports of those Pools whose settings match (see
// Pools); max_conns_per_host is its own.
//
// A Transport is safe for concurrent use. RoundTrip follows the
// http.RoundTripper contract: it does not modify the request, it always
// closes the request body (possibly after returning, from the goroutine
// that streams a large body), and the caller must close the response body.
// Reading the body to EOF (or closing it after EOF) returns the connection
// to the idle pool; closing it earlier closes the connection.
type Transport struct {
	pools *Pools
	h1    *http1  // the built-in client for http://, nil when disabled
	lim   *limits // max_conns_per_host of the built-in client; nil for none
	// std serves https://, and http:// when the fast client is off. stdE
	// is its entry in pools when shared, nil when it is the Transport's
	// own (max_conns_per_host is a cap of http.Transport's).
	std  *http.Transport
	stdE *stdEntry
	h2c  *h2cEntry
	// h2cHeaderTimeout is response_header_timeout for h2c (x/net's
	// transport has no such knob).
	h2cHeaderTimeout time.Duration
	closeOnce        sync.Once
}

// New builds the transport for one service from its config, normally after
// config defaults were applied, with pools of its own (see Pools.New to
// share them). Zero values mean: no dial, TLS handshake or response header
// timeout; 64 idle connections per host; no cap on connections; idle
// connections never expire. It fails when ca_file cannot be read or holds
// no certificate. New starts no goroutine.
func New(cfg config.Transport) (*Transport, error) {
	return NewWithOptions(cfg, Options{})
}

// NewWithOptions is New with Options.
func NewWithOptions(cfg config.Transport, opts Options) (*Transport, error) {
	return NewPools(opts).New(cfg)
}

// newStd builds the *http.Transport for https:// (and http:// when the
// fast client is off).
func newStd(cfg config.Transport, opts Options) (*http.Transport, error) {
	tlsConf, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout.D(), KeepAlive: 30 * time.Second}
	std := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsConf,
		TLSHandshakeTimeout:    cfg.TLSHandshakeTimeout.D(),
		ResponseHeaderTimeout:  cfg.ResponseHeaderTimeout.D(),
		MaxIdleConns:           0, // no global cap; per host below
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
		MaxConnsPerHost:        cfg.MaxConnsPerHost,
		IdleConnTimeout:        cfg.IdleConnTimeout.D(),
		DisableCompression:     true, // a proxy passes Accept-Encoding through untouched
		MaxResponseHeaderBytes: opts.MaxResponseHeaderBytes,
		ForceAttemptHTTP2:      cfg.Protocol != config.ProtocolHTTP1,
		Protocols:              new(http.Protocols),
	}
	switch cfg.Protocol {
	case config.ProtocolHTTP1:
		std.Protocols.SetHTTP1(true)
	case config.ProtocolHTTP2:
		std.Protocols.SetHTTP2(true)
		// Plain http:// through std (DisableFastHTTP1) still needs HTTP/1.
		if opts.DisableFastHTTP1 {
			std.Protocols.SetHTTP1(true)
		}
	default:
		std.Protocols.SetHTTP1(true)
		std.Protocols.SetHTTP2(true)
	}
	return std, nil
}

// newH2C builds the HTTP/2 transport over plain TCP for h2c://.
func newH2C(k h2cKey, opts Options) *http2.Transport {
	dialer := &net.Dialer{Timeout: k.dialTimeout, KeepAlive: 30 * time.Second}
	return &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		IdleConnTimeout:    k.idleTimeout,
		DisableCompression: true,
		MaxHeaderListSize:  uint32(min(opts.MaxResponseHeaderBytes, 1<<31)),
	}
}

// tlsConfig builds the client TLS config from ca_file, server_name and
// insecure_skip_verify, with the one builder every client uses.
func tlsConfig(cfg config.Transport) (*tls.Config, error) {
	c, err := tlsclient.Config(tlsclient.ForUpstream(cfg))
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	return c, nil
}

// RoundTrip sends req to the host in req.URL and returns its response. The
// URL must be absolute, with scheme http, https or h2c; req.Host, when set,
// is sent as the Host header. For http://, a Body that is nil or
// http.NoBody sends no body, a positive ContentLength sends that many bytes,
// and otherwise (ContentLength -1, or 0 with a Body, as net/http reads it)
// the body is sent chunked; errors are *Error (observe.Classify places the
// errors of every scheme). It implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.URL.Scheme {
	case "http":
		if t.h1 != nil {
			return t.h1.roundTrip(req, nil, t.lim)
		}
		return t.std.RoundTrip(req)
	case "https":
		return t.std.RoundTrip(req)
	case "h2c":
		return t.roundTripH2C(req)
	}
	closeReqBody(req)
	return nil, &Error{Kind: observe.ErrInternal, Op: "request", Addr: req.URL.Host,
		Err: fmt.Errorf("%w %q", ErrUnsupportedScheme, req.URL.Scheme)}
}

// TakesFields reports whether RoundTripFields can send req: whether req
// goes to the built-in HTTP/1.1 client, which writes request heads itself.
// The other clients write them from req.Header.
func (t *Transport) TakesFields(req *http.Request) bool {
	return t.h1 != nil && req.URL != nil && req.URL.Scheme == "http"
}

// RoundTripFields is RoundTrip with header fields added to the request
// without going through req.Header: fields holds complete fields in wire
// form ("Name: value\r\n" each), written as they are after req.Header's.
// The caller vouches for them (they are not validated) and must not put the
// same names in req.Header. fields is only read during the call (on every
// try of the exchange), so it may live in the caller's stack frame: a
// wrapper that adds computed headers this way (the trace context on every
// attempt) saves the value's allocation, the map insert and the
// validation. req must be one TakesFields reports true for.
func (t *Transport) RoundTripFields(req *http.Request, fields []byte) (*http.Response, error) {
	if !t.TakesFields(req) {
		closeReqBody(req)
		return nil, &Error{Kind: observe.ErrInternal, Op: "request", Addr: req.URL.Host,
			Err: errors.New("RoundTripFields: request not served by the built-in HTTP/1.1 client")}
	}
	return t.h1.roundTrip(req, fields, t.lim)
}

// CloseIdleConnections closes the idle connections of every scheme in the
// pools the transport uses, shared ones included. Busy connections are not
// interrupted; they are kept for reuse when their response ends. It is safe
// to call at any time.
func (t *Transport) CloseIdleConnections() {
	if t.h1 != nil {
		t.h1.closeIdle(false)
	}
	t.std.CloseIdleConnections()
	t.h2c.t.CloseIdleConnections()
}

// Close retires the transport: it gives up its share of its pools. A pool
// that no other open Transport uses closes its idle connections, and its
// connections busy now are closed instead of pooled when their response
// ends; a pool still shared keeps serving the others (and takes back this
// transport's connections when their responses end). RoundTrip keeps
// working after Close. Close is idempotent and always returns nil.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() { t.pools.release(t) })
	return nil
}

// roundTripH2C sends req over HTTP/2 without TLS. x/net's transport accepts
// only the http scheme for that, so it gets a shallow copy with its own URL.
func (t *Transport) roundTripH2C(req *http.Request) (*http.Response, error) {
	r2 := new(http.Request)
	*r2 = *req
	u := *req.URL
	u.Scheme = "http"
	r2.URL = &u
	if t.h2cHeaderTimeout <= 0 {
		resp, err := t.h2c.t.RoundTrip(r2)
		if resp != nil {
			resp.Request = req
		}
		return resp, err
	}
	// response_header_timeout: cancel the stream if headers are late.
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(t.h2cHeaderTimeout, func() { cancel(ErrResponseHeaderTimeout) })
	r2 = r2.WithContext(ctx)
	resp, err := t.h2c.t.RoundTrip(r2)
	if !timer.Stop() && context.Cause(ctx) == ErrResponseHeaderTimeout {
		if resp != nil {
			resp.Body.Close()
		}
		cancel(nil)
		return nil, &Error{Kind: observe.ErrUpstreamTimeout, Op: "read", Addr: req.URL.Host,
			Err: timeoutErr{ErrResponseHeaderTimeout}}
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Request = req
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelBody releases the per-request context of an h2c exchange when the
// body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel   context.CancelCauseFunc
	onceDone sync.Once
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.onceDone.Do(func() { b.cancel(nil) })
	return err
}

// timeoutErr marks its cause as a timeout for net.Error.
type timeoutErr struct{ error }

func (e timeoutErr) Timeout() bool   { return true }
func (e timeoutErr) Temporary() bool { return false }
func (e timeoutErr) Unwrap() error   { return e.error }

// closeReqBody closes req.Body if there is one.
func closeReqBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

var _ http.RoundTripper = (*Transport)(nil)
