package metrics

import (
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/vantage-gateway/vantage/internal/metrics/kpi"
	"github.com/vantage-gateway/vantage/internal/metrics/series"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// maxErrorKinds bounds the error kinds with a pre-resolved slot; a larger
// kind is looked up each time.
const maxErrorKinds = 32

// maxGroupsPerRoute bounds the services, and maxUpstreamsPerRoute the
// (service, upstream) pairs, a route caches series for; past them the
// service or upstream label is "other".
const (
	maxGroupsPerRoute    = 64
	maxUpstreamsPerRoute = 1024
)

// ForRoute implements middleware.Factory: it returns the metrics stage of
// route r. The stage reads the request's observe.Record when the next
// handler returns (the gateway's end stage, inside this one, has finished
// it: End and Status are fixed) and records the RED metrics of
// the route, its services and their upstreams, and the KPIs that match.
// Requests without a Record pass through unrecorded. It returns nil when
// metrics are disabled. The unmatched handler (r.Name == "") records
// under route "unmatched".
func (m *Metrics) ForRoute(r middleware.Route) middleware.Middleware {
	if !m.enabled {
		return nil
	}
	route := r.Name
	if route == "" {
		route = unmatchedRoute
	}
	// Nothing per service or upstream is built here: a route's series
	// groups appear with its first request (see group and upstream), so an
	// estate of routes that receive no traffic costs only this struct.
	rm := &routeMetrics{m: m, route: route, services: r.Services}
	if r.Name != "" {
		rm.kpis = m.kpis.ForRoute(r.Name)
	}
	if r.Config != nil && r.Config.Split != nil {
		for _, leg := range r.Config.Split.Services {
			c := m.f.splitWeight.With(route, leg.Service)
			c.Set(float64(leg.Weight))
			rm.weights = append(rm.weights, weightSlot{service: leg.Service, weight: float64(leg.Weight), child: c})
		}
	}
	return func(next http.Handler) http.Handler {
		return &routeHandler{routeMetrics: rm, next: next}
	}
}

// routeMetrics is one route's pre-resolved series, shared by the handlers
// its middleware builds. Its groups are created on the route's first
// request; the series they cache are held weakly (series.Slot), so an idle
// route's expired series are freed while the route keeps serving.
type routeMetrics struct {
	m        *Metrics
	route    string
	services []string // the configured services: always a group of their own

	inflight series.Slot

	groups  atomic.Pointer[[]*svcGroup] // copy on write; nil before the first request
	groupMu sync.Mutex

	ups   atomic.Pointer[map[upKey]*upGroup] // copy on write; nil before the first attempt
	upsMu sync.Mutex

	kpis    []*kpi.Binding
	weights []weightSlot
}

type weightSlot struct {
	service string
	weight  float64
	child   *series.Child
}

// svcGroup holds the series of one (route, service): a slot per label
// combination the route has recorded (method and code, error kind, ...),
// not per combination it might record.
type svcGroup struct {
	name  string // raw service name ("" when none)
	label string // its label value
	slots slotTable
}

func newSvcGroup(name string) *svcGroup { return &svcGroup{name: name, label: orNone(name)} }

// Slot keys of a svcGroup's table: the family in the top byte, its
// fixed-set indexes below.
const (
	keyRequests = (iota + 1) << 24 // | method<<12 | code (0..599, 600 other)
	keyErrors                      // | error kind
	keyDuration                    // | method<<4 | class
	keyUpstream
	keyOverhead
	keyReqBytes
	keyResBytes
	keyGRPC        // | grpc index
	keySvcDuration // | class
)

// maxSlotsPerTable bounds the slots a table caches; past it, series are
// looked up in their family each time (a read lock, no allocation).
const maxSlotsPerTable = 64

// slotTable caches series by a small integer key in a copy-on-write list:
// a lookup is an atomic load and a scan of the few keys in use, without
// locks or allocations; adding a key copies the list under a mutex. The
// zero value is empty.
type slotTable struct {
	p  atomic.Pointer[slotList]
	mu sync.Mutex
}

type slotList struct {
	keys  []uint32
	slots []*series.Slot
}

// slot returns the Slot of key, adding it on first use; nil when the table
// is full.
func (t *slotTable) slot(key uint32) *series.Slot {
	if l := t.p.Load(); l != nil {
		for i, k := range l.keys {
			if k == key {
				return l.slots[i]
			}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var cur slotList
	if l := t.p.Load(); l != nil {
		cur = *l
		for i, k := range cur.keys {
			if k == key {
				return cur.slots[i]
			}
		}
	}
	if len(cur.keys) >= maxSlotsPerTable {
		return nil
	}
	sl := new(series.Slot)
	t.p.Store(&slotList{
		keys:  append(cur.keys[:len(cur.keys):len(cur.keys)], key),
		slots: append(cur.slots[:len(cur.slots):len(cur.slots)], sl),
	})
	return sl
}

// load returns key's Slot (nil when the table is full) and its live series
// (nil when it is not cached or expired: resolve it).
func (t *slotTable) load(key uint32) (*series.Slot, *series.Child) {
	sl := t.slot(key)
	if sl == nil {
		return nil, nil
	}
	return sl, sl.Load()
}

// resolve looks k up in f and caches it in sl (when not nil).
func resolve(sl *series.Slot, f *series.Family, k *series.Key) *series.Child {
	if sl == nil {
		return f.Get(k)
	}
	return sl.Resolve(f, k)
}

type upKey struct{ service, upstream string }

// upGroup holds the series of one (route, service, upstream).
type upGroup struct {
	service, upstream string // label values
	requests          [numAttempts]series.Slot
	errors            [maxErrorKinds]series.Slot
	duration          series.Slot
}

type routeHandler struct {
	*routeMetrics
	next http.Handler
}

// ServeHTTP implements http.Handler.
func (h *routeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := observe.FromContext(r.Context())
	if rec == nil {
		h.next.ServeHTTP(w, r)
		return
	}
	inf := h.inflightChild()
	inf.Inc()
	defer func() {
		inf.Dec()
		if p := recover(); p != nil {
			h.record(rec, r.Method, w)
			panic(p)
		}
	}()
	h.next.ServeHTTP(w, r)
	h.record(rec, r.Method, w)
}

func (rm *routeMetrics) inflightChild() *series.Child {
	if c := rm.inflight.Load(); c != nil {
		return c
	}
	k := series.Key{rm.route}
	return rm.inflight.Resolve(rm.m.f.inflight, &k)
}

// record reads the finished record. It must not keep rec.
func (rm *routeMetrics) record(rec *observe.Record, method string, w http.ResponseWriter) {
	m := rm.m
	f := &m.f
	g := rm.group(rec.Service)
	mi := methodIndex(method)
	status := rec.Status
	ci := classIndex(status)
	var trace *[16]byte
	if m.exemplars && rec.Trace.Valid && rec.Trace.Sampled {
		trace = &rec.Trace.TraceID
	}

	// Requests by method and code.
	sl, c := g.slots.load(keyRequests | uint32(mi)<<12 | codeKey(status))
	if c == nil {
		k := series.Key{rm.route, g.label, methodNames[mi], codeName(status), classNames[ci]}
		c = resolve(sl, f.requests, &k)
	}
	c.Inc()

	// Errors by kind.
	if ek := rec.ErrorKind; ek != observe.ErrNone {
		sl, c := g.slots.load(keyErrors | uint32(ek)&0xffff)
		if c == nil {
			k := series.Key{rm.route, g.label, ek.String()}
			c = resolve(sl, f.errors, &k)
		}
		addCount(c, trace, rec)
	}

	// Latency: total, upstream share, gateway overhead (not observed when
	// the entry handler did not set Start).
	if !rec.Start.IsZero() {
		sl, c := g.slots.load(keyDuration | uint32(mi)<<4 | uint32(ci))
		if c == nil {
			k := series.Key{rm.route, g.label, methodNames[mi], classNames[ci]}
			c = resolve(sl, f.duration, &k)
		}
		total := rec.Total().Seconds()
		observeValue(c, total, trace, rec)
		sl, c = g.slots.load(keySvcDuration | uint32(ci))
		if c == nil {
			k := series.Key{g.label, classNames[ci]}
			c = resolve(sl, f.svcDuration, &k)
		}
		observeValue(c, total, trace, rec)
		if len(rec.Attempts) > 0 {
			observeValue(g.child(keyUpstream, f.upstreamTime, rm.route), rec.UpstreamTime().Seconds(), trace, rec)
		}
		g.child(keyOverhead, f.overhead, rm.route).Observe(rec.Overhead().Seconds())
	}

	// Bytes.
	if rec.BytesIn > 0 {
		g.child(keyReqBytes, f.reqBytes, rm.route).Add(float64(rec.BytesIn))
	}
	if rec.BytesOut > 0 {
		g.child(keyResBytes, f.respBytes, rm.route).Add(float64(rec.BytesOut))
	}

	// gRPC status.
	if rec.GRPCStatus >= 0 {
		gi := grpcIndex(rec.GRPCStatus)
		sl, c := g.slots.load(keyGRPC | uint32(gi))
		if c == nil {
			k := series.Key{rm.route, g.label, grpcName(gi)}
			c = resolve(sl, f.grpc, &k)
		}
		c.Inc()
	}

	// Upstream attempts.
	for i := range rec.Attempts {
		rm.recordAttempt(&rec.Attempts[i], trace, rec)
	}

	// Business KPIs.
	if len(rm.kpis) > 0 {
		hdr := w.Header()
		for _, b := range rm.kpis {
			b.Record(method, status, hdr, rec, trace)
		}
	}

	// Keep the split weights of a live route from expiring.
	for i := range rm.weights {
		ws := &rm.weights[i]
		if ws.child.Dead() {
			ws.child = m.f.splitWeight.With(rm.route, ws.service)
			ws.child.Set(ws.weight)
		}
		ws.child.Touch()
	}
}

func (rm *routeMetrics) recordAttempt(a *observe.Attempt, trace *[16]byte, rec *observe.Record) {
	f := &rm.m.f
	u := rm.upstream(a.Service, a.Upstream)
	ac := attemptClass(a.Status)
	c := u.requests[ac].Load()
	if c == nil {
		k := series.Key{rm.route, u.service, u.upstream, attemptClassNames[ac]}
		c = u.requests[ac].Resolve(f.upRequests, &k)
	}
	c.Inc()
	if ek := a.ErrorKind; ek != observe.ErrNone {
		if int(ek) < maxErrorKinds {
			if c = u.errors[ek].Load(); c == nil {
				k := series.Key{rm.route, u.service, u.upstream, ek.String()}
				c = u.errors[ek].Resolve(f.upErrors, &k)
			}
		} else {
			k := series.Key{rm.route, u.service, u.upstream, ek.String()}
			c = f.upErrors.Get(&k)
		}
		addCount(c, trace, rec)
	}
	if c = u.duration.Load(); c == nil {
		k := series.Key{rm.route, u.service, u.upstream}
		c = u.duration.Resolve(f.upDuration, &k)
	}
	observeValue(c, (a.Duration + a.BodyDuration).Seconds(), trace, rec)
}

// child returns the series of a (route, service) family, cached under key.
func (g *svcGroup) child(key uint32, f *series.Family, route string) *series.Child {
	sl, c := g.slots.load(key)
	if c != nil {
		return c
	}
	k := series.Key{route, g.label}
	return resolve(sl, f, &k)
}

func addCount(c *series.Child, trace *[16]byte, rec *observe.Record) {
	if trace != nil {
		c.AddExemplar(1, trace, rec.End)
	} else {
		c.Inc()
	}
}

func observeValue(c *series.Child, v float64, trace *[16]byte, rec *observe.Record) {
	if trace != nil {
		c.ObserveExemplar(v, trace, rec.End)
	} else {
		c.Observe(v)
	}
}

// group returns the series group of service, adding it on first sight.
func (rm *routeMetrics) group(service string) *svcGroup {
	if p := rm.groups.Load(); p != nil {
		for _, g := range *p {
			if g.name == service {
				return g
			}
		}
	}
	rm.groupMu.Lock()
	defer rm.groupMu.Unlock()
	var gs []*svcGroup
	if p := rm.groups.Load(); p != nil {
		gs = *p
	}
	for _, g := range gs {
		if g.name == service {
			return g
		}
	}
	ng := newSvcGroup(service)
	if len(gs) >= maxGroupsPerRoute && !slices.Contains(rm.services, service) {
		// Past the bound the label is "other"; share one such group.
		for _, g := range gs {
			if g.name == "\x00other" {
				return g
			}
		}
		ng = &svcGroup{name: "\x00other", label: other}
	}
	out := make([]*svcGroup, len(gs), len(gs)+1)
	copy(out, gs)
	out = append(out, ng)
	rm.groups.Store(&out)
	return ng
}

// upstream returns the series group of (service, upstream), adding it on
// first sight.
func (rm *routeMetrics) upstream(service, upstream string) *upGroup {
	k := upKey{service, upstream}
	if p := rm.ups.Load(); p != nil {
		if u := (*p)[k]; u != nil {
			return u
		}
	}
	rm.upsMu.Lock()
	defer rm.upsMu.Unlock()
	var cur map[upKey]*upGroup
	if p := rm.ups.Load(); p != nil {
		cur = *p
	}
	if u := cur[k]; u != nil {
		return u
	}
	u := &upGroup{service: orNone(service), upstream: orNone(upstream)}
	if len(cur) >= maxUpstreamsPerRoute {
		k = upKey{"\x00other", "\x00other"}
		if u := cur[k]; u != nil {
			return u
		}
		u = &upGroup{service: other, upstream: other}
	}
	next := make(map[upKey]*upGroup, len(cur)+1)
	for kk, v := range cur {
		next[kk] = v
	}
	next[k] = u
	rm.ups.Store(&next)
	return u
}
