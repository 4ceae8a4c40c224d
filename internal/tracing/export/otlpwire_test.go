package export

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Resources of the varied spans. resourceA2 has resourceA's attributes
// and another schema URL: its spans go into resourceA's ResourceSpans,
// whose schema URL is the first span's. The nil and the empty resource
// share one ResourceSpans too; a nil first one means no resource message.
var (
	resourceA  = resource.NewWithAttributes("https://opentelemetry.io/schemas/1.26.0", attribute.String("service.name", "vantage"), attribute.Int("process.pid", 42))
	resourceA2 = resource.NewWithAttributes("https://example.com/another-schema", attribute.String("service.name", "vantage"), attribute.Int("process.pid", 42))
	resourceB  = resource.NewSchemaless(attribute.String("service.name", "ünïcødé ✓ 服务"), attribute.Bool("b", false), attribute.StringSlice("ss", []string{"", "x"}))
)

// Scopes of the varied spans: the zero scope (no scope message), a full
// one, a name alone, and one with an empty attribute set (not the zero
// scope: an empty scope message).
var (
	scopeFull = instrumentation.Scope{
		Name: "vantage/proxy", Version: "1.2.3", SchemaURL: "https://example.com/scope",
		Attributes: attribute.NewSet(attribute.String("k", "v"), attribute.Int64Slice("n", []int64{-1, 0, 1 << 40})),
	}
	scopeName       = instrumentation.Scope{Name: "名前"}
	scopeEmptyAttrs = instrumentation.Scope{Attributes: attribute.NewSet()}
	scopeAttrsOnly  = instrumentation.Scope{Attributes: attribute.NewSet(attribute.String("only", "attributes"))}
)

// withScope is a span whose instrumentation scope is scope: SpanStub
// replaces a scope without name, version and schema URL by the zero one.
type withScope struct {
	sdktrace.ReadOnlySpan
	scope instrumentation.Scope
}

func (s withScope) InstrumentationScope() instrumentation.Scope { return s.scope }

// allAttributes has a value of every attribute type, zero values, edge
// values, unicode and an empty key.
func allAttributes() []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.Bool("bool.true", true),
		attribute.Bool("bool.false", false),
		attribute.Int64("int.zero", 0),
		attribute.Int64("int.neg", -7),
		attribute.Int64("int.max", math.MaxInt64),
		attribute.Int64("int.min", math.MinInt64),
		attribute.Float64("float.zero", 0),
		attribute.Float64("float.pi", math.Pi),
		attribute.Float64("float.negzero", math.Copysign(0, -1)),
		attribute.Float64("float.-inf", math.Inf(-1)),
		attribute.Float64("float.nan", math.NaN()),
		attribute.String("string.empty", ""),
		attribute.String("string.unicode", "héllo, 世界 🌍"),
		attribute.String("string.long", strings.Repeat("long ", 60)),
		attribute.String("", "empty key"),
		attribute.BoolSlice("bools", []bool{true, false, true}),
		attribute.BoolSlice("bools.empty", nil),
		attribute.Int64Slice("ints", []int64{-1, 0, 1, math.MaxInt64, 5}),
		attribute.IntSlice("ints.short", []int{3}),
		attribute.Float64Slice("floats", []float64{1.5, -0.25, 0}),
		attribute.StringSlice("strings", []string{"a", "", "ü", strings.Repeat("z", 200)}),
		attribute.StringSlice("strings.empty", []string{}),
		attribute.ByteSlice("bytes", []byte{0, 1, 2, 0xff}),
		attribute.Slice("slice", attribute.IntValue(1), attribute.StringValue("two"), attribute.SliceValue(attribute.BoolValue(true)), attribute.Value{}),
		attribute.Map("map", attribute.String("a", "b"), attribute.Int("n", 3), attribute.Map("inner", attribute.Float64("f", 1))),
		{Key: "empty.value"},
	}
}

