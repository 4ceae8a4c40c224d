// Package queryapi serves the trace store over HTTP on the admin listener:
// Jaeger's query API (the JSON that the Jaeger UI and Grafana's Jaeger
// data source read, under /jaeger/api/), Jaeger's api_v3 (OTLP JSON, under
// /jaeger/api/v3/), and Vantage's own /api/traces, which returns a trace
// together with its log records.
//
// Every handler validates its parameters and answers a clear 400 for bad
// ones; searches are capped in results (tracestore.MaxLimit) and in time
// range (MaxRange). The handlers read through the Reader interface, so
// another store can stand behind them.
package queryapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/tracestore"
)

// Reader is what the query APIs read. Implementations return deep
// copies and are safe for concurrent use.
type Reader interface {
	GetTrace(id tracestore.TraceID, open bool) (*tracestore.Trace, bool)
	FindTraces(q tracestore.Query) []*tracestore.Trace
	Search(q tracestore.Query) []tracestore.Summary
	Services() []string
	Operations(service string, kind tracestore.SpanKind, anyKind bool) []tracestore.Operation
	Dependencies(end time.Time, lookback time.Duration) []tracestore.Dependency
	Pin(id tracestore.TraceID) bool
}

var _ Reader = (*tracestore.Store)(nil)

// Options configure the handlers.
type Options struct {
	// Clock supplies "now" for default time ranges (default real).
	Clock clock.Clock
}

// Jaeger's JSON model (model/json in jaegertracing/jaeger), as the query
// service writes it for the UI: span references instead of a parent id,
// process ids instead of inline processes, microsecond times. Spans have
// no "flags": Jaeger's translation of OTLP spans does not carry the trace
// flags, so Jaeger never writes them for spans it received over OTLP.
type jTrace struct {
	TraceID   string              `json:"traceID"`
	Spans     []jSpan             `json:"spans"`
	Processes map[string]jProcess `json:"processes"`
	Warnings  []string            `json:"warnings"`
}

type jSpan struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	References    []jRef      `json:"references"`
	StartTime     uint64      `json:"startTime"`
	Duration      uint64      `json:"duration"`
	Tags          []jKeyValue `json:"tags"`
	Logs          []jLog      `json:"logs"`
	ProcessID     string      `json:"processID"`
	Warnings      []string    `json:"warnings"`
}

type jRef struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

type jProcess struct {
	ServiceName string      `json:"serviceName"`
	Tags        []jKeyValue `json:"tags"`
}

type jLog struct {
	Timestamp uint64      `json:"timestamp"`
	Fields    []jKeyValue `json:"fields"`
}

type jKeyValue struct {
	Key   string `json:"key"`
	Type  string `json:"type,omitempty"`
	Value any    `json:"value"`
}

type jOperation struct {
	Name     string `json:"name"`
	SpanKind string `json:"spanKind"`
}

type jDependency struct {
	Parent    string `json:"parent"`
	Child     string `json:"child"`
	CallCount uint64 `json:"callCount"`
}

type jResponse struct {
	Data   any      `json:"data"`
	Total  int      `json:"total"`
	Limit  int      `json:"limit"`
	Offset int      `json:"offset"`
	Errors []jError `json:"errors"`
}

type jError struct {
	Code    int    `json:"code,omitempty"`
	Msg     string `json:"msg"`
	TraceID string `json:"traceID,omitempty"`
}

// jaegerTraceID formats an id as Jaeger does: 16 hex digits when the high
// half is zero, else 32.
func jaegerTraceID(id tracestore.TraceID) string {
	s := id.String()
	if s[:16] == "0000000000000000" {
		return s[16:]
	}
	return s
}

// jsMaxSafeInteger is the largest integer a JavaScript number holds
// exactly (2^53 - 1); Jaeger writes integer tags beyond it as strings.
const jsMaxSafeInteger = 1<<53 - 1

func micros(t time.Time) uint64 {
	if t.UnixNano() < 0 {
		return 0
	}
	return uint64(t.UnixNano() / 1000)
}

func jValue(kv tracestore.KeyValue) jKeyValue {
	out := jKeyValue{Key: kv.Key, Type: kv.Type.String()}
	switch kv.Type {
	case tracestore.TypeBool:
		out.Value = kv.Bool
	case tracestore.TypeInt64:
		out.Value = kv.Int
		if kv.Int > jsMaxSafeInteger || kv.Int < -jsMaxSafeInteger {
			// As Jaeger writes them: a JavaScript number would lose digits.
			out.Value = strconv.FormatInt(kv.Int, 10)
		}
	case tracestore.TypeFloat64:
		out.Value = kv.Float
	case tracestore.TypeBinary:
		out.Value = kv.Bytes // base64, as encoding/json writes []byte
	default:
		out.Type = "string"
		out.Value = kv.Str
	}
	return out
}

