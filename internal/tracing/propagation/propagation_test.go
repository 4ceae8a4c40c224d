package propagation

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/textproto"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	otelprop "go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

var allFormats = []string{"tracecontext", "baggage", "b3", "jaeger", "datadog", "ottrace"}

func mustNew(t testing.TB, extract, inject []string) *Propagators {
	t.Helper()
	p, err := New(extract, inject)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

const (
	tid128 = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid    = "00f067aa0ba902b7"
	tid64  = "a3ce929d0e0e4736"
)

func TestExtract(t *testing.T) {
	ddLow := strconv.FormatUint(0xa3ce929d0e0e4736, 10)
	ddSpan := strconv.FormatUint(0x00f067aa0ba902b7, 10)
	cases := []struct {
		name     string
		h        http.Header
		extract  []string
		format   string // "" = nothing found
		traceID  string
		sampled  bool
		deferred bool
	}{
		{"w3c sampled", hdr("traceparent", "00-"+tid128+"-"+sid+"-01"), allFormats, "tracecontext", tid128, true, false},
		{"w3c not sampled", hdr("traceparent", "00-"+tid128+"-"+sid+"-00"), allFormats, "tracecontext", tid128, false, false},
		{"w3c upper-case hex", hdr("traceparent", "00-"+strings.ToUpper(tid128)+"-"+sid+"-01"), allFormats, "", "", false, false},
		{"w3c zero trace id", hdr("traceparent", "00-00000000000000000000000000000000-"+sid+"-01"), allFormats, "", "", false, false},
		{"w3c zero span id", hdr("traceparent", "00-"+tid128+"-0000000000000000-01"), allFormats, "", "", false, false},
		{"w3c short trace id", hdr("traceparent", "00-"+tid64+"-"+sid+"-01"), allFormats, "", "", false, false},
		{"w3c version ff", hdr("traceparent", "ff-"+tid128+"-"+sid+"-01"), allFormats, "", "", false, false},
		{"w3c future version with extra field", hdr("traceparent", "cc-"+tid128+"-"+sid+"-01-what-the-future-holds"), allFormats, "tracecontext", tid128, true, false},
		{"w3c version 00 with extra field", hdr("traceparent", "00-"+tid128+"-"+sid+"-01-extra"), allFormats, "", "", false, false},
		{"w3c duplicate traceparent", hdr("traceparent", "00-"+tid128+"-"+sid+"-01", "traceparent", "00-"+tid128+"-"+sid+"-00"), allFormats, "", "", false, false},
		{"w3c duplicate falls back to b3", hdr("traceparent", "00-"+tid128+"-"+sid+"-01", "traceparent", "00-"+tid128+"-"+sid+"-00", "b3", tid64+"-"+sid+"-1"), allFormats, "b3", "0000000000000000" + tid64, true, false},
		{"b3 single 64-bit", hdr("b3", tid64+"-"+sid+"-1"), allFormats, "b3", "0000000000000000" + tid64, true, false},
		{"b3 single deferred", hdr("b3", tid128+"-"+sid), allFormats, "b3", tid128, false, true},
		{"b3 single debug", hdr("b3", tid128+"-"+sid+"-d"), allFormats, "b3", tid128, true, false},
		{"b3 single bad sampling", hdr("b3", tid128+"-"+sid+"-x"), allFormats, "", "", false, false},
		{"b3 multi", hdr("X-B3-TraceId", tid128, "X-B3-SpanId", sid, "X-B3-Sampled", "1"), allFormats, "b3", tid128, true, false},
		{"b3 multi deferred", hdr("X-B3-TraceId", tid128, "X-B3-SpanId", sid), allFormats, "b3", tid128, false, true},
		{"b3 multi missing span", hdr("X-B3-TraceId", tid128, "X-B3-Sampled", "1"), allFormats, "", "", false, false},
		{"jaeger", hdr("uber-trace-id", tid128+":"+sid+":0:1"), allFormats, "jaeger", tid128, true, false},
		{"jaeger short ids padded", hdr("uber-trace-id", "abc:def:0:0"), allFormats, "jaeger", "00000000000000000000000000000abc", false, false},
		{"jaeger url-encoded", hdr("uber-trace-id", tid128+"%3A"+sid+"%3A0%3A1"), allFormats, "jaeger", tid128, true, false},
		{"jaeger three parts", hdr("uber-trace-id", tid128+":"+sid+":1"), allFormats, "", "", false, false},
		{"datadog 64-bit", hdr("x-datadog-trace-id", ddLow, "x-datadog-parent-id", ddSpan, "x-datadog-sampling-priority", "2"), allFormats, "datadog", "0000000000000000" + tid64, true, false},
		{"datadog 128-bit", hdr("x-datadog-trace-id", ddLow, "x-datadog-parent-id", ddSpan, "x-datadog-sampling-priority", "1", "x-datadog-tags", "_dd.p.dm=-4,_dd.p.tid=4bf92f3577b34da6"), allFormats, "datadog", tid128, true, false},
		{"datadog reject", hdr("x-datadog-trace-id", ddLow, "x-datadog-parent-id", ddSpan, "x-datadog-sampling-priority", "-1"), allFormats, "datadog", "0000000000000000" + tid64, false, false},
		{"datadog no priority", hdr("x-datadog-trace-id", ddLow, "x-datadog-parent-id", ddSpan), allFormats, "datadog", "0000000000000000" + tid64, false, true},
		{"datadog bad tid ignored", hdr("x-datadog-trace-id", ddLow, "x-datadog-parent-id", ddSpan, "x-datadog-sampling-priority", "1", "x-datadog-tags", "_dd.p.tid=XYZ"), allFormats, "datadog", "0000000000000000" + tid64, true, false},
		{"datadog zero trace id", hdr("x-datadog-trace-id", "0", "x-datadog-parent-id", ddSpan), allFormats, "", "", false, false},
		{"datadog hex id", hdr("x-datadog-trace-id", tid64, "x-datadog-parent-id", ddSpan), allFormats, "", "", false, false},
		{"datadog overflow", hdr("x-datadog-trace-id", "18446744073709551616", "x-datadog-parent-id", ddSpan), allFormats, "", "", false, false},
		{"ot 64-bit", hdr("ot-tracer-traceid", tid64, "ot-tracer-spanid", sid, "ot-tracer-sampled", "true"), allFormats, "ottrace", "0000000000000000" + tid64, true, false},
		{"ot deferred", hdr("ot-tracer-traceid", tid128, "ot-tracer-spanid", sid), allFormats, "ottrace", tid128, false, true},
		{"order: b3 before w3c", hdr("traceparent", "00-"+tid128+"-"+sid+"-00", "b3", tid64+"-"+sid+"-1"), []string{"b3", "tracecontext"}, "b3", "0000000000000000" + tid64, true, false},
		{"order: w3c before b3", hdr("traceparent", "00-"+tid128+"-"+sid+"-00", "b3", tid64+"-"+sid+"-1"), []string{"tracecontext", "b3"}, "tracecontext", tid128, false, false},
		{"format not extracted", hdr("uber-trace-id", tid128+":"+sid+":0:1"), []string{"tracecontext"}, "", "", false, false},
		{"nothing", hdr("accept", "*/*"), allFormats, "", "", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex := mustNew(t, tc.extract, nil).Extract(tc.h)
			if ex.Format != tc.format {
				t.Fatalf("format = %q, want %q (sc %v)", ex.Format, tc.format, ex.SpanContext)
			}
			if tc.format == "" {
				if ex.Found() {
					t.Fatalf("found %v, want nothing", ex.SpanContext)
				}
				return
			}
			if got := ex.SpanContext.TraceID().String(); got != tc.traceID {
				t.Errorf("trace id = %s, want %s", got, tc.traceID)
			}
			if ex.SpanContext.IsSampled() != tc.sampled || ex.Deferred != tc.deferred {
				t.Errorf("sampled %v deferred %v, want %v %v", ex.SpanContext.IsSampled(), ex.Deferred, tc.sampled, tc.deferred)
			}
			if !ex.SpanContext.IsRemote() {
				t.Error("span context not remote")
			}
		})
	}
}

