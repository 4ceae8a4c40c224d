// Package otlplog builds the OpenTelemetry log exporter that the access log
// sends its records through: OTLP over gRPC or over HTTP/protobuf,
// configured from the connection settings (endpoint, headers, TLS,
// compression, timeout) of one OTLP entry of tracing.exporters, so that
// logs and traces reach the same collector the same way.
package otlplog

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"google.golang.org/grpc/credentials"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/tracing/export"
)

// NewExporter builds the log exporter for access_log.otlp o, given the
// tracing exporter e it names (both after defaults and validation). It does
// not connect: gRPC connects lazily and HTTP per export, so a collector that
// is down does not fail startup. Each Export call is bounded by e's timeout,
// retries included. The caller owns the exporter and must Shutdown it.
func NewExporter(ctx context.Context, o config.AccessLogOTLP, e config.TracingExporter) (sdklog.Exporter, error) {
	timeout := e.Timeout.D()
	if timeout <= 0 {
		timeout = config.DefaultExportTimeout
	}
	ep, err := o.LogsEndpoint(e)
	if err != nil {
		return nil, fmt.Errorf("otlp logs via exporter %q: endpoint: %w", e.Name, err)
	}
	tlsCfg, err := export.TLSConfig(e.TLS)
	if err != nil {
		return nil, fmt.Errorf("otlp logs via exporter %q: %w", e.Name, err)
	}
	insecure := e.TLS != nil && e.TLS.Insecure
	switch e.Type {
	case config.ExporterOTLPGRPC:
		opts := []otlploggrpc.Option{
			otlploggrpc.WithTimeout(timeout),
			otlploggrpc.WithRetry(otlploggrpc.RetryConfig{Enabled: true, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: timeout}),
		}
		if len(e.Headers) > 0 {
			opts = append(opts, otlploggrpc.WithHeaders(e.Headers))
		}
		if e.Compression == "gzip" {
			opts = append(opts, otlploggrpc.WithCompressor("gzip"))
		}
		target := e
		target.Endpoint = ep // the logs endpoint may differ from the traces one
		hostport, plaintext, err := export.GRPCTarget(target)
		if err != nil {
			return nil, fmt.Errorf("otlp logs via exporter %q: endpoint: %w", e.Name, err)
		}
		opts = append(opts, otlploggrpc.WithEndpoint(hostport))
		if plaintext {
			opts = append(opts, otlploggrpc.WithInsecure())
		} else {
			opts = append(opts, otlploggrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
		}
		exp, err := otlploggrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("otlp logs via exporter %q: %w", e.Name, err)
		}
		return exp, nil

	case config.ExporterOTLPHTTP:
		u, err := url.Parse(ep)
		if err != nil {
			return nil, fmt.Errorf("otlp logs via exporter %q: endpoint: %w", e.Name, err)
		}
		opts := []otlploghttp.Option{
			otlploghttp.WithEndpointURL(u.String()),
			otlploghttp.WithTimeout(timeout),
			otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: true, InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: timeout}),
		}
		if len(e.Headers) > 0 {
			opts = append(opts, otlploghttp.WithHeaders(e.Headers))
		}
		if e.Compression == "gzip" {
			opts = append(opts, otlploghttp.WithCompression(otlploghttp.GzipCompression))
		}
		if u.Scheme == "http" || insecure {
			opts = append(opts, otlploghttp.WithInsecure())
		} else {
			opts = append(opts, otlploghttp.WithTLSClientConfig(tlsCfg))
		}
		exp, err := otlploghttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("otlp logs via exporter %q: %w", e.Name, err)
		}
		return exp, nil
	}
	return nil, fmt.Errorf("otlp logs via exporter %q: type %q does not carry logs (use otlp_grpc or otlp_http)", e.Name, e.Type)
}
