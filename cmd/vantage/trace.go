package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/vantage-gateway/vantage/internal/tracestore"
	"github.com/vantage-gateway/vantage/internal/tracestore/queryapi"
)

// waterfallWidth is the width of the duration bars of "vantage trace".
const waterfallWidth = 40

// cmdTrace prints a trace from a running gateway's trace store: its spans
// as a waterfall (service, operation, start offset, duration bar, status,
// span events), then its log lines.
func cmdTrace(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "http://127.0.0.1:9901", "the gateway's admin URL (or host:port)")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the admin API")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: vantage trace [--admin URL] TRACE_ID")
		return 2
	}
	arg := strings.TrimSpace(fs.Arg(0))
	// Accept a traceresponse or traceparent value as well as a bare id.
	if parts := strings.Split(arg, "-"); len(parts) == 4 && len(parts[1]) == 32 {
		arg = parts[1]
	}
	id, err := tracestore.ParseTraceID(arg)
	if err != nil {
		fmt.Fprintf(stderr, "vantage trace: %q is not a trace id: %v\n", fs.Arg(0), err)
		return 2
	}
	base := *admin
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		fmt.Fprintf(stderr, "vantage trace: --admin %q is not a URL\n", *admin)
		return 2
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/traces/" + id.String()
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(u.String())
	if err != nil {
		fmt.Fprintf(stderr, "vantage trace: cannot reach the admin API at %s: %v\n(is the gateway running, with its admin listener there? set --admin)\n", base, err)
		return 1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		fmt.Fprintf(stderr, "vantage trace: reading the answer of %s: %v\n", u, err)
		return 1
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && strings.Contains(e.Error, "trace store") {
			fmt.Fprintf(stderr, "vantage trace: trace %s not found in the trace store at %s: it was never kept (not sampled) or has been evicted\n", id, base)
		} else {
			fmt.Fprintf(stderr, "vantage trace: %s has no trace store API (is trace_store enabled?)\n", base)
		}
		return 1
	default:
		fmt.Fprintf(stderr, "vantage trace: %s answered %s: %s\n", u, resp.Status, strings.TrimSpace(string(body)))
		return 1
	}
	var doc queryapi.TraceDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		fmt.Fprintf(stderr, "vantage trace: the answer of %s is not a trace: %v\n", u, err)
		return 1
	}
	printWaterfall(stdout, &doc)
	return 0
}

