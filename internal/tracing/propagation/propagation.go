// Package propagation reads and writes trace context in the header formats
// of mixed estates: W3C Trace Context and Baggage, B3 (single and multiple
// headers), Jaeger (uber-trace-id, uberctx-*), Datadog (x-datadog-*) and
// OpenTracing (ot-tracer-*, ot-baggage-*).
//
// It builds on the OpenTelemetry propagators (otel/propagation and the
// contrib b3, jaeger and ot packages) and adds Datadog, written to the same
// TextMapPropagator interface. Around them it adds what a gateway needs: an
// extract order (first valid context wins), injection of several formats at
// once, removal of every stale incoming trace header before injection (so an
// upstream never sees two conflicting contexts), "deferred" sampling
// (ids without a decision), tracestate truncation and bounded baggage.
//
// Id widths are translated by the formats: 64-bit incoming ids (B3, Jaeger,
// OpenTracing, Datadog without _dd.p.tid) become 128-bit trace ids with
// zero high bits; outgoing Datadog splits a 128-bit id into the decimal low
// half and _dd.p.tid; outgoing OpenTracing keeps the low 64 bits only.
package propagation

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/contrib/propagators/jaeger"
	"go.opentelemetry.io/contrib/propagators/ot"
	"go.opentelemetry.io/otel/baggage"
	otelprop "go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http/httpguts"
)

// Format names, as in the config (propagation.extract / inject).
const (
	FormatTraceContext = "tracecontext"
	FormatBaggage      = "baggage"
	FormatB3           = "b3"
	FormatB3Multi      = "b3multi"
	FormatJaeger       = "jaeger"
	FormatDatadog      = "datadog"
	FormatOTTrace      = "ottrace"
)

// Limits applied to what is extracted.
const (
	// MaxTraceStateLen is the longest tracestate propagated; longer ones are
	// truncated as the W3C recommends (long members first, then from the
	// right).
	MaxTraceStateLen = 512
	// maxTraceStateMember is the member length W3C allows to drop first.
	maxTraceStateMember = 128
	// MaxPrefixedBaggage caps the members read from uberctx-* and
	// ot-baggage-* headers.
	MaxPrefixedBaggage = 64
)

// Extracted is the trace context found in a request's headers.
type Extracted struct {
	// SpanContext is the caller's span context; invalid when none was found.
	SpanContext trace.SpanContext
	// Format names the format that supplied SpanContext, "" when none.
	Format string
	// Deferred reports that the caller sent ids but no sampling decision
	// (B3 or OpenTracing without a sampled flag, Datadog without a
	// priority): the receiver decides.
	Deferred bool
	// Baggage merges the W3C baggage header and, when the jaeger or ottrace
	// formats are extracted, uberctx-* and ot-baggage-* headers.
	Baggage baggage.Baggage
	// Present lists the known trace headers the request carried: pass it
	// to RemoveStale for the outgoing copy of the request's headers.
	Present HeaderSet
}

// Found reports whether a valid trace context was extracted.
func (e *Extracted) Found() bool { return e.SpanContext.IsValid() }

type traceFormat struct {
	name    string
	present HeaderSet
	extract func(h http.Header) (sc trace.SpanContext, deferred bool)
}

// headerInjector is implemented by propagators that can write straight into
// an http.Header without a context (the hot formats).
type headerInjector interface {
	injectHeader(h http.Header, sc trace.SpanContext, bag baggage.Baggage)
}

// Propagators is a configured set of extract and inject formats. It is
// immutable and safe for concurrent use.
type Propagators struct {
	extract                              []traceFormat
	w3cBaggage, jaegerBaggage, otBaggage bool
	inject                               []otelprop.TextMapPropagator
	needsContext                         bool
	injectsBaggage                       bool
	// appendsFields: there are inject formats and all of them can be
	// written in wire form (AppendFields).
	appendsFields bool
}

