package otlpreceiver

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Limits bound what one request may carry. Items over a count limit are
// dropped and recorded in the OTLP dropped_*_count fields; values over a
// size or depth limit are truncated. Both count as "truncated". The zero
// value of each field means its default.
type Limits struct {
	// MaxItemsPerRequest is the most spans (or log records) one request may
	// carry; the rest are rejected (partial success). Default 10000.
	MaxItemsPerRequest int
	// MaxAttributes is the most attributes kept on a span, event, link, log
	// record, resource or scope, and the most elements kept in one array or
	// key-value list value. Default 128.
	MaxAttributes int
	// MaxEvents and MaxLinks are the most events and links kept per span.
	// Default 128 each.
	MaxEvents, MaxLinks int
	// MaxValueBytes is the longest string or bytes value, attribute key,
	// span or event name kept; longer ones are cut (at a UTF-8 boundary).
	// Default 16 KiB.
	MaxValueBytes int
	// MaxDepth is the deepest nesting of array and key-value list values
	// kept; a value nested deeper is replaced by a string saying so.
	// Default 8.
	MaxDepth int
	// MaxPast and MaxFuture bound timestamps around the receiver's clock:
	// a span that started more than MaxPast ago or ends more than MaxFuture
	// ahead is rejected. Defaults 7 days and 1 hour.
	MaxPast, MaxFuture time.Duration
}

// DefaultLimits are the limits used for zero fields of Limits.
var DefaultLimits = Limits{
	MaxItemsPerRequest: 10000,
	MaxAttributes:      128,
	MaxEvents:          128,
	MaxLinks:           128,
	MaxValueBytes:      16 << 10,
	MaxDepth:           8,
	MaxPast:            7 * 24 * time.Hour,
	MaxFuture:          time.Hour,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxItemsPerRequest > 0 {
		d.MaxItemsPerRequest = l.MaxItemsPerRequest
	}
	if l.MaxAttributes > 0 {
		d.MaxAttributes = l.MaxAttributes
	}
	if l.MaxEvents > 0 {
		d.MaxEvents = l.MaxEvents
	}
	if l.MaxLinks > 0 {
		d.MaxLinks = l.MaxLinks
	}
	if l.MaxValueBytes > 0 {
		d.MaxValueBytes = l.MaxValueBytes
	}
	if l.MaxDepth > 0 {
		d.MaxDepth = l.MaxDepth
	}
	if l.MaxPast > 0 {
		d.MaxPast = l.MaxPast
	}
	if l.MaxFuture > 0 {
		d.MaxFuture = l.MaxFuture
	}
	return d
}

// maxReasons is how many rejection reasons a partial-success message names.
const maxReasons = 3

// verdict is the outcome of validating one request.
type verdict struct {
	accepted, rejected, truncated int64
	reasons                       []string
	moreReasons                   int
}

func (v *verdict) reject(n int64, format string, args ...any) {
	v.rejected += n
	if len(v.reasons) < maxReasons {
		v.reasons = append(v.reasons, fmt.Sprintf(format, args...))
	} else {
		v.moreReasons++
	}
}

// message is the partial-success error message: the first reasons, and how
// many more there were.
func (v *verdict) message() string {
	if len(v.reasons) == 0 {
		return ""
	}
	s := strings.Join(v.reasons, "; ")
	if v.moreReasons > 0 {
		s += fmt.Sprintf("; and %d more", v.moreReasons)
	}
	return s
}

// validator checks and trims one request in place. It is used by one
// goroutine at a time.
type validator struct {
	lim Limits
	now time.Time
	// hexIDs is set for OTLP/JSON, whose trace and span ids are hex
	// strings: protojson decoded them as base64, which id undoes.
	hexIDs    bool
	truncated bool // set when the current item had anything cut
}

