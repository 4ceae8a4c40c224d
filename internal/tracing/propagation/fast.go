package propagation

import (
	"encoding/hex"
	"net/http"
	"unsafe"

	"go.opentelemetry.io/otel/baggage"
	otelprop "go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http/httpguts"
)

// traceContext is the OpenTelemetry W3C Trace Context propagator with a
// direct, single-allocation injection into an http.Header. Its output is
// byte-for-byte that of otelprop.TraceContext (tested).
type traceContext struct{ otelprop.TraceContext }

// traceparentValue holds a traceparent header value and the one-element
// slice http.Header stores, in one allocation.
type traceparentValue struct {
	vals [1]string
	buf  [55]byte
}

func (traceContext) injectHeader(h http.Header, sc trace.SpanContext, _ baggage.Baggage) {
	if ts := sc.TraceState(); ts.Len() > 0 {
		h[hTracestate] = []string{ts.String()}
	}
	h[hTraceparent] = HeaderValue(sc, true)
}

// HeaderValue returns a one-element header value slice, allocated once:
// the traceparent of sc (00-<trace>-<span>-<flags>, flags sampled|random
// only) when traceparent is true, else the 32-hex trace id.
func HeaderValue(sc trace.SpanContext, traceparent bool) []string {
	v := new(traceparentValue)
	if !traceparent {
		tid := sc.TraceID()
		hex.Encode(v.buf[:32], tid[:])
		v.vals[0] = unsafe.String(&v.buf[0], 32)
		return v.vals[:]
	}
	putTraceparent(&v.buf, sc)
	v.vals[0] = unsafe.String(&v.buf[0], len(v.buf))
	return v.vals[:]
}

// putTraceparent writes the traceparent of sc into b: 00-<trace>-<span>-
// <flags>, with the sampled and random flags only.
func putTraceparent(b *[55]byte, sc trace.SpanContext) {
	tid, sid := sc.TraceID(), sc.SpanID()
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	flags := byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))
	const digits = "0123456789abcdef"
	b[53], b[54] = digits[flags>>4], digits[flags&0xf]
}

// appendTraceContext appends the tracestate field, when sc has one, and the
// traceparent field in wire form, as traceContext.injectHeader sets them.
func appendTraceContext(dst []byte, sc trace.SpanContext) []byte {
	if ts := sc.TraceState(); ts.Len() > 0 {
		dst = appendField(dst, hTracestate, ts.String())
	}
	dst = append(dst, hTraceparent+": "...)
	var b [55]byte
	putTraceparent(&b, sc)
	dst = append(dst, b[:]...)
	return append(dst, "\r\n"...)
}

// appendField appends "name: value\r\n", unless value is not a valid
// field value (then the field is left out; a header map holding it would
// fail the request instead).
func appendField(dst []byte, name, value string) []byte {
	if !httpguts.ValidHeaderFieldValue(value) {
		return dst
	}
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

// w3cBaggage is the OpenTelemetry W3C Baggage propagator with a direct
// injection into an http.Header.
type w3cBaggage struct{ otelprop.Baggage }

func (w3cBaggage) injectHeader(h http.Header, _ trace.SpanContext, bag baggage.Baggage) {
	if bag.Len() == 0 {
		return
	}
	if s := bag.String(); s != "" {
		h[hBaggage] = []string{s}
	}
}

// appendBaggage appends the baggage field in wire form, as
// w3cBaggage.injectHeader sets it.
func appendBaggage(dst []byte, bag baggage.Baggage) []byte {
	if bag.Len() == 0 {
		return dst
	}
	if s := bag.String(); s != "" {
		dst = appendField(dst, hBaggage, s)
	}
	return dst
}

var (
	_ headerInjector = traceContext{}
	_ headerInjector = w3cBaggage{}
)
