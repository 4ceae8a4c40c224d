// Package export sends finished spans to tracing backends off the request
// path: OTLP over gRPC, OTLP over HTTP/protobuf and Zipkin v2 JSON, each
// behind its own bounded queue (Processor). When a backend is slow or down,
// spans beyond the queue are dropped and counted, never waited for.
package export

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/zipkin"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/tlsclient"
)

// NewExporter builds the span exporter cfg describes (after defaults and
// validation). It does not connect: gRPC connects lazily and HTTP per
// export, so a backend that is down does not fail startup.
func NewExporter(cfg config.TracingExporter) (sdktrace.SpanExporter, error) {
	timeout := cfg.Timeout.D()
	if timeout <= 0 {
		timeout = config.DefaultExportTimeout
	}
	tlsCfg, err := tlsConfig(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("exporter %q: %w", cfg.Name, err)
	}
	switch cfg.Type {
	case config.ExporterOTLPGRPC:
		ep, plaintext, err := GRPCTarget(cfg)
		if err != nil {
			return nil, fmt.Errorf("exporter %q: endpoint: %w", cfg.Name, err)
		}
		exp, err := newOTLPGRPCExporter(otlpGRPCConfig{
			Target: ep, Plaintext: plaintext, TLS: tlsCfg,
			Headers: cfg.Headers, Gzip: cfg.Compression == "gzip", Timeout: timeout,
		})
		if err != nil {
			return nil, fmt.Errorf("exporter %q: %w", cfg.Name, err)
		}
		return exp, nil

	case config.ExporterOTLPHTTP:
		u, err := url.Parse(cfg.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("exporter %q: endpoint: %w", cfg.Name, err)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		hc := otlpHTTPConfig{URL: u, Headers: cfg.Headers, Gzip: cfg.Compression == "gzip", Timeout: timeout}
		if u.Scheme == "http" || (cfg.TLS != nil && cfg.TLS.Insecure) {
			u.Scheme = "http" // plaintext, also for an https:// URL with tls.insecure
		} else {
			hc.TLS = tlsCfg
		}
		exp, err := newOTLPHTTPExporter(hc)
		if err != nil {
			return nil, fmt.Errorf("exporter %q: %w", cfg.Name, err)
		}
		return exp, nil

	case config.ExporterZipkin:
		tr := &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     tlsCfg,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		}
		opts := []zipkin.Option{
			zipkin.WithClient(&http.Client{Transport: tr, Timeout: timeout}),
			// Errors come back from ExportSpans and are logged, rate-limited,
			// by the Processor.
			zipkin.WithLogger(log.New(io.Discard, "", 0)),
		}
		if len(cfg.Headers) > 0 {
			opts = append(opts, zipkin.WithHeaders(cfg.Headers))
		}
		exp, err := zipkin.New(cfg.Endpoint, opts...)
		if err != nil {
			return nil, fmt.Errorf("exporter %q: %w", cfg.Name, err)
		}
		return exp, nil
	}
	return nil, fmt.Errorf("exporter %q: unknown type %q", cfg.Name, cfg.Type)
}

// TLSConfig builds the client TLS config of an exporter's tls block (nil:
// TLS 1.2 or later with the system roots), for other OTLP signals that
// share the exporter's settings.
func TLSConfig(t *config.ExporterTLS) (*tls.Config, error) { return tlsConfig(t) }

// GRPCTarget returns the host:port an OTLP/gRPC exporter dials for e, and
// whether it speaks plaintext: when tls.insecure is set, or the endpoint is
// written as an http:// URL. An endpoint without a scheme is host:port.
func GRPCTarget(e config.TracingExporter) (hostport string, plaintext bool, err error) {
	hostport = e.Endpoint
	plaintext = e.TLS != nil && e.TLS.Insecure
	if strings.Contains(hostport, "://") {
		u, err := url.Parse(hostport)
		if err != nil {
			return "", false, err
		}
		hostport = u.Host
		plaintext = plaintext || u.Scheme == "http"
	}
	return hostport, plaintext, nil
}

// tlsConfig builds the client TLS config, with the one builder every
// client uses; nil t means system roots.
func tlsConfig(t *config.ExporterTLS) (*tls.Config, error) {
	c, err := tlsclient.Config(tlsclient.ForExporter(t))
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return c, nil
}
