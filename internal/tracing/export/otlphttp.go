package export

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// contentTypeProtobuf is the media type of OTLP/HTTP protobuf bodies.
const contentTypeProtobuf = "application/x-protobuf"

// maxErrorSnippet bounds the part of an error response quoted in the error.
const maxErrorSnippet = 256

// otlpHTTPConfig configures an otlpHTTPExporter.
type otlpHTTPConfig struct {
	// URL receives the requests, e.g. https://collector:4318/v1/traces. Its
	// scheme is http or https.
	URL *url.URL
	// TLS configures https connections; nil means TLS 1.2 or later with
	// the system roots.
	TLS *tls.Config
	// Headers are sent with every request (API keys).
	Headers map[string]string
	// Gzip compresses request bodies.
	Gzip bool
	// Timeout bounds one ExportSpans call, retries included.
	Timeout time.Duration
}

// otlpHTTPExporter is an sdktrace.SpanExporter that sends spans to an
// OTLP/HTTP receiver as protobuf. It writes the request straight from the
// spans into a reused buffer (see traceEncoder), and retries as the OTLP
// specification says: on 429, 502, 503 and 504, and when the connection
// fails, with exponential backoff or after the Retry-After the receiver
// asked for, as long as the export's timeout allows. It is safe for
// concurrent use.
type otlpHTTPExporter struct {
	exporterCore // ExportSpans, exportEncoded
	url          string
	header       http.Header // of every request
	gzip         bool
	transport    *http.Transport
	client       *http.Client
}

var _ sdktrace.SpanExporter = (*otlpHTTPExporter)(nil)

// newOTLPHTTPExporter returns an exporter for cfg. It does not connect:
// connections are made by the first export and kept idle between exports.
func newOTLPHTTPExporter(cfg otlpHTTPConfig) (*otlpHTTPExporter, error) {
	if cfg.URL == nil || (cfg.URL.Scheme != "http" && cfg.URL.Scheme != "https") || cfg.URL.Host == "" {
		return nil, fmt.Errorf("otlp http: endpoint %v is not an http:// or https:// URL", cfg.URL)
	}
	h := http.Header{}
	h.Set("User-Agent", userAgent)
	for k, v := range cfg.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", contentTypeProtobuf)
	if cfg.Gzip {
		h.Set("Content-Encoding", "gzip")
	}
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       cfg.TLS,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		WriteBufferSize:       writeBufferSize,
	}
	e := &otlpHTTPExporter{
		url:       cfg.URL.String(),
		header:    h,
		gzip:      cfg.Gzip,
		transport: tr,
		// Each export's context bounds it: no client timeout.
		client: &http.Client{Transport: tr},
	}
	e.init(cfg.Timeout, e.send)
	return e, nil
}

// send sends the encoded request in s, retrying as the receiver allows
// within the export's context. A partial success is returned as an error
// that says how many spans the receiver rejected and why.
func (e *otlpHTTPExporter) send(ctx context.Context, s *exportScratch) error {
	body := s.body
	if e.gzip {
		var err error
		if body, err = s.gzip(body); err != nil {
			return fmt.Errorf("otlp http: %w", err)
		}
	}
	if err := withRetries(ctx, func(ctx context.Context) error { return e.post(ctx, s, body) }); err != nil {
		return fmt.Errorf("otlp http: POST %s: %w", e.url, err)
	}
	return nil
}

// post makes one attempt to send body, reading the response into s.resp.
// Failures worth retrying are *retryableError.
func (e *otlpHTTPExporter) post(ctx context.Context, s *exportScratch, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = e.header.Clone()
	resp, err := e.client.Do(req)
	if err != nil {
		// Do's *url.Error names the method and URL again; keep its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() == nil && connectionFailed(err) {
			return &retryableError{err: err}
		}
		return err
	}
	defer resp.Body.Close()
	s.resp.Reset()
	if _, err := s.resp.ReadFrom(io.LimitReader(resp.Body, maxResponseBody)); err != nil {
		return fmt.Errorf("%s, reading the response: %w", resp.Status, err)
	}
	switch code := resp.StatusCode; {
	case code >= 200 && code <= 299:
		if s.resp.Len() == 0 || !isProtobuf(resp.Header.Get("Content-Type")) {
			return nil
		}
		return partialSuccess(s.resp.Bytes())
	case code == http.StatusTooManyRequests, code == http.StatusBadGateway,
		code == http.StatusServiceUnavailable, code == http.StatusGatewayTimeout:
		return &retryableError{
			err:  fmt.Errorf("%s: %s", resp.Status, snippet(s.resp.Bytes())),
			wait: retryAfter(resp.Header.Get("Retry-After")),
		}
	default:
		return fmt.Errorf("%s: %s", resp.Status, snippet(s.resp.Bytes()))
	}
}

// Shutdown cancels the exports in flight, waits for them (or for ctx) and
// closes the idle connections. Later exports fail.
func (e *otlpHTTPExporter) Shutdown(ctx context.Context) error {
	err := e.shutdown(ctx)
	e.transport.CloseIdleConnections()
	return err
}

// connectionFailed reports whether err says the connection to the receiver
// could not be made or broke, which the OTLP specification says to retry.
// TLS failures are not retried: they do not heal by themselves.
func connectionFailed(err error) bool {
	var oe *net.OpError
	if !errors.As(err, &oe) {
		return false
	}
	switch oe.Op {
	case "dial", "read", "write":
		return true
	}
	return false
}

// isProtobuf reports whether the Content-Type ct is OTLP's protobuf.
func isProtobuf(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), contentTypeProtobuf)
}

// retryAfter parses a Retry-After header: seconds, or an HTTP date. It
// returns 0 when v is empty, malformed or in the past.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// snippet returns the start of an error response body for an error
// message: trimmed, at most maxErrorSnippet bytes, cut at a rune boundary.
func snippet(body []byte) string {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return "(empty body)"
	}
	if len(body) <= maxErrorSnippet {
		return string(body)
	}
	cut := maxErrorSnippet
	for cut > 0 && !utf8.RuneStart(body[cut]) {
		cut--
	}
	return string(body[:cut]) + "…"
}
