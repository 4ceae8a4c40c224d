package history

import (
	"net/http"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

var (
	cellSize = unsafe.Sizeof(cell{})
	histSize = unsafe.Sizeof(atomicHist{})
)

// maxHostsPerRoute bounds the (service, host) cells a route's stage caches;
// past it attempts go uncounted per host (and are counted as dropped).
const maxHostsPerRoute = 256

// ForRoute implements middleware.Factory: it returns the history stage of
// route r. The stage counts the route's requests in flight and, when the
// next handler returns, records the request's observe.Record, which the
// gateway's end stage (inside this one) has finished. Requests without a Record pass through unrecorded. It returns nil
// when the history is disabled. The unmatched handler (r.Name == "")
// records under route "unmatched".
func (h *History) ForRoute(r middleware.Route) middleware.Middleware {
	if !h.enabled {
		return nil
	}
	hd := &handler{}
	h.initStage(&hd.stage, r)
	return func(next http.Handler) http.Handler {
		if hd.next == nil {
			hd.next = next
			return hd
		}
		c := &handler{next: next}
		h.initStage(&c.stage, r)
		return c
	}
}

// stage is one route's pre-resolved cells. A request reads the handler
// that holds it, its route series and its cells and nothing else of the
// route, so that with thousands of routes a request touches few cache
// lines that the previous requests did not: the first service's cell and
// the last host cell sit in the stage itself, not behind slices.
type stage struct {
	h     *History
	route *series // nil past the cap
	// atom0 is the cell of requests that reached no service; svc1 and
	// atom1 those of the route's first service (svc1 is "" when it has
	// none); more those of its other services.
	atom0 *atom
	svc1  string
	atom1 *atom
	more  []svcAtom
	// host1 is the route's first host cell (most routes' only one), read
	// before the list of all of them, hosts.
	host1 atomic.Pointer[hostCell]
	hosts atomic.Pointer[[]*hostCell]
	mu    sync.Mutex
}

type svcAtom struct {
	svc string
	a   *atom
}

func (h *History) stageFor(r middleware.Route) *stage {
	st := new(stage)
	h.initStage(st, r)
	return st
}

// initStage resolves route r's cells into st.
func (h *History) initStage(st *stage, r middleware.Route) {
	name := r.Name
	if name == "" {
		name = UnmatchedRoute
	}
	legs := map[string]bool{}
	if r.Config != nil && r.Config.Split != nil {
		for _, l := range r.Config.Split.Services {
			legs[l.Service] = true
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	st.h = h
	st.atom0 = h.atomLocked(name, r.Name, "", false)
	seen := []*atom{st.atom0}
	for _, svc := range r.Services {
		a := h.atomLocked(name, r.Name, svc, legs[svc])
		if containsAtom(seen, a) {
			continue
		}
		seen = append(seen, a)
		// Every stage of a service compares with one copy of its name
		// (its series'), which the requests of every route keep cached.
		if s := h.series[seriesKey{ScopeService, svc}]; s != nil {
			svc = s.key.name
		}
		if st.atom1 == nil {
			st.svc1, st.atom1 = svc, a
		} else {
			st.more = append(st.more, svcAtom{svc, a})
		}
	}
	st.route = h.series[seriesKey{ScopeRoute, name}]
	if r.Config != nil && r.Config.Split != nil {
		for _, l := range r.Config.Split.Services {
			if s := h.series[seriesKey{ScopeLeg, name + "/" + l.Service}]; s != nil {
				s.side[Weight].Store(uint64(max(l.Weight, 0)))
				s.sideUsed.Store(true)
			}
		}
	}
	h.publishLocked()
	empty := []*hostCell{}
	st.hosts.Store(&empty)
}

func containsAtom(as []*atom, a *atom) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

type handler struct {
	stage
	next http.Handler
}

// ServeHTTP implements http.Handler.
func (hd *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := observe.FromContext(r.Context())
	if rec == nil {
		hd.next.ServeHTTP(w, r)
		return
	}
	rs := hd.route
	if rs != nil {
		rs.inflight.Add(1)
	}
	defer func() {
		if rs != nil {
			rs.inflight.Add(-1)
		}
		if p := recover(); p != nil {
			hd.Record(rec)
			panic(p)
		}
	}()
	hd.next.ServeHTTP(w, r)
	hd.Record(rec)
	if a := hd.atomOf(rec); a.kpis != nil {
		a.recordKPIs(r.Method, w.Header(), rec)
	}
}

// Record adds a finished record (End and Status fixed) to the route's
// cells: the request to its (route, service) cell, each attempt to its
// (service, host) cell. It does not keep rec, does not allocate once the
// route's host cells exist, and takes no lock.
func (st *stage) Record(rec *observe.Record) {
	a := st.atomOf(rec)
	a.cell.record(rec)
	for i := range rec.Attempts {
		at := &rec.Attempts[i]
		if c := st.host(at.Service, at.Upstream); c != nil {
			c.cell.recordAttempt(at, rec)
		}
	}
}

// atomOf returns the (route, service) cell of rec's final service.
func (st *stage) atomOf(rec *observe.Record) *atom {
	if st.atom1 != nil && rec.Service == st.svc1 {
		return st.atom1
	}
	for i := range st.more {
		if rec.Service == st.more[i].svc {
			return st.more[i].a
		}
	}
	return st.atom0
}

// RecordKPIs counts a finished request (End and Status fixed) in the
// business KPIs it matches: method is the request method, hdr the
// response header sent. Per KPI it counts in the KPI's series, its label
// value's and, when the request's service is a split leg of the route,
// the leg's. It does not keep rec or hdr, does not allocate and takes no
// lock.
func (st *stage) RecordKPIs(method string, hdr http.Header, rec *observe.Record) {
	if a := st.atomOf(rec); a.kpis != nil {
		a.recordKPIs(method, hdr, rec)
	}
}

// host returns the cell of (service, upstream), creating it on first
// sight (the only path that locks and allocates, once per host).
func (st *stage) host(service, upstream string) *hostCell {
	if c := st.host1.Load(); c != nil && c.key.b == upstream && c.key.a == service {
		return c
	}
	for _, c := range *st.hosts.Load() {
		if c.key.a == service && c.key.b == upstream {
			return c
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	cur := *st.hosts.Load()
	for _, c := range cur {
		if c.key.a == service && c.key.b == upstream {
			return c
		}
	}
	if len(cur) >= maxHostsPerRoute {
		st.h.dropped.Add(1)
		return nil
	}
	h := st.h
	h.mu.Lock()
	c := h.hostLocked(service, upstream)
	if c != nil {
		h.publishLocked()
	}
	h.mu.Unlock()
	if c == nil {
		return nil
	}
	next := make([]*hostCell, len(cur), len(cur)+1)
	copy(next, cur)
	next = append(next, c)
	st.hosts.Store(&next)
	if len(next) == 1 {
		st.host1.Store(c)
	}
	return c
}

var _ middleware.Factory = (*History)(nil)
