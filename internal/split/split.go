// Package split shares a route's requests among several services by weight:
// canary releases (90/10), blue-green switches (100/0 flipped by a reload or
// the admin API) and header- or cookie-driven overrides for testing a version
// before it gets any weight.
//
// Weighted picks use smooth weighted round robin (the algorithm of nginx's
// upstream module): over every window of sum-of-weights picks, each leg gets
// exactly its weight, interleaved rather than bunched. Sticky picks hash a
// client key into the weight buckets instead, so one client stays on one
// version. Overrides win over both.
//
// All methods of Splitter are safe for concurrent use.
package split

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Pick reasons: their String is the value of observe.SplitChoice.Reason.
const (
	ReasonWeight   = observe.SplitWeight
	ReasonSticky   = observe.SplitSticky
	ReasonOverride = observe.SplitOverride
)

// ErrInvalidWeights is wrapped by SetWeights errors, so the admin API can
// answer 400.
var ErrInvalidWeights = errors.New("invalid split weights")

// keySource reads a client key from a request: a header, a cookie or the
// client address. The zero value reads nothing.
type keySource struct {
	header   string // canonical header name
	cookie   string
	clientIP bool
}

func newKeySource(header, cookie string, clientIP bool) keySource {
	return keySource{header: textproto.CanonicalMIMEHeaderKey(header), cookie: cookie, clientIP: clientIP}
}

// value returns the key of r, or "" and false when r has none. It does not
// allocate.
func (k keySource) value(r *http.Request, rec *observe.Record) (string, bool) {
	switch {
	case k.header != "":
		if vs := r.Header[k.header]; len(vs) > 0 && vs[0] != "" {
			return vs[0], true
		}
	case k.cookie != "":
		return CookieValue(r.Header, k.cookie)
	case k.clientIP:
		if rec != nil && rec.ClientAddr != "" {
			return rec.ClientAddr, true
		}
	}
	return "", false
}

// table is one immutable set of weights.
type table struct {
	weights []int
	cum     []int // cum[i] = weights[0] + ... + weights[i]
	total   int
}

func newTable(weights []int) *table {
	t := &table{weights: weights, cum: make([]int, len(weights))}
	for i, w := range weights {
		t.total += w
		t.cum[i] = t.total
	}
	return t
}

// bucket returns the leg whose share of [0, 1) holds the point p / 2^32.
// Scaling all weights by the same factor moves no point.
func (t *table) bucket(p uint32) int {
	x := int((uint64(p) * uint64(t.total)) >> 32) // in [0, total)
	for i, c := range t.cum {
		if x < c {
			return i
		}
	}
	return len(t.cum) - 1 // unreachable while total > 0
}

// Splitter picks a leg of one route's split. Create it with New.
type Splitter struct {
	route    string
	services []string // leg names, in config order
	obs      observe.Observer

	sticky    keySource
	override  keySource
	overrides map[string]int // override value → leg

	tab    atomic.Pointer[table]
	labels atomic.Pointer[[]string] // per leg, set by SetLabels

	mu  sync.Mutex // guards cur and tab's replacement
	cur []int      // smooth WRR current weights
}