// spanCtx returns a span context with trace id (t, ..., t) and span id
// (s, ..., s).
func spanCtx(t, s byte, flags trace.TraceFlags, remote bool, ts string) trace.SpanContext {
	var tid trace.TraceID
	var sid trace.SpanID
	for i := range tid {
		tid[i] = t
	}
	for i := range sid {
		sid[i] = s
	}
	state, err := trace.ParseTraceState(ts)
	if err != nil {
		panic(err)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: remote, TraceState: state})
}

// variedSpans returns spans that cover every field the encoder writes, in
// an order that interleaves resources and scopes.
func variedSpans() []sdktrace.ReadOnlySpan {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.UTC)
	full := tracetest.SpanStub{
		Name:        "GET /users/{id} ✓",
		SpanContext: spanCtx(1, 2, trace.FlagsSampled|0x02, false, "vendor=abc,other@sys=x:y"),
		Parent:      spanCtx(1, 3, trace.FlagsSampled, true, ""),
		SpanKind:    trace.SpanKindServer,
		StartTime:   t0,
		EndTime:     t0.Add(1234567 * time.Nanosecond),
		Attributes:  allAttributes(),
		Events: []sdktrace.Event{
			{Name: "retry", Time: t0.Add(time.Millisecond), Attributes: allAttributes(), DroppedAttributeCount: 2},
			{Name: "", Time: t0.Add(2 * time.Millisecond)},
			{Name: "no time"},
		},
		Links: []sdktrace.Link{
			{SpanContext: spanCtx(9, 8, trace.FlagsSampled, true, "l=1"), Attributes: []attribute.KeyValue{attribute.String("vantage.link.reason", "untrusted_incoming")}, DroppedAttributeCount: 1},
			{SpanContext: spanCtx(7, 6, 0, false, "")},
		},
		Status:               sdktrace.Status{Code: codes.Error, Description: "upstream reset — réinitialisé"},
		DroppedAttributes:    3,
		DroppedEvents:        4,
		DroppedLinks:         5,
		Resource:             resourceA,
		InstrumentationScope: scopeFull,
	}
	var out []sdktrace.ReadOnlySpan
	out = append(out, full.Snapshot())

	type variant struct {
		res   *resource.Resource
		scope instrumentation.Scope
		kind  trace.SpanKind
		st    sdktrace.Status
	}
	variants := []variant{
		{resourceB, scopeName, trace.SpanKindClient, sdktrace.Status{Code: codes.Ok, Description: "ok but described"}},
		{nil, instrumentation.Scope{}, trace.SpanKindUnspecified, sdktrace.Status{Description: "unset, described"}},
		{resourceA2, scopeFull, trace.SpanKindInternal, sdktrace.Status{}},
		{resource.Empty(), scopeEmptyAttrs, trace.SpanKindProducer, sdktrace.Status{Code: codes.Error}},
		{resourceA, scopeName, trace.SpanKindConsumer, sdktrace.Status{Code: codes.Code(7), Description: "unknown code"}},
		{resourceB, instrumentation.Scope{}, trace.SpanKind(42), sdktrace.Status{Code: codes.Ok}},
		{resourceA, scopeFull, trace.SpanKindServer, sdktrace.Status{}},
		{nil, scopeName, trace.SpanKindClient, sdktrace.Status{}},
		{resourceB, scopeAttrsOnly, trace.SpanKindServer, sdktrace.Status{}},
	}
	for i, v := range variants {
		s := tracetest.SpanStub{
			Name:                 []string{"", "POST /orders", "名前付きスパン"}[i%3],
			SpanContext:          spanCtx(byte(0x10+i), byte(0x20+i), trace.TraceFlags(i%2), false, ""),
			SpanKind:             v.kind,
			StartTime:            t0.Add(time.Duration(i) * time.Second),
			EndTime:              t0.Add(time.Duration(i)*time.Second + time.Microsecond),
			Attributes:           allAttributes()[i : i+3],
			Status:               v.st,
			Resource:             v.res,
			InstrumentationScope: v.scope,
		}
		switch i % 3 {
		case 0: // a local parent
			s.Parent = spanCtx(byte(0x10+i), 0x77, trace.FlagsSampled, false, "")
		case 1: // a remote parent with a trace state
			s.Parent = spanCtx(byte(0x10+i), 0x66, trace.FlagsSampled, true, "p=q")
			s.SpanContext = spanCtx(byte(0x10+i), byte(0x20+i), trace.FlagsSampled, false, "a=1")
		}
		if v.scope.Name == "" && v.scope.Version == "" && v.scope.SchemaURL == "" {
			out = append(out, withScope{s.Snapshot(), v.scope})
		} else {
			out = append(out, s.Snapshot())
		}
	}

	// Odd values: zero ids and times, negative and huge dropped counts.
	out = append(out, tracetest.SpanStub{
		DroppedAttributes: -1,
		DroppedEvents:     math.MaxInt64,
		DroppedLinks:      math.MaxUint32 + 1,
		Resource:          resourceA,
	}.Snapshot())
	return out
}

