package export

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// exportMethod is the OTLP trace service's Export method.
const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// otlpGRPCConfig configures an otlpGRPCExporter.
type otlpGRPCConfig struct {
	// Target is the receiver's host:port.
	Target string
	// Plaintext connects without TLS; otherwise TLS configures the
	// connection.
	Plaintext bool
	TLS       *tls.Config
	// Headers are sent as metadata with every request (API keys).
	Headers map[string]string
	// Gzip compresses requests.
	Gzip bool
	// Timeout bounds one ExportSpans call, retries included.
	Timeout time.Duration
}

// otlpGRPCExporter is an sdktrace.SpanExporter that sends spans to an
// OTLP/gRPC receiver. It writes the request straight from the spans (see
// traceEncoder) and has gRPC send those bytes through rawCodec instead of
// marshalling protobuf structs. It retries as the OTLP specification says:
// on the codes that may heal, and on RESOURCE_EXHAUSTED when the receiver
// says when (RetryInfo), with exponential backoff or the delay the receiver
// asked for, as long as the export's timeout allows. It is safe for
// concurrent use.
type otlpGRPCExporter struct {
	exporterCore // ExportSpans, exportEncoded
	target       string
	conn         *grpc.ClientConn
	md           metadata.MD // of every request; nil if none
	callOpts     []grpc.CallOption
}

var _ sdktrace.SpanExporter = (*otlpGRPCExporter)(nil)

// newOTLPGRPCExporter returns an exporter for cfg. It does not connect:
// gRPC connects on the first export, and again after failures.
func newOTLPGRPCExporter(cfg otlpGRPCConfig) (*otlpGRPCExporter, error) {
	creds := insecure.NewCredentials()
	if !cfg.Plaintext {
		creds = credentials.NewTLS(cfg.TLS)
	}
	conn, err := grpc.NewClient(cfg.Target, grpc.WithTransportCredentials(creds), grpc.WithUserAgent(userAgent))
	if err != nil {
		return nil, fmt.Errorf("otlp grpc: %w", err)
	}
	e := &otlpGRPCExporter{
		target:   cfg.Target,
		conn:     conn,
		callOpts: []grpc.CallOption{grpc.ForceCodecV2(rawCodec{})},
	}
	if len(cfg.Headers) > 0 {
		e.md = metadata.New(cfg.Headers)
	}
	if cfg.Gzip {
		e.callOpts = append(e.callOpts, grpc.UseCompressor(gzip.Name))
	}
	e.init(cfg.Timeout, e.send)
	return e, nil
}

// send makes the Export call of the encoded request in s, retrying as the
// receiver allows within the export's context. A partial success is
// returned as an error that says how many spans the receiver rejected and
// why.
func (e *otlpGRPCExporter) send(ctx context.Context, s *exportScratch) error {
	if e.md != nil {
		md := e.md
		if out, ok := metadata.FromOutgoingContext(ctx); ok {
			md = metadata.Join(md, out)
		}
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	if err := withRetries(ctx, func(ctx context.Context) error { return e.call(ctx, s.body) }); err != nil {
		return fmt.Errorf("otlp grpc: export to %s: %w", e.target, err)
	}
	return nil
}

// call makes one Export call with the encoded request body. Failures worth
// retrying are *retryableError.
func (e *otlpGRPCExporter) call(ctx context.Context, body []byte) error {
	var resp []byte
	if err := e.conn.Invoke(ctx, exportMethod, &body, &resp, e.callOpts...); err != nil {
		if ctx.Err() != nil {
			return err // the export's own deadline or cancellation
		}
		return retryableStatus(err)
	}
	return partialSuccess(resp)
}

// Shutdown cancels the exports in flight, waits for them (or for ctx) and
// closes the connection. Later exports fail.
func (e *otlpGRPCExporter) Shutdown(ctx context.Context) error {
	err := e.shutdown(ctx)
	if cerr := e.conn.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("otlp grpc: %w", cerr))
	}
	return err
}

// retryableStatus returns err as a *retryableError when its gRPC status is
// one the OTLP specification says to retry: the codes of transient
// failures, and RESOURCE_EXHAUSTED when the receiver says when to retry
// (RetryInfo), which is then the least wait.
func retryableStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	wait, hasWait := retryDelay(st)
	switch st.Code() {
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange,
		codes.Unavailable, codes.DataLoss:
		return &retryableError{err: err, wait: wait}
	case codes.ResourceExhausted:
		if hasWait {
			return &retryableError{err: err, wait: wait}
		}
	}
	return err
}

// retryDelay returns the delay of the RetryInfo detail of st, if it has
// one.
func retryDelay(st *status.Status) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return max(ri.GetRetryDelay().AsDuration(), 0), true
		}
	}
	return 0, false
}

// rawCodec is a gRPC codec for messages already in the protobuf wire
// format: it sends a *[]byte's bytes and receives into a *[]byte. Its name
// is "proto", the content-subtype OTLP receivers expect.
//
// gRPC may still be writing a request after Invoke returns (a receiver can
// answer before it has read all of it), so Marshal gives it a copy in its
// own buffer pool, which it frees when done, rather than the exporter's
// reused buffer. The copy costs one move of the request's bytes, little
// beside encoding it.
type rawCodec struct{}

// Marshal returns a copy of *v, a *[]byte.
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal a %T", v)
	}
	return mem.BufferSlice{mem.Copy(*b, mem.DefaultBufferPool())}, nil
}

// Unmarshal stores a copy of data in *v, a *[]byte.
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into a %T", v)
	}
	*b = data.Materialize()
	return nil
}

// Name returns "proto".
func (rawCodec) Name() string { return "proto" }
