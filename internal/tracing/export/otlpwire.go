package export

import (
	"errors"
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file writes OTLP trace requests in the protobuf wire format straight
// from SDK spans, without building the protobuf structs of
// go.opentelemetry.io/proto/otlp and marshalling them by reflection as
// otlptrace's tracetransform and proto.Marshal do. The output is the same
// message, field for field (see traceEncoder.appendTraceRequest for the one
// addition).

// Field numbers of the messages written here, from
// opentelemetry/proto/{collector/trace,trace,common,resource}/v1/*.proto.
const (
	// ExportTraceServiceRequest
	fieldRequestResourceSpans protowire.Number = 1

	// ExportTraceServiceResponse and its ExportTracePartialSuccess
	fieldResponsePartialSuccess protowire.Number = 1
	fieldPartialRejectedSpans   protowire.Number = 1
	fieldPartialErrorMessage    protowire.Number = 2

	// ResourceSpans
	fieldResourceSpansResource   protowire.Number = 1
	fieldResourceSpansScopeSpans protowire.Number = 2
	fieldResourceSpansSchemaURL  protowire.Number = 3

	// Resource
	fieldResourceAttributes protowire.Number = 1

	// ScopeSpans
	fieldScopeSpansScope     protowire.Number = 1
	fieldScopeSpansSpans     protowire.Number = 2
	fieldScopeSpansSchemaURL protowire.Number = 3

	// InstrumentationScope
	fieldScopeName       protowire.Number = 1
	fieldScopeVersion    protowire.Number = 2
	fieldScopeAttributes protowire.Number = 3

	// Span
	fieldSpanTraceID           protowire.Number = 1
	fieldSpanSpanID            protowire.Number = 2
	fieldSpanTraceState        protowire.Number = 3
	fieldSpanParentSpanID      protowire.Number = 4
	fieldSpanName              protowire.Number = 5
	fieldSpanKind              protowire.Number = 6
	fieldSpanStartTime         protowire.Number = 7
	fieldSpanEndTime           protowire.Number = 8
	fieldSpanAttributes        protowire.Number = 9
	fieldSpanDroppedAttributes protowire.Number = 10
	fieldSpanEvents            protowire.Number = 11
	fieldSpanDroppedEvents     protowire.Number = 12
	fieldSpanLinks             protowire.Number = 13
	fieldSpanDroppedLinks      protowire.Number = 14
	fieldSpanStatus            protowire.Number = 15
	fieldSpanFlags             protowire.Number = 16

	// Span.Event
	fieldEventTime              protowire.Number = 1
	fieldEventName              protowire.Number = 2
	fieldEventAttributes        protowire.Number = 3
	fieldEventDroppedAttributes protowire.Number = 4

	// Span.Link
	fieldLinkTraceID           protowire.Number = 1
	fieldLinkSpanID            protowire.Number = 2
	fieldLinkTraceState        protowire.Number = 3
	fieldLinkAttributes        protowire.Number = 4
	fieldLinkDroppedAttributes protowire.Number = 5
	fieldLinkFlags             protowire.Number = 6

	// Status
	fieldStatusMessage protowire.Number = 2
	fieldStatusCode    protowire.Number = 3

	// KeyValue
	fieldKeyValueKey   protowire.Number = 1
	fieldKeyValueValue protowire.Number = 2

	// AnyValue (a oneof: exactly one is written, even when it is the zero
	// value)
	fieldAnyString protowire.Number = 1
	fieldAnyBool   protowire.Number = 2
	fieldAnyInt    protowire.Number = 3
	fieldAnyDouble protowire.Number = 4
	fieldAnyArray  protowire.Number = 5
	fieldAnyKVList protowire.Number = 6
	fieldAnyBytes  protowire.Number = 7

	// ArrayValue and KeyValueList
	fieldArrayValues  protowire.Number = 1
	fieldKVListValues protowire.Number = 1
)

// Enum values and flag bits of the OTLP trace messages.
const (
	statusCodeOK    = 1 // Status.STATUS_CODE_OK
	statusCodeError = 2 // Status.STATUS_CODE_ERROR

	// SpanFlags: the low 8 bits are the W3C trace flags.
	spanFlagsHasIsRemote = 0x100 // SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
	spanFlagsIsRemote    = 0x200 // SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
)

// Bytes reserved for the length of a length-delimited field before its
// content is written (see beginField): enough for the usual size of each
// kind of message, so that the content rarely has to move once its length
// is known.
const (
	reserveSmall = 1 // attributes, events, links, status, scope: < 128 bytes
	reserveSpan  = 2 // a span or resource: < 16 KiB
	reserveGroup = 3 // a resource's or scope's spans of a batch: < 2 MiB
)

// traceEncoder writes batches of spans as OTLP ExportTraceServiceRequest
// messages. It keeps the scratch space of its grouping between calls, so
// that encoding a batch no larger than one it has seen allocates nothing
// (see appendTraceRequest for the exceptions). The zero value is ready to
// use. A traceEncoder is not safe for concurrent use.
type traceEncoder struct {
	groups []spanGroup             // the batch's groups, in order of first appearance
	index  map[groupKey]int32      // groups by key
	member []int32                 // member[i] is the group of spans[i], -1 for a nil span
	order  []sdktrace.ReadOnlySpan // the batch's spans, group after group
}

// groupKey identifies the spans sent in one ScopeSpans message: those of
// one resource (by its attribute set, as tracetransform groups them) and one
// instrumentation scope.
type groupKey struct {
	resource attribute.Distinct
	scope    instrumentation.Scope
}

// spanGroup is one ScopeSpans message of a batch under construction.
type spanGroup struct {
	key groupKey
	// res is the resource of the group's first span. For the first group
	// of a resource, it is the one the ResourceSpans message carries (with
	// its schema URL).
	res *resource.Resource
	// first is the index of the first group with the same resource: the
	// groups of one ResourceSpans message are those whose first is the
	// index of the first of them.
	first int32
	// start and n delimit the group's spans in traceEncoder.order.
	start, n int32
}

// appendTraceRequest appends to dst an ExportTraceServiceRequest carrying
// spans, and returns the extended buffer. Nil spans are skipped. A request
// without spans has no fields, so for a batch without spans dst is
// returned unchanged.
//
// The message is what otlptrace's tracetransform builds: one ResourceSpans
// per resource attribute set, one ScopeSpans per instrumentation scope of
// it, spans in batch order within each. Resources and scopes come in order
// of first appearance (tracetransform's resource order is random). It also
// carries what tracetransform leaves out: the trace state of links.
//
// Encoding allocates nothing per span when dst has room, except where the
// attribute API copies a value out: slice-typed attribute values
// (BOOLSLICE, INT64SLICE, FLOAT64SLICE, STRINGSLICE, SLICE), MAP and
// BYTESLICE values each cost one allocation. The SDK's span snapshots
// return their attributes, events and links without copying; a recording
// span (sdktrace.ReadWriteSpan) copies its events and links on every call.
func (e *traceEncoder) appendTraceRequest(dst []byte, spans []sdktrace.ReadOnlySpan) []byte {
	e.group(spans)
	defer e.reset()
	for g := range e.groups {
		if int(e.groups[g].first) == g {
			dst = e.appendResourceSpans(dst, int32(g))
		}
	}
	return dst
}

// group sorts the spans of a batch into groups, filling e.groups and
// e.order.
func (e *traceEncoder) group(spans []sdktrace.ReadOnlySpan) {
	if e.index == nil {
		e.index = make(map[groupKey]int32)
	}
	e.member = growTo(e.member, len(spans))
	last := int32(-1)
	for i, s := range spans {
		if s == nil {
			e.member[i] = -1
			continue
		}
		res := s.Resource()
		k := groupKey{resource: res.Equivalent(), scope: s.InstrumentationScope()}
		// Spans of one group usually come together: try the last one
		// before the map.
		if last < 0 || e.groups[last].key != k {
			var ok bool
			if last, ok = e.index[k]; !ok {
				last = e.newGroup(k, res)
			}
		}
		e.member[i] = last
		e.groups[last].n++
	}
	// Lay the groups out one after the other in e.order.
	var n int32
	for g := range e.groups {
		e.groups[g].start = n
		n += e.groups[g].n
		e.groups[g].n = 0
	}
	e.order = growTo(e.order, int(n))
	for i, g := range e.member {
		if g >= 0 {
			grp := &e.groups[g]
			e.order[grp.start+grp.n] = spans[i]
			grp.n++
		}
	}
}

// newGroup adds the group of key k, whose first span has resource res, and
// returns its index.
func (e *traceEncoder) newGroup(k groupKey, res *resource.Resource) int32 {
	g := int32(len(e.groups))
	first := g
	for i := range e.groups {
		if e.groups[i].key.resource == k.resource {
			first = e.groups[i].first
			break
		}
	}
	e.groups = append(e.groups, spanGroup{key: k, res: res, first: first})
	e.index[k] = g
	return g
}

// reset forgets the last batch, keeping the scratch space but no reference
// to its spans, resources or scopes.
func (e *traceEncoder) reset() {
	clear(e.groups)
	e.groups = e.groups[:0]
	clear(e.index)
	clear(e.order)
}

// growTo returns s resized to n elements, reusing its array when it is
// large enough. The elements' values are unspecified.
func growTo[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n, n+n/4)
	}
	return s[:n]
}

