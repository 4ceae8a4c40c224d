package history

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The series groups of the JSON API's series parameter.
var seriesGroups = map[string]bool{
	"requests": true, "status": true, "errors": true, "latency": true, "overhead": true, "upstream": true,
	"bytes": true, "inflight": true, "decisions": true, "machine": true, "exemplars": true, "buckets": true,
	"kpi": true,
}

// defaultSeries is what the API returns when series is not given.
var defaultSeries = []string{"requests", "status", "errors", "latency"}

// maxParamLen bounds each query parameter.
const maxParamLen = 256

// apiQuery is a parsed /api/history request.
type apiQuery struct {
	Query
	series map[string]bool
}

// parseQuery parses the parameters of GET /api/history. latest is the end
// of the newest sealed second (the default "to"). Every error names the
// parameter.
func parseQuery(v url.Values, latest time.Time) (apiQuery, error) {
	var q apiQuery
	for k, vs := range v {
		switch k {
		case "scope", "name", "series", "window", "from", "to", "step":
		default:
			return q, fmt.Errorf("unknown parameter %q (known: scope, name, series, window, from, to, step)", truncate(k))
		}
		if len(vs) > 1 {
			return q, fmt.Errorf("parameter %s is given %d times", k, len(vs))
		}
		if len(vs[0]) > maxParamLen {
			return q, fmt.Errorf("parameter %s is longer than %d bytes", k, maxParamLen)
		}
	}
	sc := v.Get("scope")
	if sc == "" {
		sc = "gateway"
	}
	scope, err := ParseScope(sc)
	if err != nil {
		return q, fmt.Errorf("scope: %w", err)
	}
	q.Scope, q.Name = scope, v.Get("name")
	switch {
	case scope == ScopeGateway && q.Name != "":
		return q, errors.New("name: the gateway scope takes no name")
	case scope != ScopeGateway && q.Name == "":
		return q, fmt.Errorf("name: scope %s needs a name (list them at /api/history/names?scope=%s)", scope, scope)
	case (scope == ScopeLeg || scope == ScopeHost) && !strings.Contains(q.Name, "/"):
		if scope == ScopeLeg {
			return q, fmt.Errorf("name: a leg is named route/service, got %q", truncate(q.Name))
		}
		return q, fmt.Errorf("name: a host is named service/host:port, got %q", truncate(q.Name))
	}

	q.series = map[string]bool{}
	if s := v.Get("series"); s != "" {
		for _, g := range strings.Split(s, ",") {
			g = strings.TrimSpace(g)
			switch {
			case g == "all":
				for k := range seriesGroups {
					q.series[k] = true
				}
			case seriesGroups[g]:
				q.series[g] = true
			default:
				return q, fmt.Errorf("series: unknown series %q (known: requests, status, errors, latency, overhead, upstream, bytes, inflight, decisions, machine, exemplars, buckets, kpi, all)", truncate(g))
			}
		}
	} else if scope == ScopeKPI {
		q.series["kpi"] = true
	} else if scope == ScopeRateLimit {
		q.series["decisions"] = true
	} else {
		for _, g := range defaultSeries {
			q.series[g] = true
		}
	}

	to := latest
	if s := v.Get("to"); s != "" {
		if to, err = parseTime(s); err != nil {
			return q, fmt.Errorf("to: %w", err)
		}
	}
	var from time.Time
	window := 5 * time.Minute
	if s := v.Get("window"); s != "" {
		if v.Get("from") != "" {
			return q, errors.New("window: give either window or from, not both")
		}
		if window, err = parsePositiveDuration(s); err != nil {
			return q, fmt.Errorf("window: %w", err)
		}
		if window < time.Second {
			return q, fmt.Errorf("window: must be at least 1s, got %s", window)
		}
	}
	if s := v.Get("from"); s != "" {
		if from, err = parseTime(s); err != nil {
			return q, fmt.Errorf("from: %w", err)
		}
	} else {
		from = to.Add(-window)
	}
	if !from.Before(to) {
		return q, fmt.Errorf("from: must be before to (%s), got %s", to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	q.From, q.To = from.Truncate(time.Second), to.Truncate(time.Second)
	if !q.From.Before(q.To) {
		return q, errors.New("window: the range must span at least one whole second")
	}
	span := q.To.Sub(q.From)
	if s := v.Get("step"); s != "" {
		if q.Step, err = parsePositiveDuration(s); err != nil {
			return q, fmt.Errorf("step: %w", err)
		}
	} else {
		// About 300 points, on whole seconds (whole minutes past an hour).
		q.Step = max(time.Second, (span / 300).Truncate(time.Second))
		if span > time.Hour {
			q.Step = max(time.Minute, q.Step.Truncate(time.Minute))
		}
	}
	if q.Step%time.Second != 0 {
		return q, fmt.Errorf("step: must be a whole number of seconds, got %s", q.Step)
	}
	if q.Step > span {
		q.Step = span.Truncate(time.Second)
	}
	if err := q.Query.Validate(); err != nil {
		return q, err
	}
	return q, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// parseTime accepts RFC 3339, Unix seconds, or a negative duration
// relative to now ("-15m").
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > 1<<40 {
			return time.Time{}, fmt.Errorf("unix time %d is out of range", n)
		}
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339 (2006-01-02T15:04:05Z) or unix seconds, got %q", truncate(s))
	}
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("time %q is out of range", truncate(s))
	}
	return t, nil
}

func parsePositiveDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration like 90s, 5m or 1h, got %q", truncate(s))
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be positive, got %s", d)
	}
	if d > 400*24*time.Hour {
		return 0, fmt.Errorf("must be at most 400 days, got %s", d)
	}
	return d, nil
}

// Handler serves the history as JSON on the admin listener:
//
//	GET /api/history?scope=route&name=shop&window=5m&step=1s&series=requests,latency
//	GET /api/history/names?scope=route
//	GET /api/history/stats
//
// Mount it under /api/history (it answers the three paths above).
func (h *History) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/history", h.serveRange)
	mux.HandleFunc("GET /api/history/names", func(w http.ResponseWriter, r *http.Request) {
		if !h.enabled {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": ErrDisabled.Error()})
			return
		}
		sc, err := ParseScope(r.URL.Query().Get("scope"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "scope: " + err.Error()})
			return
		}
		names := h.Names(sc)
		if names == nil {
			names = []string{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"scope": sc.String(), "names": names})
	})
	mux.HandleFunc("GET /api/history/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, h.Stats())
	})
	return mux
}

func (h *History) serveRange(w http.ResponseWriter, r *http.Request) {
	if !h.enabled {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": ErrDisabled.Error()})
		return
	}
	latest := h.Latest()
	if latest.IsZero() {
		latest = h.clock.Now().Truncate(time.Second)
	}
	q, err := parseQuery(r.URL.Query(), latest)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	res, err := h.Range(r.Context(), q.Query)
	switch {
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	case err != nil:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	out := jsonResult{
		Scope:  q.Scope.String(),
		Name:   q.Name,
		From:   q.From.Unix(),
		To:     q.To.Unix(),
		Step:   res.Step.String(),
		Latest: latest.Unix(),
		Points: make([]map[string]any, len(res.Points)),
	}
	var total Point
	for i := range res.Points {
		p := &res.Points[i]
		out.Points[i] = pointJSON(p, q.series)
		total.Add(p)
	}
	total.Time = q.From
	out.Total = pointJSON(&total, q.series)
	writeJSON(w, http.StatusOK, out)
}

type jsonResult struct {
	Scope  string           `json:"scope"`
	Name   string           `json:"name,omitempty"`
	From   int64            `json:"from"`
	To     int64            `json:"to"`
	Step   string           `json:"step"`
	Latest int64            `json:"latest"`
	Total  map[string]any   `json:"total"`
	Points []map[string]any `json:"points"`
}

// pointJSON renders the selected groups of p. Times are Unix seconds,
// durations milliseconds.
func pointJSON(p *Point, groups map[string]bool) map[string]any {
	m := map[string]any{"t": p.Time.Unix()}
	v := &p.V
	if groups["requests"] {
		m["requests"] = v[Requests]
		m["attempts"] = v[Attempts]
		m["retries"] = v[Retries]
	}
	if groups["status"] {
		st := map[string]uint64{}
		for _, f := range []Field{Class1xx, Class2xx, Class3xx, Class4xx, Class5xx, ClassOther, ClassNone} {
			if v[f] != 0 {
				st[f.String()] = v[f]
			}
		}
		m["status"] = st
	}
	if groups["errors"] {
		es := map[string]uint64{}
		for f := ErrorKind0; f <= errorKindEnd; f++ {
			if v[f] != 0 {
				es[strings.TrimPrefix(f.String(), "error_")] = v[f]
			}
		}
		m["errors"] = es
	}
	if groups["latency"] {
		m["latency"] = histJSON(p.Latency, v[LatencySum], v[Requests], groups["buckets"])
	}
	if groups["overhead"] {
		m["overhead"] = histJSON(p.Overhead, v[OverheadSum], v[Requests], groups["buckets"])
	}
	if groups["upstream"] {
		m["upstream"] = map[string]any{"mean_ms": meanMS(v[UpstreamSum], v[Requests]), "sum_ms": float64(v[UpstreamSum]) / 1000}
	}
	if groups["bytes"] {
		m["bytes_in"], m["bytes_out"] = v[BytesIn], v[BytesOut]
	}
	if groups["inflight"] {
		m["in_flight"] = v[InFlight]
	}
	if groups["decisions"] {
		d := map[string]uint64{}
		for _, f := range []Field{RetryBudgetExhausted, BreakerTransitions, BreakerState, Ejections, Ejected, Unhealthy, HealthTransitions, Weight, Reloads, ReloadFailures, RateLimitRejections} {
			d[f.String()] = v[f]
		}
		m["decisions"] = d
	}
	if groups["machine"] {
		d := map[string]uint64{}
		for _, f := range []Field{CPUMillis, MemUsed, MemTotal, DiskRead, DiskWritten, NetRx, NetTx} {
			d[f.String()] = v[f]
		}
		m["machine"] = d
	}
	if groups["kpi"] {
		m["kpi"] = map[string]any{"count": v[KPICount], "sum": p.KPISum(), "mean": p.KPIMean()}
	}
	if groups["exemplars"] {
		ex := make([]map[string]any, 0, len(p.Exemplars))
		for _, e := range p.Exemplars {
			ex = append(ex, map[string]any{
				"t": e.Time.Unix(), "kind": e.Kind.String(), "trace_id": hex.EncodeToString(e.TraceID[:]),
				"sampled": e.Sampled, "latency_ms": ms(e.Latency), "status": e.Status,
			})
		}
		m["exemplars"] = ex
	}
	return m
}

func histJSON(h Histogram, sum, n uint64, buckets bool) map[string]any {
	m := map[string]any{
		"count":   h.Count(),
		"mean_ms": meanMS(sum, n),
		"p50_ms":  ms(h.Quantile(0.5)),
		"p90_ms":  ms(h.Quantile(0.9)),
		"p99_ms":  ms(h.Quantile(0.99)),
	}
	if buckets {
		c := h.Counts
		if c == nil {
			c = []uint64{}
		}
		m["buckets"] = map[string]any{"sub_buckets": SubBuckets, "unit": "us", "offset": h.Offset, "counts": c}
	}
	return m
}

func meanMS(sumUS, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return round3(float64(sumUS) / float64(n) / 1000)
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
