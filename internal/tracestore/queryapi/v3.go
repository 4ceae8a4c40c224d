package queryapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/tracestore"
)

// Jaeger's api_v3 over HTTP answers in OTLP JSON (ids in hex, 64-bit
// integers and times as strings, enums as numbers), wrapped as the gRPC
// gateway wraps a stream message: {"result": TracesData}. Errors are
// {"error": {"httpCode": ..., "message": ...}}.

type otlpTracesData struct {
	ResourceSpans []otlpResourceSpans `json:"resourceSpans"`
}

type otlpResourceSpans struct {
	Resource   otlpResource     `json:"resource"`
	ScopeSpans []otlpScopeSpans `json:"scopeSpans"`
}

type otlpResource struct {
	Attributes []otlpKeyValue `json:"attributes"`
}

type otlpScopeSpans struct {
	Scope otlpScope  `json:"scope"`
	Spans []otlpSpan `json:"spans"`
}

type otlpScope struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
}

type otlpSpan struct {
	TraceID                string         `json:"traceId"`
	SpanID                 string         `json:"spanId"`
	TraceState             string         `json:"traceState,omitempty"`
	ParentSpanID           string         `json:"parentSpanId,omitempty"`
	Flags                  uint32         `json:"flags,omitempty"`
	Name                   string         `json:"name"`
	Kind                   int            `json:"kind,omitempty"`
	StartTimeUnixNano      string         `json:"startTimeUnixNano"`
	EndTimeUnixNano        string         `json:"endTimeUnixNano"`
	Attributes             []otlpKeyValue `json:"attributes,omitempty"`
	DroppedAttributesCount uint32         `json:"droppedAttributesCount,omitempty"`
	Events                 []otlpEvent    `json:"events,omitempty"`
	DroppedEventsCount     uint32         `json:"droppedEventsCount,omitempty"`
	Links                  []otlpLink     `json:"links,omitempty"`
	DroppedLinksCount      uint32         `json:"droppedLinksCount,omitempty"`
	Status                 otlpStatus     `json:"status"`
}

type otlpEvent struct {
	TimeUnixNano string         `json:"timeUnixNano"`
	Name         string         `json:"name"`
	Attributes   []otlpKeyValue `json:"attributes,omitempty"`
}

type otlpLink struct {
	TraceID    string         `json:"traceId"`
	SpanID     string         `json:"spanId"`
	TraceState string         `json:"traceState,omitempty"`
	Attributes []otlpKeyValue `json:"attributes,omitempty"`
}

type otlpStatus struct {
	Message string `json:"message,omitempty"`
	Code    int    `json:"code,omitempty"`
}

type otlpKeyValue struct {
	Key   string         `json:"key"`
	Value map[string]any `json:"value"`
}

func otlpValues(kvs []tracestore.KeyValue) []otlpKeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]otlpKeyValue, len(kvs))
	for i, kv := range kvs {
		var v map[string]any
		switch kv.Type {
		case tracestore.TypeBool:
			v = map[string]any{"boolValue": kv.Bool}
		case tracestore.TypeInt64:
			v = map[string]any{"intValue": strconv.FormatInt(kv.Int, 10)}
		case tracestore.TypeFloat64:
			v = map[string]any{"doubleValue": kv.Float}
		case tracestore.TypeBinary:
			v = map[string]any{"bytesValue": kv.Bytes}
		default:
			v = map[string]any{"stringValue": kv.Str}
		}
		out[i] = otlpKeyValue{Key: kv.Key, Value: v}
	}
	// Jaeger's query service sorts every attribute list by key (its
	// SortCollections adjuster) before it answers.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func nanos(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

