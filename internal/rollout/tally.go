package rollout

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Tally is the rollouts' own per-request bookkeeping, for what the
// history's leg series cannot tell: requests the split sent to the canary
// that the stable served (a failed canary attempt retried on the stable
// leg, or the canary's breaker fallback). The history counts such a
// request on the stable leg, where it ended; the analysis adds it to the
// canary's leg as a failure of the canary's kind (see Analyze).
//
// It also counts testers apart: requests the split's override sent to a
// leg (reason "override") are counted per leg, so that a canary
// rollout's analysis takes them out of both legs — a tester forced to the
// canary is not a sample of the canary's users, and a tester's failure
// must not roll back (nor a tester's success promote) the canary. In a
// blue-green rollout with header test traffic they are the test traffic
// and stay in.
//
// For a blue-green rollout whose test traffic is mirrored, it also counts
// the mirrored copies' outcomes on the new version (Mirrored; the history
// sees no mirrored request): they are the test traffic the analysis
// judges before the switch.
//
// Tally is an observe.RecordReader: the gateway's end stage calls
// ReadRecord for every finished request. A request of a route no rollout
// moves costs one atomic load and a comparison per rollout; a request the
// canary served costs two more string comparisons; only a rescued request
// takes a lock. It never allocates, but for the first tester, mirrored
// copy or probe a slot holds (once per slot; later seconds reuse it).
// Memory is bounded per rollout: one slot (about 230 bytes, plus about
// 2.6 KB once it has held testers, mirrored copies or probes) per second
// of its interval plus two.
//
// The zero value counts nothing until Update. All methods are safe for
// concurrent use.
type Tally struct {
	cur atomic.Pointer[[]*legTally]
	mu  sync.Mutex // serialises Update
}

// legTally is one rollout's counts, a ring of per-second slots.
type legTally struct {
	name, route, canary, stable string
	mirror                      bool // a blue-green rollout with mirrored test traffic
	testers                     bool // count override requests apart
	mu                          sync.Mutex
	ring                        []tallySlot
}

// numKinds bounds the error kinds a slot counts.
const numKinds = 16

// maxTallyExemplars bounds the trace ids a slot keeps.
const maxTallyExemplars = 4

// tallySlot is one second's counts.
type tallySlot struct {
	sec int64 // Unix second the slot holds; 0 when unused
	// rescued are canary requests the stable served; errors counts those
	// whose canary attempt failed with a 5xx or an error kind.
	rescued, errors uint64
	kinds           [numKinds]uint64
	exemplars       [maxTallyExemplars][16]byte
	nex             int
	// x holds the rarer counts, allocated the first time the slot needs
	// it and reused when the slot is: a long interval's ring stays small.
	x *slotExtra
}

// slotExtra is a second's counts of mirrored copies, testers and probes.
type slotExtra struct {
	// mirrored copies' outcomes on the canary (blue-green, mirror).
	mirrored history.Point
	// testers are the override requests the history counted on the
	// canary [0] and the stable [1].
	testers [2]history.Point
	// synthetic are the synthetic probes' outcomes on the canary [0] and
	// the stable [1].
	synthetic [2]history.Point
}

// extra returns s's extra counts, allocating them once.
func (s *tallySlot) extra() *slotExtra {
	if s.x == nil {
		s.x = new(slotExtra)
	}
	return s.x
}

// reset clears the extra counts for reuse, keeping the histograms'
// storage.
func (x *slotExtra) reset() {
	for _, p := range []*history.Point{&x.mirrored, &x.testers[0], &x.testers[1], &x.synthetic[0], &x.synthetic[1]} {
		c := p.Latency.Counts[:0]
		*p = history.Point{}
		p.Latency.Counts = c
	}
}

// Rescued is what a Tally counted of one rollout over an interval.
type Rescued struct {
	// Requests the split sent to the canary that the stable served.
	Requests uint64 `json:"requests"`
	// Errors are those whose canary attempt failed (5xx or an error
	// kind): they count as the canary's 5xx.
	Errors uint64 `json:"errors_5xx"`
	// Kinds counts them by the canary attempt's error kind.
	Kinds [numKinds]uint64 `json:"-"`
	// Exemplars are trace ids of some of them.
	Exemplars [][16]byte `json:"-"`
}