// appendResourceSpans appends the ResourceSpans message of the resource
// whose first group is first.
func (e *traceEncoder) appendResourceSpans(b []byte, first int32) []byte {
	res := e.groups[first].res
	b, start := beginField(b, fieldRequestResourceSpans, reserveGroup)
	if res != nil {
		b = appendResource(b, fieldResourceSpansResource, res)
	}
	for g := int(first); g < len(e.groups); g++ {
		if grp := &e.groups[g]; grp.first == first {
			b = appendScopeSpans(b, grp.key.scope, e.order[grp.start:grp.start+grp.n])
		}
	}
	b = appendStringField(b, fieldResourceSpansSchemaURL, res.SchemaURL())
	return endField(b, start, reserveGroup)
}

// appendResource appends res as the Resource message field num.
func appendResource(b []byte, num protowire.Number, res *resource.Resource) []byte {
	b, start := beginField(b, num, reserveSpan)
	for it := res.Iter(); it.Next(); {
		b = appendKeyValue(b, fieldResourceAttributes, it.Attribute())
	}
	return endField(b, start, reserveSpan)
}

// appendScopeSpans appends the ScopeSpans message of the spans of scope.
func appendScopeSpans(b []byte, scope instrumentation.Scope, spans []sdktrace.ReadOnlySpan) []byte {
	b, start := beginField(b, fieldResourceSpansScopeSpans, reserveGroup)
	b = appendScope(b, scope)
	for _, s := range spans {
		b = appendSpan(b, s)
	}
	b = appendStringField(b, fieldScopeSpansSchemaURL, scope.SchemaURL)
	return endField(b, start, reserveGroup)
}