// officialRequests exports spans with otlptracehttp to a local receiver
// and returns what it received.
func officialRequests(t *testing.T, spans []sdktrace.ReadOnlySpan) []*coltracepb.ExportTraceServiceRequest {
	t.Helper()
	rcv := startCapture(t, nil)
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(rcv.url+"/v1/traces"),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	exportAndShutdown(t, exp, spans)
	return rcv.requests(t)
}

// unmarshalRequest decodes an ExportTraceServiceRequest.
func unmarshalRequest(t testing.TB, b []byte) *coltracepb.ExportTraceServiceRequest {
	t.Helper()
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return &req
}

// sortResources sorts a request's ResourceSpans by resource, since
// tracetransform's order is random.
func sortResources(t *testing.T, req *coltracepb.ExportTraceServiceRequest) {
	t.Helper()
	key := func(rs *tracepb.ResourceSpans) []byte {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(rs.GetResource())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	slices.SortFunc(req.ResourceSpans, func(a, b *tracepb.ResourceSpans) int { return bytes.Compare(key(a), key(b)) })
}

// takeLinkTraceStates clears the trace state of every link in req, which
// tracetransform leaves out, and returns them in order.
func takeLinkTraceStates(req *coltracepb.ExportTraceServiceRequest) []string {
	var out []string
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				for _, l := range s.GetLinks() {
					out = append(out, l.GetTraceState())
					l.TraceState = ""
				}
			}
		}
	}
	return out
}

// assertSameAsOfficial checks that ours carries what the official
// exporter sent (official) for the same spans, plus the links' trace
// states wantLinkStates.
func assertSameAsOfficial(t *testing.T, ours, official *coltracepb.ExportTraceServiceRequest, wantLinkStates []string) {
	t.Helper()
	if got := takeLinkTraceStates(ours); !slices.Equal(got, wantLinkStates) {
		t.Errorf("link trace states %q, want %q", got, wantLinkStates)
	}
	sortResources(t, ours)
	sortResources(t, official)
	if !proto.Equal(ours, official) {
		t.Errorf("request differs from otlptracehttp's:\n%s", diffProto(ours, official))
	}
}

// diffProto describes how two messages differ: the first differing line
// of their text forms, with some context.
func diffProto(got, want proto.Message) string {
	g := strings.Split(prototext.Format(got), "\n")
	w := strings.Split(prototext.Format(want), "\n")
	i := 0
	for i < len(g) && i < len(w) && g[i] == w[i] {
		i++
	}
	from := max(0, i-8)
	return fmt.Sprintf("at line %d\ngot:\n%s\nwant:\n%s",
		i+1, strings.Join(g[from:min(len(g), i+4)], "\n"), strings.Join(w[from:min(len(w), i+4)], "\n"))
}