func jValues(kvs []tracestore.KeyValue) []jKeyValue {
	out := make([]jKeyValue, len(kvs))
	for i, kv := range kvs {
		out[i] = jValue(kv)
	}
	return out
}

// sortKeyValues orders tags as Jaeger's SortTagsAndLogFields adjuster
// does: by key (then type and value, for a stable order).
func sortKeyValues(kvs []jKeyValue) {
	sort.SliceStable(kvs, func(i, j int) bool {
		if kvs[i].Key != kvs[j].Key {
			return kvs[i].Key < kvs[j].Key
		}
		if kvs[i].Type != kvs[j].Type {
			return kvs[i].Type < kvs[j].Type
		}
		return fmt.Sprint(kvs[i].Value) < fmt.Sprint(kvs[j].Value)
	})
}

// spanTags are the span's attributes plus the tags Jaeger derives from
// OTLP fields (the OpenTelemetry Collector's Jaeger translator): scope,
// span.kind, otel.status_code, error, otel.status_description,
// w3c.tracestate.
func spanTags(sp *tracestore.Span) []jKeyValue {
	tags := jValues(sp.Attributes)
	str := func(k, v string) { tags = append(tags, jKeyValue{Key: k, Type: "string", Value: v}) }
	if sp.Scope.Name != "" {
		str("otel.scope.name", sp.Scope.Name)
	}
	if sp.Scope.Version != "" {
		str("otel.scope.version", sp.Scope.Version)
	}
	if k := sp.Kind.String(); k != "" {
		str("span.kind", k)
	}
	switch sp.StatusCode {
	case tracestore.StatusOK:
		str("otel.status_code", "OK")
	case tracestore.StatusError:
		str("otel.status_code", "ERROR")
		tags = append(tags, jKeyValue{Key: "error", Type: "bool", Value: true})
	}
	if sp.StatusMessage != "" {
		str("otel.status_description", sp.StatusMessage)
	}
	if sp.TraceState != "" {
		str("w3c.tracestate", sp.TraceState)
	}
	sortKeyValues(tags)
	return tags
}

// eventLogs are the span's events as Jaeger logs: the "event" field (the
// event name) first, then the attributes sorted by key.
func eventLogs(sp *tracestore.Span) []jLog {
	logs := make([]jLog, 0, len(sp.Events))
	for _, ev := range sp.Events {
		fields := jValues(ev.Attributes)
		hasEvent := false
		for _, f := range fields {
			if f.Key == "event" {
				hasEvent = true
			}
		}
		if ev.Name != "" && !hasEvent {
			fields = append([]jKeyValue{{Key: "event", Type: "string", Value: ev.Name}}, fields...)
		}
		off := 0
		for i, f := range fields {
			if f.Key == "event" && f.Type == "string" {
				fields[0], fields[i] = fields[i], fields[0]
				off = 1
				break
			}
		}
		sortKeyValues(fields[off:])
		logs = append(logs, jLog{Timestamp: micros(ev.Time), Fields: fields})
	}
	return logs
}

// sdkKeys are the span attributes that Jaeger's query service moves from
// a span's tags to its process's (its OTelTagAdjuster): they describe the
// SDK, not the operation.
var sdkKeys = map[string]bool{
	"telemetry.sdk.language": true, "telemetry.sdk.name": true, "telemetry.sdk.version": true,
	"telemetry.distro.name": true, "telemetry.distro.version": true,
}

// refTypeAttr is the link attribute by which OpenTracing bridges mark a
// link as a child_of reference.
const refTypeAttr = "opentracing.ref_type"

