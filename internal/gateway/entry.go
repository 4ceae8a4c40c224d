package gateway

import (
	"bufio"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"sync"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// entry is the first handler of a listener: it takes a Record and stamps its
// Start with the gateway's clock, resolves the client address, normalises
// the path, matches the route and runs the route's chain on the current
// snapshot. The chain's end stage (see Gateway.chain) fixes End and the
// final status before any telemetry stage reads the record; the entry
// handler returns the record to the pool once the chain has returned. A
// request keeps the snapshot it started on until it ends, so a reload never
// changes a request mid-way.
type entry struct {
	g        *Gateway
	listener string
}

func (e *entry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	snap := e.g.acquire()
	defer snap.release()

	rec := observe.GetRecord()
	rec.Start = e.g.opts.Clock.Now()
	rec.Listener = e.listener
	rec.ClientAddr, rec.PeerTrusted = clientAddr(r, snap.trusted)
	if needsClean(r.URL.Path) {
		r.URL.Path = cleanPath(r.URL.Path)
		r.URL.RawPath = ""
	}

	rw := recorderPool.Get().(*recorder)
	rw.ResponseWriter, rw.rec, rw.wroteHeader = w, rec, false
	r = r.WithContext(observe.NewContext(r.Context(), rec))

	if rt := snap.table.Match(e.listener, r); rt != nil {
		rec.Route, rec.RouteTemplate = rt.Name, rt.Template
		snap.obs.Observe(observe.Event{Kind: observe.EventRouteMatched, Time: rec.Start, Ctx: r.Context(), Record: rec, Route: rt.Name})
		rt.Handler.ServeHTTP(rw, r)
	} else {
		snap.obs.Observe(observe.Event{Kind: observe.EventRouteNotMatched, Time: rec.Start, Ctx: r.Context(), Record: rec})
		snap.notFound.ServeHTTP(rw, r)
	}

	aborted := rec.Aborted
	rw.ResponseWriter, rw.rec = nil, nil
	recorderPool.Put(rw)
	observe.PutRecord(rec)
	if aborted {
		// The upstream broke mid-body: abort the client connection so a
		// truncated response is not taken for a whole one.
		panic(http.ErrAbortHandler)
	}
}

// clientAddr returns the client IP: the peer, or, when the peer is a trusted
// proxy, the right-most X-Forwarded-For address that is not itself trusted.
func clientAddr(r *http.Request, trusted []netip.Prefix) (string, bool) {
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	if len(trusted) == 0 {
		return peer, false
	}
	ip, err := netip.ParseAddr(peer)
	if err != nil || !isTrusted(ip.Unmap(), trusted) {
		return peer, false
	}
	xff := r.Header["X-Forwarded-For"]
	for i := len(xff) - 1; i >= 0; i-- {
		v := xff[i]
		for v != "" {
			var hop string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				hop, v = strings.TrimSpace(v[j+1:]), v[:j]
			} else {
				hop, v = strings.TrimSpace(v), ""
			}
			a, err := netip.ParseAddr(hop)
			if err != nil {
				return peer, true // malformed hop: stop trusting the chain
			}
			if !isTrusted(a.Unmap(), trusted) {
				return hop, true
			}
			peer = hop
		}
	}
	return peer, true
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// needsClean reports whether p has empty, "." or ".." segments.
func needsClean(p string) bool {
	if p == "" || p[0] != '/' {
		return true
	}
	return strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
		strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")
}

// cleanPath resolves dot segments and repeated slashes, keeping a trailing
// slash, so that routes match (and upstreams see) the path the client
// really asked for: "/api/../admin" is "/admin", never "/api/...".
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}

// recorder writes Status and BytesOut into the Record as the response goes
// out. It passes Flush, Hijack and (through Unwrap) everything else a
// http.ResponseController may ask for.
type recorder struct {
	http.ResponseWriter
	rec         *observe.Record
	wroteHeader bool
}

var recorderPool = sync.Pool{New: func() any { return new(recorder) }}

func (rw *recorder) WriteHeader(code int) {
	if rw.wroteHeader {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		rw.ResponseWriter.WriteHeader(code) // informational: more to come
		return
	}
	rw.wroteHeader = true
	rw.rec.Status = code
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	n, err := rw.ResponseWriter.Write(b)
	rw.rec.BytesOut += int64(n)
	return n, err
}

func (rw *recorder) Flush() {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(rw.ResponseWriter).Flush()
}

func (rw *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(rw.ResponseWriter).Hijack()
}

func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// WroteHeader reports whether the response head was sent.
func (rw *recorder) WroteHeader() bool { return rw.wroteHeader }
