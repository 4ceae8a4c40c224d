package series

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newSet(t *testing.T, o Options) (*Set, prometheus.Gatherer) {
	t.Helper()
	s := NewSet(o, t0)
	return s, checked{t, s}
}

// checked gathers s and checks the result against client_golang's own
// checks and normalisation (prometheus.Gatherers re-validates every
// sample's labels and consistency and sorts families and samples): Set
// skips them, so its output must already pass them in the same order.
// Values are not compared (tests record while gathering).
type checked struct {
	t *testing.T
	s *Set
}

func (c checked) Gather() ([]*dto.MetricFamily, error) {
	got, err := c.s.Gather()
	if err != nil {
		return nil, err
	}
	want, err := prometheus.Gatherers{c.s}.Gather()
	if err != nil {
		c.t.Errorf("client_golang rejects the set's families: %v", err)
		return got, nil
	}
	if len(got) != len(want) {
		c.t.Errorf("Set.Gather: %d families, normalised %d", len(got), len(want))
		return got, nil
	}
	for i := range got {
		if g, w := shape(got[i]), shape(want[i]); g != w {
			c.t.Errorf("Set.Gather family %d is not normalised:\n got %s\nwant %s", i, g, w)
		}
	}
	return got, nil
}

// shape is a family's name, type, help and the label sets of its samples
// in order.
func shape(mf *dto.MetricFamily) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %q:", mf.GetName(), mf.GetType(), mf.GetHelp())
	for _, m := range mf.GetMetric() {
		b.WriteString(" {")
		for _, l := range m.GetLabel() {
			fmt.Fprintf(&b, "%s=%q,", l.GetName(), l.GetValue())
		}
		b.WriteString("}")
	}
	return b.String()
}

func gather(t *testing.T, reg prometheus.Gatherer, name string) map[string]*dto.Metric {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.Metric{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				parts = append(parts, l.GetName()+"="+l.GetValue())
			}
			out[strings.Join(parts, ",")] = m
		}
	}
	return out
}