// linkTraceStates returns the trace state of every link of spans, in the
// order the encoder writes them: resource by resource, scope by scope.
func linkTraceStates(t *testing.T, spans []sdktrace.ReadOnlySpan) []string {
	t.Helper()
	var enc traceEncoder
	req := unmarshalRequest(t, enc.appendTraceRequest(nil, spans))
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s != nil {
			byID[s.SpanContext().SpanID().String()] = s
		}
	}
	var out []string
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, ps := range ss.GetSpans() {
				for _, l := range byID[hex.EncodeToString(ps.GetSpanId())].Links() {
					out = append(out, l.SpanContext.TraceState().String())
				}
			}
		}
	}
	return out
}

// hugeSpan returns a span with an attribute of n bytes: every length
// prefix around it outgrows the room reserved for it.
func hugeSpan(n int) sdktrace.ReadOnlySpan {
	return tracetest.SpanStub{
		Name:        "huge",
		SpanContext: spanCtx(0x31, 0x32, trace.FlagsSampled, false, ""),
		Attributes:  []attribute.KeyValue{attribute.String("big", strings.Repeat("b", n))},
		Events:      []sdktrace.Event{{Name: "big", Attributes: []attribute.KeyValue{attribute.String("big", strings.Repeat("e", 200))}}},
		Resource:    resourceB,
	}.Snapshot()
}

func TestTraceEncoderMatchesTracetransform(t *testing.T) {
	spans := variedSpans()
	reversed := slices.Clone(spans)
	slices.Reverse(reversed)
	cases := []struct {
		name  string
		spans []sdktrace.ReadOnlySpan
	}{
		{"varied", spans},
		{"reversed", reversed},
		{"one full span", spans[:1]},
		{"one minimal span", spans[len(spans)-1:]}, // shorter than the room reserved
		{"nil spans skipped", []sdktrace.ReadOnlySpan{nil, spans[3], nil, spans[1]}},
		{"huge attribute", []sdktrace.ReadOnlySpan{hugeSpan(3 << 20), spans[2]}},
		{"spans of 1 MiB in a group above 2 MiB", []sdktrace.ReadOnlySpan{hugeSpan(1 << 20), spans[0], hugeSpan(1 << 20), hugeSpan(1 << 20)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := officialRequests(t, c.spans)
			if len(want) != 1 {
				t.Fatalf("official exporter sent %d requests", len(want))
			}
			var enc traceEncoder
			got := unmarshalRequest(t, enc.appendTraceRequest(nil, c.spans))
			assertSameAsOfficial(t, got, want[0], linkTraceStates(t, c.spans))
		})
	}
}

