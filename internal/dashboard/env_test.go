package dashboard_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/admin"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/dashboard"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/middleware"
)

// env is a real gateway (routes shop with a stable/canary split, api,
// down with no upstream listening) in front of a real upstream that
// answers the status named by the last path segment, with the history
// recording and the admin API serving the dashboard.
type env struct {
	t      *testing.T
	public *httptest.Server
	admin  *httptest.Server
	hist   *history.History
	dash   *dashboard.Handler
	client *http.Client
}

func newEnv(t *testing.T, o dashboard.Options) *env {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		code := 200
		if i := strings.LastIndex(r.URL.Path, "/"); i >= 0 {
			if c, err := strconv.Atoi(r.URL.Path[i+1:]); err == nil && c >= 200 && c <= 599 {
				code = c
			}
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	y := `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: stable, upstreams: [{url: "` + up.URL + `"}]}
  - {name: canary, upstreams: [{url: "` + up.URL + `"}]}
  - {name: api, upstreams: [{url: "` + up.URL + `"}]}
  - {name: down, upstreams: [{url: "` + dead + `"}]}
routes:
  - name: shop
    match: {path_prefix: /shop/}
    split:
      services: [{service: stable, weight: 80}, {service: canary, weight: 20}]
      override: {header: X-Leg, values: {stable: stable, canary: canary}}
  - {name: api, match: {path_prefix: /api/}, service: api}
  - {name: down, match: {path_prefix: /down/}, service: down}
`
	cfg, err := config.Parse("gw.yml", []byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := history.New(cfg.History, history.Options{NoMachine: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Observer: h, Telemetry: middleware.Telemetry{History: h}})
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	h.Start()
	t.Cleanup(func() { g.Close(); h.Close() })
	e := &env{t: t, hist: h}
	e.public = httptest.NewServer(g.Handler("public"))
	t.Cleanup(e.public.Close)
	o.History, o.Gateway = h.Source(), g
	e.dash = dashboard.New(o)
	hh := h.Handler()
	adm := admin.New(g, admin.Options{Extra: map[string]http.Handler{"GET /api/history": hh, "GET /api/history/": hh}, Dashboard: e.dash})
	adm.SetReady(true)
	e.admin = httptest.NewServer(adm)
	t.Cleanup(e.admin.Close)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	e.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return e
}

// send sends n requests to path through the gateway (leg chooses a split
// leg when set) and returns the statuses the client got.
func (e *env) send(path, leg string, n int) map[int]int {
	e.t.Helper()
	got := map[int]int{}
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest("GET", e.public.URL+path, nil)
		if leg != "" {
			req.Header.Set("X-Leg", leg)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			e.t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got[resp.StatusCode]++
	}
	return got
}

// waitSealed waits (at most 5 s) until the history's newest second is
// after the moment of the call, so that what was sent before is readable.
func (e *env) waitSealed() {
	e.t.Helper()
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		if e.hist.Latest().After(start.Add(time.Second)) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatal("the history sealed no second within 5s")
}
