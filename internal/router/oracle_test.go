package router

import (
	"net/http"
	"sort"
	"strings"
)

// linearTable is the route table as it was before the segment tree: per
// listener, the candidates of each exact host and the candidates of every
// other host, each list in precedence order, scanned from the top. It is
// kept as the oracle of the differential tests and as the baseline of the
// benchmarks. Its only change from that code is hostOnly's trailing dot,
// which is now dropped whatever the case of the Host header (it used to be
// kept when the header had an upper-case letter).
type linearTable struct {
	byListener map[string]*linearListener
}

type linearListener struct {
	byHost map[string][]*Route // exact host → ordered candidates
	other  []*Route            // ordered candidates for hosts not in byHost
}

// newLinear builds the oracle over the routes t compiled.
func newLinear(t *Table, listeners []string) *linearTable {
	lt := &linearTable{byListener: map[string]*linearListener{}}
	ordered := append([]*Route(nil), t.routes...)
	sort.SliceStable(ordered, func(i, j int) bool { return less(ordered[i], ordered[j]) })
	for _, ln := range listeners {
		lt.byListener[ln] = buildLinearListener(ordered, ln)
	}
	return lt
}

func buildLinearListener(ordered []*Route, listener string) *linearListener {
	lt := &linearListener{byHost: map[string][]*Route{}}
	var mine []*Route
	for _, r := range ordered {
		if r.listeners == nil || r.listeners[listener] {
			mine = append(mine, r)
		}
	}
	hosts := map[string]bool{}
	for _, r := range mine {
		for _, h := range r.exactHosts {
			hosts[h] = true
		}
	}
	for h := range hosts {
		var cands []*Route
		for _, r := range mine {
			if r.matchHost(h) {
				cands = append(cands, r)
			}
		}
		lt.byHost[h] = cands
	}
	for _, r := range mine {
		if r.anyHost || len(r.wildHosts) > 0 {
			lt.other = append(lt.other, r)
		}
	}
	return lt
}

// Match is the linear matcher: the first candidate of the host's list that
// matches path, method, headers and query.
func (t *linearTable) Match(listener string, r *http.Request) *Route {
	lt := t.byListener[listener]
	if lt == nil {
		return nil
	}
	host := oracleHostOnly(r.Host)
	cands, ok := lt.byHost[host]
	checkHost := false
	if !ok {
		cands = lt.other
		checkHost = true
	}
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	var query map[string][]string
	for _, rt := range cands {
		if checkHost && !rt.matchHost(host) {
			continue
		}
		if !rt.matchPath(path) || !rt.matchMethod(r.Method) || !rt.matchHeaders(r.Header) {
			continue
		}
		if len(rt.query) > 0 {
			if query == nil {
				query = r.URL.Query()
			}
			if !rt.matchQuery(query) {
				continue
			}
		}
		return rt
	}
	return nil
}

// oracleHostOnly strips the port and lower-cases the host.
func oracleHostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.TrimSuffix(strings.ToLower(h), ".")
		}
	}
	return strings.TrimSuffix(h, ".")
}

func (rt *Route) matchHost(host string) bool {
	if rt.anyHost {
		return true
	}
	for _, h := range rt.exactHosts {
		if h == host {
			return true
		}
	}
	for _, suffix := range rt.wildHosts {
		if len(host) > len(suffix) && strings.HasSuffix(host, suffix) {
			return true
		}
	}
	return false
}

func (rt *Route) matchPath(path string) bool {
	switch rt.pathKind {
	case pathAny:
		return true
	case pathExact:
		return path == rt.path
	case pathPrefix:
		if !strings.HasPrefix(path, rt.path) {
			return false
		}
		// "/api" matches "/api" and "/api/x", not "/apix".
		return len(path) == len(rt.path) || rt.path[len(rt.path)-1] == '/' || path[len(rt.path)] == '/'
	case pathTemplate:
		return matchTemplate(rt.segments, path)
	}
	return false
}

func matchTemplate(segs []segment, path string) bool {
	rest, exhausted := path[1:], false
	for _, s := range segs {
		if s.isRest {
			return true // {rest...} takes the remainder, possibly empty
		}
		if exhausted {
			return false
		}
		var seg string
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			seg, rest = rest[:j], rest[j+1:]
		} else {
			seg, rest, exhausted = rest, "", true
		}
		if s.isVar {
			if seg == "" {
				return false
			}
		} else if seg != s.literal {
			return false
		}
	}
	return exhausted
}

func (rt *Route) matchQuery(q map[string][]string) bool {
	for _, km := range rt.query {
		if !km.match(q[km.name]) {
			return false
		}
	}
	return true
}