func selfValue(t *testing.T, reg prometheus.Gatherer, name, family string) float64 {
	t.Helper()
	m := gather(t, reg, name)["metric="+family]
	if m == nil {
		t.Fatalf("%s{metric=%q} missing", name, family)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

func TestCapFoldsIntoOther(t *testing.T) {
	s, reg := newSet(t, Options{MaxSeries: 3, IdleTimeout: time.Minute})
	f := s.MustFamily(FamilyOpts{Name: "x_total", Help: "x", Kind: Counter, Labels: []string{"route", "upstream"}})
	for i := 0; i < 10; i++ {
		f.With("r", "u"+strconv.Itoa(i)).Inc()
	}
	got := gather(t, reg, "x_total")
	if len(got) != 4 {
		t.Fatalf("want 3 series + other, got %d: %v", len(got), got)
	}
	if v := got["route=other,upstream=other"].GetCounter().GetValue(); v != 7 {
		t.Errorf("other = %v, want 7", v)
	}
	for i := 0; i < 3; i++ {
		if v := got["route=r,upstream=u"+strconv.Itoa(i)].GetCounter().GetValue(); v != 1 {
			t.Errorf("u%d = %v", i, v)
		}
	}
	if v := selfValue(t, reg, "vantage_metrics_series_folded_total", "x_total"); v != 7 {
		t.Errorf("folded = %v, want 7", v)
	}
	if v := selfValue(t, reg, "vantage_metrics_series", "x_total"); v != 4 {
		t.Errorf("series = %v, want 4", v)
	}
	// Known label sets keep their own series past the cap.
	f.With("r", "u1").Inc()
	if v := gather(t, reg, "x_total")["route=r,upstream=u1"].GetCounter().GetValue(); v != 2 {
		t.Errorf("u1 = %v, want 2", v)
	}
}

func TestInvalidLabelValuesFold(t *testing.T) {
	s, reg := newSet(t, Options{MaxSeries: 100, IdleTimeout: time.Minute})
	f := s.MustFamily(FamilyOpts{Name: "y_total", Help: "y", Kind: Counter, Labels: []string{"reason"}})
	f.With("bad\xff").Inc()
	f.With(strings.Repeat("a", 300)).Inc()
	got := gather(t, reg, "y_total")
	if len(got) != 1 || got["reason=other"].GetCounter().GetValue() != 2 {
		t.Fatalf("got %v", got)
	}
}

func TestIdleSeriesExpireAndComeBack(t *testing.T) {
	s, reg := newSet(t, Options{MaxSeries: 100, IdleTimeout: 8 * time.Minute})
	f := s.MustFamily(FamilyOpts{Name: "z_total", Help: "z", Kind: Counter, Labels: []string{"k"}})
	st := s.MustFamily(FamilyOpts{Name: "state", Help: "s", Kind: Gauge, Labels: []string{"k"}, Persistent: true})
	g := s.MustFamily(FamilyOpts{Name: "inflight", Help: "g", Kind: Gauge, Labels: []string{"k"}, KeepNonZero: true})
	var busy, idle, held Slot
	kb, ki := Key{"busy"}, Key{"idle"}
	busy.Resolve(f, &kb).Inc()
	idle.Resolve(f, &ki).Inc()
	st.With("a").Set(1)
	held.Resolve(g, &ki).Inc() // a request in flight for a long time
	g.With("zero").Set(0)
	if s.SweepInterval() != time.Minute {
		t.Fatalf("sweep interval %v, want idle/8", s.SweepInterval())
	}
	// Keep "busy" in use every minute for 12 minutes; "idle" is left alone.
	for i := 1; i <= 12; i++ {
		s.Sweep(t0.Add(time.Duration(i) * time.Minute))
		if c := busy.Load(); c != nil {
			c.Inc()
		} else {
			t.Fatalf("busy series expired at minute %d", i)
		}
	}
	if busy.Load() == nil {
		t.Fatal("busy expired")
	}
	if idle.Load() != nil {
		t.Fatal("idle series still alive after 12 minutes (idle timeout 8m)")
	}
	got := gather(t, reg, "z_total")
	if _, ok := got["k=idle"]; ok || len(got) != 1 {
		t.Fatalf("after expiry: %v", got)
	}
	if v := selfValue(t, reg, "vantage_metrics_series_expired_total", "z_total"); v != 1 {
		t.Errorf("expired = %v", v)
	}
	if len(gather(t, reg, "state")) != 1 {
		t.Error("a persistent series expired")
	}
	gs := gather(t, reg, "inflight")
	if _, ok := gs["k=idle"]; !ok {
		t.Error("a non-zero in-flight gauge expired")
	}
	if _, ok := gs["k=zero"]; ok {
		t.Error("an idle zero gauge did not expire")
	}
	// The holder re-resolves: the series comes back from zero.
	idle.Resolve(f, &ki).Inc()
	if v := gather(t, reg, "z_total")["k=idle"].GetCounter().GetValue(); v != 1 {
		t.Errorf("re-created series = %v, want 1", v)
	}
}

func TestExpiryDoesNotExpireUsedSeries(t *testing.T) {
	// A series touched in the epoch before a sweep survives however
	// many sweeps ran before.
	s, _ := newSet(t, Options{MaxSeries: 100, IdleTimeout: 8 * time.Second})
	f := s.MustFamily(FamilyOpts{Name: "w_total", Help: "w", Kind: Counter, Labels: []string{"k"}})
	old := f.With("old")
	s.Sweep(t0.Add(100 * time.Second))
	if !old.Dead() {
		t.Fatal("a series idle for 100s survived")
	}
	c := f.With("a")
	c.Inc()
	if n := s.Sweep(t0.Add(101 * time.Second)); n != 0 || c.Dead() {
		t.Fatalf("just-used series expired (%d)", n)
	}
	if n := s.Sweep(t0.Add(110 * time.Second)); n != 1 || !c.Dead() {
		t.Fatalf("idle series not expired after 9s (%d)", n)
	}
}

func TestFamilyValidation(t *testing.T) {
	s := NewSet(Options{MaxSeries: 1, IdleTimeout: time.Second}, t0)
	for _, o := range []FamilyOpts{
		{Name: "bad-name", Help: "h", Kind: Counter},
		{Name: "a", Kind: Counter},
		{Name: "a", Help: "h", Kind: Counter, Labels: []string{"le"}},
		{Name: "a", Help: "h", Kind: Counter, Labels: []string{"__x"}},
		{Name: "a", Help: "h", Kind: Histogram},
		{Name: "a", Help: "h", Kind: Histogram, Buckets: []float64{math.Inf(1)}},
		{Name: "a", Help: "h", Kind: Histogram, Buckets: []float64{1, 1}},
		{Name: "a", Help: "h", Kind: Histogram, Buckets: []float64{2, 1}},
		{Name: "a", Help: "h", Kind: Histogram, Buckets: []float64{math.NaN()}},
		{Name: "a", Help: "h", Kind: Counter, Labels: []string{"1", "2", "3", "4", "5", "6", "7"}},
		{Name: "a", Help: "h", Kind: 9},
	} {
		if _, err := s.Family(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	s.MustFamily(FamilyOpts{Name: "dup", Help: "h", Kind: Counter})
	if _, err := s.Family(FamilyOpts{Name: "dup", Help: "h", Kind: Gauge}); err == nil {
		t.Error("duplicate accepted")
	}
}

func TestConcurrentRecordScrapeSweep(t *testing.T) {
	s := NewSet(Options{MaxSeries: 50, IdleTimeout: 8 * time.Millisecond, Exemplars: true}, t0)
	// Series come and go while this gathers: check each gather's validity
	// with client_golang, not its order against a second gather.
	reg := prometheus.Gatherers{s}
	f := s.MustFamily(FamilyOpts{Name: "c_total", Help: "c", Kind: Counter, Labels: []string{"k"}})
	h := s.MustFamily(FamilyOpts{Name: "h_seconds", Help: "h", Kind: Histogram, Labels: []string{"k"}, Buckets: []float64{0.1, 1}})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var sl, hs Slot
			id := [16]byte{byte(w)}
			for i := 0; i < 2000; i++ {
				k := Key{strconv.Itoa((w*7 + i) % 80)}
				c := sl.Load()
				if c == nil || i%10 == 0 {
					c = sl.Resolve(f, &k)
				}
				c.AddExemplar(1, &id, t0.Add(time.Duration(i)*time.Millisecond))
				hc := hs.Load()
				if hc == nil {
					hc = hs.Resolve(h, &k)
				}
				hc.ObserveExemplar(0.5, &id, t0)
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.Sweep(t0.Add(time.Duration(i) * time.Millisecond))
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if n := f.Len(); n > 51 {
		t.Errorf("family grew to %d series past its cap", n)
	}
}

// TestGatherOrderMatchesRegistry declares labels out of name order, so
// sorting samples by the family's label order and by label name differ;
// checked compares Gather's order with client_golang's.
func TestGatherOrderMatchesRegistry(t *testing.T) {
	s, reg := newSet(t, Options{MaxSeries: 100, IdleTimeout: time.Minute})
	f := s.MustFamily(FamilyOpts{Name: "o_total", Help: "o", Kind: Counter, Labels: []string{"zone", "app"}})
	for _, kv := range [][2]string{{"a", "z"}, {"b", "y"}, {"c", "x"}, {"a", "x"}} {
		f.With(kv[0], kv[1]).Inc()
	}
	if got := len(gather(t, reg, "o_total")); got != 4 {
		t.Fatalf("%d series", got)
	}
}

func TestDelete(t *testing.T) {
	s, reg := newSet(t, Options{MaxSeries: 2, IdleTimeout: time.Minute})
	f := s.MustFamily(FamilyOpts{Name: "up", Help: "u", Kind: Gauge, Labels: []string{"host"}, Persistent: true})
	a := f.With("a")
	a.Set(1)
	f.With("b").Set(0)
	k := Key{"a"}
	f.Delete(&k)
	f.Delete(&k) // absent: no-op
	if !a.Dead() || f.Len() != 1 {
		t.Fatalf("dead %v len %d", a.Dead(), f.Len())
	}
	if got := gather(t, reg, "up"); len(got) != 1 || got["host=b"] == nil {
		t.Errorf("series %v", got)
	}
	// The freed slot under the cap takes a new label set.
	if c := f.With("c"); c.Value(0) != "c" {
		t.Errorf("new series folded into %q", c.Value(0))
	}
}

// TestExpiredSeriesAreFreed: a Slot does not keep an expired series alive,
// so the memory of idle series is returned while their holders (a route's
// cached series) live on; a series in use survives collections.
func TestExpiredSeriesAreFreed(t *testing.T) {
	s, _ := newSet(t, Options{MaxSeries: 100, IdleTimeout: 8 * time.Second})
	f := s.MustFamily(FamilyOpts{Name: "lat_seconds", Help: "l", Kind: Histogram, Labels: []string{"route"}, Buckets: []float64{0.1, 1}})
	var idle, busy Slot
	ki, kb := Key{"idle"}, Key{"busy"}
	watch := func(sl *Slot) weak.Pointer[Child] { return weak.Make(sl.Load()) }
	idle.Resolve(f, &ki).Observe(0.5)
	busy.Resolve(f, &kb).Observe(0.5)
	wi, wb := watch(&idle), watch(&busy)
	for i := 1; i <= 12; i++ {
		s.Sweep(t0.Add(time.Duration(i) * time.Second))
		busy.Load().Observe(0.5)
	}
	runtime.GC()
	runtime.GC()
	if wi.Value() != nil {
		t.Fatal("an expired series is still reachable: its Slot keeps its memory")
	}
	if idle.Load() != nil {
		t.Fatal("Load returned an expired series")
	}
	if wb.Value() == nil || busy.Load() == nil {
		t.Fatal("a series in use was freed")
	}
	// The holder re-resolves from zero.
	if c := idle.Resolve(f, &ki); c == nil || c.Dead() {
		t.Fatal("re-resolving an expired series failed")
	}
}

func TestSlotLoadDoesNotAllocate(t *testing.T) {
	s, _ := newSet(t, Options{MaxSeries: 100, IdleTimeout: time.Minute})
	f := s.MustFamily(FamilyOpts{Name: "n_total", Help: "n", Kind: Counter, Labels: []string{"k"}})
	var sl Slot
	k := Key{"a"}
	sl.Resolve(f, &k)
	if n := testing.AllocsPerRun(100, func() {
		sl.Load().Inc()
		sl.Resolve(f, &k)
	}); n != 0 {
		t.Errorf("%v allocations per Load and Resolve of an existing series", n)
	}
}

// TestFamilyCap: a family's own cap, below the set's, folds its new label
// sets into "other" and counts them; the exposed limit is per family.
func TestFamilyCap(t *testing.T) {
	s, reg := newSet(t, Options{MaxSeries: 100, IdleTimeout: time.Minute})
	h := s.MustFamily(FamilyOpts{Name: "h_seconds", Help: "h", Kind: Histogram, Labels: []string{"route"}, Buckets: []float64{1}, MaxSeries: 3})
	c := s.MustFamily(FamilyOpts{Name: "c_total", Help: "c", Kind: Counter, Labels: []string{"route"}, MaxSeries: 1000})
	for i := range 10 {
		h.With(strconv.Itoa(i)).Observe(0.5)
		c.With(strconv.Itoa(i)).Inc()
	}
	if got := gather(t, reg, "h_seconds"); len(got) != 4 || got["route=other"].GetHistogram().GetSampleCount() != 7 {
		t.Errorf("histogram series %d, other %v", len(got), got["route=other"])
	}
	if got := gather(t, reg, "c_total"); len(got) != 10 {
		t.Errorf("counter series %d, want 10 (a family cap above the set's is the set's)", len(got))
	}
	if v := selfValue(t, reg, "vantage_metrics_series_folded_total", "h_seconds"); v != 7 {
		t.Errorf("folded %v, want 7", v)
	}
	if v := selfValue(t, reg, "vantage_metrics_series_limit", "h_seconds"); v != 3 {
		t.Errorf("limit of h_seconds %v, want 3", v)
	}
	if v := selfValue(t, reg, "vantage_metrics_series_limit", "c_total"); v != 100 {
		t.Errorf("limit of c_total %v, want 100", v)
	}
}

// TestHashChains narrows the family's hashes to four values so that most
// label sets share a chain, and checks lookups, creation past the cap,
// deletion anywhere in a chain and expiry against a plain map of the
// label sets that should exist.
func TestHashChains(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		s := NewSet(Options{MaxSeries: 12, IdleTimeout: 8 * time.Second}, t0)
		f := s.MustFamily(FamilyOpts{Name: "x_total", Help: "x", Kind: Counter, Labels: []string{"a", "b"}})
		f.mask = 3
		want := map[Key]*Child{}
		now := t0
		for range 500 {
			k := Key{strconv.Itoa(r.IntN(5)), strconv.Itoa(r.IntN(5))}
			switch r.IntN(4) {
			case 0, 1:
				c := f.Get(&k)
				c.Inc()
				if w, ok := want[k]; ok && w != c {
					t.Fatalf("seed %d: %v: a second series", seed, k)
				}
				if c.key == k {
					want[k] = c
				} else if c.key != (Key{Other, Other}) {
					t.Fatalf("seed %d: %v: got series %v", seed, k, c.key)
				} else {
					want[c.key] = c
				}
			case 2:
				f.Delete(&k)
				if c := want[k]; c != nil && !c.Dead() {
					t.Fatalf("seed %d: deleted %v still alive", seed, k)
				}
				delete(want, k)
			case 3:
				now = now.Add(time.Duration(r.IntN(3)) * time.Second)
				s.Sweep(now)
				for k, c := range want {
					if c.Dead() {
						delete(want, k)
					}
				}
			}
			n := 0
			for _, head := range f.m {
				for c := head; c != nil; c = c.next {
					n++
					if want[c.key] != c || c.Dead() {
						t.Fatalf("seed %d: chain holds %v (dead %v), not the live series", seed, c.key, c.Dead())
					}
				}
			}
			if n != len(want) || f.Len() != n {
				t.Fatalf("seed %d: %d series in chains, Len %d, want %d", seed, n, f.Len(), len(want))
			}
			for k, c := range want {
				if f.find(&k) != c {
					t.Fatalf("seed %d: find(%v) lost its series", seed, k)
				}
			}
		}
	}
}
