package router

import (
	"net/http"
	"strings"
)

// A node is one step of a route tree: the routes of one host pattern filed
// by the segments of their paths. The root stands for no segment consumed;
// a node at depth d for the path's first d segments (the path without its
// leading '/', split at every '/'). Literal segments (of exact paths,
// prefixes and templates) lead to child nodes by value, {name} segments to
// the one param child, which takes any non-empty segment. A route sits in
// exactly one node of each tree it is filed in:
//
//   - an exact path "/a/b" at a→b, matching paths of exactly those
//     segments (atEnd);
//   - a template "/a/{id}" at a→{id} (atEnd), and "/a/{rest...}" at a,
//     matching paths of one or more segments whose first is "a"
//     (atOrBelow);
//   - a prefix "/a" at a (atOrBelow: "/a", "/a/", "/a/x"), and "/a/" also
//     at a but matching only paths with a further segment (below: "/a/",
//     "/a/x", not "/a");
//   - a route without a path at the root (atOrBelow).
//
// Each node's entries are in precedence order, and min is the lowest rank
// of its subtree, so a walk stops reading a node's entries at the first
// route that matches or that does not rank before the best found so far,
// and skips subtrees that cannot beat it. A request visits at most one node per
// depth for each combination of literal and param children its segments
// lead to; it never visits routes of other paths.
type node struct {
	min int // lowest rank in this subtree
	// The node's entries in precedence order: the first in e0, in the
	// node itself (most nodes of a large estate hold one route), the
	// others in entries.
	e0      entry
	entries []entry
	param   *node

	// Literal children: the first in key0 and kid0, in the node itself
	// (most nodes of a large estate have one, as "items" under "/svc42"),
	// the next up to maxListedChildren in all in parallel slices, a map
	// (and none of these) beyond.
	key0 string
	kid0 *node
	lit  map[string]*node
	keys []string
	kids []*node
}

type entry struct {
	rt   *Route
	when depth
}

// depth says at which path lengths an entry matches, relative to its
// node's depth d.
type depth uint8

const (
	atEnd     depth = iota // the path has exactly d segments
	atOrBelow              // d or more
	below                  // more than d
)

// maxListedChildren is the fan-out up to which literal children are
// scanned in a slice rather than looked up in a map.
const maxListedChildren = 8

// nodeAlloc hands out the nodes of one table from chunks, so that a large
// table costs few allocations and its nodes sit close together, and keeps
// one copy of each literal segment, so that the segment many routes share
// ("items" of /svc{i}/items/{id}) is compared with one string that stays
// in the cache.
type nodeAlloc struct {
	chunk []node
	strs  map[string]string
}

func (a *nodeAlloc) intern(s string) string {
	if v, ok := a.strs[s]; ok {
		return v
	}
	if a.strs == nil {
		a.strs = map[string]string{}
	}
	a.strs[s] = s
	return s
}

func (a *nodeAlloc) new() *node {
	if len(a.chunk) == cap(a.chunk) {
		a.chunk = make([]node, 0, 256)
	}
	a.chunk = a.chunk[:len(a.chunk)+1]
	return &a.chunk[len(a.chunk)-1]
}

// insert files rt in the tree rooted at n. Routes must be inserted in
// precedence order.
func (n *node) insert(a *nodeAlloc, rt *Route) {
	switch rt.pathKind {
	case pathAny:
		n.add(rt, atOrBelow)
	case pathExact:
		n.walkLiterals(a, rt.path[1:]).add(rt, atEnd)
	case pathPrefix:
		switch p := rt.path[1:]; {
		case p == "": // "/"
			n.add(rt, below)
		case strings.HasSuffix(p, "/"):
			n.walkLiterals(a, p[:len(p)-1]).add(rt, below)
		default:
			n.walkLiterals(a, p).add(rt, atOrBelow)
		}
	case pathTemplate:
		for _, s := range rt.segments {
			switch {
			case s.isRest:
				n.add(rt, atOrBelow)
				return
			case s.isVar:
				if n.param == nil {
					n.param = a.new()
				}
				n = n.param
			default:
				n = n.literal(a, s.literal)
			}
		}
		n.add(rt, atEnd)
	}
}

