// Package history owns the gateway's in-process time series: per route,
// split leg, service, upstream host and for the gateway as a whole, it
// keeps request counts, status classes, error kinds, latency and overhead
// histograms, bytes, in-flight requests, decision series (retries, breaker
// state, ejections, health, split weights, reloads) and the machine's CPU,
// memory, disk and network, and the business KPIs of the metrics config (in
// all, per label value and per split leg), at 1-second resolution for the last hour and
// 1-minute resolution for the last day (both configurable). It is the one
// source the dashboard, alerts and rollouts read, through the Source
// interface.
//
// Recording: ForRoute builds, once per route and config snapshot, a stage
// that reads the finished observe.Record when the request ends and adds it
// to pre-resolved cells of atomic counters and atomic log-linear histogram
// buckets, one cell per (route, service) and one per (service, upstream
// host): no allocation, no lock, no map lookup in the common case.
//
// Rotation: once a second, off the request path, the rotator (Tick, driven
// by Start's goroutine or by a test's injected clock) drains every cell,
// adds each (route, service) cell into its route, leg, service and gateway
// series, and appends one compact record per series that saw anything to
// that series' per-second ring. When a minute is complete its seconds are
// summed into one per-minute record. Memory grows with the series that
// have data and the seconds they have it in, never with the request rate;
// the number of series is capped (Options.MaxSeries), refusals counted.
//
// All exported methods are safe for concurrent use.
package history

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/metrics/kpi"
)

// Scope is the kind of thing a series describes.
type Scope uint8

// The scopes.
const (
	// ScopeGateway is every request the gateway handled (name "").
	ScopeGateway Scope = iota + 1
	// ScopeRoute is one route (unmatched requests: route "unmatched").
	ScopeRoute
	// ScopeLeg is one service of a route's weighted split, named
	// "route/service".
	ScopeLeg
	// ScopeService is every request finally sent to one service.
	ScopeService
	// ScopeHost is the attempts sent to one upstream host of a service,
	// named "service/host:port".
	ScopeHost
	// ScopeKPI is a business KPI's events (KPICount, KPISum): in all, per
	// label value and per split leg (see KPIName, KPILabelName,
	// KPILegName).
	ScopeKPI
	// ScopeRateLimit is a rate-limit policy's rejections, in all and per
	// key (see RateLimitName, RateLimitKeyName).
	ScopeRateLimit
)

var scopeNames = map[Scope]string{ScopeGateway: "gateway", ScopeRoute: "route", ScopeLeg: "leg", ScopeService: "service", ScopeHost: "host", ScopeKPI: "kpi", ScopeRateLimit: "ratelimit"}

// String returns the scope's name in the API.
func (s Scope) String() string {
	if n, ok := scopeNames[s]; ok {
		return n
	}
	return "unknown"
}

