package tracestore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/vantage-gateway/vantage/internal/otlpreceiver"
)

var (
	_ otlpreceiver.TraceConsumer = (*OTLPConsumer)(nil)
	_ otlpreceiver.LogConsumer   = (*OTLPConsumer)(nil)
)

// OTLPConsumer stores the OTLP requests the receiver validated: spans
// (ConsumeTraces) and log records (ConsumeLogs) from services. It is the
// receiver's otlpreceiver.TraceConsumer and LogConsumer. It never waits
// for the store: a full write queue is an error wrapping
// otlpreceiver.ErrOverloaded, which the receiver answers with OTLP's
// retryable 429 / RESOURCE_EXHAUSTED. It is safe for concurrent use.
type OTLPConsumer struct {
	s *Store
}

// OTLPConsumer returns the store's consumer of OTLP requests.
func (s *Store) OTLPConsumer() *OTLPConsumer { return &OTLPConsumer{s: s} }

// maxValueDepth bounds the nesting of array and map values converted to
// JSON text; deeper values are cut.
const maxValueDepth = 8

// ConsumeTraces converts and stores the request's spans. Spans with an
// invalid trace or span id (wrong length, all zero) are refused and
// counted in rejected; the others are stored. When the store's queue is
// full nothing more is stored: the error wraps ErrOverloaded, and
// rejected counts the spans of the resources left out after the first.
func (c *OTLPConsumer) ConsumeTraces(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (rejected int64, err error) {
	s := c.s
	if s.QueueFull() {
		return 0, fmt.Errorf("%w: the trace store's write queue is full", otlpreceiver.ErrOverloaded)
	}
	w := blobWriter{d: s.dict}
	submitted := false
	for _, rs := range req.GetResourceSpans() {
		service, attrs := c.resource(rs.GetResource())
		b := &Batch{service: service, resAttrs: attrs, dict: s.dict}
		for _, ss := range rs.GetScopeSpans() {
			scope := Scope{Name: ss.GetScope().GetName(), Version: ss.GetScope().GetVersion()}
			for _, sp := range ss.GetSpans() {
				if !b.addProtoSpan(&w, scope, sp) {
					rejected++
				}
			}
		}
		if len(b.spans) == 0 {
			continue
		}
		if !s.Submit(b) {
			if !submitted {
				return rejected, fmt.Errorf("%w: the trace store's write queue is full", otlpreceiver.ErrOverloaded)
			}
			rejected += int64(len(b.spans))
			continue
		}
		submitted = true
	}
	return rejected, nil
}

// ConsumeLogs stores the request's log records under their trace ids.
// Records without a valid trace id are not kept (the store keeps logs by
// trace) and are counted as dropped (reason no_trace), not rejected: they
// are valid OTLP. A full queue is ErrOverloaded, as for traces.
func (c *OTLPConsumer) ConsumeLogs(ctx context.Context, req *collogspb.ExportLogsServiceRequest) (rejected int64, err error) {
	s := c.s
	if s.QueueFull() {
		return 0, fmt.Errorf("%w: the trace store's write queue is full", otlpreceiver.ErrOverloaded)
	}
	submitted := false
	for _, rl := range req.GetResourceLogs() {
		service, attrs := c.resource(rl.GetResource())
		b := &Batch{service: service, resAttrs: attrs, dict: s.dict}
		for _, sl := range rl.GetScopeLogs() {
			for _, lr := range sl.GetLogRecords() {
				tid, ok := traceIDOf(lr.GetTraceId())
				if !ok {
					if len(lr.GetTraceId()) != 0 {
						rejected++
					} else {
						s.m.logsDropped[dropNoTrace].Inc()
					}
					continue
				}
				var sid SpanID
				copy(sid[:], lr.GetSpanId())
				t := lr.GetTimeUnixNano()
				if t == 0 {
					t = lr.GetObservedTimeUnixNano()
				}
				b.addLogIn(&logIn{traceID: tid, rec: logRec{
					spanID: sid, time: clampNanos(t), severity: int32(lr.GetSeverityNumber()),
					sevText: truncateString(lr.GetSeverityText()), body: truncateString(anyText(lr.GetBody(), 0)),
					attrs: protoAttrsBlob(s.dict, lr.GetAttributes()),
				}})
			}
		}
		if len(b.logs) == 0 {
			continue
		}
		if !s.Submit(b) {
			if !submitted {
				return rejected, fmt.Errorf("%w: the trace store's write queue is full", otlpreceiver.ErrOverloaded)
			}
			rejected += int64(len(b.logs))
			continue
		}
		submitted = true
	}
	return rejected, nil
}

func (c *OTLPConsumer) resource(r *resourcepb.Resource) (service, attrs string) {
	service = "unknown_service"
	kvs := make([]*commonpb.KeyValue, 0, len(r.GetAttributes()))
	for _, kv := range r.GetAttributes() {
		if kv.GetKey() == "service.name" {
			if v := kv.GetValue().GetStringValue(); v != "" {
				service = truncateString(v)
			}
			continue
		}
		kvs = append(kvs, kv)
	}
	return service, protoAttrsBlob(c.s.dict, kvs)
}

func traceIDOf(b []byte) (TraceID, bool) {
	var id TraceID
	if len(b) != len(id) {
		return id, false
	}
	copy(id[:], b)
	return id, !id.IsZero()
}

func spanIDOf(b []byte) (SpanID, bool) {
	var id SpanID
	if len(b) != len(id) {
		return id, false
	}
	copy(id[:], b)
	return id, !id.IsZero()
}

// clampNanos converts an OTLP time, keeping absurd ones in int64 range.
func clampNanos(t uint64) int64 {
	if t > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(t)
}

// addProtoSpan adds a copy of sp; false when its ids are invalid.
func (b *Batch) addProtoSpan(w *blobWriter, scope Scope, sp *tracepb.Span) bool {
	tid, ok := traceIDOf(sp.GetTraceId())
	if !ok {
		return false
	}
	sid, ok := spanIDOf(sp.GetSpanId())
	if !ok {
		return false
	}
	in := spanIn{traceID: tid}
	start, end := clampNanos(sp.GetStartTimeUnixNano()), clampNanos(sp.GetEndTimeUnixNano())
	in.span = spanRec{
		spanID: sid, start: start, dur: max(0, end-start),
		name: truncateString(sp.GetName()), kind: SpanKind(min(sp.GetKind(), tracepb.Span_SPAN_KIND_CONSUMER)),
		flags: uint8(sp.GetFlags()),
	}
	if p, ok := spanIDOf(sp.GetParentSpanId()); ok {
		in.span.parentID = p
	}
	switch sp.GetStatus().GetCode() {
	case tracepb.Status_STATUS_CODE_ERROR:
		in.span.status = StatusError
	case tracepb.Status_STATUS_CODE_OK:
		in.span.status = StatusOK
	}
	w.b = w.b[:0]
	w.header(scope, sp.GetTraceState(), sp.GetStatus().GetMessage(),
		sp.GetDroppedAttributesCount(), sp.GetDroppedEventsCount(), sp.GetDroppedLinksCount())
	writeProtoAttrs(w, &in, sp.GetAttributes())
	w.uvarint(uint64(len(sp.GetEvents())))
	for _, ev := range sp.GetEvents() {
		w.varint(clampNanos(ev.GetTimeUnixNano()) - start)
		w.str(ev.GetName())
		writeProtoAttrs(w, nil, ev.GetAttributes())
		if ev.GetName() == eventRetry {
			in.retried = true
		}
	}
	w.uvarint(uint64(len(sp.GetLinks())))
	for _, l := range sp.GetLinks() {
		var lt TraceID
		var ls SpanID
		copy(lt[:], l.GetTraceId())
		copy(ls[:], l.GetSpanId())
		w.b = append(w.b, lt[:]...)
		w.b = append(w.b, ls[:]...)
		w.str(l.GetTraceState())
		writeProtoAttrs(w, nil, l.GetAttributes())
	}
	in.span.blob = string(w.b)
	b.addSpanIn(&in)
	return true
}

func writeProtoAttrs(w *blobWriter, in *spanIn, kvs []*commonpb.KeyValue) {
	w.uvarint(uint64(len(kvs)))
	for _, kv := range kvs {
		k := kv.GetKey()
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			w.attrString(k, v.StringValue)
			if in != nil {
				in.noteString(k, v.StringValue)
			}
		case *commonpb.AnyValue_BoolValue:
			w.attrBool(k, v.BoolValue)
		case *commonpb.AnyValue_IntValue:
			w.attrInt(k, v.IntValue)
			if in != nil {
				in.noteInt(k, v.IntValue)
			}
		case *commonpb.AnyValue_DoubleValue:
			w.attrFloat(k, v.DoubleValue)
		case *commonpb.AnyValue_BytesValue:
			w.attrBytes(k, v.BytesValue)
		default:
			w.attrString(k, anyText(kv.GetValue(), 0))
		}
	}
}