// Update sets the rollouts the Tally counts for. A rollout whose route and
// legs are unchanged keeps its counts.
func (t *Tally) Update(cfg *config.Config) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var old []*legTally
	if p := t.cur.Load(); p != nil {
		old = *p
	}
	next := make([]*legTally, 0, len(cfg.Rollouts))
	for i := range cfg.Rollouts {
		rc := &cfg.Rollouts[i]
		size := int(rc.Interval.D()/time.Second) + 2
		var lt *legTally
		for _, o := range old {
			if o.name == rc.Name && o.route == rc.Route && o.canary == rc.Canary && o.stable == rc.Stable && len(o.ring) == size {
				lt = o
			}
		}
		if lt == nil {
			lt = &legTally{name: rc.Name, route: rc.Route, canary: rc.Canary, stable: rc.Stable, ring: make([]tallySlot, size)}
		}
		lt.mirror = rc.BlueGreen() && rc.TestTraffic == config.TestTrafficMirror
		lt.testers = !rc.BlueGreen()
		next = append(next, lt)
	}
	t.cur.Store(&next)
}

// ReadRecord implements observe.RecordReader.
func (t *Tally) ReadRecord(rec *observe.Record) {
	p := t.cur.Load()
	if p == nil {
		return
	}
	for _, lt := range *p {
		switch {
		case lt.route != rec.Route || rec.Service == "":
		case rec.Split.Reason == overrideReason:
			if lt.testers {
				lt.tester(rec)
			}
		case rec.Split.Service == lt.canary && rec.Service != lt.canary:
			lt.rescue(rec)
		}
	}
}

var overrideReason = observe.SplitOverride.String()

// tester counts an override request on the leg the history counted it
// on (the service that served it), as the history does.
func (lt *legTally) tester(rec *observe.Record) {
	i := 0
	switch rec.Service {
	case lt.canary:
	case lt.stable:
		i = 1
	default:
		return
	}
	sec := rec.End.Unix()
	if rec.End.IsZero() {
		sec = time.Now().Unix()
	}
	lt.mu.Lock()
	p := &lt.slot(sec).extra().testers[i]
	p.V[history.Requests]++
	p.V[history.ClassField(rec.Status)]++
	if rec.ErrorKind != observe.ErrNone {
		p.V[history.ErrorField(rec.ErrorKind)]++
	}
	if !rec.Start.IsZero() {
		p.Latency.Observe(rec.Total())
	}
	lt.mu.Unlock()
}

// Testers returns the override requests counted for rollout name over
// [from, to) on its canary and its stable leg.
func (t *Tally) Testers(name string, from, to time.Time) (canary, stable history.Point) {
	t.eachExtra(name, from, to, func(x *slotExtra) {
		canary.Add(&x.testers[0])
		stable.Add(&x.testers[1])
	})
	return
}

// eachExtra calls f with the extra counts (mirrored copies, testers,
// probes) of every second of rollout name in [from, to), whole seconds,
// under the rollout's lock.
func (t *Tally) eachExtra(name string, from, to time.Time, f func(*slotExtra)) {
	if t == nil {
		return
	}
	p := t.cur.Load()
	if p == nil {
		return
	}
	lo, hi := from.Unix(), to.Unix()
	for _, lt := range *p {
		if lt.name != name {
			continue
		}
		lt.mu.Lock()
		for i := range lt.ring {
			if s := &lt.ring[i]; s.sec != 0 && s.sec >= lo && s.sec < hi && s.x != nil {
				f(s.x)
			}
		}
		lt.mu.Unlock()
	}
}

// subtract takes o's counts and latencies out of p (never below zero).
func subtract(p *history.Point, o *history.Point) {
	for f := range o.V {
		p.V[f] -= min(p.V[f], o.V[f])
	}
	h := &p.Latency
	for j, n := range o.Latency.Counts {
		if k := o.Latency.Offset + j - h.Offset; n > 0 && k >= 0 && k < len(h.Counts) {
			h.Counts[k] -= min(h.Counts[k], n)
		}
	}
}

// rescue counts a canary request that another service served.
func (lt *legTally) rescue(rec *observe.Record) {
	kind, failed := observe.ErrBreakerOpen, true // the canary's breaker sent it to its fallback
	if len(rec.Attempts) > 0 {
		if a := &rec.Attempts[0]; a.Service == lt.canary {
			kind, failed = a.ErrorKind, a.ErrorKind != observe.ErrNone || a.Status >= 500
		} else if a.RetryReason == observe.ErrNoHealthyUpstream.String() {
			kind = observe.ErrNoHealthyUpstream // no canary host to send to
		}
	}
	sec := rec.End.Unix()
	if rec.End.IsZero() {
		sec = time.Now().Unix()
	}
	lt.mu.Lock()
	s := lt.slot(sec)
	s.rescued++
	if failed {
		s.errors++
	}
	if int(kind) < numKinds {
		s.kinds[kind]++
	}
	if rec.Trace.Valid && failed {
		s.exemplars[s.nex%maxTallyExemplars] = rec.Trace.TraceID
		s.nex++
	}
	lt.mu.Unlock()
}

