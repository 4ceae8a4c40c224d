package otlpreceiver

import (
	"context"
	"strings"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcencoding "google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // OTLP/gRPC exporters may gzip their messages
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// NewGRPCServer returns a gRPC server with the OTLP TraceService and
// LogsService (for the signals that have a consumer) registered, its
// message size limited to MaxBodyBytes. The caller serves it on a listener
// of its own and stops it.
func (r *Receiver) NewGRPCServer(extra ...grpc.ServerOption) *grpc.Server {
	opts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(min(r.opts.MaxBodyBytes, 1<<31-1))),
		grpc.MaxConcurrentStreams(uint32(max(r.opts.MaxInFlight*4, 16))),
		grpc.UnaryInterceptor(r.grpcGuard),
		grpc.ForceServerCodecV2(grpcCodec{base: grpcencoding.GetCodecV2(grpcproto.Name), r: r}),
	}, extra...)
	s := grpc.NewServer(opts...)
	if r.opts.Traces != nil {
		coltracepb.RegisterTraceServiceServer(s, grpcTraces{r: r})
	}
	if r.opts.Logs != nil {
		collogspb.RegisterLogsServiceServer(s, grpcLogs{r: r})
	}
	return s
}

// grpcCodec is gRPC's protobuf codec with the receiver's recursion limit,
// counting the messages it cannot decode (gRPC answers those INTERNAL
// before any handler runs).
type grpcCodec struct {
	base grpcencoding.CodecV2
	r    *Receiver
}

func (c grpcCodec) Name() string { return c.base.Name() }

func (c grpcCodec) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

func (c grpcCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return c.base.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	if err := protoUnmarshal.Unmarshal(buf.ReadOnlyData(), m); err != nil {
		signal := signalTraces
		if _, logs := m.(*collogspb.ExportLogsServiceRequest); logs {
			signal = signalLogs
		}
		c.r.m.request(signal, transportGRPC, outcomeMalformed)
		return err
	}
	return nil
}

func signalOf(method string) string {
	if strings.HasPrefix(method, "/opentelemetry.proto.collector.logs.") {
		return signalLogs
	}
	return signalTraces
}

// grpcGuard checks the bearer token and takes an in-flight slot around
// each call. A message over the size limit never reaches it: gRPC refuses
// it with RESOURCE_EXHAUSTED before decoding, and it is not counted.
func (r *Receiver) grpcGuard(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	signal := signalOf(info.FullMethod)
	if r.token != nil {
		var auth string
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get("authorization"); len(v) > 0 {
				auth = v[0]
			}
		}
		if !r.authorized(auth) {
			r.m.request(signal, transportGRPC, outcomeUnauthorized)
			return nil, status.Error(codes.Unauthenticated, "a valid bearer token is required")
		}
	}
	if !r.acquire() {
		r.m.request(signal, transportGRPC, outcomeOverloaded)
		return nil, r.exhausted("too many export requests at once; retry later")
	}
	defer r.release()
	return handler(ctx, req)
}

// exhausted is a retryable RESOURCE_EXHAUSTED: OTLP clients retry it only
// when it carries RetryInfo.
func (r *Receiver) exhausted(msg string) error {
	st := status.New(codes.ResourceExhausted, msg)
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(r.opts.RetryAfter)}); err == nil {
		st = d
	}
	return st.Err()
}

func (r *Receiver) grpcError(res result) error {
	switch res.outcome {
	case outcomeOverloaded:
		return r.exhausted("the trace store is overloaded; retry later")
	case outcomeFailed:
		return status.Error(codes.Internal, "storing the data failed")
	}
	return nil
}

type grpcTraces struct {
	coltracepb.UnimplementedTraceServiceServer
	r *Receiver
}

func (g grpcTraces) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	res := g.r.exportTraces(ctx, req, false, transportGRPC)
	if err := g.r.grpcError(res); err != nil {
		return nil, err
	}
	resp := &coltracepb.ExportTraceServiceResponse{}
	if res.rejected > 0 {
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: res.rejected, ErrorMessage: res.message}
	}
	return resp, nil
}

type grpcLogs struct {
	collogspb.UnimplementedLogsServiceServer
	r *Receiver
}

func (g grpcLogs) Export(ctx context.Context, req *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	res := g.r.exportLogs(ctx, req, false, transportGRPC)
	if err := g.r.grpcError(res); err != nil {
		return nil, err
	}
	resp := &collogspb.ExportLogsServiceResponse{}
	if res.rejected > 0 {
		resp.PartialSuccess = &collogspb.ExportLogsPartialSuccess{RejectedLogRecords: res.rejected, ErrorMessage: res.message}
	}
	return resp, nil
}