// New builds the Splitter for route from cfg, which must be valid (see
// config.Split). obs receives EventSplitUpdated; nil means none.
//
// prev is the route's Splitter from the previous config snapshot, or nil.
// The new Splitter always starts from cfg's weights (a reload undoes runtime
// changes made with SetWeights); when prev has the same legs in the same
// order and currently uses the same weights, the round-robin position is
// carried over so that the exact-ratio windows continue across the reload.
func New(route string, cfg *config.Split, prev *Splitter, obs observe.Observer) (*Splitter, error) {
	if cfg == nil || len(cfg.Services) == 0 {
		return nil, fmt.Errorf("split of route %q: no services", route)
	}
	if obs == nil {
		obs = observe.Nop{}
	}
	s := &Splitter{route: route, obs: obs, services: make([]string, len(cfg.Services))}
	weights := make([]int, len(cfg.Services))
	index := make(map[string]int, len(cfg.Services))
	for i, ss := range cfg.Services {
		s.services[i] = ss.Service
		weights[i] = ss.Weight
		index[ss.Service] = i
	}
	if err := checkWeights(s.services, weights); err != nil {
		return nil, fmt.Errorf("split of route %q: %w", route, err)
	}
	if k := cfg.Sticky; k != nil {
		s.sticky = newKeySource(k.Header, k.Cookie, k.ClientIP)
	}
	if o := cfg.Override; o != nil {
		s.override = newKeySource(o.Header, o.Cookie, false)
		s.overrides = make(map[string]int, len(o.Values))
		for val, svc := range o.Values {
			leg, ok := index[svc]
			if !ok {
				return nil, fmt.Errorf("split of route %q: override value %q selects %q, which is not a leg", route, val, svc)
			}
			s.overrides[val] = leg
		}
	}
	t := newTable(weights)
	s.tab.Store(t)
	s.cur = make([]int, len(weights))
	if prev != nil && slices.Equal(prev.services, s.services) {
		prev.mu.Lock()
		if slices.Equal(prev.tab.Load().weights, weights) {
			copy(s.cur, prev.cur)
		}
		prev.mu.Unlock()
	}
	return s, nil
}

func checkWeights(services []string, weights []int) error {
	positive := false
	for i, w := range weights {
		if w < 0 {
			return fmt.Errorf("%w: weight of %q must be >= 0, got %d", ErrInvalidWeights, services[i], w)
		}
		if w > 0 {
			positive = true
		}
	}
	if !positive {
		return fmt.Errorf("%w: at least one service needs a positive weight", ErrInvalidWeights)
	}
	return nil
}

// Route returns the name of the route the Splitter belongs to.
func (s *Splitter) Route() string { return s.route }

// Services returns the legs' service names in config order; leg i of Pick is
// Services()[i]. The caller must not modify the slice.
func (s *Splitter) Services() []string { return s.services }

// Pick chooses a leg for r: an index into the config's services, and the
// reason: "override" when r's override header or cookie names a leg,
// "sticky" when the split is sticky and r carries the sticky key, "weight"
// otherwise (smooth weighted round robin). rec may be nil; its ClientAddr is
// the key of client_ip stickiness.
//
// Pick only decides: the caller (the proxy) records the choice in
// rec.Split and emits EventSplitChosen, once a breaker or fallback has had
// its say. Pick does not allocate.
func (s *Splitter) Pick(r *http.Request, rec *observe.Record) (leg int, reason observe.SplitReason) {
	return s.pick(r, rec)
}

func (s *Splitter) pick(r *http.Request, rec *observe.Record) (int, observe.SplitReason) {
	if s.overrides != nil {
		if v, ok := s.override.value(r, rec); ok {
			if leg, ok := s.overrides[v]; ok {
				return leg, ReasonOverride
			}
		}
	}
	if v, ok := s.sticky.value(r, rec); ok {
		return s.tab.Load().bucket(hash32(v)), ReasonSticky
	}
	return s.next(), ReasonWeight
}

// next is one step of smooth weighted round robin: every leg's current
// weight grows by its weight, the largest wins and pays back the total.
func (s *Splitter) next() int {
	s.mu.Lock()
	t := s.tab.Load()
	best := -1
	for i, w := range t.weights {
		s.cur[i] += w
		if w > 0 && (best < 0 || s.cur[i] > s.cur[best]) {
			best = i
		}
	}
	s.cur[best] -= t.total
	s.mu.Unlock()
	return best
}

