// Package listener accepts client connections: it binds an address, serves
// HTTP/1.1, HTTP/2 over TLS (ALPN) and, when enabled, cleartext HTTP/2 (h2c,
// prior knowledge, as gRPC clients speak it), with the configured timeouts,
// and drains gracefully. It is handed one http.Handler and knows nothing of
// routes or upstreams.
//
// It is also the gateway's first line of protocol hygiene: requests with
// ambiguous framing (Transfer-Encoding beside Content-Length, or on
// HTTP/1.0), request heads over the size, field-count and URI limits, and
// CONNECT are refused here, before any handler, and the connection closed.
// Every refusal, including those net/http answers itself, is counted by
// reason (RejectReasons) and logged at a bounded rate.
package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/errorbody"
)

// HTTP/2 limits set on every listener. net/http's HTTP/2 server bounds
// running handlers to MaxConcurrentStreams and answers a rapid-reset flood
// (CVE-2023-44487) and a CONTINUATION flood (header bytes beyond
// max_header_bytes) by closing the connection; these values keep the
// per-connection cost small and explicit.
const (
	h2MaxConcurrentStreams = 100
	h2HeaderTableSize      = 4096
	h2MaxReadFrameSize     = 16 << 10
	h2ReceiveBufferStream  = 1 << 20
	h2ReceiveBufferConn    = 4 << 20
)

// Rejects is told of every request a listener refuses before its handler:
// by net/http's parser, by the framing check or by the listener's limits.
// Reason is one of RejectReasons. Implementations must be fast and safe for
// concurrent use; they are called on the connection's goroutine.
type Rejects interface {
	Rejected(listener, reason string)
}

// Options are a listener's injected dependencies. Every field is optional.
type Options struct {
	// Logger receives the listener's messages (default: discard). Refused
	// requests are logged at warn, at most LogBurst lines a second.
	Logger *slog.Logger
	// Rejects counts refused requests (default: none).
	Rejects Rejects
	// LogBurst caps refusal log lines per second (default 10).
	LogBurst int
	// Clock paces the refusal log (default real).
	Clock clock.Clock
}

// Server is one bound listener.
type Server struct {
	name      string
	ln        net.Listener
	srv       *http.Server
	tlsConfig *tls.Config // nil on cleartext
	h2        bool        // HTTP/2 is served on this listener
	next      http.Handler
	rejects   Rejects
	log       *rateLog

	maxHeaders, maxURI int
}

// Listen binds cfg.Address right away, so a port in use fails at start, and
// returns a Server ready to Serve h. It is ListenWith with only a logger.
func Listen(cfg config.Listener, h http.Handler, logger *slog.Logger) (*Server, error) {
	return ListenWith(cfg, h, Options{Logger: logger})
}

// ListenWith binds cfg.Address right away and returns a Server ready to
// Serve h.
func ListenWith(cfg config.Listener, h http.Handler, o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.LogBurst <= 0 {
		o.LogBurst = 10
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(cfg.TLS != nil)
	// HTTP/2 over TLS reaches net/http as HTTP/2 with prior knowledge over
	// the decrypted connection (see Serve).
	protocols.SetUnencryptedHTTP2(cfg.H2C || cfg.TLS != nil)
	s := &Server{name: cfg.Name, next: h, rejects: o.Rejects, h2: cfg.H2C || cfg.TLS != nil,
		log:        &rateLog{log: o.Logger, clock: o.Clock, burst: o.LogBurst},
		maxHeaders: cfg.MaxHeaders, maxURI: cfg.MaxURIBytes}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader.D(),
		ReadTimeout:       cfg.Timeouts.Read.D(),
		WriteTimeout:      cfg.Timeouts.Write.D(),
		IdleTimeout:       cfg.Timeouts.Idle.D(),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		Protocols:         &protocols,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          h2MaxConcurrentStreams,
			MaxDecoderHeaderTableSize:     h2HeaderTableSize,
			MaxEncoderHeaderTableSize:     h2HeaderTableSize,
			MaxReadFrameSize:              h2MaxReadFrameSize,
			MaxReceiveBufferPerStream:     h2ReceiveBufferStream,
			MaxReceiveBufferPerConnection: h2ReceiveBufferConn,
		},
		ConnState:   s.state,
		ConnContext: connContext,
		ErrorLog:    slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
	}
	s.srv = srv
	if cfg.TLS != nil {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("listener %q: loading TLS certificate: %w", cfg.Name, err)
		}
		s.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"}, CipherSuites: h2CipherSuites}
	}
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", cfg.Name, err)
	}
	s.ln = wrapListener{Listener: ln, srv: s}
	return s, nil
}

