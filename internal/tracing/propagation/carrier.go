package propagation

import (
	"net/http"
	"net/textproto"
	"strings"

	otelprop "go.opentelemetry.io/otel/propagation"
)

// Canonical header keys of every trace and baggage header Vantage knows.
const (
	hTraceparent   = "Traceparent"
	hTracestate    = "Tracestate"
	hBaggage       = "Baggage"
	hB3            = "B3"
	hB3TraceID     = "X-B3-Traceid"
	hB3SpanID      = "X-B3-Spanid"
	hB3ParentID    = "X-B3-Parentspanid"
	hB3Sampled     = "X-B3-Sampled"
	hB3Flags       = "X-B3-Flags"
	hUberTraceID   = "Uber-Trace-Id"
	hDDTraceID     = "X-Datadog-Trace-Id"
	hDDParentID    = "X-Datadog-Parent-Id"
	hDDPriority    = "X-Datadog-Sampling-Priority"
	hDDTags        = "X-Datadog-Tags"
	hDDOrigin      = "X-Datadog-Origin"
	hOTTraceID     = "Ot-Tracer-Traceid"
	hOTSpanID      = "Ot-Tracer-Spanid"
	hOTSampled     = "Ot-Tracer-Sampled"
	prefixUberctx  = "Uberctx-"
	prefixOTBaggag = "Ot-Baggage-"
)

// canonicalKeys maps the lower-case keys the OpenTelemetry propagators use to
// their canonical form, so the hot path never allocates to canonicalize.
var canonicalKeys = map[string]string{
	"traceparent":                 hTraceparent,
	"tracestate":                  hTracestate,
	"baggage":                     hBaggage,
	"b3":                          hB3,
	"x-b3-traceid":                hB3TraceID,
	"x-b3-spanid":                 hB3SpanID,
	"x-b3-parentspanid":           hB3ParentID,
	"x-b3-sampled":                hB3Sampled,
	"x-b3-flags":                  hB3Flags,
	"uber-trace-id":               hUberTraceID,
	"x-datadog-trace-id":          hDDTraceID,
	"x-datadog-parent-id":         hDDParentID,
	"x-datadog-sampling-priority": hDDPriority,
	"x-datadog-tags":              hDDTags,
	"x-datadog-origin":            hDDOrigin,
	"ot-tracer-traceid":           hOTTraceID,
	"ot-tracer-spanid":            hOTSpanID,
	"ot-tracer-sampled":           hOTSampled,
}

// staleKeys are removed from every outgoing request before injection: the
// upstream must see Vantage's context only, in the formats configured. A
// key's index is its bit in a HeaderSet.
var staleKeys = []string{
	hTraceparent, hTracestate, hBaggage,
	hB3, hB3TraceID, hB3SpanID, hB3ParentID, hB3Sampled, hB3Flags,
	hUberTraceID,
	hDDTraceID, hDDParentID, hDDPriority, hDDTags, hDDOrigin,
	hOTTraceID, hOTSpanID, hOTSampled,
}

// HeaderSet is a set of the trace headers Vantage knows, found in a
// request: one bit per fixed header (staleKeys) plus PrefixedBaggage.
type HeaderSet uint32

// PrefixedBaggage is the HeaderSet bit of uberctx-* and ot-baggage-*
// headers.
const PrefixedBaggage HeaderSet = 1 << 31

// AllHeaders is the HeaderSet of every known trace header: RemoveStale
// with it deletes everything, at the cost of a look-up per key.
const AllHeaders HeaderSet = 1<<31 | (1<<18 - 1)

var keyBits = func() map[string]HeaderSet {
	m := make(map[string]HeaderSet, len(staleKeys))
	for i, k := range staleKeys {
		m[k] = 1 << i
	}
	return m
}()

func bitsOf(keys ...string) HeaderSet {
	var s HeaderSet
	for _, k := range keys {
		s |= keyBits[k]
	}
	return s
}

// scanHeaders returns the known trace headers present in h, in one pass
// over its keys. h's keys must be canonical, as net/http makes them.
func scanHeaders(h http.Header) HeaderSet {
	var set HeaderSet
	for k := range h {
		if len(k) < 2 {
			continue
		}
		switch k[0] {
		case 'T', 'B', 'X', 'U', 'O', 't', 'b', 'x', 'u', 'o':
		default:
			continue
		}
		if bit, ok := keyBits[k]; ok {
			set |= bit
		} else if hasPrefixedBaggage(k) {
			set |= PrefixedBaggage
		}
	}
	return set
}

func canonical(key string) string {
	if c, ok := canonicalKeys[key]; ok {
		return c
	}
	return textproto.CanonicalMIMEHeaderKey(key)
}

// Carrier adapts an http.Header to the OpenTelemetry TextMapCarrier without
// allocating for the known trace header keys. It applies the W3C rules for
// repeated headers: a repeated traceparent is invalid (Get returns ""), and
// repeated tracestate or baggage headers are joined with ",". Keys hides
// prefixed baggage headers (uberctx-*, ot-baggage-*): Vantage parses those
// itself, with limits, instead of the contrib propagators.
type Carrier http.Header

var _ otelprop.TextMapCarrier = Carrier(nil)

// Get returns the value of key (case-insensitive).
func (c Carrier) Get(key string) string {
	vs := c[canonical(key)]
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return vs[0]
	}
	switch canonical(key) {
	case hTracestate, hBaggage:
		return strings.Join(vs, ",")
	}
	// Two values of one trace context header are two conflicting
	// contexts: neither is trusted.
	return ""
}

// Set replaces key's value.
func (c Carrier) Set(key, value string) {
	c[canonical(key)] = []string{value}
}

// Keys lists the header keys, without prefixed baggage headers.
func (c Carrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		if hasPrefixedBaggage(k) {
			continue
		}
		keys = append(keys, k)
	}
	return keys
}

func hasPrefixedBaggage(k string) bool {
	return hasPrefixFold(k, prefixUberctx) || hasPrefixFold(k, prefixOTBaggag)
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) > len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
