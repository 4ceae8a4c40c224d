// Package admin serves the admin API on its own listener (127.0.0.1 by
// default, never a public one): liveness and readiness, the effective config
// with secrets redacted, live route and service status, the last reload's
// outcome, and whatever else is mounted (metrics, the history, the
// dashboard at the root).
//
// It also owns who may use that listener. Every request, to whatever is
// mounted, passes one check first (see Access): the Host header must name
// the admin listener (else 421), a state-changing request must not come
// from another origin (else 403), and when credentials are configured a
// bearer token or basic-auth user is required (else 401) whose role allows
// the method (read_only: GET, HEAD and OPTIONS; else 403).
package admin

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync/atomic"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Gateway is what the admin API reads.
type Gateway interface {
	Config() *config.Config
	LastReload() gateway.ReloadStatus
	Routes() []gateway.RouteStatus
	Services() []gateway.ServiceStatus
	SetSplit(route string, weights map[string]int, source observe.ChangeSource) ([]config.SplitService, error)
	SplitWeights(route string) ([]config.SplitService, error)
}

// Options configure the admin handler.
type Options struct {
	// Metrics, when set, is served at /metrics.
	Metrics http.Handler
	// Reload, when set, is called by POST /api/reload to re-read the
	// config file; its error is returned to the caller.
	Reload func() error
	// Pprof serves net/http/pprof under /debug/pprof/.
	Pprof bool
	// Version is reported by /api/version.
	Version string
	// Extra handlers mounted as given (pattern → handler), e.g. the split
	// weights API. They are behind the same access checks.
	Extra map[string]http.Handler
	// Access is who may use the admin listener (zero value: loopback Host
	// names only, no credentials).
	Access Access
	// Logger receives refused requests, at a bounded rate (nil discards).
	Logger *slog.Logger
	// Clock paces that log (default real).
	Clock clock.Clock
	// Dashboard, when set, serves every path no other admin endpoint
	// claims: the live dashboard at the listener's root.
	Dashboard http.Handler
}

// Handler is the admin API. Ready must be set once listeners serve, and
// SetAddr once the listener is bound.
type Handler struct {
	mux      *http.ServeMux
	guard    *guard
	ready    atomic.Bool
	draining atomic.Bool
}

// New builds the admin API over g.
func New(g Gateway, o Options) *Handler {
	h := &Handler{mux: http.NewServeMux(), guard: newGuard(o.Access, o.Logger, o.Clock)}
	m := h.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if h.draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("draining\n"))
			return
		}
		if !h.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("starting\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	m.HandleFunc("GET /api/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, Redact(g.Config()))
	})
	m.HandleFunc("GET /api/routes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, g.Routes())
	})
	m.HandleFunc("GET /api/services", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, g.Services())
	})
	m.HandleFunc("GET /api/routes/{name}/split", func(w http.ResponseWriter, r *http.Request) {
		ws, err := g.SplitWeights(r.PathValue("name"))
		if err != nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"route": r.PathValue("name"), "services": ws})
	})
	m.HandleFunc("PUT /api/routes/{name}/split", func(w http.ResponseWriter, r *http.Request) {
		// A JSON content type forces a CORS preflight, so a web page cannot
		// change weights through a browser on the admin host.
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "Content-Type must be application/json"})
			return
		}
		var body struct {
			Weights map[string]int `json:"weights"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || len(body.Weights) == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `body must be {"weights": {"service": weight, ...}}`})
			return
		}
		ws, err := g.SetSplit(r.PathValue("name"), body.Weights, observe.SourceAPI)
		switch {
		case errors.Is(err, gateway.ErrNoSuchSplit):
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		case err != nil:
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"route": r.PathValue("name"), "services": ws})
		}
	})
	m.HandleFunc("GET /api/reload", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, g.LastReload())
	})
	if o.Reload != nil {
		m.HandleFunc("POST /api/reload", func(w http.ResponseWriter, r *http.Request) {
			if err := o.Reload(); err != nil {
				writeJSON(w, http.StatusUnprocessableEntity, g.LastReload())
				return
			}
			writeJSON(w, http.StatusOK, g.LastReload())
		})
	}
	m.HandleFunc("GET /api/version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": o.Version})
	})
	if o.Metrics != nil {
		m.Handle("GET /metrics", o.Metrics)
	}
	if o.Pprof {
		m.HandleFunc("GET /debug/pprof/", pprof.Index)
		m.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		m.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		m.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		m.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	for pattern, handler := range o.Extra {
		m.Handle(pattern, handler)
	}
	if o.Dashboard != nil {
		m.Handle("/", o.Dashboard)
	}
	return h
}

// SetReady marks the gateway ready (or not) for /readyz.
func (h *Handler) SetReady(ok bool) { h.ready.Store(ok) }

// SetDraining marks the gateway as shutting down: /readyz answers 503
// "draining" from then on, whatever SetReady says.
func (h *Handler) SetDraining() { h.draining.Store(true) }

// SetAddr tells the access checks the admin listener's bound address
// (host:port), which Host headers must name. Until it is called, the
// loopback names are accepted with any port.
func (h *Handler) SetAddr(addr string) { h.guard.setAddr(addr) }

// Handle mounts handler at pattern (http.ServeMux syntax), behind the same
// access checks as everything else. Call it before serving.
func (h *Handler) Handle(pattern string, handler http.Handler) { h.mux.Handle(pattern, handler) }

// ServeHTTP serves the admin API: the access checks, then the mux.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !h.guard.check(w, r) {
		return
	}
	h.mux.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// secretKeys are config keys whose values are never shown: header maps of
// exporters (API keys), and anything that looks like a credential.
var secretKeys = []string{"headers", "password", "token", "secret", "api_key", "apikey", "authorization", "key_file"}

// Redact returns cfg as generic JSON with secret values replaced by
// "[redacted]".
func Redact(cfg *config.Config) any {
	b, err := json.Marshal(cfg)
	if err != nil {
		return map[string]string{"error": err.Error()}
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return map[string]string{"error": err.Error()}
	}
	return redact(v, "")
}

func redact(v any, parent string) any {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if isSecretKey(k) && !(k == "headers" && parent == "match") && val != nil {
				t[k] = redactValue(val)
				continue
			}
			t[k] = redact(val, k)
		}
		return t
	case []any:
		for i := range t {
			t[i] = redact(t[i], parent)
		}
		return t
	}
	return v
}

func redactValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k := range t {
			t[k] = "[redacted]"
		}
		return t
	case string:
		if t == "" {
			return t
		}
	}
	return "[redacted]"
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range secretKeys {
		if k == s || strings.HasSuffix(k, "_"+s) {
			return true
		}
	}
	return false
}
