// Package conform compares answers of Jaeger's query APIs: the JSON of
// Jaeger's HTTP API (/api/...) and of its api_v3 (/api/v3/...), as a
// real Jaeger gives them and as the gateway's trace store gives them.
//
// Normalize removes only what legitimately differs between two correct
// servers holding the same spans: orders Jaeger does not define (traces
// in a search, spans in a trace, services, operations, dependencies,
// resource and scope groups in OTLP), the names of process ids (p1, p2,
// ... are assigned in the order spans are read), the warnings of spans
// (Jaeger's clock-skew adjuster writes some even when it is disabled) and
// error message texts (their status codes are kept). Everything else is
// compared as it is.
//
// Three differences are known and tolerated. In api_v3 answers, the
// trace store keeps array and map attribute values as their JSON text, so
// the gateway writes them as a stringValue where Jaeger writes an
// arrayValue or a kvlistValue; and it keeps a span's W3C trace flags but
// not the is-remote bits an OTLP exporter adds (0x100, 0x200). And a
// resource without service.name is the service "unknown_service"
// (OpenTelemetry's default) in the store, where Jaeger names it
// "missing-service-name". Compare turns Jaeger's into the gateway's
// before it compares, and says how many it turned.
//
// Capture is the file format of answers captured from a real Jaeger, used
// by the conformance tests so that they need no Jaeger to run.
package conform

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Case is one request to the query API and the answer to it.
type Case struct {
	// Name says what the request checks.
	Name string `json:"name"`
	// Path is the request's path and query, relative to the query API's
	// root (for example /api/traces?service=frontend).
	Path string `json:"path"`
	// Status is the answer's HTTP status code.
	Status int `json:"status"`
	// Body is the answer's JSON.
	Body json.RawMessage `json:"body"`
	// Deliberate, when set, says why the gateway answers this request
	// differently on purpose; such a case is reported, not compared.
	Deliberate string `json:"deliberate,omitempty"`
}

// Capture is a set of requests answered by one server holding the spans
// of Request.
type Capture struct {
	// Server names the server that answered (for example "jaeger v1.75.0").
	Server string `json:"server"`
	// Now is the time of the requests; relative time ranges (lookback)
	// and defaults are read against it.
	Now time.Time `json:"now"`
	// Request is the OTLP ExportTraceServiceRequest both servers
	// received, in OTLP/JSON.
	Request json.RawMessage `json:"request"`
	// Cases are the requests and the answers.
	Cases []Case `json:"cases"`
}

// Normalize decodes the answer to the request path and puts it in a
// canonical form (see the package documentation).
func Normalize(path string, body []byte) (any, error) {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p, _, _ := strings.Cut(path, "?")
	if strings.HasPrefix(p, "/api/v3/") {
		return normalizeV3(v), nil
	}
	return normalizeV1(v), nil
}

func normalizeV1(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	clearErrorMessages(m["errors"], "msg")
	data, ok := m["data"].([]any)
	if !ok {
		return m
	}
	for _, d := range data {
		if t, ok := d.(map[string]any); ok {
			if _, ok := t["spans"]; ok {
				normalizeTrace(t)
			}
		}
	}
	sortByJSON(data, "traceID", "name", "spanKind", "parent", "child")
	if errs, ok := m["errors"].([]any); ok {
		sortByJSON(errs, "traceID")
	}
	return m
}

// clearErrorMessages blanks the message field of each error object in v.
func clearErrorMessages(v any, field string) {
	errs, _ := v.([]any)
	for _, e := range errs {
		if em, ok := e.(map[string]any); ok {
			if _, ok := em[field]; ok {
				em[field] = "(message)"
			}
		}
	}
}

// normalizeTrace sorts a Jaeger trace's spans by span id and renames its
// processes q1, q2, ... in the order of their content.
func normalizeTrace(t map[string]any) {
	spans, _ := t["spans"].([]any)
	sortByJSON(spans, "spanID")
	for _, s := range spans {
		if sm, ok := s.(map[string]any); ok {
			if _, ok := sm["warnings"]; ok {
				sm["warnings"] = nil
			}
		}
	}
	procs, _ := t["processes"].(map[string]any)
	if procs == nil {
		return
	}
	keys := make([]string, 0, len(procs))
	content := map[string]string{}
	for k, p := range procs {
		b, _ := json.Marshal(p)
		content[k] = string(b)
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if content[keys[i]] != content[keys[j]] {
			return content[keys[i]] < content[keys[j]]
		}
		return keys[i] < keys[j]
	})
	rename := map[string]string{}
	out := map[string]any{}
	for i, k := range keys {
		n := "q" + strconv.Itoa(i+1)
		rename[k] = n
		out[n] = procs[k]
	}
	t["processes"] = out
	for _, s := range spans {
		if sm, ok := s.(map[string]any); ok {
			if pid, ok := sm["processID"].(string); ok {
				if n, ok := rename[pid]; ok {
					sm["processID"] = n
				}
			}
		}
	}
}