func protoAttrsBlob(d *dict, kvs []*commonpb.KeyValue) string {
	w := blobWriter{d: d}
	writeProtoAttrs(&w, nil, kvs)
	return string(w.b)
}

// anyText is an OTLP value as text: strings as they are, other scalars
// formatted, arrays and maps as JSON (as the OpenTelemetry Collector's
// pdata AsString writes them, which is what Jaeger shows).
func anyText(v *commonpb.AnyValue, depth int) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case nil:
		return ""
	}
	var sb strings.Builder
	appendJSONValue(&sb, v, depth)
	return sb.String()
}

func appendJSONValue(sb *strings.Builder, v *commonpb.AnyValue, depth int) {
	if sb.Len() > maxValueLen {
		return
	}
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		sb.WriteString(jsonString(x.StringValue))
	case *commonpb.AnyValue_BoolValue:
		sb.WriteString(strconv.FormatBool(x.BoolValue))
	case *commonpb.AnyValue_IntValue:
		sb.WriteString(strconv.FormatInt(x.IntValue, 10))
	case *commonpb.AnyValue_DoubleValue:
		if math.IsInf(x.DoubleValue, 0) || math.IsNaN(x.DoubleValue) {
			sb.WriteString(jsonString(strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)))
		} else {
			sb.WriteString(strconv.FormatFloat(x.DoubleValue, 'g', -1, 64))
		}
	case *commonpb.AnyValue_BytesValue:
		sb.WriteString(jsonString(base64.StdEncoding.EncodeToString(x.BytesValue)))
	case *commonpb.AnyValue_ArrayValue:
		if depth >= maxValueDepth {
			sb.WriteString("null")
			return
		}
		sb.WriteByte('[')
		for i, e := range x.ArrayValue.GetValues() {
			if i > 0 {
				sb.WriteByte(',')
			}
			appendJSONValue(sb, e, depth+1)
		}
		sb.WriteByte(']')
	case *commonpb.AnyValue_KvlistValue:
		if depth >= maxValueDepth {
			sb.WriteString("null")
			return
		}
		sb.WriteByte('{')
		for i, kv := range x.KvlistValue.GetValues() {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(jsonString(kv.GetKey()))
			sb.WriteByte(':')
			appendJSONValue(sb, kv.GetValue(), depth+1)
		}
		sb.WriteByte('}')
	default:
		sb.WriteString("null")
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
