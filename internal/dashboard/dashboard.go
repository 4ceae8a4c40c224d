// Package dashboard owns the live dashboard served at the admin listener's
// root: the embedded single-page application (HTML, CSS, plain ES modules
// and the vendored uPlot chart library, no build step and nothing loaded
// from the network), the JSON summaries the page needs beyond the admin API
// (GET /api/dashboard/overview) and its live feed (server-sent events at
// GET /api/dashboard/stream).
//
// The dashboard reads its data sources through small interfaces:
// history.Source for series, Traces for traces, their log lines and the
// calls between services (GET /api/dashboard/traces...), Gateway for the
// reload status. A fleet can put Prometheus and Jaeger or Tempo behind
// the same seams. The page reads routes, services, config, alerts and
// rollouts through the admin API.
package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/history"
)

//go:embed assets
var assetFS embed.FS

// CSP is the Content-Security-Policy of every dashboard response: scripts
// and styles only from the admin origin, no inline code, no framing.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"

// DefaultMaxStreams bounds the concurrent live streams when
// Options.MaxStreams is zero.
const DefaultMaxStreams = 32

// DefaultStreamEvery is the live stream's period when Options.StreamEvery
// is zero.
const DefaultStreamEvery = time.Second

// maxTop is the number of routes in each top list of the overview.
const maxTop = 5

// Gateway is what the dashboard reads of the gateway itself.
type Gateway interface {
	LastReload() gateway.ReloadStatus
}

// Options configure the dashboard.
type Options struct {
	// History is where series are read; nil serves empty figures.
	History history.Source
	// Traces is where traces, their log lines and the calls between
	// services are read; nil answers the trace endpoints 404.
	Traces Traces
	// Gateway reports the last reload; nil reports none.
	Gateway Gateway
	// Clock is the stream's time source (clock.Real when nil).
	Clock clock.Clock
	// MaxStreams bounds concurrent live streams (DefaultMaxStreams when
	// zero); a stream past it is answered 503.
	MaxStreams int
	// StreamEvery is the live stream's period (DefaultStreamEvery when
	// zero).
	StreamEvery time.Duration
}

// Handler serves the dashboard. It is safe for concurrent use.
type Handler struct {
	o       Options
	mux     *http.ServeMux
	streams chan struct{}
	static  http.Handler
	index   []byte
	// etags are the assets' strong ETags by path under assets/; prefix is
	// the content-named path the page loads them from; indexTag is the
	// page's own ETag.
	etags    map[string]string
	prefix   string
	indexTag string

	// snapMu guards the live snapshot shared by every stream, so that the
	// work per period is O(routes) whatever the number of streams.
	// snapNext is when it may be computed again, snapGen counts its
	// computations.
	snapMu   sync.Mutex
	snapNext time.Time
	snapGen  uint64
	snapOut  []byte

	done      chan struct{}
	closeOnce sync.Once
}

// appPaths are the page paths that serve the application (deep links).
var appPaths = []string{"overview", "routes", "services", "hosts", "traffic", "rollouts", "alerts", "traces", "map", "host", "config", "kpis", "route"}