// ParseScope parses a scope name.
func ParseScope(s string) (Scope, error) {
	for k, n := range scopeNames {
		if n == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown scope %q (want gateway, route, leg, service, host, kpi or ratelimit)", s)
}

// UnmatchedRoute is the route name of requests no route matched.
const UnmatchedRoute = "unmatched"

// exemplarsPerSeries bounds the exemplars a series keeps (the most recent).
const exemplarsPerSeries = 32

// Options carry the dependencies of New.
type Options struct {
	// Clock tells the time for the rotation (default clock.Real).
	Clock clock.Clock
	// Logger receives operational messages (default: discard).
	Logger *slog.Logger
	// ProcPath is the procfs mount point the machine figures are read
	// from ("/proc" when empty; none are read off Linux).
	ProcPath string
	// NoMachine turns the machine figures off (tests).
	NoMachine bool
	// KPIs are the business KPIs to keep (the metrics config's kpis,
	// validated), whether or not the metrics endpoint is on.
	KPIs []config.KPI
}

// History is the in-process time series store. Build it with New, start
// its rotation with Start (or drive Tick from a test) and stop it with
// Close.
type History struct {
	log          *slog.Logger
	clock        clock.Clock
	enabled      bool
	secSlots     int64 // per-second retention, in seconds
	minSlots     int64 // per-minute retention, in minutes
	secChunks    int
	minChunks    int
	maxSeries    int
	maxBytes     int64
	machine      *machine
	kpis         []*kpi.Matcher
	codec        *codec
	gateway      *series
	overflowAtom *atom

	mu     sync.Mutex // guards series and the copy-on-write lists below
	series map[seriesKey]*series
	all    atomic.Pointer[[]*series]
	byKey  atomic.Pointer[map[seriesKey]*series]
	atoms  atomic.Pointer[[]*atom]
	hosts  atomic.Pointer[[]*hostCell]
	stale  atomic.Bool                        // the lists above lack additions (see sync)
	rlBy   atomic.Pointer[map[rlKey]rlSeries] // copy-on-write under mu
	// rlMaxKeys is MaxRateLimitKeys (lowered by tests).
	rlMaxKeys int
	atomBy    map[atomKey]*atom
	hostBy    map[atomKey]*hostCell

	refused atomic.Uint64 // series refused by the cap
	dropped atomic.Uint64 // host cells refused per route

	rot        sync.Mutex   // serialises Tick
	started    atomic.Bool  // the first Tick ran
	lastSealed atomic.Int64 // the newest sealed second
	lastRolled atomic.Int64 // the newest rolled-up minute
	bytes      atomic.Int64 // bytes retained by the rings
	held       atomic.Int64 // bytes held outside the rings (see heldBytes)
	cellBytes  atomic.Int64 // the request-path cells' part of held
	secFloor   atomic.Int64 // per-second data before it was dropped by the budget
	minFloor   atomic.Int64 // per-minute data before it was dropped by the budget
	dropSec    atomic.Uint64
	dropMin    atomic.Uint64
	scratch    accum
	touched    []*series
	exs        []Exemplar
	free       []*sums
	buf        []byte

	stop      chan struct{}
	done      chan struct{}
	startOnce sync.Once
	closeOnce sync.Once
}

type seriesKey struct {
	scope Scope
	name  string
}

type atomKey struct{ a, b string }

// series is one stored series.
type series struct {
	key seriesKey

	mu   sync.RWMutex // guards secs, mins, ex
	secs ring
	mins ring
	ex   []storedExemplar // grows to exemplarsPerSeries, then wraps
	exN  int

	// side holds what decision events add between two seconds: counters
	// (drained each second) and gauges (sampled each second).
	side     [NumFields]atomic.Uint64
	sideUsed atomic.Bool
	// inflight counts a route's requests in flight (routes only).
	inflight atomic.Int64
	// stored is set once the series has stored a record.
	stored atomic.Bool

	// Rotator scratch, only touched under History.rot.
	acc          *sums
	pErr, pSlow  Exemplar
	pHas         uint8
	lastActivity int64
}

// atom is the request-path cell of one (route, service) and the series it
// adds into when sealed.
type atom struct {
	key     atomKey
	cell    cell
	targets []*series
	kpis    []*kpiCells // the KPIs that can match the route
}

// hostCell is the request-path cell of one (service, upstream host).
type hostCell struct {
	key    atomKey
	cell   cell
	target *series
}

// New builds the history from cfg (validated, defaults applied). When cfg
// is disabled it returns a History whose ForRoute returns nil and whose
// Observe does nothing; Range answers ErrDisabled.
func New(cfg config.History, opts Options) (*History, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var err error
	h := &History{
		log:     opts.Logger,
		clock:   opts.Clock,
		enabled: cfg.IsEnabled(),
		series:  map[seriesKey]*series{},
		atomBy:  map[atomKey]*atom{},
		hostBy:  map[atomKey]*hostCell{},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	sr, mr := cfg.SecondRetention.D(), cfg.MinuteRetention.D()
	if sr == 0 {
		sr = time.Hour
	}
	if mr == 0 {
		mr = 24 * time.Hour
	}
	if sr < time.Minute || mr < sr || sr%time.Minute != 0 || mr%time.Minute != 0 {
		return nil, fmt.Errorf("history: retentions must be whole minutes with second_retention <= minute_retention, got %s and %s", sr, mr)
	}
	h.secSlots, h.minSlots = int64(sr/time.Second), int64(mr/time.Minute)
	h.secChunks, h.minChunks = numChunks(int(h.secSlots)), numChunks(int(h.minSlots))
	h.maxSeries = cfg.MaxSeries
	if h.maxSeries <= 0 {
		h.maxSeries = 5000
	}
	h.maxBytes = cfg.MaxBytes.Bytes()
	if h.kpis, err = kpi.Compile(opts.KPIs); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	if h.codec, err = newCodec(); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	h.rlBy.Store(&map[rlKey]rlSeries{})
	h.rlMaxKeys = MaxRateLimitKeys
	h.gateway = &series{key: seriesKey{ScopeGateway, ""}}
	h.series[h.gateway.key] = h.gateway
	h.held.Add(seriesBytes(""))
	h.publishLocked()
	h.overflowAtom = h.newAtom(atomKey{"\x00overflow", ""}, []*series{h.gateway})
	h.atomBy[h.overflowAtom.key] = h.overflowAtom
	h.publishLocked()
	if h.enabled && !opts.NoMachine {
		h.machine = newMachine(opts.ProcPath, h.log)
	}
	return h, nil
}

// Enabled reports whether the history records anything.
func (h *History) Enabled() bool { return h.enabled }

// publishLocked marks the copy-on-write lists stale after series, cells
// or hosts were added; the next reader republishes them once (sync). A
// snapshot of N routes adds N stages one by one, so republishing on every
// addition would cost O(N²). h.mu must be held.
func (h *History) publishLocked() { h.stale.Store(true) }

// sync republishes the copy-on-write lists when they are stale. It takes
// h.mu only then, so it must not be called with h.mu held.
func (h *History) sync() {
	if !h.stale.Load() {
		return
	}
	h.mu.Lock()
	if h.stale.Load() {
		h.republishLocked()
		h.stale.Store(false)
	}
	h.mu.Unlock()
}

// republishLocked rebuilds the copy-on-write lists. h.mu must be held.
func (h *History) republishLocked() {
	all := make([]*series, 0, len(h.series))
	by := make(map[seriesKey]*series, len(h.series))
	for k, s := range h.series {
		all = append(all, s)
		by[k] = s
	}
	h.all.Store(&all)
	h.byKey.Store(&by)
	atoms := make([]*atom, 0, len(h.atomBy))
	for _, a := range h.atomBy {
		atoms = append(atoms, a)
	}
	h.atoms.Store(&atoms)
	hosts := make([]*hostCell, 0, len(h.hostBy))
	for _, c := range h.hostBy {
		hosts = append(hosts, c)
	}
	h.hosts.Store(&hosts)
}

// seriesLocked returns the series of key, creating it when the cap allows;
// nil when it does not. h.mu must be held.
func (h *History) seriesLocked(scope Scope, name string) *series {
	k := seriesKey{scope, name}
	if s := h.series[k]; s != nil {
		return s
	}
	if len(h.series)-1 >= h.maxSeries || h.maxBytes > 0 && h.heldBytes() >= h.maxBytes/2 {
		h.refused.Add(1)
		return nil
	}
	s := &series{key: k}
	h.series[k] = s
	h.held.Add(seriesBytes(name))
	return s
}

// newAtom returns a new request-path cell of key adding into targets,
// counted in held.
func (h *History) newAtom(k atomKey, targets []*series) *atom {
	a := &atom{key: k, targets: targets}
	a.cell.hasOvh, a.cell.held = true, &h.cellBytes
	n := atomBytes + int64(len(k.a)+len(k.b))
	h.cellBytes.Add(n)
	return a
}

// atomLocked returns the cell of (route, service), creating it and its
// series; kpiRoute is the route's name for the KPIs' route lists ("" for
// unmatched requests). h.mu must be held.
func (h *History) atomLocked(route, kpiRoute, service string, leg bool) *atom {
	k := atomKey{route, service}
	if a := h.atomBy[k]; a != nil {
		if leg && !a.hasTarget(ScopeLeg) {
			if s := h.seriesLocked(ScopeLeg, route+"/"+service); s != nil {
				a.targets = append(a.targets[:len(a.targets):len(a.targets)], s)
			}
		}
		if leg {
			h.addKPILegsLocked(a)
		}
		return a
	}
	rs := h.seriesLocked(ScopeRoute, route)
	if rs == nil {
		return h.overflowAtom
	}
	a := h.newAtom(k, []*series{h.gateway, rs})
	if service != "" {
		if s := h.seriesLocked(ScopeService, service); s != nil {
			a.targets = append(a.targets, s)
		}
	}
	if leg {
		if s := h.seriesLocked(ScopeLeg, route+"/"+service); s != nil {
			a.targets = append(a.targets, s)
		}
	}
	a.kpis = h.kpiCellsLocked(kpiRoute, route, service, leg)
	h.atomBy[k] = a
	return a
}

func (a *atom) hasTarget(sc Scope) bool {
	for _, s := range a.targets {
		if s.key.scope == sc {
			return true
		}
	}
	return false
}

// hostLocked returns the cell of (service, upstream), or nil past the cap.
// h.mu must be held.
func (h *History) hostLocked(service, upstream string) *hostCell {
	k := atomKey{service, upstream}
	if c := h.hostBy[k]; c != nil {
		return c
	}
	s := h.seriesLocked(ScopeHost, service+"/"+upstream)
	if s == nil {
		return nil
	}
	c := &hostCell{key: k, target: s}
	c.cell.held = &h.cellBytes
	h.cellBytes.Add(hostCellBytes + int64(len(k.a)+len(k.b)))
	h.hostBy[k] = c
	return c
}

// lookup returns the series of scope and name, or nil. It takes no lock.
func (h *History) lookup(scope Scope, name string) *series {
	h.sync()
	return (*h.byKey.Load())[seriesKey{scope, name}]
}

// sideSeries returns (creating within the cap) the series an event adds
// to; nil past the cap.
func (h *History) sideSeries(scope Scope, name string) *series {
	if scope == ScopeGateway {
		return h.gateway
	}
	if s := h.lookup(scope, name); s != nil {
		return s
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.series[seriesKey{scope, name}]
	if s == nil {
		if s = h.seriesLocked(scope, name); s != nil {
			h.publishLocked()
		}
	}
	return s
}

// Start runs the rotation in the background, once a second just after the
// second ends, until Close. It is idempotent.
func (h *History) Start() {
	if !h.enabled {
		return
	}
	h.startOnce.Do(func() {
		go func() {
			defer close(h.done)
			for {
				now := h.clock.Now()
				next := now.Truncate(time.Second).Add(time.Second + 20*time.Millisecond)
				t := time.NewTimer(next.Sub(now))
				select {
				case <-h.stop:
					t.Stop()
					return
				case <-t.C:
				}
				h.Tick(h.clock.Now())
			}
		}()
	})
}

// Close stops the rotation and waits for it. It is safe to call more than
// once, and without Start. Queries of compressed data fail after Close.
func (h *History) Close() {
	h.closeOnce.Do(func() {
		close(h.stop)
		started := true
		h.startOnce.Do(func() { started = false })
		if started && h.enabled {
			<-h.done
		}
		h.codec.close()
	})
}

// Tick seals the data recorded since the previous Tick as the second
// before now's second, and rolls up every minute that is complete. Data is
// thus attributed to the second in which the rotator sealed it: with the
// rotator running just after each second ends, that is the second the
// request ended in. A Tick within a second already sealed does nothing
// (the data waits for the next second). Seconds between two Ticks a
// second or more apart stay empty (a gap). When the clock goes back by
// more than a minute the stored history is dropped and starts again.
func (h *History) Tick(now time.Time) {
	if !h.enabled {
		return
	}
	h.rot.Lock()
	defer h.rot.Unlock()
	h.sync()
	target := now.Unix() - 1
	if !h.started.Load() {
		h.lastSealed.Store(target - 1)
		h.lastRolled.Store(chunkBase(target)/60 - 1)
		h.started.Store(true)
	}
	last := h.lastSealed.Load()
	if target <= last {
		if target >= last-60 {
			return
		}
		h.log.Warn("history: the clock went back; dropping the stored history", "by", time.Duration(last-target)*time.Second)
		h.resetLocked(target)
		last = target - 1
	}
	// A later minute began: the minute of the last sealed second is
	// complete.
	if chunkBase(target) != chunkBase(last) {
		h.rollUp(chunkBase(last) / 60)
	}
	h.seal(target)
	h.lastSealed.Store(target)
	if mod(target+1, 60) == 0 {
		h.rollUp(chunkBase(target) / 60)
	}
	h.enforceBudget()
}

// enforceBudget drops the oldest hour of per-minute data, then the oldest
// minute of per-second data, until the rings fit in what maxBytes leaves
// beside the bytes held outside them (never the newest hour of minutes
// nor the newest minute of seconds).
func (h *History) enforceBudget() {
	over := func() bool { return h.bytes.Load()+h.heldBytes() > h.maxBytes }
	if h.maxBytes <= 0 || !over() {
		return
	}
	secOldest, minOldest := h.oldest()
	for over() {
		if next := chunkBase(minOldest) + slotsPerChunk; next <= chunkBase(h.lastRolled.Load()) {
			h.minFloor.Store(next)
			h.dropMin.Add(uint64(next - minOldest)) // minutes made unreachable
			minOldest = next
			h.dropRings(func(s *series) int { return s.mins.dropBefore(next) })
			continue
		}
		if next := secOldest + slotsPerChunk; next <= chunkBase(h.lastSealed.Load()) {
			h.secFloor.Store(next)
			h.dropSec.Add(slotsPerChunk)
			secOldest = next
			h.dropRings(func(s *series) int { return s.secs.dropBefore(next) })
			continue
		}
		return
	}
}

func (h *History) dropRings(f func(*series) int) {
	for _, s := range *h.all.Load() {
		s.mu.Lock()
		h.bytes.Add(int64(f(s)))
		s.mu.Unlock()
	}
}

func (h *History) resetLocked(target int64) {
	for _, s := range *h.all.Load() {
		s.mu.Lock()
		h.bytes.Add(-int64(s.secs.bytes() + s.mins.bytes()))
		s.secs.reset()
		s.mins.reset()
		h.held.Add(-int64(cap(s.ex) * storedExemplarSize))
		s.ex, s.exN = nil, 0
		s.mu.Unlock()
	}
	h.lastSealed.Store(target - 1)
	h.lastRolled.Store(chunkBase(target)/60 - 1)
	h.secFloor.Store(0)
	h.minFloor.Store(0)
}

func (h *History) getAcc() *sums {
	if n := len(h.free); n > 0 {
		a := h.free[n-1]
		h.free = h.free[:n-1]
		return a
	}
	return new(sums)
}

// maxFree bounds the accumulators the rotator keeps for the next second;
// those of a second that touched more series go to the collector.
const maxFree = 64

func (h *History) touch(s *series) *sums {
	if s.acc == nil {
		s.acc = h.getAcc()
		h.touched = append(h.touched, s)
	}
	return s.acc
}

// seal drains every cell into the series of second sec and stores them.
func (h *History) seal(sec int64) {
	t := time.Unix(sec, 0)
	sc := &h.scratch
	for _, a := range *h.atoms.Load() {
		if a.kpis != nil {
			h.sealKPIs(a)
		}
		sc.reset()
		if !a.cell.drain(sc) {
			continue
		}
		h.exs = a.cell.ex.take(h.exs[:0])
		b := sc.bounds()
		for _, s := range a.targets {
			h.touch(s).add(sc, b)
			s.offer(h.exs, t)
		}
	}
	for _, c := range *h.hosts.Load() {
		sc.reset()
		if !c.cell.drain(sc) {
			continue
		}
		h.exs = c.cell.ex.take(h.exs[:0])
		h.touch(c.target).add(sc, sc.bounds())
		c.target.offer(h.exs, t)
	}
	gw := h.gateway
	var inflight uint64
	for _, s := range *h.all.Load() {
		if n := s.inflight.Load(); n > 0 {
			h.touch(s).v[InFlight] = uint64(n)
			inflight += uint64(n)
		}
		if s.sideUsed.Load() {
			a := h.touch(s)
			for f := range s.side {
				if Field(f).IsGauge() {
					a.v[f] = max(a.v[f], s.side[f].Load())
				} else if s.side[f].Load() != 0 {
					a.v[f] += s.side[f].Swap(0)
				}
			}
		}
	}
	if inflight > 0 {
		h.touch(gw).v[InFlight] = inflight
	}
	if h.machine != nil {
		h.machine.sample(&h.touch(gw).v)
	}
	for _, s := range h.touched {
		a := s.acc
		if !a.empty() {
			sc.reset()
			a.into(sc)
			h.buf = sc.appendRecord(h.buf[:0])
			s.mu.Lock()
			h.bytes.Add(int64(s.secs.add(h.secChunks, sec, h.buf)))
			if s.pHas != 0 {
				h.held.Add(int64(s.pushExemplars()))
			}
			s.mu.Unlock()
			s.lastActivity = sec
			if !s.stored.Load() {
				s.stored.Store(true)
			}
		}
		s.pHas = 0
		if len(h.free) < maxFree {
			a.reset()
			h.free = append(h.free, a)
		}
		s.acc = nil
	}
	h.touched = h.touched[:0]
}

// offer keeps, among exemplars of one second, the first error and the
// slowest request for the series.
func (s *series) offer(exs []Exemplar, t time.Time) {
	for _, e := range exs {
		e.Time = t
		switch e.Kind {
		case ExemplarError:
			if s.pHas&1 == 0 {
				s.pErr, s.pHas = e, s.pHas|1
			}
		case ExemplarSlow:
			if s.pHas&2 == 0 || e.Latency > s.pSlow.Latency {
				s.pSlow, s.pHas = e, s.pHas|2
			}
		}
	}
}

// pushExemplars moves the pending exemplars into the ring, which grows
// as it fills up to exemplarsPerSeries, and returns the change in its
// bytes. s.mu must be held.
func (s *series) pushExemplars() int {
	before := cap(s.ex)
	push := func(e Exemplar) {
		se := storeExemplar(e)
		if len(s.ex) < exemplarsPerSeries {
			if len(s.ex) == cap(s.ex) {
				s.ex = append(make([]storedExemplar, 0, min(max(2*cap(s.ex), 2), exemplarsPerSeries)), s.ex...)
			}
			s.ex = append(s.ex, se)
		} else {
			s.ex[s.exN] = se
		}
		s.exN = (s.exN + 1) % exemplarsPerSeries
	}
	if s.pHas&1 != 0 {
		push(s.pErr)
	}
	if s.pHas&2 != 0 {
		push(s.pSlow)
	}
	return (cap(s.ex) - before) * storedExemplarSize
}

// rollUp sums minute m's seconds into one per-minute record for every
// series that had data in it.
func (h *History) rollUp(m int64) {
	if m <= h.lastRolled.Load() {
		return
	}
	base := m * 60
	sc := &h.scratch
	for _, s := range *h.all.Load() {
		if s.lastActivity < base {
			continue
		}
		sc.reset()
		s.mu.Lock()
		err := s.secs.each(h.codec, base, base, base+60, func(_ int64, rec []byte) error { return sc.addRecord(rec) })
		if err == nil && !sc.empty() {
			// Per-minute overheads are kept coarse: they are a quarter of
			// the buckets of a busy minute and are read for their trend.
			if sc.hasOvh {
				sc.ovh.coarsen()
			}
			h.buf = sc.appendRecord(h.buf[:0])
			h.bytes.Add(int64(s.mins.add(h.minChunks, m, h.buf)))
		}
		h.bytes.Add(int64(s.secs.seal(h.codec, base)))
		if mod(m+1, 60) == 0 {
			h.bytes.Add(int64(s.mins.seal(h.codec, m)))
		}
		s.mu.Unlock()
		if err != nil {
			h.log.Error("history: rolling up a minute", "series", s.key.scope.String()+":"+s.key.name, "error", err)
		}
	}
	h.lastRolled.Store(m)
}

// Stats describes the history's size.
type Stats struct {
	// Series is the number of series kept, the gateway's included.
	Series int `json:"series"`
	// MaxSeries is the cap on series (the gateway's not counted).
	MaxSeries int `json:"max_series"`
	// Refused counts series not created because of the cap; their
	// requests count in the gateway's series only.
	Refused uint64 `json:"refused"`
	// HostsDropped counts attempts not counted per host because their
	// route already had 256 (service, host) cells.
	HostsDropped uint64 `json:"hosts_dropped"`
	// RingBytes is the bytes the stored records take.
	RingBytes int64 `json:"ring_bytes"`
	// MaxBytes is the cap on RingBytes + HeldBytes.
	MaxBytes int64 `json:"max_bytes"`
	// CellBytes is what the request-path cells hold (with the histograms
	// they have allocated; part of HeldBytes).
	CellBytes int64 `json:"cell_bytes"`
	// HeldBytes is what the history holds outside the rings: series,
	// cells and exemplars. RingBytes + HeldBytes is what MaxBytes bounds
	// (the compression coders' 1.4 MiB or so aside).
	HeldBytes int64 `json:"held_bytes"`
	// SecondsFrom and MinutesFrom are where the per-second and per-minute
	// data now start (later than the retentions say once the byte budget
	// has dropped data).
	SecondsFrom time.Time `json:"seconds_from"`
	MinutesFrom time.Time `json:"minutes_from"`
	// DroppedSeconds and DroppedMinutes count the slots of per-second and
	// per-minute data dropped early to fit MaxBytes.
	DroppedSeconds uint64 `json:"dropped_seconds"`
	DroppedMinutes uint64 `json:"dropped_minutes"`
	// Newest is the end of the newest sealed second.
	Newest time.Time `json:"newest"`
}

// Stats returns the history's size.
func (h *History) Stats() Stats {
	h.mu.Lock()
	n := len(h.series)
	h.mu.Unlock()
	secFrom, minFrom := h.oldest()
	return Stats{
		Series:       n,
		MaxSeries:    h.maxSeries,
		Refused:      h.refused.Load(),
		HostsDropped: h.dropped.Load(),
		RingBytes:    h.bytes.Load(),
		MaxBytes:     h.maxBytes,
		CellBytes:    h.cellBytes.Load(),
		HeldBytes:    h.heldBytes(),
		Newest:       h.Latest(),

		SecondsFrom:    time.Unix(secFrom, 0),
		MinutesFrom:    time.Unix(minFrom*60, 0),
		DroppedSeconds: h.dropSec.Load(),
		DroppedMinutes: h.dropMin.Load(),
	}
}

// Latest returns the end of the newest sealed second: windows that end
// there hold complete data. Zero before the first Tick.
func (h *History) Latest() time.Time {
	if !h.started.Load() {
		return time.Time{}
	}
	return time.Unix(h.lastSealed.Load()+1, 0)
}

// Names returns the names of the series of scope, sorted. The route of
// unmatched requests is listed only once it has had some.
func (h *History) Names(scope Scope) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for k, s := range h.series {
		if k.scope != scope || k == (seriesKey{ScopeRoute, UnmatchedRoute}) && !s.stored.Load() {
			continue
		}
		out = append(out, k.name)
	}
	sort.Strings(out)
	return out
}

// ErrDisabled is returned by queries when the history is off.
var ErrDisabled = errors.New("history is disabled (history.enabled: false)")

// ErrNotFound is returned for a series the history does not hold.
var ErrNotFound = errors.New("no such series")

func splitName(name string) (string, string, bool) {
	i := strings.IndexByte(name, '/')
	if i < 0 {
		return "", "", false
	}
	return name[:i], name[i+1:], true
}
