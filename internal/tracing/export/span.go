package export

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// SpanData is a finished span, field by field, as an SDK span snapshot
// holds it: what the gateway's tracing records of a kept request, ready to
// be encoded without building SDK span objects (AppendSpan). Its slices are
// only read.
type SpanData struct {
	SpanContext       trace.SpanContext // the span's ids, trace flags and state
	Parent            trace.SpanContext // invalid for a root span
	Name              string
	Kind              trace.SpanKind
	Start, End        time.Time
	Attributes        []attribute.KeyValue
	DroppedAttributes int
	Events            []sdktrace.Event
	DroppedEvents     int
	Links             []sdktrace.Link
	DroppedLinks      int
	Status            sdktrace.Status
}

// encodedSource is the resource and instrumentation scope of the spans a
// Processor receives already encoded: every request it sends for them
// carries one ResourceSpans with one ScopeSpans.
type encodedSource struct {
	res   *resource.Resource
	scope instrumentation.Scope
}

// encodedExporter is an exporter that can send spans already encoded as
// ScopeSpans.spans fields (AppendSpan), as the OTLP exporters can.
type encodedExporter interface {
	sdktrace.SpanExporter
	// exportEncoded sends spans, Span fields AppendSpan wrote, all of
	// src's resource and scope, in one request.
	exportEncoded(ctx context.Context, src encodedSource, spans []byte) error
}

// appendEncodedRequest appends an ExportTraceServiceRequest carrying spans,
// Span fields as AppendSpan writes them, all of src's resource and scope.
// It is the message appendTraceRequest writes for SDK spans of that one
// resource and scope with the same fields. Empty spans append nothing.
func appendEncodedRequest(b []byte, src encodedSource, spans []byte) []byte {
	if len(spans) == 0 {
		return b
	}
	b, start := beginField(b, fieldRequestResourceSpans, reserveGroup)
	if src.res != nil {
		b = appendResource(b, fieldResourceSpansResource, src.res)
	}
	b, inner := beginField(b, fieldResourceSpansScopeSpans, reserveGroup)
	b = appendScope(b, src.scope)
	b = append(b, spans...)
	b = appendStringField(b, fieldScopeSpansSchemaURL, src.scope.SchemaURL)
	b = endField(b, inner, reserveGroup)
	b = appendStringField(b, fieldResourceSpansSchemaURL, src.res.SchemaURL())
	return endField(b, start, reserveGroup)
}