func TestTraceStateTruncation(t *testing.T) {
	var members []string
	members = append(members, "big="+strings.Repeat("x", 200))
	for i := 0; i < 31; i++ {
		members = append(members, fmt.Sprintf("vendor%02d=%s", i, strings.Repeat("v", 20)))
	}
	h := hdr("traceparent", "00-"+tid128+"-"+sid+"-01", "tracestate", strings.Join(members, ","))
	ex := mustNew(t, allFormats, nil).Extract(h)
	ts := ex.SpanContext.TraceState()
	if n := len(ts.String()); n > MaxTraceStateLen || n == 0 {
		t.Fatalf("tracestate length %d", n)
	}
	if ts.Get("big") != "" {
		t.Error("the >128-char member was kept")
	}
	if ts.Get("vendor00") == "" {
		t.Error("the left-most members must be kept")
	}

	// Over 32 members is invalid as a whole: traceparent still counts.
	members = members[:0]
	for i := 0; i < 40; i++ {
		members = append(members, fmt.Sprintf("k%d=v", i))
	}
	h = hdr("traceparent", "00-"+tid128+"-"+sid+"-01", "tracestate", strings.Join(members, ","))
	ex = mustNew(t, allFormats, nil).Extract(h)
	if !ex.Found() || ex.SpanContext.TraceState().Len() != 0 {
		t.Fatalf("found %v tracestate %q", ex.Found(), ex.SpanContext.TraceState())
	}

	// Repeated tracestate headers are combined.
	h = hdr("traceparent", "00-"+tid128+"-"+sid+"-01", "tracestate", "a=1", "tracestate", "b=2")
	ex = mustNew(t, allFormats, nil).Extract(h)
	if got := ex.SpanContext.TraceState().String(); got != "a=1,b=2" {
		t.Fatalf("tracestate = %q", got)
	}
}