// appendScope appends the InstrumentationScope message of a ScopeSpans,
// unless scope is the zero scope, whose message tracetransform leaves out.
func appendScope(b []byte, scope instrumentation.Scope) []byte {
	if scope == (instrumentation.Scope{}) {
		return b
	}
	b, start := beginField(b, fieldScopeSpansScope, reserveSmall)
	b = appendStringField(b, fieldScopeName, scope.Name)
	b = appendStringField(b, fieldScopeVersion, scope.Version)
	for it := scope.Attributes.Iter(); it.Next(); {
		b = appendKeyValue(b, fieldScopeAttributes, it.Attribute())
	}
	return endField(b, start, reserveSmall)
}

// appendSpan appends s as a Span message of a ScopeSpans.
func appendSpan(b []byte, s sdktrace.ReadOnlySpan) []byte {
	d := spanData(s)
	return AppendSpan(b, &d)
}

// spanData returns the fields of s. Its slices are s's, not copies.
func spanData(s sdktrace.ReadOnlySpan) SpanData {
	return SpanData{
		SpanContext:       s.SpanContext(),
		Parent:            s.Parent(),
		Name:              s.Name(),
		Kind:              s.SpanKind(),
		Start:             s.StartTime(),
		End:               s.EndTime(),
		Attributes:        s.Attributes(),
		DroppedAttributes: s.DroppedAttributes(),
		Events:            s.Events(),
		DroppedEvents:     s.DroppedEvents(),
		Links:             s.Links(),
		DroppedLinks:      s.DroppedLinks(),
		Status:            s.Status(),
	}
}

