package tracestore

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// TraceID is a 128-bit trace id. The zero value is invalid.
type TraceID [16]byte

// SpanID is a 64-bit span id. The zero value is invalid (no parent).
type SpanID [8]byte

// String returns the id as 32 lower-case hex digits.
func (id TraceID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the invalid all-zero id.
func (id TraceID) IsZero() bool { return id == TraceID{} }

// String returns the id as 16 lower-case hex digits.
func (id SpanID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the invalid all-zero id.
func (id SpanID) IsZero() bool { return id == SpanID{} }

// ErrInvalidTraceID is returned by ParseTraceID.
var ErrInvalidTraceID = errors.New("trace id must be 1 to 32 hex digits and not all zero")

// ParseTraceID parses a trace id written as hex: 32 digits, or fewer (a
// 64-bit id, left-padded with zeros, as Jaeger accepts). Upper case is
// accepted.
func ParseTraceID(s string) (TraceID, error) {
	var id TraceID
	if len(s) == 0 || len(s) > 32 {
		return id, ErrInvalidTraceID
	}
	var buf [32]byte
	for i := range buf {
		buf[i] = '0'
	}
	copy(buf[32-len(s):], s)
	if _, err := hex.Decode(id[:], buf[:]); err != nil {
		return TraceID{}, ErrInvalidTraceID
	}
	if id.IsZero() {
		return id, ErrInvalidTraceID
	}
	return id, nil
}

// ValueType is the type of an attribute value. Arrays and maps are kept
// as their JSON text (type String), as Jaeger shows them.
type ValueType uint8

// Value types.
const (
	TypeString ValueType = iota + 1
	TypeBool
	TypeInt64
	TypeFloat64
	TypeBinary
)

// String returns Jaeger's name of the type.
func (t ValueType) String() string {
	switch t {
	case TypeString:
		return "string"
	case TypeBool:
		return "bool"
	case TypeInt64:
		return "int64"
	case TypeFloat64:
		return "float64"
	case TypeBinary:
		return "binary"
	}
	return fmt.Sprintf("ValueType(%d)", uint8(t))
}

// KeyValue is one attribute. Exactly the field of its Type is meaningful
// (Bool for TypeBool, Int for TypeInt64, Float for TypeFloat64, Str for
// TypeString, Bytes for TypeBinary).
type KeyValue struct {
	Key   string
	Type  ValueType
	Str   string
	Bool  bool
	Int   int64
	Float float64
	Bytes []byte
}

// String, Bool, Int and Float build KeyValues.
func String(k, v string) KeyValue        { return KeyValue{Key: k, Type: TypeString, Str: v} }
func Bool(k string, v bool) KeyValue     { return KeyValue{Key: k, Type: TypeBool, Bool: v} }
func Int(k string, v int64) KeyValue     { return KeyValue{Key: k, Type: TypeInt64, Int: v} }
func Float(k string, v float64) KeyValue { return KeyValue{Key: k, Type: TypeFloat64, Float: v} }

// AsString returns the value as text (for tag matching and display).
func (kv KeyValue) AsString() string {
	switch kv.Type {
	case TypeString:
		return kv.Str
	case TypeBool:
		if kv.Bool {
			return "true"
		}
		return "false"
	case TypeInt64:
		return fmt.Sprint(kv.Int)
	case TypeFloat64:
		return fmt.Sprint(kv.Float)
	case TypeBinary:
		return hex.EncodeToString(kv.Bytes)
	}
	return ""
}

// SpanKind is the OpenTelemetry span kind, numbered as in OTLP.
type SpanKind uint8

// Span kinds.
const (
	KindUnspecified SpanKind = iota
	KindInternal
	KindServer
	KindClient
	KindProducer
	KindConsumer
)

// String returns the kind in lower case as Jaeger's span.kind tag writes
// it ("" for unspecified).
func (k SpanKind) String() string {
	switch k {
	case KindInternal:
		return "internal"
	case KindServer:
		return "server"
	case KindClient:
		return "client"
	case KindProducer:
		return "producer"
	case KindConsumer:
		return "consumer"
	}
	return ""
}

// ParseSpanKind is the inverse of SpanKind.String.
func ParseSpanKind(s string) (SpanKind, bool) {
	for k := KindUnspecified; k <= KindConsumer; k++ {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

// StatusCode is the span status, numbered as in OTLP.
type StatusCode uint8

// Status codes.
const (
	StatusUnset StatusCode = iota
	StatusOK
	StatusError
)

// Resource is the entity that produced spans: its service name and its
// other resource attributes.
type Resource struct {
	ServiceName string
	Attributes  []KeyValue
}

// Scope is the instrumentation scope of a span.
type Scope struct {
	Name, Version string
}

// Event is a timed annotation of a span (a retry, a breaker decision, an
// exception).
type Event struct {
	Time       time.Time
	Name       string
	Attributes []KeyValue
}

// Link points from a span to a span of this or another trace.
type Link struct {
	TraceID    TraceID
	SpanID     SpanID
	TraceState string
	Attributes []KeyValue
}

// Span is one stored span as readers get it: a deep copy, owned by the
// caller.
type Span struct {
	TraceID       TraceID
	SpanID        SpanID
	ParentSpanID  SpanID // zero for a root span
	TraceState    string
	Flags         uint32 // W3C trace flags (1 = sampled)
	Name          string
	Kind          SpanKind
	Start         time.Time
	End           time.Time
	StatusCode    StatusCode
	StatusMessage string
	Attributes    []KeyValue
	Events        []Event
	Links         []Link
	Resource      Resource
	Scope         Scope

	DroppedAttributes, DroppedEvents, DroppedLinks uint32
}

// Duration is End - Start.
func (s *Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Attr returns the attribute named key, if the span has it.
func (s *Span) Attr(key string) (KeyValue, bool) {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv, true
		}
	}
	return KeyValue{}, false
}

// LogRecord is one log line stored beside a trace: an access-log record
// of the gateway or an OTLP log record from a service.
type LogRecord struct {
	Time           time.Time
	TraceID        TraceID
	SpanID         SpanID
	SeverityNumber int32
	SeverityText   string
	// Body is the record's body; a structured body is kept as JSON text.
	Body       string
	Attributes []KeyValue
	// Service is the service.name of the record's resource.
	Service string
}

// Class is a retention class: how important a stored trace is. Each class
// has a share of the byte budget; when the store is full, the class most
// over its share loses its oldest trace.
type Class uint8

// Retention classes, least important first.
const (
	ClassOrdinary Class = iota // successful, not slow, not retried
	ClassRetried               // some request needed more than one attempt
	ClassSlow                  // over the slow threshold or its route's recent p99
	ClassError                 // some span has error status
	ClassPinned                // opened by a person (GetTrace with open) or pinned
	numClasses
)

// String returns the class name used in config, metrics and the API.
func (c Class) String() string {
	switch c {
	case ClassOrdinary:
		return "ordinary"
	case ClassRetried:
		return "retried"
	case ClassSlow:
		return "slow"
	case ClassError:
		return "error"
	case ClassPinned:
		return "pinned"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// ParseClass is the inverse of Class.String.
func ParseClass(s string) (Class, bool) {
	for c := ClassOrdinary; c < numClasses; c++ {
		if c.String() == s {
			return c, true
		}
	}
	return 0, false
}

// Classes returns every class, least important first.
func Classes() []Class {
	return []Class{ClassOrdinary, ClassRetried, ClassSlow, ClassError, ClassPinned}
}

// Trace is one stored trace as readers get it: a deep copy.
type Trace struct {
	TraceID TraceID
	// Spans in the order they were stored.
	Spans []Span
	// Logs in time order.
	Logs []LogRecord
	// Class is the trace's retention class.
	Class Class
}

// Summary describes a stored trace without its spans, for search results.
type Summary struct {
	TraceID     TraceID
	Start       time.Time
	Duration    time.Duration
	RootService string
	RootName    string
	Spans       int
	Logs        int
	Errors      int
	Class       Class
	// HTTPStatus is the root span's http.response.status_code (0: none).
	HTTPStatus int
	// ErrorKind is the root span's vantage.error.kind ("" : none).
	ErrorKind string
	// Route is the root span's http.route ("" : none).
	Route    string
	Services []string
}
