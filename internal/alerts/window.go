package alerts

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// The window store keeps, per series and per window length the rules
// read, the window's running sums, and advances them from one evaluation
// to the next: each tick it reads the seconds that entered the windows
// (one Range per series, whatever the number of rules and windows) and
// subtracts the seconds that left them. The seconds that leave are read
// back from per-minute blocks of per-second entries: short windows keep
// the blocks they filled while the data was new; a long window's edge
// minute is read from the history once, when the edge enters it. So a
// tick costs the new seconds plus one second per window, instead of the
// whole of every window; a series with nothing new and nothing leaving
// costs a comparison, and the rules skip it unless it has an alert.
//
// The seconds subtracted are those the history counted when they were
// added, so the sums are exactly what a whole read of the window gives,
// as long as the window's start stays in per-second data (windows up to
// history.second_retention) or is in per-minute data from the moment it
// reaches a minute (windows a minute or more longer): a window longer
// than the per-second retention by less than a minute is read whole.
//
// Gauges (breaker state, health, memory) aggregate by maximum and cannot
// be subtracted: windows that need one are read whole each tick, as are
// all windows of an Evaluator built with full set (the reference the
// tests compare against).
//
// The store relies on the history being append-only before the newest
// evaluated second, which the local history is: a second, once sealed,
// never changes. A Source whose past changes (late data) is caught when a
// subtraction would go negative, and the window is read whole again.

// keepSpan is the longest window that keeps its own blocks; longer
// windows read their edge minute from the history once a minute.
const keepSpan = 5 * 60

// maxGap is the longest step between two evaluations that is advanced
// incrementally; after a longer gap (or a step back) the windows are read
// whole.
const maxGap = 5 * 60

// exemplarsKept bounds the recent exemplars kept per series.
const exemplarsKept = 32

type seriesKey struct {
	scope history.Scope
	name  string
}

// need is what the rules read of one series.
type need struct {
	fields   []history.Field // counters kept, Requests first
	lat, ovh bool            // latency and overhead histograms kept
	wins     []winNeed       // sorted by length
	sig      string
}

type winNeed struct {
	d    int64 // seconds
	full bool  // read whole each tick (gauges)
}

func (n *need) addField(f history.Field) {
	for _, x := range n.fields {
		if x == f {
			return
		}
	}
	n.fields = append(n.fields, f)
}

func (n *need) addWin(d time.Duration, full bool) {
	s := int64(d / time.Second)
	if s <= 0 {
		return
	}
	for i := range n.wins {
		if n.wins[i].d == s {
			n.wins[i].full = n.wins[i].full || full
			return
		}
	}
	n.wins = append(n.wins, winNeed{d: s, full: full})
}

func (n *need) merge(o *need) {
	if o == nil {
		return
	}
	for _, f := range o.fields {
		n.addField(f)
	}
	n.lat, n.ovh = n.lat || o.lat, n.ovh || o.ovh
	for _, w := range o.wins {
		n.addWin(time.Duration(w.d)*time.Second, w.full)
	}
}

func (n *need) finish() {
	sort.Slice(n.fields[1:], func(i, j int) bool { return n.fields[1+i] < n.fields[1+j] })
	sort.Slice(n.wins, func(i, j int) bool { return n.wins[i].d < n.wins[j].d })
	var b strings.Builder
	for _, f := range n.fields {
		b.WriteString(strconv.Itoa(int(f)))
		b.WriteByte(',')
	}
	fmt.Fprintf(&b, "|%t%t|", n.lat, n.ovh)
	for _, w := range n.wins {
		fmt.Fprintf(&b, "%d%t,", w.d, w.full)
	}
	n.sig = b.String()
}

func newNeed() *need { return &need{fields: []history.Field{history.Requests}} }

// plan is what a ruleset reads: per scope for the rules over every
// series of it, per series for the rules naming one.
type plan struct {
	// secRetention is the history's per-second retention, in seconds.
	secRetention int64
	scope        map[history.Scope]*need
	series       map[seriesKey]*need
	merged       map[seriesKey]*need // cache, built on first use
}

