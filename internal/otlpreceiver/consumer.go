// Package otlpreceiver owns receiving OTLP from services: the OTLP/HTTP
// handlers for /v1/traces and /v1/logs (protobuf and JSON), the OTLP/gRPC
// TraceService and LogsService, validation of everything received, and the
// consumers that store or forward what was accepted.
package otlpreceiver

import (
	"context"
	"errors"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
)

// ErrOverloaded is returned (wrapped) by a consumer that cannot take more
// data right now. The receiver answers 429 Too Many Requests with
// Retry-After over HTTP and RESOURCE_EXHAUSTED over gRPC, both retryable.
var ErrOverloaded = errors.New("otlpreceiver: consumer overloaded")

// TraceConsumer takes the spans the receiver accepted.
//
// The request has been validated: every span has a 16-byte non-zero trace id
// and an 8-byte non-zero span id, sane timestamps, and bounded attributes.
// The receiver neither reads nor reuses req after the call returns, so a
// consumer may retain it (it must not modify it while another consumer of a
// Fanout may be reading it).
// Implementations must be safe for concurrent use.
type TraceConsumer interface {
	// ConsumeTraces stores or forwards the validated request. It must not block for long.
	// rejected counts spans refused (partial success). An error wrapping ErrOverloaded
	// makes the receiver answer 429 / RESOURCE_EXHAUSTED (retryable).
	ConsumeTraces(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (rejected int64, err error)
}

// LogConsumer takes the log records the receiver accepted, with the same
// contract as TraceConsumer: validated input, safe for concurrent use, never
// blocking for long, ErrOverloaded for a retryable refusal, rejected counting
// log records refused.
type LogConsumer interface {
	ConsumeLogs(ctx context.Context, req *collogspb.ExportLogsServiceRequest) (rejected int64, err error)
}
