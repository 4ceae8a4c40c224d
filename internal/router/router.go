// Package router compiles the configured routes into an immutable table and
// matches requests against it.
//
// Order: among the routes that match a request, the one with the highest
// priority wins; among equal priorities the most specific wins (exact host
// before wildcard host before any host; then exact path before template
// before prefix, longer and more literal first; then more method, header and
// query conditions); among equally specific routes, the first in the file.
//
// Compile ranks every route once by that order and files it in a segment
// tree (tree.go) under each of its hosts: a map of exact hosts, a map of
// wildcard suffixes, and one tree for routes without hosts. Match walks only
// the trees of the request's host and, in each, only the nodes its path
// segments lead to, so its cost depends on the request (the host's labels,
// the path's segments) and on the routes that share its path, not on the
// size of the table.
//
// A Table is safe for concurrent use and never changes after Compile; a
// reload compiles a new one. Match does not allocate unless the Host header
// has an upper-case letter and is longer than 255 bytes, or a query
// condition has to decode a percent-escaped or '+' query parameter.
package router

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/vantage-gateway/vantage/internal/config"
)

// Route is one compiled route. What Match and the request read of it
// comes first, in its first two cache lines: with thousands of routes a
// request finds little of its route in the cache.
type Route struct {
	// Name is the route's configured name.
	Name string
	// Template is the route's path pattern for telemetry (http.route): the
	// exact path, the template, or the prefix; "/" when the route matches
	// any path.
	Template string
	// Handler serves the route's requests. Compile leaves it nil; the
	// gateway sets it before the table is used.
	Handler http.Handler

	rank     int // position in precedence order: lower wins
	pathKind pathKind
	methods  []string
	headers  []kvMatcher
	query    []kvMatcher

	// Index is the route's position in the config.
	Index int
	// Config is the route's config. Read-only.
	Config *config.Route

	priority  int
	hostScore int
	pathScore int
	condCount int

	listeners map[string]bool // nil: every listener

	exactHosts []string
	wildHosts  []string // ".example.com" for "*.example.com"
	anyHost    bool

	path     string    // exact path or prefix
	segments []segment // template
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
	routes []*Route // config order
	// byListener maps a listener's name to the hosts of the routes that
	// apply to it; listeners to which the same routes apply share one.
	byListener map[string]*hostIndex
}

// hostIndex holds the route trees of one listener, one per host pattern.
// A route is filed under each of its hosts, and a request looks at the
// tree of its exact host, those of the wildcards that cover it and the
// tree of the routes without hosts.
type hostIndex struct {
	exact map[string]*node // "shop.example.com"
	wild  map[string]*node // ".example.com" for "*.example.com"
	any   *node            // routes without hosts; nil when there are none
}