// id checks (and, for OTLP/JSON, decodes) a trace or span id of the given
// width in bytes. It returns why the id is invalid, or "". An empty id is
// invalid unless optional.
func (v *validator) id(b *[]byte, width int, optional bool) string {
	if len(*b) == 0 {
		if optional {
			return ""
		}
		return "is missing"
	}
	if v.hexIDs {
		// 2*width hex digits, read as base64, are 3*width/2 bytes; encoding
		// them again gives back the digits.
		if len(*b) != width*3/2 {
			return fmt.Sprintf("is not %d hex digits", 2*width)
		}
		var digits [48]byte
		base64.StdEncoding.Encode(digits[:], *b)
		raw := make([]byte, width)
		if _, err := hex.Decode(raw, digits[:2*width]); err != nil {
			return fmt.Sprintf("is not %d hex digits", 2*width)
		}
		*b = raw
	}
	if len(*b) != width {
		return fmt.Sprintf("is %d bytes, want %d", len(*b), width)
	}
	if allZero(*b) {
		return "is all zeros"
	}
	return ""
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// timeProblem describes what is wrong with a timestamp, or returns "".
func (v *validator) timeProblem(ns uint64) string {
	if ns == 0 {
		return "is missing"
	}
	if ns > uint64(1<<63-1) {
		return "is out of range"
	}
	t := time.Unix(0, int64(ns))
	if t.Before(v.now.Add(-v.lim.MaxPast)) {
		return fmt.Sprintf("is more than %s in the past", v.lim.MaxPast)
	}
	if t.After(v.now.Add(v.lim.MaxFuture)) {
		return fmt.Sprintf("is more than %s in the future", v.lim.MaxFuture)
	}
	return ""
}

// traces validates req in place: invalid spans are removed (counted as
// rejected), oversized parts are cut (counted as truncated), and resources
// and scopes left without spans are removed.
func (v *validator) traces(req *coltracepb.ExportTraceServiceRequest) verdict {
	w := itemWalk{v: v, budget: v.lim.MaxItemsPerRequest, one: "span", many: "spans"}
	req.ResourceSpans = keep(req.ResourceSpans, func(ri int, rs *tracepb.ResourceSpans) bool {
		v.resource(rs.Resource)
		rs.ScopeSpans = keep(rs.ScopeSpans, func(si int, ss *tracepb.ScopeSpans) bool {
			v.scope(ss.Scope)
			ss.Spans = keep(ss.Spans, func(i int, s *tracepb.Span) bool {
				return w.item(ri, si, i, func() string { return v.span(s) })
			})
			return len(ss.Spans) > 0
		})
		return len(rs.ScopeSpans) > 0
	})
	return w.out
}

// keep removes from s, in place, the nil elements and those for which ok
// (given each element's index in s) is false, and clears the tail.
func keep[T any](s []*T, ok func(int, *T) bool) []*T {
	out := s[:0]
	for i, x := range s {
		if x != nil && ok(i, x) {
			out = append(out, x)
		}
	}
	clear(s[len(out):])
	return out
}

// itemWalk counts the items (spans, log records) of one request: at most
// budget are accepted, each must pass its check, and the verdict records
// why the others were rejected.
type itemWalk struct {
	v         *validator
	out       verdict
	budget    int
	one, many string // the item's name, singular and plural
}

// item checks item i of resource ri's scope si and reports whether it is
// kept.
func (w *itemWalk) item(ri, si, i int, check func() string) bool {
	if w.budget <= 0 {
		w.out.reject(1, "resource %d scope %d %s %d: more than %d %s in one request", ri, si, w.one, i, w.v.lim.MaxItemsPerRequest, w.many)
		return false
	}
	w.v.truncated = false
	if p := check(); p != "" {
		w.out.reject(1, "resource %d scope %d %s %d: %s", ri, si, w.one, i, p)
		return false
	}
	w.budget--
	w.out.accepted++
	if w.v.truncated {
		w.out.truncated++
	}
	return true
}

// span checks one span and trims it; it returns why it is rejected, or "".
func (v *validator) span(s *tracepb.Span) string {
	if p := v.id(&s.TraceId, 16, false); p != "" {
		return "trace_id " + p
	}
	if p := v.id(&s.SpanId, 8, false); p != "" {
		return "span_id " + p
	}
	if p := v.id(&s.ParentSpanId, 8, true); p == "is all zeros" {
		s.ParentSpanId = nil // some SDKs send zeros for "no parent"
	} else if p != "" {
		return "parent_span_id " + p
	}
	if p := v.timeProblem(s.StartTimeUnixNano); p != "" {
		return "start_time_unix_nano " + p
	}
	if p := v.timeProblem(s.EndTimeUnixNano); p != "" {
		return "end_time_unix_nano " + p
	}
	if s.EndTimeUnixNano < s.StartTimeUnixNano {
		return "end_time_unix_nano is before start_time_unix_nano"
	}
	s.Name = v.str(s.Name)
	s.TraceState = v.str(s.TraceState)
	if s.Status != nil {
		s.Status.Message = v.str(s.Status.Message)
	}
	s.Attributes, s.DroppedAttributesCount = v.attrs(s.Attributes, s.DroppedAttributesCount)
	if n := len(s.Events); n > v.lim.MaxEvents {
		clear(s.Events[v.lim.MaxEvents:])
		s.Events = s.Events[:v.lim.MaxEvents]
		s.DroppedEventsCount += uint32(n - v.lim.MaxEvents)
		v.truncated = true
	}
	events := s.Events[:0]
	for _, e := range s.Events {
		if e == nil {
			s.DroppedEventsCount++
			v.truncated = true
			continue
		}
		e.Name = v.str(e.Name)
		e.Attributes, e.DroppedAttributesCount = v.attrs(e.Attributes, e.DroppedAttributesCount)
		events = append(events, e)
	}
	s.Events = events
	if n := len(s.Links); n > v.lim.MaxLinks {
		clear(s.Links[v.lim.MaxLinks:])
		s.Links = s.Links[:v.lim.MaxLinks]
		s.DroppedLinksCount += uint32(n - v.lim.MaxLinks)
		v.truncated = true
	}
	links := s.Links[:0]
	for _, l := range s.Links {
		// A link to an invalid context carries nothing usable: drop it,
		// not the span.
		if l == nil || v.id(&l.TraceId, 16, false) != "" || v.id(&l.SpanId, 8, false) != "" {
			s.DroppedLinksCount++
			v.truncated = true
			continue
		}
		l.TraceState = v.str(l.TraceState)
		l.Attributes, l.DroppedAttributesCount = v.attrs(l.Attributes, l.DroppedAttributesCount)
		links = append(links, l)
	}
	s.Links = links
	return ""
}

func (v *validator) resource(r *resourcepb.Resource) {
	if r != nil {
		r.Attributes, r.DroppedAttributesCount = v.attrs(r.Attributes, r.DroppedAttributesCount)
	}
}

func (v *validator) scope(s *commonpb.InstrumentationScope) {
	if s != nil {
		s.Name = v.str(s.Name)
		s.Version = v.str(s.Version)
		s.Attributes, s.DroppedAttributesCount = v.attrs(s.Attributes, s.DroppedAttributesCount)
	}
}

// logs validates req in place like traces. A log record's trace and span
// ids are optional, but when present they must be valid; its timestamps
// are optional (0: unknown) but must be within bounds when set.
func (v *validator) logs(req *collogspb.ExportLogsServiceRequest) verdict {
	w := itemWalk{v: v, budget: v.lim.MaxItemsPerRequest, one: "log record", many: "log records"}
	req.ResourceLogs = keep(req.ResourceLogs, func(ri int, rl *logspb.ResourceLogs) bool {
		v.resource(rl.Resource)
		rl.ScopeLogs = keep(rl.ScopeLogs, func(si int, sl *logspb.ScopeLogs) bool {
			v.scope(sl.Scope)
			sl.LogRecords = keep(sl.LogRecords, func(i int, r *logspb.LogRecord) bool {
				return w.item(ri, si, i, func() string { return v.logRecord(r) })
			})
			return len(sl.LogRecords) > 0
		})
		return len(rl.ScopeLogs) > 0
	})
	return w.out
}

func (v *validator) logRecord(r *logspb.LogRecord) string {
	// A record logged outside any span may carry zero ids: no context.
	if p := v.id(&r.TraceId, 16, true); p == "is all zeros" {
		r.TraceId = nil
	} else if p != "" {
		return "trace_id " + p
	}
	if p := v.id(&r.SpanId, 8, true); p == "is all zeros" {
		r.SpanId = nil
	} else if p != "" {
		return "span_id " + p
	}
	if r.TimeUnixNano != 0 {
		if p := v.timeProblem(r.TimeUnixNano); p != "" {
			return "time_unix_nano " + p
		}
	}
	if r.ObservedTimeUnixNano != 0 {
		if p := v.timeProblem(r.ObservedTimeUnixNano); p != "" {
			return "observed_time_unix_nano " + p
		}
	}
	r.SeverityText = v.str(r.SeverityText)
	r.EventName = v.str(r.EventName)
	if r.Body != nil {
		v.value(r.Body, 1)
	}
	r.Attributes, r.DroppedAttributesCount = v.attrs(r.Attributes, r.DroppedAttributesCount)
	return ""
}

// attrs trims a list of attributes: at most MaxAttributes are kept (the
// rest are added to dropped), nil entries are dropped, keys and values are
// cut to size.
func (v *validator) attrs(kvs []*commonpb.KeyValue, dropped uint32) ([]*commonpb.KeyValue, uint32) {
	return v.kvs(kvs, dropped, 1)
}

func (v *validator) kvs(kvs []*commonpb.KeyValue, dropped uint32, depth int) ([]*commonpb.KeyValue, uint32) {
	if n := len(kvs); n > v.lim.MaxAttributes {
		clear(kvs[v.lim.MaxAttributes:])
		kvs = kvs[:v.lim.MaxAttributes]
		dropped += uint32(n - v.lim.MaxAttributes)
		v.truncated = true
	}
	out := kvs[:0]
	for _, kv := range kvs {
		if kv == nil {
			dropped++
			v.truncated = true
			continue
		}
		kv.Key = v.str(kv.Key)
		if kv.Value != nil {
			v.value(kv.Value, depth)
		}
		out = append(out, kv)
	}
	clear(kvs[len(out):])
	return out, dropped
}

// value trims one value found at the given nesting depth (1 for an
// attribute's own value).
func (v *validator) value(a *commonpb.AnyValue, depth int) {
	switch x := a.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		x.StringValue = v.str(x.StringValue)
	case *commonpb.AnyValue_BytesValue:
		if len(x.BytesValue) > v.lim.MaxValueBytes {
			x.BytesValue = bytes.Clone(x.BytesValue[:v.lim.MaxValueBytes])
			v.truncated = true
		}
	case *commonpb.AnyValue_ArrayValue:
		if depth >= v.lim.MaxDepth {
			v.tooDeep(a)
			return
		}
		if x.ArrayValue == nil {
			return
		}
		vals := x.ArrayValue.Values
		if n := len(vals); n > v.lim.MaxAttributes {
			clear(vals[v.lim.MaxAttributes:])
			vals = vals[:v.lim.MaxAttributes]
			v.truncated = true
		}
		out := vals[:0]
		for _, e := range vals {
			if e == nil {
				v.truncated = true
				continue
			}
			v.value(e, depth+1)
			out = append(out, e)
		}
		clear(vals[len(out):])
		x.ArrayValue.Values = out
	case *commonpb.AnyValue_KvlistValue:
		if depth >= v.lim.MaxDepth {
			v.tooDeep(a)
			return
		}
		if x.KvlistValue == nil {
			return
		}
		x.KvlistValue.Values, _ = v.kvs(x.KvlistValue.Values, 0, depth+1)
	}
}

func (v *validator) tooDeep(a *commonpb.AnyValue) {
	a.Value = &commonpb.AnyValue_StringValue{StringValue: fmt.Sprintf("[truncated: nested deeper than %d levels]", v.lim.MaxDepth)}
	v.truncated = true
}

// str cuts s to MaxValueBytes at a UTF-8 boundary.
func (v *validator) str(s string) string {
	if len(s) <= v.lim.MaxValueBytes {
		return s
	}
	v.truncated = true
	cut := v.lim.MaxValueBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.Clone(s[:cut])
}