// spanRefs are a span's references as Jaeger gives them: CHILD_OF its
// parent, then its links as FOLLOWS_FROM (CHILD_OF for a link whose
// opentracing.ref_type is child_of); a link to the parent itself only
// sets the parent reference's type. References with an all-zero trace id
// are left out, and the first CHILD_OF reference within the trace (else
// the first reference within the trace) comes first, as the Jaeger UI
// takes it for the parent.
func spanRefs(sp *tracestore.Span) []jRef {
	refs := make([]jRef, 0, len(sp.Links)+1)
	hasParent := !sp.ParentSpanID.IsZero()
	if hasParent {
		refs = append(refs, jRef{RefType: "CHILD_OF", TraceID: jaegerTraceID(sp.TraceID), SpanID: sp.ParentSpanID.String()})
	}
	for _, l := range sp.Links {
		typ := "FOLLOWS_FROM"
		for _, a := range l.Attributes {
			if a.Key == refTypeAttr && a.Type == tracestore.TypeString && a.Str == "child_of" {
				typ = "CHILD_OF"
			}
		}
		if hasParent && l.TraceID == sp.TraceID && l.SpanID == sp.ParentSpanID {
			refs[0].RefType = typ
			continue
		}
		if l.TraceID.IsZero() {
			continue
		}
		refs = append(refs, jRef{RefType: typ, TraceID: jaegerTraceID(l.TraceID), SpanID: l.SpanID.String()})
	}
	local := jaegerTraceID(sp.TraceID)
	first, other := -1, -1
	for i, r := range refs {
		if r.TraceID != local {
			continue
		}
		if r.RefType == "CHILD_OF" {
			first = i
			break
		}
		if other == -1 {
			other = i
		}
	}
	if first == -1 {
		first = other
	}
	if first > 0 {
		refs[0], refs[first] = refs[first], refs[0]
	}
	return refs
}

// toJaeger converts a stored trace to Jaeger's JSON model. Spans that
// share a service and process tags share a process id.
func toJaeger(t *tracestore.Trace) jTrace {
	out := jTrace{TraceID: jaegerTraceID(t.TraceID), Spans: make([]jSpan, 0, len(t.Spans)), Processes: map[string]jProcess{}}
	type procKey struct{ service, tags string }
	ids := map[procKey]string{}
	for i := range t.Spans {
		sp := &t.Spans[i]
		tags := spanTags(sp)
		ptags := jValues(sp.Resource.Attributes)
		kept := tags[:0]
		for _, tag := range tags {
			if sdkKeys[tag.Key] {
				ptags = append(ptags, tag)
			} else {
				kept = append(kept, tag)
			}
		}
		tags = kept
		sortKeyValues(ptags)
		kb, _ := json.Marshal(ptags)
		pk := procKey{sp.Resource.ServiceName, string(kb)}
		pid, ok := ids[pk]
		if !ok {
			pid = "p" + strconv.Itoa(len(ids)+1)
			ids[pk] = pid
			out.Processes[pid] = jProcess{ServiceName: sp.Resource.ServiceName, Tags: ptags}
		}
		out.Spans = append(out.Spans, jSpan{
			TraceID:       jaegerTraceID(sp.TraceID),
			SpanID:        sp.SpanID.String(),
			OperationName: sp.Name,
			References:    spanRefs(sp),
			StartTime:     micros(sp.Start),
			Duration:      uint64(max(0, sp.Duration()) / time.Microsecond),
			Tags:          tags,
			Logs:          eventLogs(sp),
			ProcessID:     pid,
		})
	}
	return out
}

// Jaeger returns the handler of Jaeger's query API, to be mounted so that
// it sees paths starting with /api/ (for example under /jaeger/ with
// http.StripPrefix("/jaeger", h)).
func Jaeger(r Reader, o Options) http.Handler {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	h := &jaegerHandler{r: r, clock: o.Clock}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/services", h.services)
	mux.HandleFunc("GET /api/services/{service}/operations", h.operationsLegacy)
	mux.HandleFunc("GET /api/operations", h.operations)
	mux.HandleFunc("GET /api/traces/{traceID}", h.trace)
	mux.HandleFunc("GET /api/traces", h.search)
	mux.HandleFunc("POST /api/archive/{traceID}", h.archive)
	mux.HandleFunc("GET /api/dependencies", h.dependencies)
	v3 := &v3Handler{r: r, clock: o.Clock}
	mux.HandleFunc("GET /api/v3/services", v3.services)
	mux.HandleFunc("GET /api/v3/operations", v3.operations)
	mux.HandleFunc("GET /api/v3/traces/{traceID}", v3.trace)
	mux.HandleFunc("GET /api/v3/traces", v3.search)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJaegerError(w, http.StatusNotFound, errors.New("no such endpoint: "+r.URL.Path))
	})
	return mux
}

type jaegerHandler struct {
	r     Reader
	clock clock.Clock
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func writeJaegerError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, jResponse{Errors: []jError{{Code: status, Msg: err.Error()}}})
}

func (h *jaegerHandler) services(w http.ResponseWriter, r *http.Request) {
	s := h.r.Services()
	writeJSON(w, http.StatusOK, jResponse{Data: s, Total: len(s)})
}