// Compile builds a table from validated routes for the named listeners.
// The table keeps pointers into routes; the caller must not modify them.
func Compile(routes []config.Route, listeners []string) (*Table, error) {
	t := &Table{routes: make([]*Route, 0, len(routes)), byListener: map[string]*hostIndex{}}
	for i := range routes {
		rt, err := compileRoute(&routes[i], i)
		if err != nil {
			return nil, fmt.Errorf("routes[%d] (%s): %w", i, routes[i].Name, err)
		}
		t.routes = append(t.routes, rt)
	}
	ordered := slices.Clone(t.routes)
	slices.SortStableFunc(ordered, func(a, b *Route) int {
		switch {
		case less(a, b):
			return -1
		case less(b, a):
			return 1
		}
		return 0
	})
	for i, rt := range ordered {
		rt.rank = i
	}
	// Listeners to which the same restricted routes apply share an index.
	shared := map[string]*hostIndex{}
	var sig strings.Builder
	for _, ln := range listeners {
		sig.Reset()
		for _, rt := range t.routes {
			if rt.listeners[ln] {
				fmt.Fprintf(&sig, "%d,", rt.Index)
			}
		}
		hi := shared[sig.String()]
		if hi == nil {
			hi = buildHostIndex(ordered, ln)
			shared[sig.String()] = hi
		}
		t.byListener[ln] = hi
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

// buildHostIndex files the routes that apply to listener, taken in
// precedence order so that every list of the trees is in that order.
func buildHostIndex(ordered []*Route, listener string) *hostIndex {
	hi := &hostIndex{exact: map[string]*node{}, wild: map[string]*node{}}
	var a nodeAlloc
	root := func(m map[string]*node, h string) *node {
		n := m[h]
		if n == nil {
			n = a.new()
			m[h] = n
		}
		return n
	}
	for _, rt := range ordered {
		if rt.listeners != nil && !rt.listeners[listener] {
			continue
		}
		if rt.anyHost {
			if hi.any == nil {
				hi.any = a.new()
			}
			hi.any.insert(&a, rt)
		}
		for _, h := range rt.exactHosts {
			root(hi.exact, h).insert(&a, rt)
		}
		for _, h := range rt.wildHosts {
			root(hi.wild, h).insert(&a, rt)
		}
	}
	for _, n := range hi.exact {
		n.finish()
	}
	for _, n := range hi.wild {
		n.finish()
	}
	if hi.any != nil {
		hi.any.finish()
	}
	return hi
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

// maxHostLen bounds the Host names Match lower-cases on the stack; DNS
// names are at most 253 bytes.
const maxHostLen = 255

// Match returns the route for r arriving on listener, or nil. r.URL.Path is
// the (already normalised) request path. Match is safe for concurrent use.
func (t *Table) Match(listener string, r *http.Request) *Route {
	hi := t.byListener[listener]
	if hi == nil {
		return nil
	}
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	m := matcher{r: r, slash: path[0] == '/'}
	rest := path[1:]
	host := hostname(r.Host)
	upper := hasUpper(host)
	if upper && len(host) <= maxHostLen {
		// Lower-case on the stack: map lookups keyed by string(b) do not
		// allocate.
		var buf [maxHostLen]byte
		b := buf[:len(host)]
		for i := 0; i < len(host); i++ {
			c := host[i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			b[i] = c
		}
		if n := hi.exact[string(b)]; n != nil {
			m.walk(n, rest, false)
		}
		if len(hi.wild) > 0 {
			for i := 1; i < len(b); i++ {
				if b[i] == '.' {
					if n := hi.wild[string(b[i:])]; n != nil {
						m.walk(n, rest, false)
					}
				}
			}
		}
	} else {
		if upper {
			host = strings.ToLower(host)
		}
		if n := hi.exact[host]; n != nil {
			m.walk(n, rest, false)
		}
		if len(hi.wild) > 0 {
			for i := 1; i < len(host); i++ {
				if host[i] == '.' {
					if n := hi.wild[host[i:]]; n != nil {
						m.walk(n, rest, false)
					}
				}
			}
		}
	}
	if hi.any != nil {
		m.walk(hi.any, rest, false)
	}
	return m.best
}

// hostname strips the port, the brackets of an IPv6 literal and a trailing
// dot from a Host header. It does not change the case.
func hostname(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(h, ".")
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}

// accept reports whether rt's method, header and query conditions hold
// for m's request; its host and path already do.
func (m *matcher) accept(rt *Route) bool {
	if !rt.matchMethod(m.r.Method) || !rt.matchHeaders(m.r.Header) {
		return false
	}
	for i := range rt.query {
		if !rt.query[i].matchRawQuery(m.r.URL.RawQuery) {
			return false
		}
	}
	return true
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
		if km.matchValue(v) {
			return true
		}
	}
	return false
}

func (km *kvMatcher) matchValue(v string) bool {
	if km.re != nil {
		return km.re.MatchString(v)
	}
	return v == km.value
}

// matchRawQuery is match over the values of km.name in a raw query string,
// decoded as url.ParseQuery decodes them: pairs separated by '&', a pair
// with a ';' or an invalid escape skipped. It allocates only to decode a
// key or value that has a '%' or '+'.
func (km *kvMatcher) matchRawQuery(raw string) bool {
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, ok := queryUnescape(k)
		if !ok || k != km.name {
			continue
		}
		v, ok = queryUnescape(v)
		if !ok {
			continue
		}
		switch {
		case km.absent:
			return false
		case km.any || km.matchValue(v):
			return true
		}
	}
	return km.absent
}

func queryUnescape(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, true
	}
	u, err := url.QueryUnescape(s)
	return u, err == nil
}