// normalizeV3 flattens OTLP TracesData into one record per span, with its
// resource and scope, sorted by trace and span id; resource and scope
// grouping is an encoding choice, not content.
func normalizeV3(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if e, ok := m["error"].(map[string]any); ok {
		if _, ok := e["message"]; ok {
			e["message"] = "(message)"
		}
		return m
	}
	for _, k := range []string{"services"} {
		if l, ok := m[k].([]any); ok {
			sortByJSON(l)
		}
	}
	if l, ok := m["operations"].([]any); ok {
		sortByJSON(l, "name", "spanKind")
	}
	res, ok := m["result"].(map[string]any)
	if !ok {
		return m
	}
	var flat []any
	rss, _ := res["resourceSpans"].([]any)
	for _, rs := range rss {
		rsm, _ := rs.(map[string]any)
		sss, _ := rsm["scopeSpans"].([]any)
		for _, ss := range sss {
			ssm, _ := ss.(map[string]any)
			spans, _ := ssm["spans"].([]any)
			for _, sp := range spans {
				flat = append(flat, map[string]any{
					"resource":          rsm["resource"],
					"resourceSchemaUrl": rsm["schemaUrl"],
					"scope":             ssm["scope"],
					"scopeSchemaUrl":    ssm["schemaUrl"],
					"span":              sp,
				})
			}
		}
	}
	sort.SliceStable(flat, func(i, j int) bool {
		return spanKey(flat[i]) < spanKey(flat[j])
	})
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	delete(out, "result")
	out["spans"] = flat
	return out
}

func spanKey(v any) string {
	sp, _ := v.(map[string]any)["span"].(map[string]any)
	t, _ := sp["traceId"].(string)
	s, _ := sp["spanId"].(string)
	return t + "/" + s
}

// sortByJSON sorts l by the values of the named fields (objects) or by
// their JSON (anything else), stably.
func sortByJSON(l []any, fields ...string) {
	key := func(v any) string {
		if m, ok := v.(map[string]any); ok && len(fields) > 0 {
			var sb strings.Builder
			for _, f := range fields {
				fmt.Fprintf(&sb, "%v\x00", m[f])
			}
			b, _ := json.Marshal(m)
			sb.Write(b)
			return sb.String()
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	sort.SliceStable(l, func(i, j int) bool { return key(l[i]) < key(l[j]) })
}

// Compare normalizes Jaeger's answer and ours to the request path and
// lists their differences (at most limit) and notes on what was
// tolerated.
func Compare(path string, jaeger, ours []byte, limit int) (diffs, notes []string, err error) {
	// The tolerated differences are removed before normalizing, so that
	// orders are those of the values compared.
	var raw any
	if err := json.Unmarshal(jaeger, &raw); err != nil {
		return nil, nil, fmt.Errorf("Jaeger's answer: %s: %w", path, err)
	}
	if n := renameStrings(raw, jaegerNoService, NoService); n > 0 {
		notes = append(notes, fmt.Sprintf("%d %q of Jaeger's answer compared as %q", n, jaegerNoService, NoService))
	}
	if n := compositeAsText(raw); n > 0 {
		notes = append(notes, fmt.Sprintf("%d array or map attribute values of Jaeger's answer compared as their JSON text", n))
	}
	if p, _, _ := strings.Cut(path, "?"); strings.HasPrefix(p, "/api/v3/") {
		if n := traceFlagsOnly(raw); n > 0 {
			notes = append(notes, fmt.Sprintf("%d span flags of Jaeger's answer compared in their low 8 bits (the W3C trace flags)", n))
		}
	}
	if jaeger, err = json.Marshal(raw); err != nil {
		return nil, nil, err
	}
	jn, err := Normalize(path, jaeger)
	if err != nil {
		return nil, nil, fmt.Errorf("Jaeger's answer: %w", err)
	}
	on, err := Normalize(path, ours)
	if err != nil {
		return []string{"our answer is not JSON: " + err.Error()}, nil, nil
	}
	return Diff(jn, on, limit), notes, nil
}

// traceFlagsOnly keeps only the low 8 bits (the W3C trace flags) of the
// flags of every OTLP span in v, dropping the field when none are left,
// and returns how many it changed: the store keeps the trace flags, not
// OTLP's is-remote bits (0x100, 0x200) that an SDK's exporter adds.
func traceFlagsOnly(v any) int {
	n := 0
	switch x := v.(type) {
	case map[string]any:
		if f, ok := x["flags"].(float64); ok && x["spanId"] != nil {
			if low := float64(int64(f) & 0xff); low != f {
				n++
				if low == 0 {
					delete(x, "flags")
				} else {
					x["flags"] = low
				}
			}
		}
		for _, e := range x {
			n += traceFlagsOnly(e)
		}
	case []any:
		for _, e := range x {
			n += traceFlagsOnly(e)
		}
	}
	return n
}

// The service name of a resource without service.name: the store's
// (OpenTelemetry's default) and Jaeger's.
const (
	NoService       = "unknown_service"
	jaegerNoService = "missing-service-name"
)

// renameStrings replaces every string value from in v by to (in place,
// where v's containers allow) and returns how many it replaced.
func renameStrings(v any, from, to string) int {
	n := 0
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && s == from {
				x[k] = to
				n++
				continue
			}
			n += renameStrings(e, from, to)
		}
	case []any:
		for i, e := range x {
			if s, ok := e.(string); ok && s == from {
				x[i] = to
				n++
				continue
			}
			n += renameStrings(e, from, to)
		}
	}
	return n
}