// ruleNeeds adds what r reads to n.
func ruleNeeds(r *rule, n *need, hostNeed func(name string) *need) {
	if r.slo != nil {
		n.addField(history.Class5xx)
		if r.slo.latency > 0 {
			n.lat = true
		}
		for _, w := range r.slo.windows {
			n.addWin(w.Long, false)
			n.addWin(w.Short, false)
		}
		n.addWin(r.slo.period, false)
		return
	}
	full := false
	switch r.metric {
	case "error_ratio":
		for _, f := range r.errs {
			n.addField(f)
		}
	case "latency":
		n.lat = true
	case "overhead":
		n.ovh = true
	case "rate_limited_ratio":
		n.addField(history.ErrorField(observe.ErrRateLimited))
	case "retry_budget_exhausted":
		n.addField(history.RetryBudgetExhausted)
	case "cpu":
		n.addField(history.CPUMillis)
	case "disk":
		n.addField(history.DiskRead)
		n.addField(history.DiskWritten)
	case "request_rate":
	case "kpi_change":
		n.addField(history.KPICount)
		if r.kpi != nil {
			big, small := r.kpi.baselineWindows(r.window)
			n.addWin(big, false)
			n.addWin(small, false)
		}
	case "hosts_available":
		for _, hosts := range r.hosts {
			for _, h := range hosts {
				hostNeed(h).addWin(r.window, true)
			}
		}
		return
	default: // breaker_open, memory: gauges
		full = true
	}
	n.addWin(r.window, full)
}

func newPlan(rs *Ruleset) *plan {
	p := &plan{scope: map[history.Scope]*need{}, series: map[seriesKey]*need{}, merged: map[seriesKey]*need{},
		secRetention: int64(rs.secRetention / time.Second)}
	hostNeed := func(name string) *need {
		k := seriesKey{history.ScopeHost, name}
		if p.series[k] == nil {
			p.series[k] = newNeed()
		}
		return p.series[k]
	}
	for _, r := range rs.rules {
		var n *need
		switch {
		case r.metric == "hosts_available":
			n = newNeed() // reads host series only
		case r.scope == history.ScopeGateway || r.target != "":
			k := seriesKey{r.scope, r.target}
			if r.scope == history.ScopeGateway {
				k.name = ""
			}
			if p.series[k] == nil {
				p.series[k] = newNeed()
			}
			n = p.series[k]
		default:
			if p.scope[r.scope] == nil {
				p.scope[r.scope] = newNeed()
			}
			n = p.scope[r.scope]
		}
		ruleNeeds(r, n, hostNeed)
	}
	return p
}

// needOf returns the merged need of one series.
func (p *plan) needOf(k seriesKey) *need {
	if n, ok := p.merged[k]; ok {
		return n
	}
	n := newNeed()
	n.merge(p.scope[k.scope])
	n.merge(p.series[k])
	// A window longer than the per-second retention but by less than a
	// minute has its edge in per-second data at some ticks and in
	// per-minute data at others: read it whole, as the history counts it.
	for i := range n.wins {
		if d := n.wins[i].d; d > p.secRetention && d < p.secRetention+60 {
			n.wins[i].full = true
		}
	}
	n.finish()
	p.merged[k] = n
	return n
}

// seriesWin is the windows of one series.
type seriesWin struct {
	key    seriesKey
	need   *need
	sig    string
	readTo int64 // data is read up to this second (exclusive); 0: never
	wins   []*winState
	blocks map[int64]*block
	ex     []history.Exemplar // the most recent, oldest first
	gen    uint64             // the tick it was last advanced in
	planN  uint64             // the plan need is from
	// changed is the tick in which a window last changed.
	changed uint64
}

// winState is one window's running sums, and the point the rules read.
type winState struct {
	d        int64
	full     bool
	c        []uint64 // counters, parallel to need.fields
	lat, ovh []uint64 // dense histograms (NumBuckets+1), nil when not kept
	// latLo..latHi (ovhLo..ovhHi) bound the non-zero buckets (a superset
	// after subtractions).
	latLo, latHi, ovhLo, ovhHi int
	// changed is the tick in which the sums last changed.
	changed uint64
	point   history.Point
	pointAt int64 // the end point was built for (0: none)
	pointN  uint64
	memo    []memo
}

// memo is a quantile computed in one tick.
type memo struct {
	gen uint64
	ovh bool
	q   float64
	v   time.Duration
}

// block is the per-second entries of one minute of a series, filled up to
// filled (exclusive).
type block struct {
	filled   int64
	c        []uint64 // 60 × len(need.fields)
	lat, ovh []history.Histogram
}

type windowStore struct {
	full   bool // read every window whole (the reference path)
	plan   *plan
	planN  uint64 // counts plans, so that a series sees a new one
	series map[seriesKey]*seriesWin
	gen    uint64
}