// New builds the dashboard.
func New(o Options) *Handler {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = DefaultMaxStreams
	}
	if o.StreamEvery <= 0 {
		o.StreamEvery = DefaultStreamEvery
	}
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		panic(err) // the embedded tree always has assets/
	}
	index, err := fs.ReadFile(sub, "index.html")
	if err != nil {
		panic(err)
	}
	etags, version := assetTags(sub)
	// The page loads its assets under a prefix named by their content, so
	// a browser may keep them for as long as it likes: another build
	// serves another prefix. Modules import each other by relative path
	// and so stay under it.
	prefix := "/assets/v-" + version + "/"
	index = bytes.ReplaceAll(index, []byte(`"/assets/`), []byte(`"`+prefix))
	h := &Handler{o: o, mux: http.NewServeMux(), streams: make(chan struct{}, o.MaxStreams), index: index, done: make(chan struct{}),
		etags: etags, prefix: prefix, indexTag: `"` + hashHex(index) + `"`}
	h.static = http.FileServerFS(sub)
	h.mux.HandleFunc("GET /{$}", h.serveIndex)
	for _, p := range appPaths {
		h.mux.HandleFunc("GET /"+p, h.serveIndex)
		h.mux.HandleFunc("GET /"+p+"/", h.serveIndex)
	}
	h.mux.HandleFunc("GET /assets/", h.serveAsset)
	h.mux.HandleFunc("GET /api/dashboard/overview", h.serveOverview)
	h.mux.HandleFunc("GET /api/dashboard/stream", h.serveStream)
	h.mux.HandleFunc("GET /api/dashboard/traces", h.serveSearch)
	h.mux.HandleFunc("GET /api/dashboard/traces/{traceID}", h.serveTrace)
	h.mux.HandleFunc("GET /api/dashboard/dependencies", h.serveDependencies)
	return h
}

// Patterns are the patterns New's handler serves, for mounting on the
// admin mux.
func Patterns() []string {
	ps := []string{"GET /{$}", "GET /assets/", "GET /api/dashboard/overview", "GET /api/dashboard/stream",
		"GET /api/dashboard/traces", "GET /api/dashboard/traces/{traceID}", "GET /api/dashboard/dependencies"}
	for _, p := range appPaths {
		ps = append(ps, "GET /"+p, "GET /"+p+"/")
	}
	return ps
}

// ServeHTTP serves the dashboard with its security headers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	h.mux.ServeHTTP(w, r)
}

// serveIndex serves the page, revalidated on every load (no-cache with an
// ETag: a 304 costs a round trip, not the page).
func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("ETag", h.indexTag)
	if etagMatch(r.Header.Get("If-None-Match"), h.indexTag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(h.index)
}

// serveAsset serves an embedded asset with its ETag: for a year without
// asking again under the content-named prefix, revalidated (no-cache) under
// any other (/assets/app.js, or the prefix of another build).
func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/assets/")
	immutable := false
	if rest, ok := strings.CutPrefix(r.URL.Path, h.prefix); ok {
		p, immutable = rest, true
	} else if strings.HasPrefix(p, "v-") {
		if _, rest, ok := strings.Cut(p, "/"); ok {
			p = rest
		}
	}
	tag, ok := h.etags[p]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if immutable {
		// private: the admin listener may require credentials, so shared
		// caches must not keep its responses.
		w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Header().Set("ETag", tag)
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = "/"+p, ""
	r2.URL = &u
	h.static.ServeHTTP(w, r2)
}

// assetTags returns each file's strong ETag and a version naming the
// whole tree's content.
func assetTags(fsys fs.FS) (map[string]string, string) {
	tags := map[string]string{}
	all := sha256.New()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		tags[p] = `"` + hashHex(b) + `"`
		all.Write([]byte(p))
		all.Write([]byte{0})
		all.Write(b)
		return nil
	})
	if err != nil {
		panic(err) // the embedded tree is readable
	}
	return tags, hex.EncodeToString(all.Sum(nil))[:12]
}

func hashHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])[:20]
}

// etagMatch reports whether an If-None-Match value names tag.
func etagMatch(inm, tag string) bool {
	for _, t := range strings.Split(inm, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == tag {
			return true
		}
	}
	return false
}

// Stat is one series' figures over a window.
type Stat struct {
	Name       string            `json:"name,omitempty"`
	Requests   uint64            `json:"requests"`
	Rate       float64           `json:"rate"`
	Errors     uint64            `json:"errors_5xx"`
	ErrorRatio float64           `json:"error_ratio"`
	P50MS      float64           `json:"p50_ms"`
	P99MS      float64           `json:"p99_ms"`
	OverheadMS float64           `json:"overhead_mean_ms"`
	UpstreamMS float64           `json:"upstream_mean_ms"`
	Status     map[string]uint64 `json:"status,omitempty"`
	ErrorKinds map[string]uint64 `json:"error_kinds,omitempty"`
	// Decisions are the window's decision figures: retries and retry
	// budget refusals (routes); breaker state, ejections, ejected and
	// unhealthy (maximum over the window for gauges) and weight (services,
	// hosts, legs).
	Decisions map[string]uint64 `json:"decisions,omitempty"`
	// Spark is requests per step over the window (routes, services,
	// hosts of the overview).
	Spark []uint64 `json:"spark,omitempty"`
}