// AppendSpan appends d to b as one OTLP Span message in its place in a
// ScopeSpans message (field 2, tag and length included), exactly as an
// OTLP exporter of this package would send an SDK span with the same
// fields, and returns the extended buffer. It allocates nothing when b has
// room, except for the attribute value types listed at appendTraceRequest.
// Spans encoded this way go to Processor.EnqueueEncoded.
func AppendSpan(b []byte, d *SpanData) []byte {
	b, start := beginField(b, fieldScopeSpansSpans, reserveSpan)
	sc := d.SpanContext
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytesField(b, fieldSpanTraceID, tid[:])
	b = appendBytesField(b, fieldSpanSpanID, sid[:])
	b = appendTraceState(b, fieldSpanTraceState, sc.TraceState())
	if psid := d.Parent.SpanID(); psid.IsValid() {
		b = appendBytesField(b, fieldSpanParentSpanID, psid[:])
	}
	b = appendStringField(b, fieldSpanName, d.Name)
	b = appendVarintField(b, fieldSpanKind, spanKind(d.Kind))
	b = appendTimeField(b, fieldSpanStartTime, d.Start)
	b = appendTimeField(b, fieldSpanEndTime, d.End)
	for _, kv := range d.Attributes {
		b = appendKeyValue(b, fieldSpanAttributes, kv)
	}
	b = appendCountField(b, fieldSpanDroppedAttributes, d.DroppedAttributes)
	for i := range d.Events {
		b = appendEvent(b, &d.Events[i])
	}
	b = appendCountField(b, fieldSpanDroppedEvents, d.DroppedEvents)
	for i := range d.Links {
		b = appendLink(b, &d.Links[i])
	}
	b = appendCountField(b, fieldSpanDroppedLinks, d.DroppedLinks)
	b = appendStatus(b, d.Status)
	b = protowire.AppendTag(b, fieldSpanFlags, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, spanFlags(sc.TraceFlags(), d.Parent))
	return endField(b, start, reserveSpan)
}

// appendEvent appends ev as a Span.Event message of a Span.
func appendEvent(b []byte, ev *sdktrace.Event) []byte {
	b, start := beginField(b, fieldSpanEvents, reserveSmall)
	b = appendTimeField(b, fieldEventTime, ev.Time)
	b = appendStringField(b, fieldEventName, ev.Name)
	for _, kv := range ev.Attributes {
		b = appendKeyValue(b, fieldEventAttributes, kv)
	}
	b = appendCountField(b, fieldEventDroppedAttributes, ev.DroppedAttributeCount)
	return endField(b, start, reserveSmall)
}

