// Package router compiles the configured routes into an immutable table and
// matches requests against it.
//
// Order: among the routes that match a request, the one with the highest
// priority wins; among equal priorities the most specific wins (exact host
// before wildcard host before any host; then exact path before template
// before prefix, longer and more literal first; then more method, header and
// query conditions); among equally specific routes, the first in the file.
//
// A Table is safe for concurrent use and never changes after Compile; a
// reload compiles a new one. Match does not allocate unless the winning
// candidate has query conditions or the Host header is not lower case.
package router

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/vantage-gateway/vantage/internal/config"
)

// Route is one compiled route.
type Route struct {
	// Name is the route's configured name.
	Name string
	// Template is the route's path pattern for telemetry (http.route): the
	// exact path, the template, or the prefix; "/" when the route matches
	// any path.
	Template string
	// Index is the route's position in the config.
	Index int
	// Config is the route's config. Read-only.
	Config *config.Route
	// Handler serves the route's requests. Compile leaves it nil; the
	// gateway sets it before the table is used.
	Handler http.Handler

	priority  int
	hostScore int
	pathScore int
	condCount int

	listeners map[string]bool // nil: every listener

	exactHosts []string
	wildHosts  []string // ".example.com" for "*.example.com"
	anyHost    bool

	pathKind pathKind
	path     string    // exact path or prefix
	segments []segment // template
	methods  []string
	headers  []kvMatcher
	query    []kvMatcher
}

type pathKind uint8

const (
	pathAny pathKind = iota
	pathPrefix
	pathTemplate
	pathExact
)

type segment struct {
	literal string // for literal segments
	isVar   bool
	isRest  bool
}

type kvMatcher struct {
	name   string // canonical header name, or query key
	value  string
	re     *regexp.Regexp
	absent bool
	any    bool // presence only
}

// Table is a compiled, immutable route table.
type Table struct {
	routes []*Route
	// per listener name; the "" entry serves listeners with no route of
	// their own restriction (all routes that apply to every listener).
	byListener map[string]*listenerTable
}

type listenerTable struct {
	byHost map[string][]*Route // exact host → ordered candidates
	other  []*Route            // ordered candidates for hosts not in byHost
}

// Compile builds a table from validated routes.
func Compile(routes []config.Route, listeners []string) (*Table, error) {
	t := &Table{byListener: map[string]*listenerTable{}}
	for i := range routes {
		rt, err := compileRoute(&routes[i], i)
		if err != nil {
			return nil, fmt.Errorf("routes[%d] (%s): %w", i, routes[i].Name, err)
		}
		t.routes = append(t.routes, rt)
	}
	ordered := append([]*Route(nil), t.routes...)
	sort.SliceStable(ordered, func(i, j int) bool { return less(ordered[i], ordered[j]) })
	for _, ln := range listeners {
		t.byListener[ln] = buildListenerTable(ordered, ln)
	}
	return t, nil
}

// Routes returns the compiled routes in config order. Do not modify.
func (t *Table) Routes() []*Route { return t.routes }

// Route returns the route named name, or nil.
func (t *Table) Route(name string) *Route {
	for _, r := range t.routes {
		if r.Name == name {
			return r
		}
	}
	return nil
}

func less(a, b *Route) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	if a.hostScore != b.hostScore {
		return a.hostScore > b.hostScore
	}
	if a.pathScore != b.pathScore {
		return a.pathScore > b.pathScore
	}
	if a.condCount != b.condCount {
		return a.condCount > b.condCount
	}
	return a.Index < b.Index
}