func newWindowStore(rs *Ruleset, full bool) *windowStore {
	return &windowStore{full: full, plan: newPlan(rs), series: map[seriesKey]*seriesWin{}}
}

// setRules swaps the plan; series whose needs did not change keep their
// sums.
func (st *windowStore) setRules(rs *Ruleset) {
	st.plan = newPlan(rs)
	st.planN++
}

// prune drops the series not read in the tick gen.
func (st *windowStore) prune() {
	for k, sw := range st.series {
		if sw.gen != st.gen {
			delete(st.series, k)
		}
	}
}

// get returns the series of k advanced to end, reading it on first use in
// the tick.
func (st *windowStore) get(ctx context.Context, src history.Source, k seriesKey, end int64) (*seriesWin, error) {
	sw := st.series[k]
	if sw == nil || sw.planN != st.planN {
		n := st.plan.needOf(k)
		if sw == nil || sw.sig != n.sig {
			sw = &seriesWin{key: k, sig: n.sig}
			st.series[k] = sw
		}
		sw.need, sw.planN = n, st.planN
	}
	if sw.gen == st.gen {
		return sw, nil
	}
	sw.gen = st.gen
	if err := sw.advance(ctx, src, end, st.full, st.gen, st.plan.secRetention); err != nil {
		sw.readTo = 0 // start again next time
		return nil, err
	}
	for _, w := range sw.wins {
		if w.full || w.changed == st.gen {
			sw.changed = st.gen
			break
		}
	}
	return sw, nil
}

// window returns the point of the window of d seconds ending at the
// series' readTo.
func (sw *seriesWin) window(d int64) *winState {
	for _, w := range sw.wins {
		if w.d == d {
			return w
		}
	}
	return nil
}

func (sw *seriesWin) init(gen uint64) {
	n := sw.need
	sw.wins = sw.wins[:0]
	for _, w := range n.wins {
		ws := &winState{d: w.d, full: w.full, c: make([]uint64, len(n.fields)), changed: gen}
		if n.lat && !w.full {
			ws.lat = make([]uint64, history.NumBuckets+1)
		}
		if n.ovh && !w.full {
			ws.ovh = make([]uint64, history.NumBuckets+1)
		}
		sw.wins = append(sw.wins, ws)
	}
	sw.blocks = map[int64]*block{}
	sw.ex = sw.ex[:0]
}

// rangeOf reads [from, to) of the series at one point per step; a series
// the history does not hold reads as empty.
func rangeOf(ctx context.Context, src history.Source, k seriesKey, from, to, step int64) ([]history.Point, error) {
	if from >= to {
		return nil, nil
	}
	res, err := src.Range(ctx, history.Query{Scope: k.scope, Name: k.name, From: time.Unix(from, 0), To: time.Unix(to, 0), Step: time.Duration(step) * time.Second})
	if errors.Is(err, history.ErrNotFound) {
		return nil, nil
	}
	return res.Points, err
}

// readWhole sets w's sums from one read of its whole window.
func (sw *seriesWin) readWhole(ctx context.Context, src history.Source, w *winState, end int64) error {
	pts, err := rangeOf(ctx, src, sw.key, end-w.d, end, w.d)
	if err != nil {
		return err
	}
	var p history.Point
	p.Time = time.Unix(end-w.d, 0)
	for i := range pts {
		p.Add(&pts[i])
	}
	if w.full {
		w.point = p
		return nil
	}
	for i, f := range sw.need.fields {
		w.c[i] = p.V[f]
	}
	w.latLo, w.latHi, w.ovhLo, w.ovhHi = len(w.lat), -1, len(w.ovh), -1
	if w.lat != nil {
		clear(w.lat)
		addBounded(w.lat, p.Latency, &w.latLo, &w.latHi)
	}
	if w.ovh != nil {
		clear(w.ovh)
		addBounded(w.ovh, p.Overhead, &w.ovhLo, &w.ovhHi)
	}
	if len(p.Exemplars) > 0 && w.d == sw.wins[len(sw.wins)-1].d {
		sw.addExemplars(p.Exemplars)
	}
	return nil
}

// addBounded adds h to dst and widens [lo, hi] to cover it (lo > hi:
// empty).
func addBounded(dst []uint64, h history.Histogram, lo, hi *int) {
	if len(h.Counts) == 0 || dst == nil {
		return
	}
	addHist(dst, h)
	*lo = max(min(*lo, h.Offset), 0)
	*hi = min(max(*hi, h.Offset+len(h.Counts)-1), len(dst)-1)
}