// appendLink appends l as a Span.Link message of a Span.
func appendLink(b []byte, l *sdktrace.Link) []byte {
	b, start := beginField(b, fieldSpanLinks, reserveSmall)
	tid, sid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
	b = appendBytesField(b, fieldLinkTraceID, tid[:])
	b = appendBytesField(b, fieldLinkSpanID, sid[:])
	b = appendTraceState(b, fieldLinkTraceState, l.SpanContext.TraceState())
	for _, kv := range l.Attributes {
		b = appendKeyValue(b, fieldLinkAttributes, kv)
	}
	b = appendCountField(b, fieldLinkDroppedAttributes, l.DroppedAttributeCount)
	b = appendTag(b, fieldLinkFlags, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
	return endField(b, start, reserveSmall)
}

// appendStatus appends the Status message of a Span. tracetransform always
// sets it, so it is written even when empty.
func appendStatus(b []byte, st sdktrace.Status) []byte {
	b, start := beginField(b, fieldSpanStatus, reserveSmall)
	b = appendStringField(b, fieldStatusMessage, st.Description)
	switch st.Code {
	case codes.Ok:
		b = appendVarintField(b, fieldStatusCode, statusCodeOK)
	case codes.Error:
		b = appendVarintField(b, fieldStatusCode, statusCodeError)
	}
	return endField(b, start, reserveSmall)
}

// appendTraceState appends ts in its W3C header form ("k1=v1,k2=v2") as the
// string field num, unless it is empty. Walking the members writes it
// without building the string TraceState.String returns.
func appendTraceState(b []byte, num protowire.Number, ts trace.TraceState) []byte {
	if ts.Len() == 0 {
		return b
	}
	b, start := beginField(b, num, reserveSmall)
	sep := false
	ts.Walk(func(key, value string) bool {
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = append(b, key...)
		b = append(b, '=')
		b = append(b, value...)
		return true
	})
	return endField(b, start, reserveSmall)
}

// spanFlags returns the flags field of a span or link: the W3C trace flags
// tf, the bit saying whether the parent (of a span) or the linked span (of
// a link) is known to be remote, and whether it is.
func spanFlags(tf trace.TraceFlags, sc trace.SpanContext) uint32 {
	flags := uint32(tf) | spanFlagsHasIsRemote
	if sc.IsRemote() {
		flags |= spanFlagsIsRemote
	}
	return flags
}

// spanKind returns the OTLP Span.SpanKind of k (UNSPECIFIED for unknown
// kinds).
func spanKind(k trace.SpanKind) uint64 {
	switch k {
	case trace.SpanKindInternal, trace.SpanKindServer, trace.SpanKindClient,
		trace.SpanKindProducer, trace.SpanKindConsumer:
		return uint64(k) // OTLP numbers the kinds as the API does
	default:
		return 0
	}
}

// appendKeyValue appends kv as the KeyValue message field num.
func appendKeyValue(b []byte, num protowire.Number, kv attribute.KeyValue) []byte {
	b, start := beginField(b, num, reserveSmall)
	b = appendStringField(b, fieldKeyValueKey, string(kv.Key))
	b = appendAnyValue(b, fieldKeyValueValue, kv.Value)
	return endField(b, start, reserveSmall)
}

// appendAnyValue appends v as the AnyValue message field num, as
// tracetransform converts it: slices as an ArrayValue of one AnyValue per
// element, maps as a KeyValueList, an EMPTY value as an AnyValue with no
// value, and a value of an unknown type as the string "INVALID".
func appendAnyValue(b []byte, num protowire.Number, v attribute.Value) []byte {
	b, start := beginField(b, num, reserveSmall)
	var inner int // start of an ArrayValue or KeyValueList
	switch v.Type() {
	case attribute.BOOL:
		b = appendAnyBool(b, v.AsBool())
	case attribute.INT64:
		b = appendAnyInt(b, v.AsInt64())
	case attribute.FLOAT64:
		b = appendAnyDouble(b, v.AsFloat64())
	case attribute.STRING:
		b = appendAnyString(b, v.AsString())
	case attribute.BYTESLICE:
		b = appendTag(b, fieldAnyBytes, protowire.BytesType)
		b = appendBytes(b, v.AsByteSlice())
	case attribute.BOOLSLICE:
		b = appendArray(b, v.AsBoolSlice(), func(bool) int { return sizeAnyBool }, appendAnyBool)
	case attribute.INT64SLICE:
		b = appendArray(b, v.AsInt64Slice(), func(x int64) int { return 1 + protowire.SizeVarint(uint64(x)) }, appendAnyInt)
	case attribute.FLOAT64SLICE:
		b = appendArray(b, v.AsFloat64Slice(), func(float64) int { return sizeAnyDouble }, appendAnyDouble)
	case attribute.STRINGSLICE:
		b = appendArray(b, v.AsStringSlice(), func(x string) int { return 1 + protowire.SizeBytes(len(x)) }, appendAnyString)
	case attribute.SLICE:
		b, inner = beginField(b, fieldAnyArray, reserveSmall)
		for _, x := range v.AsSlice() {
			b = appendAnyValue(b, fieldArrayValues, x)
		}
		b = endField(b, inner, reserveSmall)
	case attribute.MAP:
		b, inner = beginField(b, fieldAnyKVList, reserveSmall)
		for _, kv := range v.AsMap() {
			b = appendKeyValue(b, fieldKVListValues, kv)
		}
		b = endField(b, inner, reserveSmall)
	case attribute.EMPTY:
	default:
		b = appendAnyString(b, "INVALID")
	}
	return endField(b, start, reserveSmall)
}

// Sizes of the fixed-size AnyValue contents.
const (
	sizeAnyBool   = 2 // tag, 0 or 1
	sizeAnyDouble = 9 // tag, 8 bytes
)

// appendAnyBool, appendAnyInt, appendAnyDouble and appendAnyString append
// the content of an AnyValue holding x: its oneof field, written even when
// x is the zero value.
// appendArray writes xs as an ArrayValue field of AnyValues: each element
// is size(x) bytes long as app(b, x) writes it.
func appendArray[T any](b []byte, xs []T, size func(T) int, app func([]byte, T) []byte) []byte {
	b, inner := beginField(b, fieldAnyArray, reserveSmall)
	for _, x := range xs {
		b = appendTag(b, fieldArrayValues, protowire.BytesType)
		b = appendVarint(b, uint64(size(x)))
		b = app(b, x)
	}
	return endField(b, inner, reserveSmall)
}

func appendAnyBool(b []byte, x bool) []byte {
	b = appendTag(b, fieldAnyBool, protowire.VarintType)
	return appendVarint(b, protowire.EncodeBool(x))
}

func appendAnyInt(b []byte, x int64) []byte {
	b = appendTag(b, fieldAnyInt, protowire.VarintType)
	return appendVarint(b, uint64(x))
}

func appendAnyDouble(b []byte, x float64) []byte {
	b = appendTag(b, fieldAnyDouble, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(x))
}

func appendAnyString(b []byte, x string) []byte {
	b = appendTag(b, fieldAnyString, protowire.BytesType)
	return appendString(b, x)
}

// appendStringField appends the string field num unless s is empty (the
// proto3 default, which proto.Marshal leaves out too).
func appendStringField(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = appendTag(b, num, protowire.BytesType)
	return appendString(b, s)
}

// appendBytesField appends the bytes field num, even when empty.
func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = appendTag(b, num, protowire.BytesType)
	return appendBytes(b, v)
}

