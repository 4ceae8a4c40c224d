package propagation

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/baggage"
	otelprop "go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Datadog propagates trace context in Datadog's x-datadog-* headers:
//
//	x-datadog-trace-id:          low 64 bits of the trace id, decimal
//	x-datadog-parent-id:         span id, decimal
//	x-datadog-sampling-priority: <= 0 not sampled, >= 1 sampled; absent: no decision
//	x-datadog-tags:              comma-separated k=v; _dd.p.tid=<16 hex> holds
//	                             the high 64 bits of a 128-bit trace id
//
// A 64-bit incoming id becomes a 128-bit trace id with zero high bits, as
// in W3C and B3. Malformed ids, zero ids and a malformed _dd.p.tid are
// rejected (the tid alone is ignored, keeping the 64-bit id). Other tags
// and x-datadog-origin are not propagated. A trace id whose low 64 bits are
// zero cannot be written (Datadog ids are never zero) and is not injected.
// It is safe for concurrent use.
type Datadog struct{}

var _ otelprop.TextMapPropagator = Datadog{}

// maxDatadogTagsLen is the x-datadog-tags length Datadog's tracers accept;
// longer values are ignored, as they do.
const maxDatadogTagsLen = 512

// Inject writes sc from ctx as x-datadog-* headers.
func (d Datadog) Inject(ctx context.Context, carrier otelprop.TextMapCarrier) {
	d.write(carrier, trace.SpanContextFromContext(ctx))
}

func (d Datadog) injectHeader(h http.Header, sc trace.SpanContext, _ baggage.Baggage) {
	d.write(Carrier(h), sc)
}

func (Datadog) write(carrier otelprop.TextMapCarrier, sc trace.SpanContext) {
	if !sc.IsValid() {
		return
	}
	tid := sc.TraceID()
	sid := sc.SpanID()
	if binary.BigEndian.Uint64(tid[8:]) == 0 {
		// Datadog ids must not be zero: a 128-bit id with a zero low half
		// cannot be carried, so the upstream starts its own trace.
		return
	}
	carrier.Set("x-datadog-trace-id", strconv.FormatUint(binary.BigEndian.Uint64(tid[8:]), 10))
	carrier.Set("x-datadog-parent-id", strconv.FormatUint(binary.BigEndian.Uint64(sid[:]), 10))
	if sc.IsSampled() {
		carrier.Set("x-datadog-sampling-priority", "1")
	} else {
		carrier.Set("x-datadog-sampling-priority", "0")
	}
	if high := binary.BigEndian.Uint64(tid[:8]); high != 0 {
		var buf [len("_dd.p.tid=") + 16]byte
		n := copy(buf[:], "_dd.p.tid=")
		hex.Encode(buf[n:], tid[:8])
		carrier.Set("x-datadog-tags", string(buf[:]))
	}
}

// Extract reads x-datadog-* headers into a remote span context in ctx. ctx
// is returned unchanged when they hold no valid context.
func (d Datadog) Extract(ctx context.Context, carrier otelprop.TextMapCarrier) context.Context {
	sc, _ := d.extract(carrier)
	if !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// Fields returns the header keys Inject sets.
func (Datadog) Fields() []string {
	return []string{"x-datadog-trace-id", "x-datadog-parent-id", "x-datadog-sampling-priority", "x-datadog-tags"}
}

// extract parses the headers; deferred reports a valid context without a
// sampling decision.
func (Datadog) extract(carrier otelprop.TextMapCarrier) (sc trace.SpanContext, deferred bool) {
	low, ok := parseDecimalID(carrier.Get("x-datadog-trace-id"))
	if !ok {
		return trace.SpanContext{}, false
	}
	parent, ok := parseDecimalID(carrier.Get("x-datadog-parent-id"))
	if !ok {
		return trace.SpanContext{}, false
	}
	var cfg trace.SpanContextConfig
	binary.BigEndian.PutUint64(cfg.TraceID[8:], low)
	binary.BigEndian.PutUint64(cfg.SpanID[:], parent)
	if high, ok := datadogTID(carrier.Get("x-datadog-tags")); ok {
		binary.BigEndian.PutUint64(cfg.TraceID[:8], high)
	}
	switch p := carrier.Get("x-datadog-sampling-priority"); p {
	case "":
		deferred = true
	default:
		n, err := strconv.Atoi(p)
		switch {
		case err != nil:
			deferred = true
		case n > 0:
			cfg.TraceFlags = trace.FlagsSampled
		}
	}
	cfg.Remote = true
	return trace.NewSpanContext(cfg), deferred
}

// parseDecimalID parses a non-zero unsigned 64-bit decimal id (digits only).
func parseDecimalID(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 {
		return 0, false
	}
	return v, true
}

// datadogTID finds _dd.p.tid in x-datadog-tags and returns the high 64 bits
// it holds. It requires exactly 16 lower-case hex digits, not all zero.
func datadogTID(tags string) (uint64, bool) {
	if tags == "" || len(tags) > maxDatadogTagsLen {
		return 0, false
	}
	for tags != "" {
		var kv string
		kv, tags, _ = strings.Cut(tags, ",")
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) != "_dd.p.tid" {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) != 16 {
			return 0, false
		}
		var b [8]byte
		for i := 0; i < 16; i++ {
			if c := v[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return 0, false
			}
		}
		if _, err := hex.Decode(b[:], []byte(v)); err != nil {
			return 0, false
		}
		high := binary.BigEndian.Uint64(b[:])
		return high, high != 0
	}
	return 0, false
}