// TestTraceEncoderWritesTheExpectedMessage checks one small request against
// a message built by hand, independently of tracetransform, including the
// trace state of links.
func TestTraceEncoderWritesTheExpectedMessage(t *testing.T) {
	t0 := time.Unix(1700000000, 5)
	span := tracetest.SpanStub{
		Name:                 "op",
		SpanContext:          spanCtx(1, 2, trace.FlagsSampled, false, "k=v,k2=v2"),
		Parent:               spanCtx(1, 3, trace.FlagsSampled, true, ""),
		SpanKind:             trace.SpanKindClient,
		StartTime:            t0,
		EndTime:              t0.Add(time.Second),
		Attributes:           []attribute.KeyValue{attribute.Int64("zero", 0), attribute.StringSlice("s", []string{"", "é"})},
		Events:               []sdktrace.Event{{Name: "e", Time: t0, DroppedAttributeCount: 1}},
		Links:                []sdktrace.Link{{SpanContext: spanCtx(4, 5, 0, false, "lk=lv")}},
		Status:               sdktrace.Status{Code: codes.Error, Description: "boom"},
		Resource:             resource.NewWithAttributes("https://schema", attribute.Bool("r", false)),
		InstrumentationScope: instrumentation.Scope{Name: "s", Version: "v"},
	}.Snapshot()
	id := func(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }
	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	want := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			{Key: "r", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{}}},
		}},
		SchemaUrl: "https://schema",
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "s", Version: "v"},
			Spans: []*tracepb.Span{{
				TraceId: id(1, 16), SpanId: id(2, 8), ParentSpanId: id(3, 8), TraceState: "k=v,k2=v2",
				Flags: 0x301, Name: "op", Kind: tracepb.Span_SPAN_KIND_CLIENT,
				StartTimeUnixNano: uint64(t0.UnixNano()), EndTimeUnixNano: uint64(t0.Add(time.Second).UnixNano()),
				Attributes: []*commonpb.KeyValue{
					{Key: "zero", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{}}},
					{Key: "s", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{
						Values: []*commonpb.AnyValue{str(""), str("é")},
					}}}},
				},
				Events: []*tracepb.Span_Event{{TimeUnixNano: uint64(t0.UnixNano()), Name: "e", DroppedAttributesCount: 1}},
				Links:  []*tracepb.Span_Link{{TraceId: id(4, 16), SpanId: id(5, 8), TraceState: "lk=lv", Flags: 0x100}},
				Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "boom"},
			}},
		}},
	}}}
	var enc traceEncoder
	b := enc.appendTraceRequest([]byte("prefix"), []sdktrace.ReadOnlySpan{span})
	if !bytes.HasPrefix(b, []byte("prefix")) {
		t.Fatal("dst overwritten")
	}
	if got := unmarshalRequest(t, b[len("prefix"):]); !proto.Equal(got, want) {
		t.Errorf("%s", diffProto(got, want))
	}
	// The same bytes as proto.Marshal: fields in order, minimal varints,
	// zero values left out (except oneof members and messages).
	if m, err := proto.Marshal(want); err != nil || !bytes.Equal(m, b[len("prefix"):]) {
		t.Errorf("not proto.Marshal's bytes (%v)", err)
	}
	if b := enc.appendTraceRequest([]byte("x"), []sdktrace.ReadOnlySpan{nil}); string(b) != "x" {
		t.Errorf("no spans: %q, want dst unchanged", b)
	}
}

// TestTraceEncoderKeepsFirstSeenOrder checks that resources, scopes and
// spans come in the order they first appear in the batch.
func TestTraceEncoderKeepsFirstSeenOrder(t *testing.T) {
	mk := func(name string, res *resource.Resource, scope instrumentation.Scope) sdktrace.ReadOnlySpan {
		return tracetest.SpanStub{Name: name, Resource: res, InstrumentationScope: scope}.Snapshot()
	}
	spans := []sdktrace.ReadOnlySpan{
		mk("b1", resourceB, scopeName),
		mk("a1", resourceA, scopeFull),
		mk("b2", resourceB, scopeFull),
		mk("a2", resourceA2, scopeFull), // resourceA's attributes
		mk("b3", resourceB, scopeName),
	}
	var enc traceEncoder
	for range 2 { // the second time with the scratch space of the first
		req := unmarshalRequest(t, enc.appendTraceRequest(nil, spans))
		var got []string
		for _, rs := range req.GetResourceSpans() {
			got = append(got, "resource "+rs.GetSchemaUrl())
			for _, ss := range rs.GetScopeSpans() {
				got = append(got, "scope "+ss.GetScope().GetName())
				for _, s := range ss.GetSpans() {
					got = append(got, s.GetName())
				}
			}
		}
		want := []string{
			"resource ", "scope 名前", "b1", "b3", "scope vantage/proxy", "b2",
			"resource https://opentelemetry.io/schemas/1.26.0", "scope vantage/proxy", "a1", "a2",
		}
		if !slices.Equal(got, want) {
			t.Errorf("order\n%q\nwant\n%q", got, want)
		}
	}
}