// toOTLP converts traces to OTLP TracesData: for each trace, one
// ResourceSpans per resource and one ScopeSpans per scope within it, in
// order of first appearance, with the SDK attributes of its spans moved
// to the resource (moveSDKAttributes).
func toOTLP(traces []*tracestore.Trace) otlpTracesData {
	out := otlpTracesData{ResourceSpans: []otlpResourceSpans{}}
	for _, t := range traces {
		first := len(out.ResourceSpans)
		resIdx := map[string]int{}
		scopeIdx := map[string]int{}
		for i := range t.Spans {
			sp := &t.Spans[i]
			attrs := append([]tracestore.KeyValue{tracestore.String("service.name", sp.Resource.ServiceName)}, sp.Resource.Attributes...)
			rkb, _ := json.Marshal(otlpValues(attrs))
			rk := string(rkb)
			ri, ok := resIdx[rk]
			if !ok {
				ri = len(out.ResourceSpans)
				resIdx[rk] = ri
				out.ResourceSpans = append(out.ResourceSpans, otlpResourceSpans{Resource: otlpResource{Attributes: otlpValues(attrs)}})
			}
			rs := &out.ResourceSpans[ri]
			sk := rk + "\x00" + sp.Scope.Name + "\x00" + sp.Scope.Version
			si, ok := scopeIdx[sk]
			if !ok {
				si = len(rs.ScopeSpans)
				scopeIdx[sk] = si
				rs.ScopeSpans = append(rs.ScopeSpans, otlpScopeSpans{Scope: otlpScope{Name: sp.Scope.Name, Version: sp.Scope.Version}})
			}
			os := otlpSpan{
				TraceID: sp.TraceID.String(), SpanID: sp.SpanID.String(), TraceState: sp.TraceState,
				Flags: sp.Flags, Name: sp.Name, Kind: int(sp.Kind),
				StartTimeUnixNano: nanos(sp.Start), EndTimeUnixNano: nanos(sp.End),
				Attributes:             otlpValues(sp.Attributes),
				DroppedAttributesCount: sp.DroppedAttributes, DroppedEventsCount: sp.DroppedEvents, DroppedLinksCount: sp.DroppedLinks,
				Status: otlpStatus{Code: int(sp.StatusCode), Message: sp.StatusMessage},
			}
			if !sp.ParentSpanID.IsZero() {
				os.ParentSpanID = sp.ParentSpanID.String()
			}
			for _, ev := range sp.Events {
				os.Events = append(os.Events, otlpEvent{TimeUnixNano: nanos(ev.Time), Name: ev.Name, Attributes: otlpValues(ev.Attributes)})
			}
			// Events in the order of their names, as Jaeger's adjuster
			// leaves them.
			sort.SliceStable(os.Events, func(i, j int) bool { return os.Events[i].Name < os.Events[j].Name })
			for _, l := range sp.Links {
				os.Links = append(os.Links, otlpLink{TraceID: l.TraceID.String(), SpanID: l.SpanID.String(), TraceState: l.TraceState, Attributes: otlpValues(l.Attributes)})
			}
			rs.ScopeSpans[si].Spans = append(rs.ScopeSpans[si].Spans, os)
		}
		for i := first; i < len(out.ResourceSpans); i++ {
			moveSDKAttributes(&out.ResourceSpans[i])
		}
	}
	return out
}

// moveSDKAttributes moves the SDK attributes (sdkKeys) of rs's spans to
// its resource, after the resource's own, as Jaeger's query service does
// (its MoveLibraryAttributes adjuster); a span keeps one whose value
// differs from the resource's.
func moveSDKAttributes(rs *otlpResourceSpans) {
	have := map[string]string{}
	for _, kv := range rs.Resource.Attributes {
		if sdkKeys[kv.Key] {
			b, _ := json.Marshal(kv.Value)
			have[kv.Key] = string(b)
		}
	}
	for si := range rs.ScopeSpans {
		spans := rs.ScopeSpans[si].Spans
		for i := range spans {
			kept := spans[i].Attributes[:0]
			for _, kv := range spans[i].Attributes {
				if !sdkKeys[kv.Key] {
					kept = append(kept, kv)
					continue
				}
				b, _ := json.Marshal(kv.Value)
				if v, ok := have[kv.Key]; ok && v != string(b) {
					kept = append(kept, kv)
					continue
				}
				if _, ok := have[kv.Key]; !ok {
					have[kv.Key] = string(b)
					rs.Resource.Attributes = append(rs.Resource.Attributes, kv)
				}
			}
			if len(kept) == 0 {
				kept = nil
			}
			spans[i].Attributes = kept
		}
	}
}

// v3Operation is api_v3's Operation: protobuf's JSON leaves out an empty
// span kind.
type v3Operation struct {
	Name     string `json:"name"`
	SpanKind string `json:"spanKind,omitempty"`
}

type v3Handler struct {
	r     Reader
	clock clock.Clock
}

type v3Error struct {
	Error struct {
		HTTPCode int    `json:"httpCode"`
		Message  string `json:"message"`
	} `json:"error"`
}

