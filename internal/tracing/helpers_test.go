package tracing

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/errorbody"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/observe/observetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

const baseYAML = `listeners:
  - name: public
    address: "127.0.0.1:1"
  - name: internal
    address: "127.0.0.1:2"
services:
  - name: svc
    upstreams: [{url: "http://127.0.0.1:9"}]
routes:
  - name: items
    match: {path: "/items/{id}"}
    service: svc
`

// parseTracing parses baseYAML plus a tracing section (and optional route
// tracing lines for the items route) through the real config pipeline.
func parseTracing(t testing.TB, tracingYAML, routeTracingYAML string) *config.Config {
	t.Helper()
	y := baseYAML
	if routeTracingYAML != "" {
		y += "    tracing:\n" + indent(routeTracingYAML, "      ")
	}
	if tracingYAML != "" {
		y += "tracing:\n" + indent(tracingYAML, "  ")
	}
	cfg, err := config.Parse("test.yml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v\n%s", err, y)
	}
	return cfg
}

func indent(s, pre string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(pre + l + "\n")
	}
	return b.String()
}

// memExporter returns an in-memory exporter to pass in Options.Exporters.
func memExporter() *tracetest.InMemoryExporter { return tracetest.NewInMemoryExporter() }

// upstream is a real HTTP server that records the trace headers it
// receives and answers per a script.
type upstream struct {
	srv     *httptest.Server
	mu      sync.Mutex
	headers []http.Header
	// status is the status of each successive request (last repeats);
	// default 200.
	status []int
	// onRequest runs for each request before answering.
	onRequest func(r *http.Request)
}

func newUpstream(t testing.TB, status ...int) *upstream {
	u := &upstream{status: status}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		n := len(u.headers)
		u.headers = append(u.headers, r.Header.Clone())
		u.mu.Unlock()
		if u.onRequest != nil {
			u.onRequest(r)
		}
		code := 200
		if len(u.status) > 0 {
			code = u.status[min(n, len(u.status)-1)]
		}
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, "hello")
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) received() []http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]http.Header(nil), u.headers...)
}

// standInProxy forwards like the lead's proxy will: one Attempt appended to
// the Record before each RoundTrip, retries on connect errors and 503.
type standInProxy struct {
	service  string
	target   *url.URL
	rt       http.RoundTripper
	attempts int
}

func (p *standInProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := observe.FromContext(r.Context())
	rec.Service = p.service
	reason := ""
	for i := 0; i < max(1, p.attempts); i++ {
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
		out.Host = p.target.Host
		out.Header = r.Header.Clone()
		rec.AddAttempt(observe.Attempt{Service: p.service, Upstream: p.target.Host, Start: time.Now(), RetryReason: reason})
		rec.Upstream = p.target.Host
		resp, err := p.rt.RoundTrip(out)
		a := rec.LastAttempt()
		a.Duration = time.Since(a.Start)
		if err != nil {
			a.ErrorKind = observe.ErrUpstreamConnect
			reason = "connect_error"
			continue
		}
		a.Status = resp.StatusCode
		if resp.StatusCode == http.StatusServiceUnavailable && i < p.attempts-1 {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			reason = "status_503"
			continue
		}
		for k, vs := range resp.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		bodyStart := time.Now()
		n, _ := io.Copy(w, resp.Body)
		resp.Body.Close()
		a = rec.LastAttempt()
		a.BodyDuration = time.Since(bodyStart)
		rec.BytesOut = n
		return
	}
	rec.ErrorKind = observe.ErrUpstreamConnect
	errorbody.Write(w, rec, http.StatusBadGateway, observe.ErrUpstreamConnect.String(), "upstream unreachable")
}

func hexID(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

// entry is the gateway's entry handler in miniature: a pooled Record in the
// context, listener and route set, then the route's chain.
func entry(listener string, route middleware.Route, chain http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.GetRecord()
		defer observe.PutRecord(rec)
		rec.Start = time.Now()
		rec.Listener = listener
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			rec.ClientAddr = host
		}
		rec.Route = route.Name
		rec.RouteTemplate = route.Template
		chain.ServeHTTP(&observetest.ResponseWriter{ResponseWriter: w, Rec: rec}, r.WithContext(observe.NewContext(r.Context(), rec)))
	})
}

// ended puts the gateway's end stage inside mw, as the gateway does, so
// that mw reads a finished Record.
func ended(tr *Tracing, mw middleware.Middleware) middleware.Middleware {
	if mw == nil {
		return nil
	}
	return func(next http.Handler) http.Handler { return mw(middleware.End(tr.clock)(next)) }
}

// gatewayUnderTest is a real listener in front of entry → tracing → proxy.
type gatewayUnderTest struct {
	tr    *Tracing
	route middleware.Route
	srv   *httptest.Server
}

func itemsRoute(cfg *config.Config) middleware.Route {
	rc := &cfg.Routes[0]
	return middleware.Route{Name: rc.Name, Template: "/items/{id}", Services: []string{"svc"}, Config: rc}
}

// startGateway serves listener's traffic through the tracing middleware of
// the items route and a stand-in proxy to up, with extra middlewares
// (inside tracing) if given.
func startGateway(t testing.TB, tr *Tracing, cfg *config.Config, listener string, up *url.URL, attempts int, inner ...middleware.Middleware) *gatewayUnderTest {
	t.Helper()
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	return startGatewayWith(t, tr, cfg, listener, up, attempts, base, inner...)
}

// startGatewayWith is startGateway with the upstream transport base (which
// the test closes).
func startGatewayWith(t testing.TB, tr *Tracing, cfg *config.Config, listener string, up *url.URL, attempts int, base http.RoundTripper, inner ...middleware.Middleware) *gatewayUnderTest {
	t.Helper()
	route := itemsRoute(cfg)
	proxy := &standInProxy{service: "svc", target: up, rt: tr.WrapTransport("svc", base), attempts: attempts}
	mws := append([]middleware.Middleware{tr.ForRoute(route), middleware.End(tr.clock)}, inner...)
	srv := httptest.NewServer(entry(listener, route, middleware.Chain(proxy, mws...)))
	t.Cleanup(srv.Close)
	return &gatewayUnderTest{tr: tr, route: route, srv: srv}
}

func (g *gatewayUnderTest) get(t testing.TB, path string, h http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = append([]string(nil), vs...)
	}
	resp, err := g.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func newTracing(t testing.TB, cfg *config.Config, opts Options) *Tracing {
	t.Helper()
	tr, err := New(cfg.Tracing, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tr.Shutdown(ctx)
	})
	return tr
}

func jsonNewDecoder(resp *http.Response) *json.Decoder { return json.NewDecoder(resp.Body) }