func TestBaggageExtract(t *testing.T) {
	h := hdr("baggage", "tenant=acme,bad member", "uberctx-user", "alice%20b", "ot-baggage-region", "eu", "traceparent", "00-"+tid128+"-"+sid+"-01")
	ex := mustNew(t, allFormats, nil).Extract(h)
	if got := ex.Baggage.Member("tenant").Value(); got != "acme" {
		t.Errorf("tenant = %q", got)
	}
	if got := ex.Baggage.Member("user").Value(); got != "alice b" {
		t.Errorf("user = %q", got)
	}
	if got := ex.Baggage.Member("region").Value(); got != "eu" {
		t.Errorf("region = %q", got)
	}
	if ex.Present&PrefixedBaggage == 0 {
		t.Error("PrefixedBaggage not set")
	}
	// Without jaeger/ottrace in the extract list, prefixed baggage is not read
	// but its presence is still noted (so it is removed).
	ex = mustNew(t, []string{"tracecontext", "baggage"}, nil).Extract(h)
	if ex.Baggage.Len() != 1 || ex.Present&PrefixedBaggage == 0 {
		t.Errorf("baggage %v present %b", ex.Baggage, ex.Present)
	}
	// Many prefixed members are capped.
	h = http.Header{}
	for i := 0; i < 200; i++ {
		h.Set(fmt.Sprintf("uberctx-k%d", i), "v")
	}
	ex = mustNew(t, allFormats, nil).Extract(h)
	if n := ex.Baggage.Len(); n == 0 || n > MaxPrefixedBaggage {
		t.Errorf("baggage members = %d", n)
	}
}

func spanCtx(t testing.TB, traceID, spanID string, sampled bool) trace.SpanContext {
	t.Helper()
	tid, err := trace.TraceIDFromHex(traceID)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := trace.SpanIDFromHex(spanID)
	if err != nil {
		t.Fatal(err)
	}
	cfg := trace.SpanContextConfig{TraceID: tid, SpanID: sp}
	if sampled {
		cfg.TraceFlags = trace.FlagsSampled
	}
	return trace.NewSpanContext(cfg)
}

func TestInjectEveryFormat(t *testing.T) {
	inject := []string{"tracecontext", "baggage", "b3", "b3multi", "jaeger", "datadog", "ottrace"}
	p := mustNew(t, allFormats, inject)
	bag, _ := baggage.Parse("tenant=acme")
	sc := spanCtx(t, tid128, sid, true)
	h := hdr("Traceparent", "00-11111111111111111111111111111111-1111111111111111-00", "X-B3-Sampled", "0",
		"Uberctx-Old", "x", "Ot-Baggage-Old", "y", "X-Datadog-Origin", "synthetics", "Accept", "*/*")
	p.RemoveStale(h, AllHeaders)
	p.Inject(h, sc, bag)
	want := map[string]string{
		"Traceparent":                 "00-" + tid128 + "-" + sid + "-01",
		"Baggage":                     "tenant=acme",
		"B3":                          tid128 + "-" + sid + "-1",
		"X-B3-Traceid":                tid128,
		"X-B3-Spanid":                 sid,
		"X-B3-Sampled":                "1",
		"Uber-Trace-Id":               tid128 + ":" + sid + ":0:1",
		"Uberctx-Tenant":              "acme",
		"X-Datadog-Trace-Id":          strconv.FormatUint(0xa3ce929d0e0e4736, 10),
		"X-Datadog-Parent-Id":         strconv.FormatUint(0x00f067aa0ba902b7, 10),
		"X-Datadog-Sampling-Priority": "1",
		"X-Datadog-Tags":              "_dd.p.tid=4bf92f3577b34da6",
		"Ot-Tracer-Traceid":           tid64,
		"Ot-Tracer-Spanid":            sid,
		"Ot-Tracer-Sampled":           "true",
		"Ot-Baggage-Tenant":           "acme",
		"Accept":                      "*/*",
	}
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for k := range h {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected header %s: %q", k, h[k])
		}
	}
	checkOutgoing(t, h, sc)

	// 64-bit trace ids: no _dd.p.tid, OpenTracing keeps all of it.
	h = http.Header{}
	sc64 := spanCtx(t, "0000000000000000"+tid64, sid, false)
	p.Inject(h, sc64, baggage.Baggage{})
	if h.Get("X-Datadog-Tags") != "" || h.Get("Ot-Tracer-Traceid") != tid64 || h.Get("X-Datadog-Sampling-Priority") != "0" || h.Get("B3") != "0000000000000000"+tid64+"-"+sid+"-0" {
		t.Errorf("64-bit injection: %v", h)
	}
	checkOutgoing(t, h, sc64)
}