func (h *jaegerHandler) operationsLegacy(w http.ResponseWriter, r *http.Request) {
	seen := map[string]bool{}
	var names []string // null when there are none, as Jaeger writes it
	for _, op := range h.r.Operations(r.PathValue("service"), 0, true) {
		if !seen[op.Name] {
			seen[op.Name] = true
			names = append(names, op.Name)
		}
	}
	writeJSON(w, http.StatusOK, jResponse{Data: names, Total: len(names)})
}

func (h *jaegerHandler) operations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	service := q.Get("service")
	if service == "" {
		writeJaegerError(w, http.StatusBadRequest, errors.New("parameter 'service' is required"))
		return
	}
	kind, anyKind := tracestore.SpanKind(0), true
	if k := q.Get("spanKind"); k != "" {
		var ok bool
		if kind, ok = tracestore.ParseSpanKind(k); !ok || kind == tracestore.KindUnspecified {
			writeJaegerError(w, http.StatusBadRequest, fmt.Errorf("unable to parse param 'spanKind': %q is not one of server, client, producer, consumer, internal", k))
			return
		}
		anyKind = false
	}
	ops := h.r.Operations(service, kind, anyKind)
	data := make([]jOperation, len(ops))
	for i, op := range ops {
		data[i] = jOperation{Name: op.Name, SpanKind: op.Kind.String()}
	}
	writeJSON(w, http.StatusOK, jResponse{Data: data, Total: len(data)})
}

func (h *jaegerHandler) trace(w http.ResponseWriter, r *http.Request) {
	id, err := tracestore.ParseTraceID(r.PathValue("traceID"))
	if err != nil {
		writeJaegerError(w, http.StatusBadRequest, fmt.Errorf("unable to parse trace id %q: %w", r.PathValue("traceID"), err))
		return
	}
	for _, p := range []string{"start", "end"} {
		if v := r.URL.Query().Get(p); v != "" {
			if _, err := strconv.ParseInt(v, 10, 64); err != nil {
				writeJaegerError(w, http.StatusBadRequest, fmt.Errorf("unable to parse param '%s': %q is not a number of microseconds", p, v))
				return
			}
		}
	}
	t, ok := h.r.GetTrace(id, true)
	if !ok {
		writeJaegerError(w, http.StatusNotFound, errors.New("trace not found"))
		return
	}
	writeJSON(w, http.StatusOK, jResponse{Data: []jTrace{toJaeger(t)}})
}

func (h *jaegerHandler) archive(w http.ResponseWriter, r *http.Request) {
	id, err := tracestore.ParseTraceID(r.PathValue("traceID"))
	if err != nil {
		writeJaegerError(w, http.StatusBadRequest, fmt.Errorf("unable to parse trace id %q: %w", r.PathValue("traceID"), err))
		return
	}
	if !h.r.Pin(id) {
		writeJaegerError(w, http.StatusNotFound, errors.New("trace not found"))
		return
	}
	writeJSON(w, http.StatusOK, jResponse{Data: []string{}, Errors: []jError{}})
}

func (h *jaegerHandler) search(w http.ResponseWriter, r *http.Request) {
	p, err := ParseSearch(r.URL.RawQuery, h.clock.Now())
	if err != nil {
		writeJaegerError(w, http.StatusBadRequest, err)
		return
	}
	traces := []jTrace{}
	var errs []jError
	if len(p.TraceIDs) > 0 {
		for _, id := range p.TraceIDs {
			if t, ok := h.r.GetTrace(id, false); ok {
				traces = append(traces, toJaeger(t))
			} else {
				errs = append(errs, jError{Msg: "trace not found", TraceID: jaegerTraceID(id)})
			}
		}
	} else {
		for _, t := range h.r.FindTraces(p.Query) {
			traces = append(traces, toJaeger(t))
		}
	}
	writeJSON(w, http.StatusOK, jResponse{Data: traces, Errors: errs})
}

func (h *jaegerHandler) dependencies(w http.ResponseWriter, r *http.Request) {
	end, lookback, err := ParseDependencies(r.URL.RawQuery, h.clock.Now())
	if err != nil {
		writeJaegerError(w, http.StatusBadRequest, err)
		return
	}
	service := r.URL.Query().Get("service")
	out := []jDependency{}
	for _, d := range h.r.Dependencies(end, lookback) {
		if service == "" || d.Parent == service || d.Child == service {
			out = append(out, jDependency{Parent: d.Parent, Child: d.Child, CallCount: uint64(d.CallCount)})
		}
	}
	writeJSON(w, http.StatusOK, jResponse{Data: out})
}