func writeV3Error(w http.ResponseWriter, status int, err error) {
	var e v3Error
	e.Error.HTTPCode, e.Error.Message = status, err.Error()
	writeJSON(w, status, e)
}

func (h *v3Handler) services(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string][]string{"services": h.r.Services()})
}

func (h *v3Handler) operations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	service := q.Get("service")
	if service == "" {
		writeV3Error(w, http.StatusBadRequest, errors.New("parameter 'service' is required"))
		return
	}
	kind, anyKind := tracestore.SpanKind(0), true
	if k := q.Get("span_kind"); k != "" {
		var ok bool
		if kind, ok = tracestore.ParseSpanKind(k); !ok || kind == tracestore.KindUnspecified {
			writeV3Error(w, http.StatusBadRequest, fmt.Errorf("span_kind: %q is not one of server, client, producer, consumer, internal", k))
			return
		}
		anyKind = false
	}
	ops := []v3Operation{}
	for _, op := range h.r.Operations(service, kind, anyKind) {
		ops = append(ops, v3Operation{Name: op.Name, SpanKind: op.Kind.String()})
	}
	writeJSON(w, http.StatusOK, map[string][]v3Operation{"operations": ops})
}

func (h *v3Handler) trace(w http.ResponseWriter, r *http.Request) {
	id, err := tracestore.ParseTraceID(r.PathValue("traceID"))
	if err != nil {
		writeV3Error(w, http.StatusBadRequest, fmt.Errorf("trace id %q: %w", r.PathValue("traceID"), err))
		return
	}
	t, ok := h.r.GetTrace(id, true)
	if !ok {
		writeV3Error(w, http.StatusNotFound, errors.New("trace not found"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": toOTLP([]*tracestore.Trace{t})})
}

func (h *v3Handler) search(w http.ResponseWriter, r *http.Request) {
	q, err := ParseV3Search(r.URL.RawQuery, h.clock.Now())
	if err != nil {
		writeV3Error(w, http.StatusBadRequest, err)
		return
	}
	traces := h.r.FindTraces(q)
	if len(traces) == 0 {
		// Jaeger answers a search that finds nothing as it answers an
		// absent trace.
		writeV3Error(w, http.StatusNotFound, errors.New("No traces found"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": toOTLP(traces)})
}

// ParseV3Search parses the query string of api_v3's GET /api/v3/traces:
// query.service_name (required), query.operation_name,
// query.start_time_min and query.start_time_max (RFC 3339; default the
// last 48 hours), query.duration_min and query.duration_max (Go
// durations), query.search_depth or query.num_traces (the result limit,
// default 20, at most tracestore.MaxLimit), and the attribute filter:
// query.attributes as a JSON object of strings, or query.attributes.KEY=VALUE.
func ParseV3Search(raw string, now time.Time) (tracestore.Query, error) {
	v := parseQuery(raw)
	var q tracestore.Query
	q.Service = v.Get("query.service_name")
	if q.Service == "" {
		return q, errors.New("query.service_name is required")
	}
	q.Operation = v.Get("query.operation_name")
	var err error
	if q.MinDuration, q.MaxDuration, err = parseDurationRange(v, "query.duration_min", "query.duration_max",
		"query.duration_max should be greater than query.duration_min"); err != nil {
		return q, err
	}
	q.Limit = tracestore.DefaultLimit
	for _, name := range []string{"query.search_depth", "query.num_traces"} {
		if q.Limit, err = parseLimit(v, name, q.Limit, paramError); err != nil {
			return q, err
		}
	}
	attrs := map[string]string{}
	for k, vals := range v {
		if key, ok := strings.CutPrefix(k, "query.attributes."); ok && key != "" && len(vals) > 0 {
			attrs[key] = vals[0]
		}
	}
	if err := addJSONTags(attrs, v["query.attributes"], "query.attributes", "attribute"); err != nil {
		return q, err
	}
	if len(attrs) > 0 {
		q.Tags = attrs
	}
	q.StartMin, q.StartMax, err = timeRange{
		start: "query.start_time_min", end: "query.start_time_max", parse: parseRFC3339, wrap: paramError,
		lookback:  func() (time.Duration, error) { return DefaultLookback, nil },
		backwards: "query.start_time_max should not be before query.start_time_min",
	}.read(v, now)
	return q, err
}