// Overview is the answer of GET /api/dashboard/overview.
type Overview struct {
	// End is the end of the window (Unix seconds), Window its length.
	End    int64  `json:"end"`
	Window string `json:"window"`
	// Gateway is the whole gateway over the window; Now its last second.
	Gateway Stat `json:"gateway"`
	Now     Stat `json:"now"`
	// TopErrors and TopLatency are the routes with the most 5xx and the
	// highest p99 over the window.
	TopErrors  []Stat `json:"top_errors"`
	TopLatency []Stat `json:"top_latency"`
	// Routes, Services, Hosts and Legs are every series of those scopes.
	Routes   []Stat                `json:"routes"`
	Services []Stat                `json:"services"`
	Hosts    []Stat                `json:"hosts"`
	Legs     []Stat                `json:"legs"`
	Reload   *gateway.ReloadStatus `json:"reload,omitempty"`
	Machine  map[string]float64    `json:"machine,omitempty"`
	Notes    []string              `json:"notes,omitempty"`
}

// sparkPoints is the number of sparkline points of a window.
const sparkPoints = 30

func stat(name string, p *history.Point, d time.Duration) Stat {
	s := Stat{
		Name:       name,
		Requests:   p.V[history.Requests],
		Rate:       round3(p.Rate(history.Requests, d)),
		Errors:     p.V[history.Class5xx],
		ErrorRatio: round6(p.ErrorRatio()),
		P50MS:      ms(p.Latency.Quantile(0.5)),
		P99MS:      ms(p.Latency.Quantile(0.99)),
		OverheadMS: ms(p.Mean(history.OverheadSum)),
		UpstreamMS: ms(p.Mean(history.UpstreamSum)),
		Status:     map[string]uint64{},
		ErrorKinds: map[string]uint64{},
	}
	for _, f := range []history.Field{history.Class1xx, history.Class2xx, history.Class3xx, history.Class4xx, history.Class5xx, history.ClassOther, history.ClassNone} {
		if v := p.V[f]; v != 0 {
			s.Status[f.String()] = v
		}
	}
	for f := history.ErrorKind0; f < history.RetryBudgetExhausted; f++ {
		if v := p.V[f]; v != 0 {
			s.ErrorKinds[strings.TrimPrefix(f.String(), "error_")] = v
		}
	}
	return s
}

// window reads one series over [end-d, end) as a total and a sparkline.
func (h *Handler) window(ctx context.Context, sc history.Scope, name string, end time.Time, d time.Duration, spark bool) (history.Point, []uint64, error) {
	step := d
	if spark {
		step = max((d / sparkPoints).Truncate(time.Second), time.Second)
	}
	from := end.Add(-d)
	res, err := h.o.History.Range(ctx, history.Query{Scope: sc, Name: name, From: from, To: end, Step: step})
	if err != nil {
		return history.Point{}, nil, err
	}
	var tot history.Point
	var sp []uint64
	if spark {
		sp = make([]uint64, len(res.Points))
	}
	for i := range res.Points {
		tot.Add(&res.Points[i])
		if spark {
			sp[i] = res.Points[i].V[history.Requests]
		}
	}
	return tot, sp, nil
}

