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
// route that matches or that ranks below the best found so far, and skips
// subtrees that cannot beat it. A request visits at most one node per
// depth for each combination of literal and param children its segments
// lead to; it never visits routes of other paths.
type node struct {
	min     int // lowest rank in this subtree
	entries []entry
	param   *node

	// Literal children: a map while building, and for nodes with more
	// than maxListedChildren children; parallel slices for the others.
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

// insert files rt in the tree rooted at n. Routes must be inserted in
// precedence order.
func (n *node) insert(rt *Route) {
	switch rt.pathKind {
	case pathAny:
		n.add(rt, atOrBelow)
	case pathExact:
		n.walkLiterals(rt.path[1:]).add(rt, atEnd)
	case pathPrefix:
		switch p := rt.path[1:]; {
		case p == "": // "/"
			n.add(rt, below)
		case strings.HasSuffix(p, "/"):
			n.walkLiterals(p[:len(p)-1]).add(rt, below)
		default:
			n.walkLiterals(p).add(rt, atOrBelow)
		}
	case pathTemplate:
		for _, s := range rt.segments {
			switch {
			case s.isRest:
				n.add(rt, atOrBelow)
				return
			case s.isVar:
				if n.param == nil {
					n.param = &node{}
				}
				n = n.param
			default:
				n = n.literal(s.literal)
			}
		}
		n.add(rt, atEnd)
	}
}

// walkLiterals returns the node reached from n by the literal segments of
// p (a path without its leading '/'), creating missing nodes. p == "" is
// one empty segment, as the path "/" has.
func (n *node) walkLiterals(p string) *node {
	for {
		seg, rest, more := strings.Cut(p, "/")
		n = n.literal(seg)
		if !more {
			return n
		}
		p = rest
	}
}

func (n *node) literal(seg string) *node {
	if n.lit == nil {
		n.lit = map[string]*node{}
	}
	c := n.lit[seg]
	if c == nil {
		c = &node{}
		n.lit[seg] = c
	}
	return c
}

func (n *node) add(rt *Route, when depth) {
	if k := len(n.entries); k > 0 && n.entries[k-1] == (entry{rt, when}) {
		return // a route that names the same host twice
	}
	n.entries = append(n.entries, entry{rt, when})
}

// finish sets min over the subtree, trims the entry lists to size and
// turns small child maps into slices. It is called once, after every
// insert.
func (n *node) finish() {
	n.min = int(^uint(0) >> 1)
	if len(n.entries) > 0 {
		n.entries = n.entries[:len(n.entries):len(n.entries)]
		n.min = n.entries[0].rt.rank
	}
	if n.param != nil {
		n.param.finish()
		n.min = min(n.min, n.param.min)
	}
	for _, c := range n.lit {
		c.finish()
		n.min = min(n.min, c.min)
	}
	if len(n.lit) <= maxListedChildren {
		for k, c := range n.lit {
			n.keys = append(n.keys, k)
			n.kids = append(n.kids, c)
		}
		n.lit = nil
	}
}

func (n *node) child(seg string) *node {
	if n.lit != nil {
		return n.lit[seg]
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
	for _, e := range n.entries {
		if m.best != nil && e.rt.rank >= m.best.rank {
			break
		}
		switch {
		case e.when == atEnd && !exhausted, e.when == below && exhausted:
			continue
		case !m.slash && (e.rt.pathKind == pathExact || e.rt.pathKind == pathPrefix):
			continue
		}
		if m.accept(e.rt) {
			m.best = e.rt
			break
		}
	}
	if exhausted || (n.param == nil && n.lit == nil && len(n.keys) == 0) {
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