func buildListenerTable(ordered []*Route, listener string) *listenerTable {
	lt := &listenerTable{byHost: map[string][]*Route{}}
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

func compileRoute(cr *config.Route, idx int) (*Route, error) {
	r := &Route{Name: cr.Name, Index: idx, Config: cr, priority: cr.Priority}
	if len(cr.Listeners) > 0 {
		r.listeners = map[string]bool{}
		for _, l := range cr.Listeners {
			r.listeners[l] = true
		}
	}
	m := cr.Match
	if len(m.Hosts) == 0 {
		r.anyHost = true
	}
	for _, h := range m.Hosts {
		h = strings.ToLower(h)
		if strings.HasPrefix(h, "*.") {
			r.wildHosts = append(r.wildHosts, h[1:])
			if r.hostScore < 1000+len(h) {
				r.hostScore = 1000 + len(h)
			}
		} else {
			r.exactHosts = append(r.exactHosts, h)
			r.hostScore = 1 << 20
		}
	}
	switch {
	case m.Path != "" && strings.Contains(m.Path, "{"):
		if err := config.CheckPathTemplate(m.Path); err != nil {
			return nil, err
		}
		r.pathKind = pathTemplate
		r.Template = m.Path
		literals := 0
		for _, s := range strings.Split(m.Path[1:], "/") {
			switch {
			case strings.HasSuffix(s, "...}"):
				r.segments = append(r.segments, segment{isRest: true})
			case strings.HasPrefix(s, "{"):
				r.segments = append(r.segments, segment{isVar: true})
			default:
				r.segments = append(r.segments, segment{literal: s})
				literals++
			}
		}
		r.pathScore = 2<<20 + literals<<8 + len(r.segments)
	case m.Path != "":
		r.pathKind = pathExact
		r.path = m.Path
		r.Template = m.Path
		r.pathScore = 3 << 20
	case m.PathPrefix != "":
		r.pathKind = pathPrefix
		r.path = m.PathPrefix
		r.Template = m.PathPrefix
		r.pathScore = 1<<20 + len(m.PathPrefix)
	default:
		r.pathKind = pathAny
		r.Template = "/"
	}
	r.methods = append(r.methods, m.Methods...)
	for _, kv := range m.Headers {
		km, err := compileKV(http.CanonicalHeaderKey(kv.Name), kv)
		if err != nil {
			return nil, err
		}
		r.headers = append(r.headers, km)
	}
	for _, kv := range m.Query {
		km, err := compileKV(kv.Name, kv)
		if err != nil {
			return nil, err
		}
		r.query = append(r.query, km)
	}
	r.condCount = len(r.headers) + len(r.query)
	if len(r.methods) > 0 {
		r.condCount++
	}
	return r, nil
}

func compileKV(name string, kv config.KeyValueMatch) (kvMatcher, error) {
	km := kvMatcher{name: name, value: kv.Value, absent: kv.Absent}
	if kv.Regex != "" {
		re, err := regexp.Compile("^(?:" + kv.Regex + ")$")
		if err != nil {
			return km, err
		}
		km.re = re
	}
	km.any = kv.Value == "" && kv.Regex == "" && !kv.Absent
	return km, nil
}

// Match returns the route for r arriving on listener, or nil. path is the
// (already normalised) request path.
func (t *Table) Match(listener string, r *http.Request) *Route {
	lt := t.byListener[listener]
	if lt == nil {
		return nil
	}
	host := hostOnly(r.Host)
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

// hostOnly strips the port and lower-cases the host, allocating only for
// upper-case input.
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
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

func (rt *Route) matchMethod(m string) bool {
	if len(rt.methods) == 0 {
		return true
	}
	for _, x := range rt.methods {
		if x == m {
			return true
		}
	}
	return false
}

func (rt *Route) matchHeaders(h http.Header) bool {
	for _, km := range rt.headers {
		if !km.match(h[km.name]) {
			return false
		}
	}
	return true
}

func (rt *Route) matchQuery(q map[string][]string) bool {
	for _, km := range rt.query {
		if !km.match(q[km.name]) {
			return false
		}
	}
	return true
}

func (km *kvMatcher) match(vals []string) bool {
	if km.absent {
		return len(vals) == 0
	}
	if len(vals) == 0 {
		return false
	}
	if km.any {
		return true
	}
	for _, v := range vals {
		if km.re != nil {
			if km.re.MatchString(v) {
				return true
			}
		} else if v == km.value {
			return true
		}
	}
	return false
}