// SetWeights changes the weights at runtime (the admin API); they hold until
// the next config reload. weights maps service names of the split's legs to
// their new weight; legs not named keep theirs. The result must be valid as
// in the config (no negative weight, at least one positive), else nothing
// changes and the error wraps ErrInvalidWeights. The round robin restarts,
// so the new shares are exact from the change on. source says who asked; it
// is the Source of the EventSplitUpdated it emits, whose Weights and
// PrevWeights hold the new and old weights in config order.
func (s *Splitter) SetWeights(weights map[string]int, source observe.ChangeSource) error {
	s.mu.Lock()
	old := s.tab.Load()
	next := append([]int(nil), old.weights...)
	for name, w := range weights {
		i := indexOf(s.services, name)
		if i < 0 {
			s.mu.Unlock()
			return fmt.Errorf("%w: %q is not a service of the split of route %q", ErrInvalidWeights, name, s.route)
		}
		next[i] = w
	}
	if err := checkWeights(s.services, next); err != nil {
		s.mu.Unlock()
		return err
	}
	s.tab.Store(newTable(next))
	clear(s.cur)
	s.mu.Unlock()

	s.obs.Observe(observe.Event{
		Kind:        observe.EventSplitUpdated,
		Time:        time.Now(),
		Route:       s.route,
		Weights:     s.legs(next),
		PrevWeights: s.legs(old.weights),
		Source:      source,
		Detail:      s.describe(next),
	})
	return nil
}

// SetLabels sets words that describe each leg's traffic now, by service
// name (a rollout's name, step and leg); legs not named get none, and nil
// clears them all. The proxy puts a chosen leg's label in the Detail of
// its EventSplitChosen, which the tracing stage makes a span event. Like
// SetWeights, labels hold until the next config reload builds a new
// Splitter.
func (s *Splitter) SetLabels(labels map[string]string) error {
	if labels == nil {
		s.labels.Store(nil)
		return nil
	}
	ls := make([]string, len(s.services))
	for name, l := range labels {
		i := indexOf(s.services, name)
		if i < 0 {
			return fmt.Errorf("%q is not a service of the split of route %q", name, s.route)
		}
		ls[i] = l
	}
	s.labels.Store(&ls)
	return nil
}

// Label returns leg's label ("" when none). It does not allocate.
func (s *Splitter) Label(leg int) string {
	if p := s.labels.Load(); p != nil && leg >= 0 && leg < len(*p) {
		return (*p)[leg]
	}
	return ""
}

// Weights returns the legs and their current weights, in config order. The
// slice is the caller's.
func (s *Splitter) Weights() []config.SplitService {
	t := s.tab.Load()
	out := make([]config.SplitService, len(s.services))
	for i, svc := range s.services {
		out[i] = config.SplitService{Service: svc, Weight: t.weights[i]}
	}
	return out
}

// legs pairs the split's services with weights, in config order.
func (s *Splitter) legs(weights []int) []observe.SplitLeg {
	out := make([]observe.SplitLeg, len(s.services))
	for i, svc := range s.services {
		out[i] = observe.SplitLeg{Service: svc, Weight: weights[i]}
	}
	return out
}

// describe returns the weights in words for people: "a=90,b=10".
func (s *Splitter) describe(weights []int) string {
	var b strings.Builder
	for i, svc := range s.services {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(svc)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(weights[i]))
	}
	return b.String()
}

// hash32 is FNV-1a over s, mixed and folded to 32 bits. It is stable across processes,
// so replicas of the gateway agree on sticky assignments.
func hash32(s string) uint32 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	// Finish with murmur3's fmix64 so that short, similar keys (IPs in
	// one subnet) spread over the high bits, which pick the bucket.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return uint32(h >> 32)
}

// CookieValue returns the value of the first cookie called name in h's
// Cookie headers, without allocating (unlike http.Request.Cookie, which
// parses them all). Surrounding double quotes are removed.
func CookieValue(h http.Header, name string) (string, bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, v != ""
		}
	}
	return "", false
}

func indexOf(ss []string, s string) int {
	for i, x := range ss {
		if x == s {
			return i
		}
	}
	return -1
}