// overview computes the figures of the window [end-d, end).
func (h *Handler) overview(ctx context.Context, d time.Duration) (*Overview, error) {
	ov := &Overview{Window: d.String(), TopErrors: []Stat{}, TopLatency: []Stat{}, Routes: []Stat{}, Services: []Stat{}, Hosts: []Stat{}, Legs: []Stat{}}
	if h.o.Gateway != nil {
		rs := h.o.Gateway.LastReload()
		ov.Reload = &rs
	}
	src := h.o.History
	if src == nil {
		ov.Notes = append(ov.Notes, "history is not configured")
		return ov, nil
	}
	end, err := src.Latest(ctx)
	if err != nil {
		if errors.Is(err, history.ErrDisabled) {
			ov.Notes = append(ov.Notes, "history is disabled")
			return ov, nil
		}
		return nil, err
	}
	end = end.Truncate(time.Second)
	ov.End = end.Unix()
	g, _, err := h.window(ctx, history.ScopeGateway, "", end, d, false)
	if err != nil && !errors.Is(err, history.ErrNotFound) {
		if errors.Is(err, history.ErrDisabled) {
			ov.Notes = append(ov.Notes, "history is disabled")
			return ov, nil
		}
		return nil, err
	}
	ov.Gateway = stat("", &g, d)
	ov.Machine = machine(&g, d)
	now, _, err := h.window(ctx, history.ScopeGateway, "", end, time.Second, false)
	if err == nil {
		ov.Now = stat("", &now, time.Second)
	}
	for _, sc := range []struct {
		scope history.Scope
		out   *[]Stat
	}{{history.ScopeRoute, &ov.Routes}, {history.ScopeService, &ov.Services}, {history.ScopeHost, &ov.Hosts}, {history.ScopeLeg, &ov.Legs}} {
		names, err := src.Names(ctx, sc.scope)
		if err != nil {
			return nil, err
		}
		sort.Strings(names)
		for _, n := range names {
			p, sp, err := h.window(ctx, sc.scope, n, end, d, true)
			if err != nil {
				if errors.Is(err, history.ErrNotFound) {
					continue
				}
				return nil, err
			}
			s := stat(n, &p, d)
			s.Spark = sp
			s.Decisions = map[string]uint64{}
			if sc.scope == history.ScopeHost || sc.scope == history.ScopeService || sc.scope == history.ScopeLeg {
				s.Decisions["breaker_state"] = p.V[history.BreakerState]
				s.Decisions["ejected"] = p.V[history.Ejected]
				s.Decisions["unhealthy"] = p.V[history.Unhealthy]
				s.Decisions["ejections"] = p.V[history.Ejections]
				s.Decisions["weight"] = p.V[history.Weight]
				s.Decisions["retries"] = p.V[history.Retries]
			}
			if sc.scope == history.ScopeRoute {
				s.Decisions["retries"] = p.V[history.Retries]
				s.Decisions["retry_budget_exhausted"] = p.V[history.RetryBudgetExhausted]
			}
			*sc.out = append(*sc.out, s)
		}
	}
	ov.TopErrors = top(ov.Routes, func(s Stat) float64 { return float64(s.Errors) })
	ov.TopLatency = top(ov.Routes, func(s Stat) float64 { return s.P99MS })
	return ov, nil
}

func machine(p *history.Point, d time.Duration) map[string]float64 {
	v := &p.V
	sec := d.Seconds()
	return map[string]float64{
		"cpu_busy":          round3(float64(v[history.CPUMillis]) / 1000 / sec),
		"mem_used":          float64(v[history.MemUsed]),
		"mem_total":         float64(v[history.MemTotal]),
		"disk_read_rate":    round3(float64(v[history.DiskRead]) / sec),
		"disk_written_rate": round3(float64(v[history.DiskWritten]) / sec),
		"net_rx_rate":       round3(float64(v[history.NetRx]) / sec),
		"net_tx_rate":       round3(float64(v[history.NetTx]) / sec),
	}
}

// top returns up to maxTop stats with a positive key, highest first.
func top(all []Stat, key func(Stat) float64) []Stat {
	out := make([]Stat, 0, maxTop)
	for _, s := range all {
		if key(s) > 0 {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return key(out[i]) > key(out[j]) })
	if len(out) > maxTop {
		out = out[:maxTop]
	}
	for i := range out {
		out[i].Spark = nil
	}
	return out
}