var (
	reTraceparent = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]$`)
	reB3Single    = regexp.MustCompile(`^[0-9a-f]{32}-[0-9a-f]{16}-[01d]$`)
	reHex32       = regexp.MustCompile(`^[0-9a-f]{32}$`)
	reHex16       = regexp.MustCompile(`^[0-9a-f]{16}$`)
	reUber        = regexp.MustCompile(`^[0-9a-f]{32}:[0-9a-f]{16}:0:[0-3]$`)
	reDecimal     = regexp.MustCompile(`^[1-9][0-9]{0,19}$`)
	reDDTags      = regexp.MustCompile(`^_dd\.p\.tid=[0-9a-f]{16}$`)
)

// checkOutgoing asserts that every trace header in h is well-formed, carries
// exactly sc, and has a single value; and that every header value is free of
// control characters.
func checkOutgoing(t testing.TB, h http.Header, sc trace.SpanContext) {
	t.Helper()
	for k, vs := range h {
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if v[i] < 0x20 && v[i] != '\t' || v[i] == 0x7f {
					t.Fatalf("header %s has a control character: %q", k, v)
				}
			}
		}
	}
	one := func(k string) (string, bool) {
		vs := h[k]
		if len(vs) > 1 {
			t.Fatalf("header %s sent %d times: %q", k, len(vs), vs)
		}
		if len(vs) == 0 {
			return "", false
		}
		return vs[0], true
	}
	match := func(k string, re *regexp.Regexp) {
		if v, ok := one(k); ok && !re.MatchString(v) {
			t.Fatalf("invalid outgoing %s: %q", k, v)
		}
	}
	match("Traceparent", reTraceparent)
	match("B3", reB3Single)
	match("X-B3-Traceid", reHex32)
	match("X-B3-Spanid", reHex16)
	match("Uber-Trace-Id", reUber)
	match("X-Datadog-Trace-Id", reDecimal)
	match("X-Datadog-Parent-Id", reDecimal)
	match("X-Datadog-Tags", reDDTags)
	match("Ot-Tracer-Traceid", reHex16)
	match("Ot-Tracer-Spanid", reHex16)
	if v, ok := one("Tracestate"); ok {
		if len(v) > MaxTraceStateLen {
			t.Fatalf("tracestate too long: %d", len(v))
		}
		if _, err := trace.ParseTraceState(v); err != nil {
			t.Fatalf("invalid tracestate %q: %v", v, err)
		}
	}
	if v, ok := one("Baggage"); ok {
		if _, err := baggage.Parse(v); err != nil {
			t.Fatalf("invalid baggage %q: %v", v, err)
		}
	}
	// Whatever was injected must read back as sc (OpenTracing: low 64 bits).
	for _, f := range []string{"tracecontext", "b3", "jaeger", "datadog"} {
		back := mustNew(t, []string{f}, nil).Extract(h)
		if !back.Found() {
			continue
		}
		if back.SpanContext.TraceID() != sc.TraceID() || back.SpanContext.SpanID() != sc.SpanID() || back.SpanContext.IsSampled() != sc.IsSampled() {
			t.Fatalf("%s reads back %v, want %v", f, back.SpanContext, sc)
		}
	}
}

// flagVariants returns span contexts with distinct ids for every
// combination of the sampled and random flags, plus all flags set, with a
// tracestate on every other one.
func flagVariants() []trace.SpanContext {
	ts, _ := trace.ParseTraceState("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
	var scs []trace.SpanContext
	for i, flags := range []trace.TraceFlags{0, trace.FlagsSampled, trace.FlagsRandom, trace.FlagsSampled | trace.FlagsRandom, 0xff} {
		cfg := trace.SpanContextConfig{TraceFlags: flags}
		for j := range cfg.TraceID {
			cfg.TraceID[j] = byte(17*i + 31*j + 1)
		}
		for j := range cfg.SpanID {
			cfg.SpanID[j] = byte(7*i + 13*j + 1)
		}
		if i%2 == 1 {
			cfg.TraceState = ts
		}
		scs = append(scs, trace.NewSpanContext(cfg))
	}
	return scs
}

// TestFastTraceContextMatchesOpenTelemetry checks that the direct W3C
// injection writes exactly what the OpenTelemetry propagator writes.
func TestFastTraceContextMatchesOpenTelemetry(t *testing.T) {
	for _, sc := range flagVariants() {
		flags := sc.TraceFlags()
		want := http.Header{}
		otelprop.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), otelprop.HeaderCarrier(want))
		got := http.Header{}
		traceContext{}.injectHeader(got, sc, baggage.Baggage{})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("flags %v: got %v, OpenTelemetry writes %v", flags, got, want)
		}
	}
}

// parseFields reads header fields in wire form as a server would.
func parseFields(t testing.TB, b []byte) http.Header {
	t.Helper()
	if len(b) > 0 && !bytes.HasSuffix(b, []byte("\r\n")) {
		t.Fatalf("fields do not end a line: %q", b)
	}
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(b, "\r\n"...))))
	h, err := r.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("fields %q: %v", b, err)
	}
	return http.Header(h)
}

// checkFieldsMatchInject asserts that AppendFields writes the fields Inject
// sets, with the same canonical names and values, and nothing else.
func checkFieldsMatchInject(t testing.TB, p *Propagators, sc trace.SpanContext, bag baggage.Baggage) {
	t.Helper()
	want := http.Header{}
	p.Inject(want, sc, bag)
	b := p.AppendFields([]byte("X: y\r\n"), sc, bag)
	if !bytes.HasPrefix(b, []byte("X: y\r\n")) {
		t.Fatalf("AppendFields dropped dst: %q", b)
	}
	got := parseFields(t, b[len("X: y\r\n"):])
	// Baggage serializes its members in map order: compare them as sets.
	gotBag, wantBag := got.Values("Baggage"), want.Values("Baggage")
	if len(gotBag) != len(wantBag) || (len(gotBag) == 1 && !sameBaggage(t, gotBag[0], wantBag[0])) {
		t.Fatalf("AppendFields wrote baggage %q, Inject sets %q", gotBag, wantBag)
	}
	got.Del("Baggage")
	want.Del("Baggage")
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("AppendFields wrote %q, Inject sets %v", b, want)
	}
	for k := range got { // canonical names, as written
		if !bytes.Contains(b, []byte("\r\n"+k+": ")) {
			t.Fatalf("field %s not written in canonical form: %q", k, b)
		}
	}
}

func sameBaggage(t testing.TB, a, b string) bool {
	t.Helper()
	ba, err1 := baggage.Parse(a)
	bb, err2 := baggage.Parse(b)
	if err1 != nil || err2 != nil {
		t.Fatalf("baggage %q: %v; %q: %v", a, err1, b, err2)
	}
	members := func(bg baggage.Baggage) map[string]string {
		m := map[string]string{}
		for _, mb := range bg.Members() {
			m[mb.Key()] = mb.String()
		}
		return m
	}
	return reflect.DeepEqual(members(ba), members(bb))
}

func TestAppendFieldsMatchesInject(t *testing.T) {
	m1, _ := baggage.NewMemberRaw("user", "alice smith")
	m2, _ := baggage.NewMemberRaw("tenant", "a,b;c=d%")
	bag, _ := baggage.New(m1, m2)
	for _, inject := range [][]string{
		{"tracecontext"}, {"tracecontext", "baggage"}, {"baggage", "tracecontext"}, {"baggage"},
	} {
		p := mustNew(t, nil, inject)
		if !p.AppendsFields() {
			t.Fatalf("%v: AppendsFields false", inject)
		}
		for _, sc := range flagVariants() {
			checkFieldsMatchInject(t, p, sc, baggage.Baggage{})
			checkFieldsMatchInject(t, p, sc, bag)
		}
		if b := p.AppendFields(nil, trace.SpanContext{}, bag); len(b) != 0 {
			t.Errorf("%v: invalid span context wrote %q", inject, b)
		}
	}
	for _, inject := range [][]string{nil, {"b3"}, {"tracecontext", "b3multi"}, {"jaeger", "baggage"}, {"datadog"}, {"ottrace"}} {
		if mustNew(t, nil, inject).AppendsFields() {
			t.Errorf("%v: AppendsFields true, but not every format can be appended", inject)
		}
	}
}
