package demo

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// OTLPFromEnv returns an exporter factory for Options.NewExporter when the
// environment names an OTLP endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// else OTEL_EXPORTER_OTLP_ENDPOINT), together with that endpoint. The
// exporter speaks OTLP over HTTP (protobuf, port 4318 by convention) and
// reads the standard OTEL_EXPORTER_OTLP_* variables itself (headers,
// timeout, TLS), as every OpenTelemetry SDK does. With no endpoint set it
// returns nil and "": the services then export nowhere. lookup is
// os.LookupEnv in production.
func OTLPFromEnv(lookup func(string) (string, bool)) (func(context.Context) (sdktrace.SpanExporter, error), string) {
	endpoint := ""
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if v, ok := lookup(name); ok && strings.TrimSpace(v) != "" {
			endpoint = strings.TrimSpace(v)
			break
		}
	}
	if endpoint == "" {
		return nil, ""
	}
	return func(ctx context.Context) (sdktrace.SpanExporter, error) {
		return otlptracehttp.New(ctx)
	}, endpoint
}