// New builds the propagators for the given extract order and inject list
// (format names as in the config). It fails on an unknown name.
func New(extract, inject []string) (*Propagators, error) {
	p := &Propagators{}
	for _, name := range extract {
		switch name {
		case FormatTraceContext:
			p.extract = append(p.extract, traceFormat{name, bitsOf(hTraceparent), extractTraceContext})
		case FormatB3, FormatB3Multi:
			p.extract = append(p.extract, traceFormat{name, bitsOf(hB3, hB3TraceID), extractB3})
		case FormatJaeger:
			p.extract = append(p.extract, traceFormat{name, bitsOf(hUberTraceID), extractJaeger})
			p.jaegerBaggage = true
		case FormatDatadog:
			p.extract = append(p.extract, traceFormat{name, bitsOf(hDDTraceID), extractDatadog})
		case FormatOTTrace:
			p.extract = append(p.extract, traceFormat{name, bitsOf(hOTTraceID), extractOT})
			p.otBaggage = true
		case FormatBaggage:
			p.w3cBaggage = true
		default:
			return nil, fmt.Errorf("propagation: unknown extract format %q", name)
		}
	}
	for _, name := range inject {
		var prop otelprop.TextMapPropagator
		switch name {
		case FormatTraceContext:
			prop = traceContext{}
		case FormatBaggage:
			prop = w3cBaggage{}
			p.injectsBaggage = true
		case FormatB3:
			prop = b3.New(b3.WithInjectEncoding(b3.B3SingleHeader))
		case FormatB3Multi:
			prop = b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader))
		case FormatJaeger:
			prop = jaegerPropagator{}
			p.injectsBaggage = true
		case FormatDatadog:
			prop = Datadog{}
		case FormatOTTrace:
			prop = otPropagator{}
			p.injectsBaggage = true
		default:
			return nil, fmt.Errorf("propagation: unknown inject format %q", name)
		}
		p.inject = append(p.inject, prop)
		if _, direct := prop.(headerInjector); !direct {
			p.needsContext = true
		}
	}
	p.appendsFields = len(p.inject) > 0
	for _, prop := range p.inject {
		switch prop.(type) {
		case traceContext, w3cBaggage:
		default:
			p.appendsFields = false
		}
	}
	return p, nil
}

// AppendsFields reports whether AppendFields can write every inject
// format (W3C Trace Context and Baggage can; the others are injected into
// a header map only).
func (p *Propagators) AppendsFields() bool { return p.appendsFields }

// AppendFields appends to dst, in wire form ("Name: value\r\n" each), the
// header fields Inject would set for sc and bag, with the same names and
// values; a value that is not a valid field value is left out. An invalid
// sc appends nothing, and so do propagators for which AppendsFields is
// false (use Inject then). It is for clients that write request heads
// themselves (transport.Transport.RoundTripFields); RemoveStale still
// applies to the request's header map.
func (p *Propagators) AppendFields(dst []byte, sc trace.SpanContext, bag baggage.Baggage) []byte {
	if !sc.IsValid() || !p.appendsFields {
		return dst
	}
	// A type switch, not an interface call, so that dst can stay in the
	// caller's stack frame.
	for _, prop := range p.inject {
		switch prop.(type) {
		case traceContext:
			dst = appendTraceContext(dst, sc)
		case w3cBaggage:
			dst = appendBaggage(dst, bag)
		}
	}
	return dst
}

// InjectsBaggage reports whether any inject format carries baggage.
func (p *Propagators) InjectsBaggage() bool { return p.injectsBaggage }

// Extract reads the trace context and baggage from h, trying the trace
// formats in the configured order: the first valid context wins. Malformed,
// zero or conflicting (repeated) values of a format are skipped. It does not
// modify h.
func (p *Propagators) Extract(h http.Header) Extracted {
	var ex Extracted
	ex.Present = scanHeaders(h)
	if ex.Present == 0 {
		return ex
	}
	for i := range p.extract {
		f := &p.extract[i]
		if f.present&ex.Present == 0 {
			continue
		}
		sc, deferred := f.extract(h)
		if !sc.IsValid() {
			continue
		}
		ex.SpanContext = sc
		ex.Format = f.name
		ex.Deferred = deferred && !sc.IsSampled()
		break
	}
	if ex.Found() && ex.SpanContext.TraceState().Len() > 0 {
		if n := headerLen(h[hTracestate]); n > MaxTraceStateLen {
			ex.SpanContext = ex.SpanContext.WithTraceState(truncateTraceState(ex.SpanContext.TraceState()))
		}
	}

	if p.w3cBaggage {
		if vs := h[hBaggage]; len(vs) > 0 {
			raw := vs[0]
			if len(vs) > 1 {
				raw = strings.Join(vs, ",")
			}
			// Parse keeps the valid members of a partly invalid header and
			// enforces the W3C limits (64 members, 8192 bytes).
			ex.Baggage, _ = baggage.Parse(raw)
		}
	}
	if ex.Present&PrefixedBaggage != 0 && (p.jaegerBaggage || p.otBaggage) {
		p.extractPrefixed(h, &ex)
	}
	return ex
}