// compositeAsText replaces, anywhere in v, an OTLP/JSON AnyValue holding
// an arrayValue or a kvlistValue by a stringValue of its JSON text, as
// the trace store writes it; it returns how many it replaced.
func compositeAsText(v any) int {
	n := 0
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if val, ok := e.(map[string]any); ok && k == "value" && len(val) == 1 {
				if _, arr := val["arrayValue"]; arr {
					x[k] = map[string]any{"stringValue": anyValueText(val)}
					n++
					continue
				}
				if _, kvl := val["kvlistValue"]; kvl {
					x[k] = map[string]any{"stringValue": anyValueText(val)}
					n++
					continue
				}
			}
			n += compositeAsText(e)
		}
	case []any:
		for _, e := range x {
			n += compositeAsText(e)
		}
	}
	return n
}

// anyValueText is an OTLP/JSON AnyValue as plain JSON text: arrays as
// arrays, maps as objects in their order, integers as numbers, bytes as
// base64 strings.
func anyValueText(v map[string]any) string {
	var sb strings.Builder
	writeAnyValue(&sb, v)
	return sb.String()
}

func writeAnyValue(sb *strings.Builder, v map[string]any) {
	for k, e := range v {
		switch k {
		case "stringValue", "bytesValue", "boolValue", "doubleValue":
			b, _ := json.Marshal(e)
			sb.Write(b)
		case "intValue":
			fmt.Fprint(sb, e) // a string of digits in OTLP/JSON
		case "arrayValue":
			sb.WriteByte('[')
			vals, _ := e.(map[string]any)["values"].([]any)
			for i, x := range vals {
				if i > 0 {
					sb.WriteByte(',')
				}
				m, _ := x.(map[string]any)
				writeAnyValue(sb, m)
			}
			sb.WriteByte(']')
		case "kvlistValue":
			sb.WriteByte('{')
			vals, _ := e.(map[string]any)["values"].([]any)
			for i, x := range vals {
				if i > 0 {
					sb.WriteByte(',')
				}
				kv, _ := x.(map[string]any)
				b, _ := json.Marshal(kv["key"])
				sb.Write(b)
				sb.WriteByte(':')
				m, _ := kv["value"].(map[string]any)
				writeAnyValue(sb, m)
			}
			sb.WriteByte('}')
		}
		return
	}
	sb.WriteString("null")
}

// Diff lists the differences between two normalized answers, at most
// limit of them, each as a JSON path with both values.
func Diff(want, got any, limit int) []string {
	var out []string
	diff(&out, limit, "$", want, got)
	return out
}

func diff(out *[]string, limit int, path string, want, got any) {
	if len(*out) >= limit {
		return
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			break
		}
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			wv, wok := w[k]
			gv, gok := g[k]
			switch {
			case !wok:
				*out = append(*out, fmt.Sprintf("%s.%s: absent in Jaeger's answer, ours has %s", path, k, short(gv)))
			case !gok:
				*out = append(*out, fmt.Sprintf("%s.%s: missing from ours, Jaeger's has %s", path, k, short(wv)))
			default:
				diff(out, limit, path+"."+k, wv, gv)
			}
			if len(*out) >= limit {
				return
			}
		}
		return
	case []any:
		g, ok := got.([]any)
		if !ok {
			break
		}
		if len(w) != len(g) {
			*out = append(*out, fmt.Sprintf("%s: %d elements in Jaeger's answer, %d in ours: Jaeger %s, ours %s", path, len(w), len(g), short(w), short(g)))
			return
		}
		for i := range w {
			diff(out, limit, fmt.Sprintf("%s[%d]", path, i), w[i], g[i])
		}
		return
	}
	if !reflect.DeepEqual(want, got) {
		*out = append(*out, fmt.Sprintf("%s: Jaeger %s, ours %s", path, short(want), short(got)))
	}
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