// parseWindow reads the window parameter (default 5m, 1s to 24h).
func parseWindow(s string) (time.Duration, error) { return parseSpan("window", s, 5*time.Minute) }

// parseSpan reads the duration parameter name: a Go duration or whole
// seconds, 1s to 24h, truncated to whole seconds; def when s is empty.
func parseSpan(name, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	if len(s) > 32 {
		return 0, errors.New(name + ": too long")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if n, err2 := strconv.Atoi(s); err2 == nil {
			d, err = time.Duration(n)*time.Second, nil
		} else {
			return 0, errors.New(name + ": " + err.Error())
		}
	}
	if d < time.Second || d > 24*time.Hour {
		return 0, errors.New(name + ": must be between 1s and 24h")
	}
	return d.Truncate(time.Second), nil
}

func (h *Handler) serveOverview(w http.ResponseWriter, r *http.Request) {
	for k := range r.URL.Query() {
		if k != "window" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unknown parameter " + strconv.Quote(truncate(k)) + " (known: window)"})
			return
		}
	}
	d, err := parseWindow(r.URL.Query().Get("window"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	ov, err := h.overview(r.Context(), d)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "reading the history: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, ov)
}

// streamShare bounds the live stream's computation to 1/streamShare of
// the wall-clock time: when one snapshot takes longer than
// StreamEvery/streamShare (an estate of many routes, a loaded machine), the
// next one waits streamShare times as long as it took, and the streams
// send a heartbeat instead of an unchanged event meanwhile.
const streamShare = 20

// snapshot returns the live event's data and its generation, computed at
// most once per StreamEvery (or per streamShare times its last cost)
// however many streams ask.
func (h *Handler) snapshot(ctx context.Context) (uint64, []byte) {
	now := h.o.Clock.Now()
	h.snapMu.Lock()
	defer h.snapMu.Unlock()
	if h.snapOut != nil && now.Before(h.snapNext) {
		return h.snapGen, h.snapOut
	}
	ov, err := h.overview(ctx, time.Minute)
	var b []byte
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	} else {
		b, _ = json.Marshal(ov)
	}
	cost := h.o.Clock.Now().Sub(now)
	h.snapNext = now.Truncate(h.o.StreamEvery).Add(max(h.o.StreamEvery, cost*streamShare))
	h.snapGen++
	h.snapOut = b
	return h.snapGen, b
}

func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request) {
	select {
	case <-h.done:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "shutting down"})
		return
	default:
	}
	select {
	case h.streams <- struct{}{}:
		defer func() { <-h.streams }()
	default:
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "too many live streams (at most " + strconv.Itoa(cap(h.streams)) + ")"})
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	var sent uint64
	send := func() bool {
		gen, b := h.snapshot(ctx)
		if gen == sent {
			// Nothing new: a comment line keeps the connection (and any
			// proxy) alive and finds a client that left.
			if _, err := w.Write([]byte(":\n\n")); err != nil {
				return false
			}
			return rc.Flush() == nil
		}
		sent = gen
		if _, err := w.Write([]byte("event: overview\ndata: ")); err != nil {
			return false
		}
		if _, err := w.Write(b); err != nil {
			return false
		}
		if _, err := w.Write([]byte("\n\n")); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send() {
		return
	}
	t := time.NewTicker(h.o.StreamEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.done:
			return
		case <-t.C:
			if !send() {
				return
			}
		}
	}
}

// Close ends every live stream (a server's Shutdown waits for open
// requests, and a stream never ends by itself) and refuses new ones. It is
// safe to call more than once.
func (h *Handler) Close() { h.closeOnce.Do(func() { close(h.done) }) }

// Streams returns the number of live streams open now.
func (h *Handler) Streams() int { return len(h.streams) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }
func round6(x float64) float64 { return float64(int64(x*1e6+0.5)) / 1e6 }