// extractPrefixed reads uberctx-* and ot-baggage-* headers into ex.Baggage
// (when their formats are extracted) and notes their presence.
func (p *Propagators) extractPrefixed(h http.Header, ex *Extracted) {
	var members []baggage.Member
	for k, vs := range h {
		if len(k) <= len(prefixUberctx) || (k[0]|0x20) != 'u' && (k[0]|0x20) != 'o' {
			continue
		}
		var key string
		switch {
		case hasPrefixFold(k, prefixUberctx):
			if !p.jaegerBaggage || len(vs) != 1 {
				continue
			}
			key = k[len(prefixUberctx):]
			v, err := url.QueryUnescape(vs[0])
			if err != nil {
				continue
			}
			members = appendMember(members, key, v)
		case hasPrefixFold(k, prefixOTBaggag):
			if !p.otBaggage || len(vs) != 1 {
				continue
			}
			key = k[len(prefixOTBaggag):]
			members = appendMember(members, key, vs[0])
		}
	}
	if len(members) == 0 {
		return
	}
	bag := ex.Baggage
	for _, m := range members {
		if bag.Len() >= MaxPrefixedBaggage {
			break
		}
		if b, err := bag.SetMember(m); err == nil {
			bag = b
		}
	}
	// New enforces the W3C size limits on the merged result.
	ex.Baggage, _ = baggage.New(bag.Members()...)
}

func appendMember(ms []baggage.Member, key, value string) []baggage.Member {
	if len(ms) >= MaxPrefixedBaggage {
		return ms
	}
	m, err := baggage.NewMemberRaw(strings.ToLower(key), value)
	if err != nil {
		return ms
	}
	return append(ms, m)
}

// RemoveStale deletes from h the known trace and baggage headers in set
// (Extracted.Present of the request h was copied from, or AllHeaders),
// prefixed ones included.
func (p *Propagators) RemoveStale(h http.Header, set HeaderSet) {
	for i, k := range staleKeys {
		if set&(1<<i) != 0 {
			delete(h, k)
		}
	}
	if set&PrefixedBaggage != 0 {
		for k := range h {
			if hasPrefixedBaggage(k) {
				delete(h, k)
			}
		}
	}
}

// Inject writes sc (and bag, for the formats that carry baggage) into h in
// every configured inject format. It sets headers only; call RemoveStale
// first. An invalid sc injects nothing.
func (p *Propagators) Inject(h http.Header, sc trace.SpanContext, bag baggage.Baggage) {
	if !sc.IsValid() || len(p.inject) == 0 {
		return
	}
	var ctx context.Context
	if p.needsContext {
		ctx = trace.ContextWithSpanContext(context.Background(), sc)
		if bag.Len() > 0 {
			ctx = baggage.ContextWithBaggage(ctx, bag)
		}
	}
	c := Carrier(h)
	for _, prop := range p.inject {
		if d, ok := prop.(headerInjector); ok {
			d.injectHeader(h, sc, bag)
			continue
		}
		prop.Inject(ctx, c)
	}
}

func headerLen(vs []string) int {
	n := 0
	for _, v := range vs {
		n += len(v) + 1
	}
	return n
}

func extractTraceContext(h http.Header) (trace.SpanContext, bool) {
	ctx := otelprop.TraceContext{}.Extract(context.Background(), Carrier(h))
	return trace.SpanContextFromContext(ctx), false
}

var b3Prop = b3.New()