func bounded(dst []uint64, lo, hi int) history.Histogram {
	if dst == nil || lo > hi {
		return history.Histogram{}
	}
	return history.Histogram{Offset: lo, Counts: dst[lo : hi+1]}
}

func addHist(dst []uint64, h history.Histogram) {
	for j, n := range h.Counts {
		if i := h.Offset + j; i >= 0 && i < len(dst) {
			dst[i] += n
		}
	}
}

// subHist subtracts h from dst and reports whether it would go negative.
func subHist(dst []uint64, h history.Histogram) bool {
	for j, n := range h.Counts {
		if i := h.Offset + j; i >= 0 && i < len(dst) {
			if dst[i] < n {
				return false
			}
			dst[i] -= n
		}
	}
	return true
}

func (sw *seriesWin) addExemplars(ex []history.Exemplar) {
	sw.ex = append(sw.ex, ex...)
	sort.SliceStable(sw.ex, func(i, j int) bool { return sw.ex[i].Time.Before(sw.ex[j].Time) })
	if n := len(sw.ex); n > exemplarsKept {
		sw.ex = append(sw.ex[:0], sw.ex[n-exemplarsKept:]...)
	}
}

// advance brings every window to end.
func (sw *seriesWin) advance(ctx context.Context, src history.Source, end int64, full bool, gen uint64, secRetention int64) error {
	n := sw.need
	whole := full || sw.readTo == 0 || end < sw.readTo || end-sw.readTo > maxGap || len(sw.wins) != len(n.wins)
	if whole {
		sw.init(gen)
		for _, w := range sw.wins {
			w.full = w.full || full
			if w.full {
				w.lat, w.ovh = nil, nil
			}
			if err := sw.readWhole(ctx, src, w, end); err != nil {
				return err
			}
			w.changed = gen
		}
		sw.readTo = end
		return nil
	}
	from := sw.readTo
	if from == end {
		return nil
	}
	// The seconds that entered every window.
	pts, err := rangeOf(ctx, src, sw.key, from, end, 1)
	if err != nil {
		return err
	}
	if pts != nil && int64(len(pts)) != end-from {
		return fmt.Errorf("%s %q: the history answered %d points for %d seconds", sw.key.scope, sw.key.name, len(pts), end-from)
	}
	keep := int64(0) // the longest window that keeps its blocks
	for _, w := range sw.wins {
		if !w.full && w.d <= min(keepSpan, secRetention) {
			keep = w.d
		}
	}
	for i := int64(0); i < end-from; i++ {
		s := from + i
		m := s / 60 * 60
		b := sw.blocks[m]
		if b == nil && keep > 0 && s == m {
			b = sw.newBlock(m)
		}
		if pts == nil || empty(&pts[i]) { // an absent series reads as empty
			if b != nil && b.filled == s {
				b.filled = s + 1
			}
			continue
		}
		p := &pts[i]
		for _, w := range sw.wins {
			if w.full {
				continue
			}
			for j, f := range n.fields {
				w.c[j] += p.V[f]
			}
			addBounded(w.lat, p.Latency, &w.latLo, &w.latHi)
			addBounded(w.ovh, p.Overhead, &w.ovhLo, &w.ovhHi)
			w.changed = gen
		}
		if len(p.Exemplars) > 0 {
			sw.addExemplars(p.Exemplars)
		}
		if b != nil && b.filled == s {
			sw.put(b, s, p)
		}
	}
	sw.readTo = end
	// The seconds that left each window.
	for _, w := range sw.wins {
		if w.full {
			if err := sw.readWhole(ctx, src, w, end); err != nil {
				return err
			}
			w.changed = gen
			continue
		}
		ok := true
		for s := from - w.d; s < end-w.d && ok; s++ {
			b, err := sw.blockOf(ctx, src, s/60*60)
			if err != nil {
				return err
			}
			ok = sw.sub(w, b, s)
			if !ok {
				break
			}
			if sw.nonEmpty(b, s) {
				w.changed = gen
			}
		}
		if !ok { // the past changed: read the window whole
			if err := sw.readWhole(ctx, src, w, end); err != nil {
				return err
			}
			w.changed = gen
		}
	}
	// Drop the blocks no window edge needs any more.
	for m := range sw.blocks {
		needed := false
		for _, w := range sw.wins {
			edge := (end - w.d) / 60 * 60
			if !w.full && edge <= m && (w.d <= keep || edge == m) {
				needed = true
				break
			}
		}
		if !needed {
			delete(sw.blocks, m)
		}
	}
	return nil
}