// walkLiterals returns the node reached from n by the literal segments of
// p (a path without its leading '/'), creating missing nodes. p == "" is
// one empty segment, as the path "/" has.
func (n *node) walkLiterals(a *nodeAlloc, p string) *node {
	for {
		seg, rest, more := strings.Cut(p, "/")
		n = n.literal(a, seg)
		if !more {
			return n
		}
		p = rest
	}
}

// literal returns n's child for the literal segment seg, creating it.
func (n *node) literal(a *nodeAlloc, seg string) *node {
	if c := n.child(seg); c != nil {
		return c
	}
	c := a.new()
	seg = a.intern(seg)
	switch {
	case n.lit != nil:
		n.lit[seg] = c
	case n.kid0 == nil:
		n.key0, n.kid0 = seg, c
	case len(n.keys)+1 < maxListedChildren:
		n.keys = append(n.keys, seg)
		n.kids = append(n.kids, c)
	default:
		n.lit = make(map[string]*node, 2*maxListedChildren)
		n.lit[n.key0] = n.kid0
		for i, k := range n.keys {
			n.lit[k] = n.kids[i]
		}
		n.lit[seg] = c
		n.key0, n.kid0, n.keys, n.kids = "", nil, nil, nil
	}
	return c
}

func (n *node) add(rt *Route, when depth) {
	e := entry{rt, when}
	last := n.e0
	if k := len(n.entries); k > 0 {
		last = n.entries[k-1]
	}
	switch {
	case last == e:
		return // a route that names the same host twice
	case n.e0.rt == nil:
		n.e0 = e
	default:
		n.entries = append(n.entries, e)
	}
}

// finish sets min over the subtree. It is called once, after every
// insert.
func (n *node) finish() {
	n.min = int(^uint(0) >> 1)
	if n.e0.rt != nil {
		n.min = n.e0.rt.rank
	}
	if n.param != nil {
		n.param.finish()
		n.min = min(n.min, n.param.min)
	}
	if n.kid0 != nil {
		n.kid0.finish()
		n.min = min(n.min, n.kid0.min)
	}
	for _, c := range n.lit {
		c.finish()
		n.min = min(n.min, c.min)
	}
	for _, c := range n.kids {
		c.finish()
		n.min = min(n.min, c.min)
	}
}

func (n *node) child(seg string) *node {
	if n.lit != nil {
		return n.lit[seg]
	}
	if n.kid0 == nil {
		return nil
	}
	if n.key0 == seg {
		return n.kid0
	}
	for i, k := range n.keys {
		if k == seg {
			return n.kids[i]
		}
	}
	return nil
}

// matcher is the state of one Match: the request and the best route
// found so far.
type matcher struct {
	r     *http.Request
	best  *Route
	slash bool // the path starts with '/'; exact paths and prefixes need it
}

// walk visits n, whose depth's segments have been consumed; rest is the
// remainder of the path after them and exhausted says that there are no
// more segments (rest is then "").
func (m *matcher) walk(n *node, rest string, exhausted bool) {
	if m.best != nil && n.min >= m.best.rank {
		return
	}
	if n.e0.rt != nil && !m.consider(n.e0, exhausted) {
		for _, e := range n.entries {
			if m.consider(e, exhausted) {
				break
			}
		}
	}
	if exhausted || (n.param == nil && n.lit == nil && n.kid0 == nil) {
		return
	}
	seg, next, more := strings.Cut(rest, "/")
	if c := n.child(seg); c != nil {
		m.walk(c, next, !more)
	}
	if n.param != nil && seg != "" {
		m.walk(n.param, next, !more)
	}
}

// consider tries entry e of a node whose depth's segments have been
// consumed, and reports whether the node's later entries need not be
// tried: e matched (it is now the best), or e does not rank before the
// best found so far (nor does any later entry).
func (m *matcher) consider(e entry, exhausted bool) bool {
	if m.best != nil && e.rt.rank >= m.best.rank {
		return true
	}
	switch {
	case e.when == atEnd && !exhausted, e.when == below && exhausted:
		return false
	case !m.slash && (e.rt.pathKind == pathExact || e.rt.pathKind == pathPrefix):
		return false
	}
	if m.accept(e.rt) {
		m.best = e.rt
		return true
	}
	return false
}