func extractB3(h http.Header) (trace.SpanContext, bool) {
	ctx := b3Prop.Extract(context.Background(), Carrier(h))
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return sc, false
	}
	// The contrib propagator keeps "deferred" private; derive it: a
	// single header with ids only, or multiple headers without a sampled
	// or debug flag.
	if single := Carrier(h).Get("b3"); single != "" {
		n := len(single)
		return sc, n == 16+1+16 || n == 32+1+16
	}
	return sc, len(h[hB3Sampled]) == 0 && Carrier(h).Get("x-b3-flags") != "1"
}

// jaegerCarrier percent-decodes uber-trace-id, which some Jaeger clients
// send URL-encoded ("%3A" for ":").
type jaegerCarrier struct{ Carrier }

func (c jaegerCarrier) Get(key string) string {
	v := c.Carrier.Get(key)
	if strings.IndexByte(v, '%') >= 0 {
		d, err := url.PathUnescape(v)
		if err != nil {
			return ""
		}
		return d
	}
	return v
}

func extractJaeger(h http.Header) (trace.SpanContext, bool) {
	ctx := jaeger.Jaeger{}.Extract(context.Background(), jaegerCarrier{Carrier(h)})
	return trace.SpanContextFromContext(ctx), false
}

func extractDatadog(h http.Header) (trace.SpanContext, bool) {
	return Datadog{}.extract(Carrier(h))
}

func extractOT(h http.Header) (trace.SpanContext, bool) {
	ctx := ot.OT{}.Extract(context.Background(), Carrier(h))
	sc := trace.SpanContextFromContext(ctx)
	return sc, sc.IsValid() && len(h[hOTSampled]) == 0
}

// jaegerPropagator is the contrib Jaeger propagator plus uberctx-* baggage
// (values URL-encoded, as Jaeger clients write them).
type jaegerPropagator struct{ jaeger.Jaeger }

func (j jaegerPropagator) Inject(ctx context.Context, carrier otelprop.TextMapCarrier) {
	j.Jaeger.Inject(ctx, carrier)
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	for _, m := range baggage.FromContext(ctx).Members() {
		carrier.Set("uberctx-"+m.Key(), url.QueryEscape(m.Value()))
	}
}

// otPropagator is the contrib OpenTracing propagator, which writes the low
// 64 bits of the trace id only; when those are zero the header would be
// invalid, so nothing is injected. It writes baggage values as they are
// (the format has no escaping), so a member whose value cannot be a header
// value (a control character, from percent-decoded W3C or Jaeger baggage)
// is left out: in the header map it would fail the whole request.
type otPropagator struct{ ot.OT }

func (o otPropagator) Inject(ctx context.Context, carrier otelprop.TextMapCarrier) {
	tid := trace.SpanContextFromContext(ctx).TraceID()
	if binary.BigEndian.Uint64(tid[8:]) == 0 {
		return
	}
	o.OT.Inject(ctx, validValues{carrier})
}

// validValues is a carrier that drops values that are not valid header
// field values.
type validValues struct{ otelprop.TextMapCarrier }

func (c validValues) Set(key, value string) {
	if httpguts.ValidHeaderFieldValue(value) {
		c.TextMapCarrier.Set(key, value)
	}
}

// truncateTraceState drops members longer than 128 characters, then members
// from the right, until the header fits in MaxTraceStateLen.
func truncateTraceState(ts trace.TraceState) trace.TraceState {
	type kv struct{ k, v string }
	var ms []kv
	ts.Walk(func(k, v string) bool { ms = append(ms, kv{k, v}); return true })
	size := func() int {
		n := 0
		for i, m := range ms {
			if i > 0 {
				n++
			}
			n += len(m.k) + 1 + len(m.v)
		}
		return n
	}
	for i := len(ms) - 1; i >= 0 && size() > MaxTraceStateLen; i-- {
		if len(ms[i].k)+1+len(ms[i].v) > maxTraceStateMember {
			ms = append(ms[:i], ms[i+1:]...)
		}
	}
	for len(ms) > 0 && size() > MaxTraceStateLen {
		ms = ms[:len(ms)-1]
	}
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m.k)
		b.WriteByte('=')
		b.WriteString(m.v)
	}
	out, err := trace.ParseTraceState(b.String())
	if err != nil {
		return trace.TraceState{}
	}
	return out
}
