package queryapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/tracestore"
)

// TraceDoc is Vantage's own document of one trace: its spans and its log
// records together (GET /api/traces/{traceID}).
type TraceDoc struct {
	TraceID string    `json:"trace_id"`
	Class   string    `json:"class"`
	Start   time.Time `json:"start"`
	// DurationMS is from the earliest span start to the latest span end.
	DurationMS float64   `json:"duration_ms"`
	Spans      []SpanDoc `json:"spans"`
	Logs       []LogDoc  `json:"logs"`
}

// SpanDoc is one span of a TraceDoc.
type SpanDoc struct {
	SpanID        string         `json:"span_id"`
	ParentSpanID  string         `json:"parent_span_id,omitempty"`
	Service       string         `json:"service"`
	Name          string         `json:"name"`
	Kind          string         `json:"kind,omitempty"`
	Start         time.Time      `json:"start"`
	DurationMS    float64        `json:"duration_ms"`
	Status        string         `json:"status"`
	StatusMessage string         `json:"status_message,omitempty"`
	Attributes    map[string]any `json:"attributes,omitempty"`
	Events        []EventDoc     `json:"events,omitempty"`
	Links         []LinkDoc      `json:"links,omitempty"`
	Resource      map[string]any `json:"resource,omitempty"`
	Scope         string         `json:"scope,omitempty"`
}

// EventDoc is a span event.
type EventDoc struct {
	Time       time.Time      `json:"time"`
	Name       string         `json:"name"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// LinkDoc is a span link.
type LinkDoc struct {
	TraceID    string         `json:"trace_id"`
	SpanID     string         `json:"span_id"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// LogDoc is a log record of a TraceDoc.
type LogDoc struct {
	Time       time.Time      `json:"time"`
	SpanID     string         `json:"span_id,omitempty"`
	Service    string         `json:"service,omitempty"`
	Severity   string         `json:"severity,omitempty"`
	Body       string         `json:"body"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// SummaryDoc is one search result of GET /api/traces.
type SummaryDoc struct {
	TraceID     string    `json:"trace_id"`
	Start       time.Time `json:"start"`
	DurationMS  float64   `json:"duration_ms"`
	RootService string    `json:"root_service"`
	RootName    string    `json:"root_name"`
	Route       string    `json:"route,omitempty"`
	Status      int       `json:"status,omitempty"`
	ErrorKind   string    `json:"error_kind,omitempty"`
	Class       string    `json:"class"`
	Spans       int       `json:"spans"`
	Errors      int       `json:"errors"`
	Logs        int       `json:"logs"`
	Services    []string  `json:"services"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func attrMap(kvs []tracestore.KeyValue) map[string]any {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = jValue(kv).Value
	}
	return m
}

func statusName(c tracestore.StatusCode) string {
	switch c {
	case tracestore.StatusOK:
		return "ok"
	case tracestore.StatusError:
		return "error"
	}
	return "unset"
}

// NewTraceDoc converts a stored trace.
func NewTraceDoc(t *tracestore.Trace) TraceDoc {
	d := TraceDoc{TraceID: t.TraceID.String(), Class: t.Class.String(), Spans: []SpanDoc{}, Logs: []LogDoc{}}
	var start, end time.Time
	for i := range t.Spans {
		sp := &t.Spans[i]
		if start.IsZero() || sp.Start.Before(start) {
			start = sp.Start
		}
		if sp.End.After(end) {
			end = sp.End
		}
		sd := SpanDoc{
			SpanID: sp.SpanID.String(), Service: sp.Resource.ServiceName, Name: sp.Name, Kind: sp.Kind.String(),
			Start: sp.Start.UTC(), DurationMS: ms(sp.Duration()), Status: statusName(sp.StatusCode),
			StatusMessage: sp.StatusMessage, Attributes: attrMap(sp.Attributes), Resource: attrMap(sp.Resource.Attributes),
			Scope: sp.Scope.Name,
		}
		if !sp.ParentSpanID.IsZero() {
			sd.ParentSpanID = sp.ParentSpanID.String()
		}
		for _, ev := range sp.Events {
			sd.Events = append(sd.Events, EventDoc{Time: ev.Time.UTC(), Name: ev.Name, Attributes: attrMap(ev.Attributes)})
		}
		for _, l := range sp.Links {
			sd.Links = append(sd.Links, LinkDoc{TraceID: l.TraceID.String(), SpanID: l.SpanID.String(), Attributes: attrMap(l.Attributes)})
		}
		d.Spans = append(d.Spans, sd)
	}
	for _, l := range t.Logs {
		ld := LogDoc{Time: l.Time.UTC(), Service: l.Service, Severity: l.SeverityText, Body: l.Body, Attributes: attrMap(l.Attributes)}
		if !l.SpanID.IsZero() {
			ld.SpanID = l.SpanID.String()
		}
		d.Logs = append(d.Logs, ld)
	}
	if !start.IsZero() {
		d.Start, d.DurationMS = start.UTC(), ms(end.Sub(start))
	} else if len(t.Logs) > 0 {
		d.Start = t.Logs[0].Time.UTC()
	}
	return d
}

// Vantage returns the handler of Vantage's own trace API, to be mounted
// on the admin mux for "GET /api/traces" and "GET /api/traces/{traceID}".
func Vantage(r Reader, o Options) http.Handler {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	h := &vantageHandler{r: r, clock: o.Clock}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/traces/{traceID}", h.trace)
	mux.HandleFunc("GET /api/traces", h.search)
	return mux
}

type vantageHandler struct {
	r     Reader
	clock clock.Clock
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func (h *vantageHandler) trace(w http.ResponseWriter, r *http.Request) {
	id, err := tracestore.ParseTraceID(r.PathValue("traceID"))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("trace id %q: %w", r.PathValue("traceID"), err))
		return
	}
	t, ok := h.r.GetTrace(id, true)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("trace %s is not in the trace store (never kept, or evicted)", id))
		return
	}
	writeJSON(w, http.StatusOK, NewTraceDoc(t))
}