func empty(p *history.Point) bool {
	return p.V == (history.Values{}) && len(p.Latency.Counts) == 0 && len(p.Overhead.Counts) == 0 && len(p.Exemplars) == 0
}

func (sw *seriesWin) newBlock(m int64) *block {
	k := len(sw.need.fields)
	b := &block{filled: m, c: make([]uint64, 60*k)}
	if sw.need.lat {
		b.lat = make([]history.Histogram, 60)
	}
	if sw.need.ovh {
		b.ovh = make([]history.Histogram, 60)
	}
	sw.blocks[m] = b
	return b
}

// put stores second s's entry in b.
func (sw *seriesWin) put(b *block, s int64, p *history.Point) {
	i := int(s % 60)
	k := len(sw.need.fields)
	for j, f := range sw.need.fields {
		b.c[i*k+j] = p.V[f]
	}
	if b.lat != nil {
		b.lat[i] = p.Latency
	}
	if b.ovh != nil {
		b.ovh[i] = p.Overhead
	}
	b.filled = s + 1
}

// blockOf returns the block of minute m, reading what the series has
// read so far of that minute from the history when it is not held.
func (sw *seriesWin) blockOf(ctx context.Context, src history.Source, m int64) (*block, error) {
	if b := sw.blocks[m]; b != nil && b.filled >= min(m+60, sw.readTo) {
		return b, nil
	}
	pts, err := rangeOf(ctx, src, sw.key, m, min(m+60, sw.readTo), 1)
	if err != nil {
		return nil, err
	}
	b := sw.newBlock(m)
	for i := range pts {
		sw.put(b, m+int64(i), &pts[i])
	}
	b.filled = min(m+60, sw.readTo)
	return b, nil
}

func (sw *seriesWin) nonEmpty(b *block, s int64) bool {
	i := int(s % 60)
	k := len(sw.need.fields)
	for _, x := range b.c[i*k : i*k+k] {
		if x != 0 {
			return true
		}
	}
	return (b.lat != nil && len(b.lat[i].Counts) > 0) || (b.ovh != nil && len(b.ovh[i].Counts) > 0)
}

// sub subtracts second s of b from w, reporting false when a sum would go
// negative.
func (sw *seriesWin) sub(w *winState, b *block, s int64) bool {
	i := int(s % 60)
	k := len(sw.need.fields)
	for j := range w.c {
		x := b.c[i*k+j]
		if w.c[j] < x {
			return false
		}
		w.c[j] -= x
	}
	if w.lat != nil && b.lat != nil && !subHist(w.lat, b.lat[i]) {
		return false
	}
	if w.ovh != nil && b.ovh != nil && !subHist(w.ovh, b.ovh[i]) {
		return false
	}
	return true
}

// pointOf returns w as a point over [end-d, end). The histograms and
// exemplars are views the caller must not change.
func (sw *seriesWin) pointOf(w *winState, end int64) *history.Point {
	if w.full {
		return &w.point
	}
	p := &w.point
	if w.pointAt == end && w.pointN == w.changed {
		return p
	}
	w.pointAt, w.pointN = end, w.changed
	p.Time = time.Unix(end-w.d, 0)
	for j, f := range sw.need.fields {
		p.V[f] = w.c[j]
	}
	p.Latency = bounded(w.lat, w.latLo, w.latHi)
	p.Overhead = bounded(w.ovh, w.ovhLo, w.ovhHi)
	p.Exemplars = sw.ex
	return p
}

// quantile returns a quantile of w's latency (or overhead) histogram,
// computed once per tick.
func (w *winState) quantile(gen uint64, ovh bool, q float64, p *history.Point) time.Duration {
	for i := range w.memo {
		if m := &w.memo[i]; m.ovh == ovh && m.q == q {
			if m.gen < w.changed {
				if ovh {
					m.v = p.Overhead.Quantile(q)
				} else {
					m.v = p.Latency.Quantile(q)
				}
				m.gen = gen
			}
			return m.v
		}
	}
	m := memo{gen: gen, ovh: ovh, q: q}
	if ovh {
		m.v = p.Overhead.Quantile(q)
	} else {
		m.v = p.Latency.Quantile(q)
	}
	w.memo = append(w.memo, m)
	return m.v
}
