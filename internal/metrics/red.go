package metrics

import (
	"net/http"
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
	rm := &routeMetrics{m: m, route: route}
	empty := []*svcGroup{}
	for _, s := range r.Services {
		if len(empty) < maxGroupsPerRoute && !hasGroup(empty, s) {
			empty = append(empty, newSvcGroup(s))
		}
	}
	rm.groups.Store(&empty)
	ups := map[upKey]*upGroup{}
	rm.ups.Store(&ups)
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
// its middleware builds.
type routeMetrics struct {
	m     *Metrics
	route string

	inflight series.Slot

	groups  atomic.Pointer[[]*svcGroup] // copy on write
	groupMu sync.Mutex

	ups   atomic.Pointer[map[upKey]*upGroup] // copy on write
	upsMu sync.Mutex

	kpis    []*kpi.Binding
	weights []weightSlot
}

type weightSlot struct {
	service string
	weight  float64
	child   *series.Child
}

// svcGroup holds the series of one (route, service).
type svcGroup struct {
	name     string // raw service name ("" when none)
	label    string // its label value
	requests [numMethods][numCodeSlots]series.Slot
	errors   [maxErrorKinds]series.Slot
	duration [numMethods][numClasses]series.Slot
	upstream series.Slot
	overhead series.Slot
	reqBytes series.Slot
	resBytes series.Slot
	grpc     [numGRPC]series.Slot
}

func newSvcGroup(name string) *svcGroup { return &svcGroup{name: name, label: orNone(name)} }

func hasGroup(gs []*svcGroup, name string) bool {
	for _, g := range gs {
		if g.name == name {
			return true
		}
	}
	return false
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
	cs := codeSlot(status)
	var c *series.Child
	if cs != 0 {
		if c = g.requests[mi][cs].Load(); c == nil {
			k := series.Key{rm.route, g.label, methodNames[mi], codeName(status), classNames[ci]}
			c = g.requests[mi][cs].Resolve(f.requests, &k)
		}
	} else {
		k := series.Key{rm.route, g.label, methodNames[mi], codeName(status), classNames[ci]}
		c = f.requests.Get(&k)
	}
	c.Inc()

	// Errors by kind.
	if ek := rec.ErrorKind; ek != observe.ErrNone {
		var c *series.Child
		if int(ek) < maxErrorKinds {
			if c = g.errors[ek].Load(); c == nil {
				k := series.Key{rm.route, g.label, ek.String()}
				c = g.errors[ek].Resolve(f.errors, &k)
			}
		} else {
			k := series.Key{rm.route, g.label, ek.String()}
			c = f.errors.Get(&k)
		}
		addCount(c, trace, rec)
	}

	// Latency: total, upstream share, gateway overhead (not observed when
	// the entry handler did not set Start).
	if !rec.Start.IsZero() {
		if c = g.duration[mi][ci].Load(); c == nil {
			k := series.Key{rm.route, g.label, methodNames[mi], classNames[ci]}
			c = g.duration[mi][ci].Resolve(f.duration, &k)
		}
		observeValue(c, rec.Total().Seconds(), trace, rec)
		if len(rec.Attempts) > 0 {
			observeValue(g.slot(&g.upstream, f.upstreamTime, rm.route), rec.UpstreamTime().Seconds(), trace, rec)
		}
		g.slot(&g.overhead, f.overhead, rm.route).Observe(rec.Overhead().Seconds())
	}

	// Bytes.
	if rec.BytesIn > 0 {
		g.slot(&g.reqBytes, f.reqBytes, rm.route).Add(float64(rec.BytesIn))
	}
	if rec.BytesOut > 0 {
		g.slot(&g.resBytes, f.respBytes, rm.route).Add(float64(rec.BytesOut))
	}

	// gRPC status.
	if rec.GRPCStatus >= 0 {
		gi := grpcIndex(rec.GRPCStatus)
		if c = g.grpc[gi].Load(); c == nil {
			k := series.Key{rm.route, g.label, grpcName(gi)}
			c = g.grpc[gi].Resolve(f.grpc, &k)
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

// slot returns the series of a (route, service) family cached in s.
func (g *svcGroup) slot(s *series.Slot, f *series.Family, route string) *series.Child {
	if c := s.Load(); c != nil {
		return c
	}
	k := series.Key{route, g.label}
	return s.Resolve(f, &k)
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
	for _, g := range *rm.groups.Load() {
		if g.name == service {
			return g
		}
	}
	rm.groupMu.Lock()
	defer rm.groupMu.Unlock()
	gs := *rm.groups.Load()
	for _, g := range gs {
		if g.name == service {
			return g
		}
	}
	ng := newSvcGroup(service)
	if len(gs) >= maxGroupsPerRoute {
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
	if u := (*rm.ups.Load())[k]; u != nil {
		return u
	}
	rm.upsMu.Lock()
	defer rm.upsMu.Unlock()
	cur := *rm.ups.Load()
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
