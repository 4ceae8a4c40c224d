package main

import (
	"encoding/hex"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// The fixture's ids. Trace B has a 64-bit id (its high half is zero),
// which Jaeger writes with 16 hex digits.
const (
	traceA = "5b8efff798038103d269b633813fc60c"
	traceB = "00000000000000007d5c8b6ee0c01e4f"
	absent = "0af7651916cd43dd8448eb211c80319c"
	// Trace C's resource has no service.name.
	traceC = "c0000000000000000000000000000001"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func i64(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

func f64(k string, v float64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v}}}
}

func boolean(k string, v bool) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v}}}
}

func bytesKV(k string, v []byte) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: v}}}
}

func anyStr(v string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}
}

func anyInt(v int64) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}
}

func array(k string, vs ...*commonpb.AnyValue) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: vs}}}}
}

func kvlist(k string, kvs ...*commonpb.KeyValue) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: kvs}}}}
}

func resource(kvs ...*commonpb.KeyValue) *resourcepb.Resource {
	return &resourcepb.Resource{Attributes: kvs}
}

// fixture is the request both servers receive: trace A over three
// services and four processes (two instances of cart), with CHILD_OF and
// FOLLOWS_FROM (link) references, events with attributes, every
// attribute type (string, bool, int, double, bytes, array, map), error
// and OK statuses, every span kind, resource attributes and several
// instrumentation scopes; and trace B, a 64-bit trace id over two
// services. Times are offsets from base, which should be a few minutes
// before now (the gateway's receiver refuses times far from its clock).
func fixture(base time.Time) *coltracepb.ExportTraceServiceRequest {
	ns := func(ms int) uint64 { return uint64(base.Add(time.Duration(ms) * time.Millisecond).UnixNano()) }
	span := func(trace, id, parent, name string, kind tracepb.Span_SpanKind, startMS, endMS int) *tracepb.Span {
		s := &tracepb.Span{
			TraceId: mustHex(trace), SpanId: mustHex(id), Name: name, Kind: kind,
			StartTimeUnixNano: ns(startMS), EndTimeUnixNano: ns(endMS), Flags: 1,
		}
		if parent != "" {
			s.ParentSpanId = mustHex(parent)
		}
		return s
	}

	root := span(traceA, "00f067aa0ba902b7", "", "GET /cart", tracepb.Span_SPAN_KIND_SERVER, 0, 42)
	root.TraceState = "congo=t61rcWkgMzE"
	root.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}
	root.Attributes = []*commonpb.KeyValue{
		str("http.request.method", "GET"),
		i64("http.response.status_code", 200),
		f64("sampling.ratio", 0.25),
		boolean("cache.hit", false),
		bytesKV("payload", []byte{0xde, 0xad, 0xbe, 0xef}),
		array("http.request.header.accept", anyStr("text/html"), anyStr("application/json")),
		array("retry.delays_ms", anyInt(10), anyInt(20)),
		kvlist("user", str("id", "u-17"), i64("tier", 2)),
		str("url.path", "/cart"),
		i64("big.id", 1<<60),        // beyond JavaScript's safe integers
		i64("small.id", -(1 << 55)), // and below them
		i64("offset", -3),
		str("empty", ""),
	}
	root.Events = []*tracepb.Span_Event{
		{TimeUnixNano: ns(1), Name: "cache.miss", Attributes: []*commonpb.KeyValue{str("cache.key", "cart:u-17"), i64("cache.size", 512), boolean("cache.cold", true)}},
		{TimeUnixNano: ns(40), Name: "response.written"},
		// Out of name order, and an event whose attributes name it.
		{TimeUnixNano: ns(41), Name: "flush", Attributes: []*commonpb.KeyValue{str("event", "flushed"), i64("bytes", 2048)}},
	}

	client := span(traceA, "00f067aa0ba902b8", "00f067aa0ba902b7", "GET cart", tracepb.Span_SPAN_KIND_CLIENT, 2, 38)
	client.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "upstream 503"}
	client.Attributes = []*commonpb.KeyValue{str("server.address", "cart"), i64("server.port", 8080), i64("http.request.resend_count", 1)}
	client.Events = []*tracepb.Span_Event{
		{TimeUnixNano: ns(9), Name: "retry", Attributes: []*commonpb.KeyValue{f64("vantage.value", 2), str("vantage.reason", "status_503")}},
	}
	client.Links = []*tracepb.Span_Link{{TraceId: mustHex(traceB), SpanId: mustHex("1000000000000001"), Attributes: []*commonpb.KeyValue{str("link.reason", "batch")}}}

	internal := span(traceA, "00f067aa0ba902ba", "00f067aa0ba902b7", "render", tracepb.Span_SPAN_KIND_INTERNAL, 39, 41)
	// SDK attributes on a span (Jaeger moves them to the process) and a
	// link to its own parent (which changes the parent reference's type).
	internal.Attributes = []*commonpb.KeyValue{str("telemetry.sdk.name", "opentelemetry"), str("template", "cart.html")}
	internal.Links = []*tracepb.Span_Link{{TraceId: mustHex(traceA), SpanId: mustHex("00f067aa0ba902b7")}}
	unspecified := span(traceA, "00f067aa0ba902bb", "00f067aa0ba902ba", "template.load", tracepb.Span_SPAN_KIND_UNSPECIFIED, 39, 40)

	load := span(traceA, "00f067aa0ba902b9", "00f067aa0ba902b8", "cart.load", tracepb.Span_SPAN_KIND_SERVER, 3, 20)
	load.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR}
	load.Attributes = []*commonpb.KeyValue{i64("db.rows", 3), str("db.system", "postgresql")}
	load.Events = []*tracepb.Span_Event{{TimeUnixNano: ns(13), Name: "exception", Attributes: []*commonpb.KeyValue{
		str("exception.type", "LockError"), str("exception.message", "row locked"), str("exception.stacktrace", "at cart.load\nat main"),
	}}}
	load.DroppedAttributesCount, load.DroppedEventsCount, load.DroppedLinksCount = 2, 1, 3

	retry := span(traceA, "00f067aa0ba902c1", "00f067aa0ba902b8", "cart.load", tracepb.Span_SPAN_KIND_SERVER, 21, 36)
	retry.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}
	retry.Attributes = []*commonpb.KeyValue{i64("db.rows", 3)}

	publish := span(traceA, "00f067aa0ba902c2", "00f067aa0ba902c1", "cart.updated publish", tracepb.Span_SPAN_KIND_PRODUCER, 30, 31)
	// A link that says it is a child_of reference (OpenTracing's bridge).
	publish.Links = []*tracepb.Span_Link{{TraceId: mustHex(traceA), SpanId: mustHex("00f067aa0ba902b9"), Attributes: []*commonpb.KeyValue{str("opentracing.ref_type", "child_of")}}}
	consume := span(traceA, "00f067aa0ba902c3", "00f067aa0ba902c2", "cart.updated process", tracepb.Span_SPAN_KIND_CONSUMER, 45, 60)
	consume.Attributes = []*commonpb.KeyValue{str("messaging.system", "kafka")}
	// A span of the same trace with no parent, only links: one to a span of
	// its own trace and one to trace B.
	audit := span(traceA, "00f067aa0ba902c4", "", "audit", tracepb.Span_SPAN_KIND_INTERNAL, 61, 65)
	audit.Links = []*tracepb.Span_Link{
		{TraceId: mustHex(traceA), SpanId: mustHex("00f067aa0ba902c3"), TraceState: "k=v"},
		{TraceId: mustHex(traceB), SpanId: mustHex("1000000000000002")},
	}

	bRoot := span(traceB, "1000000000000001", "", "POST /checkout", tracepb.Span_SPAN_KIND_SERVER, 100, 180)
	bRoot.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "payment declined"}
	bRoot.Attributes = []*commonpb.KeyValue{str("http.request.method", "POST"), i64("http.response.status_code", 502)}
	bChild := span(traceB, "1000000000000002", "1000000000000001", "cart.checkout", tracepb.Span_SPAN_KIND_SERVER, 110, 170)

	anonymous := span(traceC, "c000000000000001", "", "tick", tracepb.Span_SPAN_KIND_INTERNAL, 200, 201)
	anonymous.Status = &tracepb.Status{Message: "a message without a code"}

	frontendScope := &commonpb.InstrumentationScope{Name: "frontend-lib", Version: "1.2.0"}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{
		{
			Resource: resource(str("service.name", "frontend"), str("host.name", "web-1"), i64("process.pid", 4242),
				array("process.command_args", anyStr("frontend"), anyStr("--port=8080")), str("telemetry.sdk.language", "go")),
			ScopeSpans: []*tracepb.ScopeSpans{
				{Scope: frontendScope, Spans: []*tracepb.Span{root, client}},
				{Scope: &commonpb.InstrumentationScope{Name: "render"}, Spans: []*tracepb.Span{internal, unspecified}},
			},
		},
		{
			Resource:   resource(str("service.name", "cart"), str("host.name", "cart-1"), str("k8s.namespace.name", "shop")),
			ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "cart", Version: "0.9.1"}, Spans: []*tracepb.Span{load}}},
		},
		{
			Resource:   resource(str("service.name", "cart"), str("host.name", "cart-2"), str("k8s.namespace.name", "shop")),
			ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "cart", Version: "0.9.1"}, Spans: []*tracepb.Span{retry, publish}}},
		},
		{
			Resource:   resource(str("service.name", "worker"), f64("worker.capacity", 0.75), boolean("worker.spot", true)),
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{consume, audit}}},
		},
		{
			Resource:   resource(str("service.name", "frontend"), str("host.name", "web-1"), i64("process.pid", 4242), array("process.command_args", anyStr("frontend"), anyStr("--port=8080")), str("telemetry.sdk.language", "go")),
			ScopeSpans: []*tracepb.ScopeSpans{{Scope: frontendScope, Spans: []*tracepb.Span{bRoot}}},
		},
		{
			Resource:   resource(str("service.name", "cart"), str("host.name", "cart-1"), str("k8s.namespace.name", "shop")),
			ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "cart", Version: "0.9.1"}, Spans: []*tracepb.Span{bChild}}},
		},
		{
			Resource:   resource(str("host.name", "cron-1")),
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{anonymous}}},
		},
	}}
}