// slot returns the slot of second sec, reset if it held an older second.
// lt.mu is held.
func (lt *legTally) slot(sec int64) *tallySlot {
	s := &lt.ring[int(uint64(sec)%uint64(len(lt.ring)))]
	if s.sec != sec {
		x := s.x
		*s = tallySlot{sec: sec, x: x}
		if x != nil {
			x.reset()
		}
	}
	return s
}

// Mirrored implements proxy.MirrorObserver: a mirrored copy's outcome on
// service counts for every blue-green rollout whose test traffic is
// mirrored to it, in the second it ended (by the real clock, like the
// history's).
func (t *Tally) Mirrored(service string, status int, kind observe.ErrorKind, d time.Duration) {
	p := t.cur.Load()
	if p == nil {
		return
	}
	for _, lt := range *p {
		if !lt.mirror || lt.canary != service {
			continue
		}
		sec := time.Now().Unix()
		lt.mu.Lock()
		m := &lt.slot(sec).extra().mirrored
		m.V[history.Requests]++
		if status >= 500 || kind != observe.ErrNone {
			m.V[history.Class5xx]++
		} else {
			m.V[history.ClassField(status)]++
		}
		if kind != observe.ErrNone {
			m.V[history.ErrorField(kind)]++
		}
		m.Latency.Observe(d)
		lt.mu.Unlock()
	}
}

// Synthetic counts a synthetic probe's outcome on rollout name's canary
// (canary true) or stable leg, in the current second.
func (t *Tally) Synthetic(name string, canary bool, status int, kind observe.ErrorKind, d time.Duration) {
	p := t.cur.Load()
	if p == nil {
		return
	}
	i := 1
	if canary {
		i = 0
	}
	for _, lt := range *p {
		if lt.name != name {
			continue
		}
		lt.mu.Lock()
		m := &lt.slot(time.Now().Unix()).extra().synthetic[i]
		m.V[history.Requests]++
		if status >= 500 || kind != observe.ErrNone {
			m.V[history.Class5xx]++
		} else {
			m.V[history.ClassField(status)]++
		}
		if kind != observe.ErrNone {
			m.V[history.ErrorField(kind)]++
		}
		m.Latency.Observe(d)
		lt.mu.Unlock()
	}
}

// SyntheticWindow returns the synthetic probes' outcomes counted for
// rollout name over [from, to) on its canary and its stable leg.
func (t *Tally) SyntheticWindow(name string, from, to time.Time) (canary, stable history.Point) {
	t.eachExtra(name, from, to, func(x *slotExtra) {
		canary.Add(&x.synthetic[0])
		stable.Add(&x.synthetic[1])
	})
	return
}

// MirrorWindow returns the mirrored copies' outcomes counted for rollout
// name over [from, to), whole seconds, as a history point of the new
// version's leg.
func (t *Tally) MirrorWindow(name string, from, to time.Time) history.Point {
	var out history.Point
	t.eachExtra(name, from, to, func(x *slotExtra) { out.Add(&x.mirrored) })
	return out
}

// Window returns what was counted for rollout name over [from, to), whole
// seconds; the zero Rescued when nothing was (or the window is older than
// the ring).
func (t *Tally) Window(name string, from, to time.Time) Rescued {
	var out Rescued
	if t == nil {
		return out
	}
	p := t.cur.Load()
	if p == nil {
		return out
	}
	for _, lt := range *p {
		if lt.name != name {
			continue
		}
		lo, hi := from.Unix(), to.Unix()
		lt.mu.Lock()
		for i := range lt.ring {
			s := &lt.ring[i]
			if s.sec == 0 || s.sec < lo || s.sec >= hi {
				continue
			}
			out.Requests += s.rescued
			out.Errors += s.errors
			for k, n := range s.kinds {
				out.Kinds[k] += n
			}
			for j := 0; j < min(s.nex, maxTallyExemplars); j++ {
				out.Exemplars = append(out.Exemplars, s.exemplars[j])
			}
		}
		lt.mu.Unlock()
	}
	return out
}

// apply adds r to the canary's point: its requests, as 5xx when failed,
// and by error kind.
func (r *Rescued) apply(canary *history.Point) {
	canary.V[history.Requests] += r.Requests
	canary.V[history.Class5xx] += r.Errors
	for k, n := range r.Kinds {
		if k != int(observe.ErrNone) && n > 0 {
			canary.V[history.ErrorField(observe.ErrorKind(k))] += n
		}
	}
}

var _ observe.RecordReader = (*Tally)(nil)

// ring returns rollout name's slots (tests).
func (t *Tally) ring(name string) []tallySlot {
	for _, lt := range *t.cur.Load() {
		if lt.name == name {
			return lt.ring
		}
	}
	return nil
}