// printWaterfall writes the trace's spans as a tree in time order, each
// with its start offset, a bar over the trace's time and its status, its
// events under it; then the log lines.
func printWaterfall(w io.Writer, d *queryapi.TraceDoc) {
	services := map[string]bool{}
	for _, s := range d.Spans {
		services[s.Service] = true
	}
	fmt.Fprintf(w, "trace %s  %s  %s  %d spans, %d services, %d log lines  (class %s)\n\n",
		d.TraceID, d.Start.Local().Format("2006-01-02 15:04:05.000"), fmtMS(d.DurationMS), len(d.Spans), len(services), len(d.Logs), d.Class)

	byID := map[string]int{}
	for i, s := range d.Spans {
		byID[s.SpanID] = i
	}
	children := map[int][]int{}
	var roots []int
	for i, s := range d.Spans {
		if p, ok := byID[s.ParentSpanID]; ok && s.ParentSpanID != "" && p != i {
			children[p] = append(children[p], i)
		} else {
			roots = append(roots, i)
		}
	}
	byStart := func(ix []int) {
		sort.SliceStable(ix, func(a, b int) bool { return d.Spans[ix[a]].Start.Before(d.Spans[ix[b]].Start) })
	}
	byStart(roots)
	type row struct {
		span   int
		prefix string
	}
	var rows []row
	seen := map[int]bool{}
	var walk func(i int, prefix string, depth int)
	walk = func(i int, prefix string, depth int) {
		if seen[i] || depth > 64 {
			return
		}
		seen[i] = true
		rows = append(rows, row{i, prefix})
		kids := children[i]
		byStart(kids)
		for _, k := range kids {
			walk(k, strings.Repeat("  ", depth+1), depth+1)
		}
	}
	for _, r := range roots {
		walk(r, "", 0)
	}

	svcW, opW := len("SERVICE"), len("OPERATION")
	for _, r := range rows {
		s := d.Spans[r.span]
		svcW = max(svcW, min(len(s.Service), 24))
		opW = max(opW, min(len(r.prefix)+len(s.Name), 48))
	}
	total := d.DurationMS
	fmt.Fprintf(w, "%-*s  %-*s  %10s  %10s  %-6s  %s\n", svcW, "SERVICE", opW, "OPERATION", "START", "DURATION", "STATUS", "")
	for _, r := range rows {
		s := d.Spans[r.span]
		off := ms(s.Start.Sub(d.Start))
		status := s.Status
		if status == "unset" {
			status = ""
			if code, ok := s.Attributes["http.response.status_code"].(float64); ok {
				status = fmt.Sprint(int(code))
			}
		} else if code, ok := s.Attributes["http.response.status_code"].(float64); ok {
			status = fmt.Sprintf("%s %d", status, int(code))
		}
		fmt.Fprintf(w, "%-*s  %-*s  %10s  %10s  %-6s  %s\n", svcW, clip(s.Service, svcW), opW, clip(r.prefix+s.Name, opW),
			"+"+fmtMS(off), fmtMS(s.DurationMS), status, bar(off, s.DurationMS, total))
		for _, ev := range s.Events {
			fmt.Fprintf(w, "%-*s  %-*s  %10s  %s%s\n", svcW, "", opW, clip(r.prefix+"  · "+ev.Name, opW),
				"+"+fmtMS(ms(ev.Time.Sub(d.Start))), "", attrText(ev.Attributes))
		}
		if s.StatusMessage != "" && s.Status == "error" {
			fmt.Fprintf(w, "%-*s  %-*s  %10s  %s\n", svcW, "", opW, clip(r.prefix+"  ! "+s.StatusMessage, opW), "", "")
		}
	}
	if len(d.Logs) > 0 {
		fmt.Fprintf(w, "\nlogs\n")
		for _, l := range d.Logs {
			fmt.Fprintf(w, "  %s  %-5s  %-*s  %s\n", l.Time.Local().Format("15:04:05.000"), l.Severity, svcW, clip(l.Service, svcW), logText(l.Body))
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMS(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2fs", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	}
	return fmt.Sprintf("%.2fms", v)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 1 {
		return s[:n]
	}
	return s[:n-1] + "…"
}

// bar draws [off, off+dur] over [0, total] in waterfallWidth cells.
func bar(off, dur, total float64) string {
	if total <= 0 {
		total = max(dur, 1)
	}
	start := int(off / total * waterfallWidth)
	n := int((dur/total)*waterfallWidth + 0.5)
	start = min(max(start, 0), waterfallWidth-1)
	n = min(max(n, 1), waterfallWidth-start)
	return "|" + strings.Repeat(" ", start) + strings.Repeat("█", n) + strings.Repeat(" ", waterfallWidth-start-n) + "|"
}

func attrText(m map[string]any) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, strings.TrimPrefix(k, "vantage.")+"="+fmt.Sprint(m[k]))
	}
	return strings.Join(parts, " ")
}

// logText shortens a JSON access-log record to its essentials (method,
// path, status, route, upstream, attempts, error, duration); other log
// bodies are printed as they are.
func logText(body string) string {
	if !strings.HasPrefix(body, "{") {
		return body
	}
	var m map[string]any
	if json.Unmarshal([]byte(body), &m) != nil {
		return body
	}
	if _, ok := m["http.request.method"]; !ok {
		return body
	}
	var parts []string
	add := func(format string, keys ...string) {
		vals := make([]any, 0, len(keys))
		for _, k := range keys {
			v, ok := m[k]
			if !ok || v == "" {
				return
			}
			vals = append(vals, v)
		}
		parts = append(parts, fmt.Sprintf(format, vals...))
	}
	add("%v %v", "http.request.method", "url.path")
	add("→ %v", "http.response.status_code")
	add("route=%v", "route")
	add("upstream=%v", "upstream")
	if n, ok := m["attempts"].(float64); ok && n > 1 {
		parts = append(parts, fmt.Sprintf("attempts=%d", int(n)))
	}
	add("error=%v", "error.type")
	if d, ok := m["duration_seconds"].(float64); ok {
		parts = append(parts, fmtMS(d*1000))
	}
	return strings.Join(parts, "  ")
}