// appendVarintField appends the varint field num unless v is 0.
func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = appendTag(b, num, protowire.VarintType)
	return appendVarint(b, v)
}

// appendCountField appends a dropped-items count, clamped to uint32 as
// tracetransform does, as the varint field num unless it is 0.
func appendCountField(b []byte, num protowire.Number, n int) []byte {
	return appendVarintField(b, num, uint64(min(max(int64(n), 0), math.MaxUint32)))
}

// appendTimeField appends t in nanoseconds since the Unix epoch (0 before
// it) as the fixed64 field num, unless that is 0.
func appendTimeField(b []byte, num protowire.Number, t time.Time) []byte {
	ns := max(0, t.UnixNano())
	if ns == 0 {
		return b
	}
	b = appendTag(b, num, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, uint64(ns))
}

// appendTag appends the tag of field num, of wire type typ. It is
// protowire.AppendTag for the field numbers below 16, whose tags take one
// byte: all of them here but the flags (16), which use protowire's.
func appendTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	return append(b, byte(protowire.EncodeTag(num, typ)))
}

// appendVarint is protowire.AppendVarint, inlined for the common values
// below 128.
func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

// appendString is protowire.AppendString with the length written by
// appendVarint.
func appendString(b []byte, s string) []byte {
	return append(appendVarint(b, uint64(len(s))), s...)
}

