package demo

import (
	"context"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The demo services are instrumented by hand, with a small server wrapper
// and a client RoundTripper, so that the whole of what a service must do to
// join a trace is visible in one file: extract the incoming context, start a
// SERVER span, and inject the context into every outgoing call from a CLIENT
// span. The propagator and tracer provider are passed in; no OpenTelemetry
// global is read or set.

// newTracerProvider builds the tracer provider of one service instance:
// its own service.name resource, every span sampled (the gateway's
// decision, carried in traceparent, is followed when present), batched to
// exp when non-nil, and also handed to extra when non-nil.
func newTracerProvider(service, version, instance string, exp sdktrace.SpanExporter, extra sdktrace.SpanProcessor) *sdktrace.TracerProvider {
	res := resource.NewSchemaless(
		attribute.String("service.name", service),
		attribute.String("service.namespace", "vantage-demo"),
		attribute.String("service.version", version),
		attribute.String("service.instance.id", instance),
	)
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	}
	if exp != nil {
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	if extra != nil {
		opts = append(opts, sdktrace.WithSpanProcessor(extra))
	}
	return sdktrace.NewTracerProvider(opts...)
}

// traced wraps a service's handler in a SERVER span whose parent is the
// trace context the request carries (as extracted by prop). The span is
// named after the matched ServeMux pattern ("GET /products/{id}"), so span
// names stay bounded. Health checks are not traced: they would bury the
// interesting spans.
func traced(next http.Handler, tracer trace.Tracer, prop propagation.TextMapPropagator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("url.path", r.URL.Path),
				attribute.String("user_agent.original", r.UserAgent()),
			))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(ctx)
		next.ServeHTTP(sw, r)
		// ServeMux records the pattern it matched on the request it was given.
		if r.Pattern != "" {
			span.SetName(r.Pattern)
			route := r.Pattern
			if _, after, ok := strings.Cut(route, " "); ok {
				route = after
			}
			span.SetAttributes(attribute.String("http.route", route))
		}
		status := sw.code()
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// tracedTransport starts a CLIENT span per outgoing call and injects its
// context into the request headers, so the callee's SERVER span becomes its
// child. peer names the service called.
type tracedTransport struct {
	next   http.RoundTripper
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	peer   string
}

// RoundTrip implements http.RoundTripper. It does not modify req: the
// headers are injected into a clone.
func (t *tracedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, span := t.tracer.Start(req.Context(), req.Method+" "+t.peer, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", req.Method),
			attribute.String("server.address", req.URL.Host),
			attribute.String("url.full", req.URL.String()),
			attribute.String("peer.service", t.peer),
		))
	out := req.Clone(ctx)
	t.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := t.next.RoundTrip(out)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.End()
		return nil, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
	}
	span.End()
	return resp, nil
}

// spanFrom is trace.SpanFromContext, named for the handlers' readability.
func spanFrom(ctx context.Context) trace.Span { return trace.SpanFromContext(ctx) }