// TestTraceEncoderAllocatesNothing checks that encoding spans with
// scalar attributes into a buffer with room allocates nothing, and that
// the encoder keeps no reference to the spans afterwards.
func TestTraceEncoderAllocatesNothing(t *testing.T) {
	spans := benchSpans(64, 20)
	// Another resource and scope, trace states, events and links.
	scalar := slices.DeleteFunc(allAttributes(), func(kv attribute.KeyValue) bool {
		switch kv.Value.Type() {
		case attribute.BOOL, attribute.INT64, attribute.FLOAT64, attribute.STRING, attribute.EMPTY:
			return false
		}
		return true // the attribute API copies these values out
	})
	full := tracetest.SpanStubFromReadOnlySpan(variedSpans()[0])
	full.Attributes = scalar
	full.Events = []sdktrace.Event{{Name: "e", Time: time.Now(), Attributes: scalar}}
	full.Links[0].Attributes = scalar
	full.InstrumentationScope = scopeName // scopeFull has a slice attribute
	spans = append(spans, full.Snapshot())

	var enc traceEncoder
	buf := enc.appendTraceRequest(nil, spans)
	if allocs := testing.AllocsPerRun(20, func() { buf = enc.appendTraceRequest(buf[:0], spans) }); allocs != 0 {
		t.Errorf("%v allocations per batch", allocs)
	}
	for _, s := range enc.order[:cap(enc.order)] {
		if s != nil {
			t.Fatal("the encoder keeps references to spans")
		}
	}
	if len(enc.groups) != 0 || len(enc.index) != 0 {
		t.Error("the encoder keeps its groups")
	}
}

// TestEndFieldMovesContent checks length prefixes around the sizes where
// their varint grows, for each room reserved.
func TestEndFieldMovesContent(t *testing.T) {
	for _, reserve := range []int{reserveSmall, reserveSpan, reserveGroup} {
		for _, n := range []int{0, 1, 127, 128, 200, 16383, 16384, 1<<21 - 1, 1 << 21} {
			content := bytes.Repeat([]byte{'c'}, n)
			b, start := beginField([]byte("head"), 7, reserve)
			b = endField(append(b, content...), start, reserve)
			want := protowire.AppendBytes(protowire.AppendTag([]byte("head"), 7, protowire.BytesType), content)
			if !bytes.Equal(b, want) {
				t.Errorf("reserve %d, %d bytes: wrong encoding", reserve, n)
			}
		}
	}
}

func TestParseExportResponse(t *testing.T) {
	marshal := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	partial := marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 12, ErrorMessage: "quota ✗"}})
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 5)
	unknown = protowire.AppendString(protowire.AppendTag(unknown, 10, protowire.BytesType), "x")
	later := marshal(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 1}})
	for _, tc := range []struct {
		name     string
		in       []byte
		rejected int64
		msg      string
		wantErr  bool
	}{
		{"empty", nil, 0, "", false},
		{"partial", partial, 12, "quota ✗", false},
		{"unknown fields", append(append(slices.Clone(unknown), partial...), unknown...), 12, "quota ✗", false},
		{"merged", append(slices.Clone(partial), later...), 1, "quota ✗", false},
		{"truncated", partial[:len(partial)-2], 0, "", true},
		{"bad tag", []byte{0xff}, 0, "", true},
	} {
		rejected, msg, err := parseExportResponse(tc.in)
		if rejected != tc.rejected || msg != tc.msg || (err != nil) != tc.wantErr {
			t.Errorf("%s: %d %q %v", tc.name, rejected, msg, err)
		}
		if err != nil && !errors.Is(err, errMalformedResponse) {
			t.Errorf("%s: %v is not errMalformedResponse", tc.name, err)
		}
	}
}

// exportAndShutdown sends spans through exp once and shuts it down.
func exportAndShutdown(t *testing.T, exp sdktrace.SpanExporter, spans []sdktrace.ReadOnlySpan) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := exp.ExportSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