// appendBytes is protowire.AppendBytes with the length written by
// appendVarint.
func appendBytes(b, v []byte) []byte {
	return append(appendVarint(b, uint64(len(v))), v...)
}

// beginField appends the tag of the length-delimited field num and reserve
// bytes of room for its length, which is unknown until its content has been
// appended. It returns the extended buffer and the offset of the content,
// for endField.
func beginField(b []byte, num protowire.Number, reserve int) ([]byte, int) {
	b = appendTag(b, num, protowire.BytesType)
	b = append(b, make([]byte, reserve)...)
	return b, len(b)
}

// endField writes the length of the field whose content started at start,
// as returned by beginField with the same reserve, in the room reserved for
// it. When the length's varint is not reserve bytes long, the content moves
// to make it fit: the varint is minimal, as proto.Marshal writes it.
func endField(b []byte, start, reserve int) []byte {
	n := len(b) - start
	size := protowire.SizeVarint(uint64(n))
	if shift := size - reserve; shift != 0 {
		if shift > 0 {
			b = append(b, make([]byte, shift)...)
		}
		copy(b[start+shift:], b[start:start+n])
		b = b[:start+shift+n]
		start += shift
	}
	i := start - size
	v := uint64(n)
	for ; v >= 0x80; v >>= 7 {
		b[i] = byte(v) | 0x80
		i++
	}
	b[i] = byte(v)
	return b
}

// errMalformedResponse reports a response that is not an
// ExportTraceServiceResponse.
var errMalformedResponse = errors.New("malformed ExportTraceServiceResponse")

// parseExportResponse decodes the partial_success of an
// ExportTraceServiceResponse: the number of spans the receiver rejected and
// its message (0 and "" when it accepted everything). Unknown fields are
// skipped.
func parseExportResponse(b []byte) (rejected int64, msg string, err error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, "", fmt.Errorf("%w: %w", errMalformedResponse, protowire.ParseError(n))
		}
		b = b[n:]
		if num != fieldResponsePartialSuccess || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return 0, "", fmt.Errorf("%w: %w", errMalformedResponse, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		ps, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, "", fmt.Errorf("%w: %w", errMalformedResponse, protowire.ParseError(n))
		}
		b = b[n:]
		// A message field seen twice is merged: the last value of each
		// of its fields wins.
		if rejected, msg, err = parsePartialSuccess(ps, rejected, msg); err != nil {
			return 0, "", err
		}
	}
	return rejected, msg, nil
}

// parsePartialSuccess decodes an ExportTracePartialSuccess message over the
// values rejected and msg decoded so far.
func parsePartialSuccess(b []byte, rejected int64, msg string) (int64, string, error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, "", fmt.Errorf("%w: %w", errMalformedResponse, protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == fieldPartialRejectedSpans && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, "", fmt.Errorf("%w: %w", errMalformedResponse, protowire.ParseError(n))
			}
			rejected, b = int64(v), b[n:]
		case num == fieldPartialErrorMessage && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, "", fmt.Errorf("%w: %w", errMalformedResponse, protowire.ParseError(n))
			}
			msg, b = string(v), b[n:]
		default:
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return 0, "", fmt.Errorf("%w: %w", errMalformedResponse, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	return rejected, msg, nil
}