func (h *vantageHandler) search(w http.ResponseWriter, r *http.Request) {
	q, err := ParseVantageSearch(r.URL.RawQuery, h.clock.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	out := []SummaryDoc{}
	for _, s := range h.r.Search(q) {
		out = append(out, SummaryDoc{
			TraceID: s.TraceID.String(), Start: s.Start.UTC(), DurationMS: ms(s.Duration),
			RootService: s.RootService, RootName: s.RootName, Route: s.Route, Status: s.HTTPStatus,
			ErrorKind: s.ErrorKind, Class: s.Class.String(), Spans: s.Spans, Errors: s.Errors, Logs: s.Logs,
			Services: s.Services,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"traces": out, "limit": q.Limit})
}

// ParseVantageSearch parses the query string of GET /api/traces: route,
// service, operation, status (a code such as 503, or a class such as
// 5xx), class (retention classes, comma-separated), error_kind, error
// (true: some span failed), min_duration and max_duration (Go durations),
// since (a Go duration back from now, default 1h), start and end (RFC
// 3339), limit (default 20, at most tracestore.MaxLimit).
func ParseVantageSearch(raw string, now time.Time) (tracestore.Query, error) {
	v := parseQuery(raw)
	known := map[string]bool{"route": true, "service": true, "operation": true, "status": true, "class": true,
		"error_kind": true, "error": true, "min_duration": true, "max_duration": true, "since": true,
		"start": true, "end": true, "limit": true}
	for k := range v {
		if !known[k] {
			return tracestore.Query{}, fmt.Errorf("unknown parameter %.64q (known: route, service, operation, status, class, error_kind, error, min_duration, max_duration, since, start, end, limit)", k)
		}
	}
	q := tracestore.Query{Route: v.Get("route"), Service: v.Get("service"), Operation: v.Get("operation"), ErrorKind: v.Get("error_kind")}
	if q.Operation != "" && q.Service == "" {
		return q, errors.New("operation needs service")
	}
	if s := v.Get("status"); s != "" {
		if c, ok := strings.CutSuffix(strings.ToLower(s), "xx"); ok && len(c) == 1 && c[0] >= '1' && c[0] <= '5' {
			q.HTTPStatusClass = int(c[0] - '0')
		} else if n, err := strconv.Atoi(s); err == nil && n >= 100 && n <= 599 {
			q.HTTPStatus = n
		} else {
			return q, fmt.Errorf("status: %q is neither a status code (100-599) nor a class (1xx-5xx)", s)
		}
	}
	if s := v.Get("class"); s != "" {
		for _, name := range strings.Split(s, ",") {
			c, ok := tracestore.ParseClass(strings.TrimSpace(name))
			if !ok {
				return q, fmt.Errorf("class: %q is not one of ordinary, retried, slow, error, pinned", name)
			}
			q.Classes = append(q.Classes, c)
		}
	}
	if s := v.Get("error"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return q, fmt.Errorf("error: %q is not true or false", s)
		}
		q.Error = b
	}
	named := func(name string, err error) error { return fmt.Errorf("%s: %w", name, err) }
	var err error
	if q.MinDuration, q.MaxDuration, err = parseDurationRange(v, "min_duration", "max_duration", "max_duration should be greater than min_duration"); err != nil {
		return q, err
	}
	if q.Limit, err = parseLimit(v, "limit", tracestore.DefaultLimit, named); err != nil {
		return q, err
	}
	q.StartMin, q.StartMax, err = timeRange{
		start: "start", end: "end", parse: parseRFC3339, wrap: named,
		lookback: func() (time.Duration, error) {
			s := v.Get("since")
			if s == "" {
				return time.Hour, nil
			}
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				return 0, fmt.Errorf("since: %q is not a positive duration such as 15m", s)
			}
			return d, nil
		},
		backwards: "end should not be before start",
	}.read(v, now)
	return q, err
}