// Name is the listener's configured name.
func (s *Server) Name() string { return s.name }

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// h2CipherSuites are the TLS 1.2 suites HTTP/2 allows (RFC 9113 §9.2.2):
// ECDHE with AEAD ciphers. TLS 1.3 suites are not configurable.
var h2CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Serve serves until Shutdown; it returns nil after a graceful shutdown.
//
// A TLS listener terminates TLS itself, below net/http, so that the framing
// check and the refusal counts see decrypted bytes as on cleartext: net/http
// reads each connection as plain HTTP/1, or as HTTP/2 once the client (which
// negotiated "h2" by ALPN) sends the HTTP/2 preface. The listener sets
// Request.TLS from the connection's handshake.
func (s *Server) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, closes idle connections and waits for active
// requests until ctx is done, then closes what remains.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	return err
}

// ServeHTTP refuses what must not reach the handler, then calls it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, _ := r.Context().Value(connKey{}).(*conn)
	if c != nil && c.tc != nil && (r.TLS == nil || !r.TLS.HandshakeComplete) {
		r.TLS = c.connectionState()
	}
	if c != nil && r.ProtoMajor == 1 && c.enter() {
		s.refuse(w, r, http.StatusBadRequest, ReasonAmbiguousFraming, "the request's framing is ambiguous (Transfer-Encoding with Content-Length, or on HTTP/1.0)")
		return
	}
	if r.Method == "PRI" {
		// The HTTP/2 preface read as an HTTP/1 request (net/http passes it
		// on, for handlers that wire their own upgrade): no route takes it.
		s.refuse(w, r, http.StatusHTTPVersionNotSupported, ReasonUnsupportedVersion, "HTTP/2 is not served here with prior knowledge")
		return
	}
	if r.Method == http.MethodConnect {
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		s.refuse(w, r, http.StatusMethodNotAllowed, ReasonConnect, "CONNECT is not supported: the gateway does not tunnel")
		return
	}
	if s.maxURI > 0 && len(r.RequestURI) > s.maxURI {
		s.refuse(w, r, http.StatusRequestURITooLong, ReasonURITooLong, "the request target is longer than "+strconv.Itoa(s.maxURI)+" bytes")
		return
	}
	if s.maxHeaders > 0 {
		n := 0
		for _, vv := range r.Header {
			n += len(vv)
		}
		if n > s.maxHeaders {
			s.refuse(w, r, http.StatusRequestHeaderFieldsTooLarge, ReasonTooManyHeaders, "the request has more than "+strconv.Itoa(s.maxHeaders)+" header fields")
			return
		}
	}
	s.next.ServeHTTP(w, r)
}

// refuse answers status with the gateway's JSON error body and closes an
// HTTP/1 connection after it: what follows a refused request on the same
// connection cannot be trusted to be framed as the client meant.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, reason, msg string) {
	if r.ProtoMajor == 1 || r.Method == "PRI" { // PRI came over HTTP/1
		w.Header().Set("Connection", "close")
	}
	errorbody.Write(w, nil, status, reason, msg)
	s.rejected(r.RemoteAddr, reason, status)
}

// http2Ended counts and logs an HTTP/2 connection the server ended with
// an error GOAWAY; code is the HTTP/2 error code's name.
func (s *Server) http2Ended(client, code string) {
	if s.rejects != nil {
		s.rejects.Rejected(s.name, ReasonHTTP2Error)
	}
	if ok, suppressed := s.log.allow(); ok {
		args := []any{"listener", s.name, "reason", ReasonHTTP2Error, "code", code, "client", client}
		if suppressed > 0 {
			args = append(args, "suppressed", suppressed)
		}
		s.log.log.Warn("HTTP/2 connection ended by the server", args...)
	}
}

// rejected counts and logs one refused request; status is 0 when net/http
// answered (or nobody did).
func (s *Server) rejected(client, reason string, status int) {
	if s.rejects != nil {
		s.rejects.Rejected(s.name, reason)
	}
	ok, suppressed := s.log.allow()
	if !ok {
		return
	}
	args := []any{"listener", s.name, "reason", reason, "client", client}
	if status != 0 {
		args = append(args, "status", status)
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	s.log.log.Warn("request refused before routing", args...)
}
