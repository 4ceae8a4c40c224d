package history

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/memsize"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// syntheticRecord encodes one stored record of n requests with realistic
// figures: log-normal latencies around 20 ms, overheads around 100 µs, 1%
// 5xx. host leaves the overhead out, as host series do; minute keeps the
// overhead coarse, as the minute roll-up does.
func syntheticRecord(r *rand.Rand, n int, host, minute bool) []byte {
	var a accum
	for i := 0; i < n; i++ {
		lat := time.Duration(20e6 * math.Exp(0.6*r.NormFloat64()))
		ovh := time.Duration(100e3 * math.Exp(0.5*r.NormFloat64()))
		a.v[Requests]++
		if r.IntN(100) == 0 {
			a.v[Class5xx]++
			a.v[ErrorField(observe.ErrUpstreamReset)]++
		} else {
			a.v[Class2xx]++
		}
		a.v[LatencySum] += uint64(lat / time.Microsecond)
		a.lat[bucketIndex(lat)]++
		a.hasLat = true
		if !host {
			a.v[OverheadSum] += uint64(ovh / time.Microsecond)
			a.v[UpstreamSum] += uint64((lat - ovh) / time.Microsecond)
			a.v[BytesOut] += 2048
			a.v[Attempts]++
			a.ovh[bucketIndex(ovh)]++
			a.hasOvh = true
		}
	}
	if minute && a.hasOvh {
		a.ovh.coarsen()
	}
	return a.appendRecord(nil)
}

// build1000Routes builds the history's stages of routes routes, each with
// a service and an upstream host of its own.
func buildRoutes(h *History, routes int) {
	for i := 0; i < routes; i++ {
		svc := fmt.Sprintf("svc-%d", i)
		st := h.stageFor(middleware.Route{Name: fmt.Sprintf("route-%d", i), Services: []string{svc}})
		st.host(svc, fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250))
	}
}

// fillRetention stores, in every series, a record for every minute and
// every second of the retentions as if each route had rate requests a
// second (and its exemplar ring full), ending at end, in time order with
// the byte budget enforced as the rotation does. It writes the rings
// directly with records made by syntheticRecord: what it measures is the
// storage the rotation leaves behind in steady state, without simulating a
// day of seconds.
func fillRetention(h *History, rate int, end int64) {
	r := rand.New(rand.NewPCG(7, 8))
	// Many distinct records, so that the compression of a chunk is not
	// flattered by records repeated within it.
	const pool = 512
	var secRec, minRec, secHost, minHost [pool][]byte
	for i := 0; i < pool; i++ {
		secRec[i], minRec[i] = syntheticRecord(r, rate, false, false), syntheticRecord(r, 60*rate, false, true)
		secHost[i], minHost[i] = syntheticRecord(r, rate, true, false), syntheticRecord(r, 60*rate, true, true)
	}
	h.sync()
	all := *h.all.Load()
	recs := func(s *series) (*[pool][]byte, *[pool][]byte) {
		if s.key.scope == ScopeHost {
			return &secHost, &minHost
		}
		return &secRec, &minRec
	}
	h.rot.Lock()
	defer h.rot.Unlock()
	h.started.Store(true)
	lastMin := end/60 - 1
	for m := lastMin - h.minSlots + 1; m <= lastMin; m++ {
		for _, s := range all {
			_, mr := recs(s)
			s.mu.Lock()
			h.bytes.Add(int64(s.mins.add(h.minChunks, m, mr[mod(m, pool)])))
			if mod(m+1, 60) == 0 {
				h.bytes.Add(int64(s.mins.seal(h.codec, m)))
			}
			s.mu.Unlock()
		}
		h.lastRolled.Store(m)
		h.lastSealed.Store(m*60 + 59)
		h.enforceBudget()
	}
	for sec := end - h.secSlots; sec < end; sec++ {
		for _, s := range all {
			sr, _ := recs(s)
			s.mu.Lock()
			h.bytes.Add(int64(s.secs.add(h.secChunks, sec, sr[mod(sec, pool)])))
			if mod(sec+1, 60) == 0 {
				h.bytes.Add(int64(s.secs.seal(h.codec, sec)))
			}
			s.mu.Unlock()
		}
		if mod(sec+1, 60) == 0 {
			h.lastSealed.Store(sec)
			h.enforceBudget()
		}
	}
	for _, s := range all {
		s.mu.Lock()
		for i := 0; i < exemplarsPerSeries; i++ {
			s.pHas, s.pErr = 1, Exemplar{Kind: ExemplarError}
			h.held.Add(int64(s.pushExemplars()))
		}
		s.pHas = 0
		s.lastActivity = end - 1
		s.mu.Unlock()
	}
	h.lastSealed.Store(end - 1)
	h.enforceBudget() // as the rotation does after the exemplars' second
}

// measure returns the live heap a history of routes routes takes once
// rate requests a second per route have filled its retentions (rate 0:
// no traffic at all).
func measure(tb testing.TB, routes, rate int, cfg config.History) (heap uint64, st Stats) {
	before := memsize.LiveHeap()
	h, err := New(cfg, Options{NoMachine: true})
	if err != nil {
		tb.Fatal(err)
	}
	buildRoutes(h, routes)
	if rate > 0 {
		fillRetention(h, rate, t0.Unix())
	}
	after := memsize.LiveHeap()
	st = h.Stats()
	runtime.KeepAlive(h)
	if after < before {
		return 0, st
	}
	return after - before, st
}

// BenchmarkMemory measures the live heap of the history (runtime.MemStats
// HeapAlloc after two collections, minus the same before it was built)
// with the retentions full (1 h per second, 24 h per minute), by routes
// (each with a service and an upstream host of its own: 3 series per
// route), traffic rate per route (every second of every series has data)
// and byte budget (max_bytes: the default 40 MiB, or none). It reports the
// retention the budget left. Run it once:
//
//	go test ./internal/history -run XXX -bench Memory -benchtime 1x
func BenchmarkMemory(b *testing.B) {
	for _, tc := range []struct {
		routes, rate int
		budget       int64
	}{
		{1000, 0, 40 << 20},
		{1000, 1, 40 << 20},
		{100, 1, 0},
		{100, 10, 0},
	} {
		name := fmt.Sprintf("routes=%d/rps-per-route=%d/max_bytes=%dMiB", tc.routes, tc.rate, tc.budget>>20)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				heap, st := measure(b, tc.routes, tc.rate, config.History{MaxBytes: config.ByteSize(tc.budget)})
				b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
				b.ReportMetric(float64(st.RingBytes)/(1<<20), "rings-MiB")
				b.ReportMetric(float64(st.CellBytes)/(1<<20), "cells-MiB")
				b.ReportMetric(float64(st.HeldBytes)/(1<<20), "held-MiB")
				b.ReportMetric(float64(st.Series), "series")
				if tc.rate > 0 {
					b.ReportMetric(float64(t0.Unix()-st.SecondsFrom.Unix())/60, "seconds-kept-min")
					b.ReportMetric(float64(t0.Unix()-st.MinutesFrom.Unix())/3600, "minutes-kept-h")
				}
			}
		})
	}
}

// TestSeriesCapAndBoundedMemory checks that the series cap holds (and
// counts what it refuses), that requests past the cap still count for the
// gateway, and that a second's record does not grow with the requests in
// it.
func TestSeriesCapAndBoundedMemory(t *testing.T) {
	h, clk := newTestHistory(t, config.History{MaxSeries: 50})
	buildRoutes(h, 100) // 300 series wanted
	st := h.Stats()
	if st.Series != 51 || st.Refused == 0 {
		t.Fatalf("%d series (cap 50 + the gateway), %d refused", st.Series, st.Refused)
	}
	// A route past the cap records into the gateway only.
	over := h.stageFor(middleware.Route{Name: "late", Services: []string{"late-svc"}})
	h.Tick(clk.Now())
	for i := 0; i < 7; i++ {
		over.Record(req("late-svc", 200, time.Millisecond, observe.ErrNone))
	}
	clk.Advance(time.Second)
	h.Tick(clk.Now())
	end := clk.Now().Truncate(time.Second)
	gw := rangeOf(t, h, ScopeGateway, "", end.Add(-time.Second), end, time.Second)
	if gw[0].V[Requests] != 7 {
		t.Fatalf("gateway saw %d of the capped route's 7 requests", gw[0].V[Requests])
	}
	if h.lookup(ScopeRoute, "late") != nil {
		t.Fatal("a series was created past the cap")
	}

	// Five requests and 20,000 requests of the same latencies in a second
	// take records of nearly the same size.
	size := func(n int) int64 {
		h, clk := newTestHistory(t, config.History{})
		st := h.stageFor(middleware.Route{Name: "r", Services: []string{"s"}})
		h.Tick(clk.Now())
		for i := 0; i < n; i++ {
			st.Record(req("s", 200, time.Duration(1+i%5)*time.Millisecond, observe.ErrNone))
		}
		clk.Advance(time.Second)
		h.Tick(clk.Now())
		return h.Stats().RingBytes
	}
	small, big := size(5), size(20000)
	if big > small+small/2 {
		t.Fatalf("a second of 20,000 requests takes %d bytes, one of 5 takes %d", big, small)
	}

	// The measured heap of 50 busy routes stays within a bound computed
	// from the per-series record sizes: the structure holds no hidden
	// per-request state.
	heap, s := measure(t, 50, 10, config.History{SecondRetention: config.Duration(10 * time.Minute), MinuteRetention: config.Duration(2 * time.Hour)})
	limit := uint64(s.RingBytes+s.CellBytes) + uint64(s.Series)*4096 + 2<<20
	t.Logf("50 routes at 10 rps, 10 min per second and 2 h per minute: heap %.1f MiB (rings %.1f MiB, cells %.1f MiB)",
		float64(heap)/(1<<20), float64(s.RingBytes)/(1<<20), float64(s.CellBytes)/(1<<20))
	if heap > limit {
		t.Fatalf("heap %d bytes, more than rings+cells+4 KiB per series (%d)", heap, limit)
	}
}

// TestByteBudgetDropsTheOldestFirst fills the retentions of 4 busy routes
// under a budget of three quarters of what they take unbounded: the rings
// end within it, the oldest per-minute data went first, and the newest
// data is intact.
func TestByteBudgetDropsTheOldestFirst(t *testing.T) {
	end := t0.Unix()
	ret := config.History{SecondRetention: config.Duration(10 * time.Minute), MinuteRetention: config.Duration(6 * time.Hour)}
	unbounded, err := New(ret, Options{NoMachine: true})
	if err != nil {
		t.Fatal(err)
	}
	buildRoutes(unbounded, 4)
	fillRetention(unbounded, 10, end)
	budget := unbounded.Stats().RingBytes * 3 / 4
	unbounded.Close()

	ret.MaxBytes = config.ByteSize(budget)
	h, err := New(ret, Options{NoMachine: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buildRoutes(h, 4)
	fillRetention(h, 10, end)
	st := h.Stats()
	if st.RingBytes > budget || st.DroppedMinutes == 0 || st.DroppedSeconds != 0 {
		t.Fatalf("rings %d bytes (budget %d): %+v", st.RingBytes, budget, st)
	}
	if !st.MinutesFrom.After(time.Unix(end, 0).Add(-6*time.Hour)) || st.SecondsFrom.After(time.Unix(end, 0).Add(-10*time.Minute)) {
		t.Fatalf("minutes from %v, seconds from %v: the minutes should go before any second", st.MinutesFrom, st.SecondsFrom)
	}
	// The newest seconds are whole; the hours before the budget's floor
	// are empty.
	p, err := Window(context.Background(), h.Source(), ScopeRoute, "route-3", time.Unix(end, 0), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if p.V[Requests] != 600*10 {
		t.Fatalf("the last 10 minutes hold %d requests, want %d", p.V[Requests], 600*10)
	}
	old, err := Window(context.Background(), h.Source(), ScopeRoute, "route-3", st.MinutesFrom, 6*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if old.V[Requests] != 0 {
		t.Fatalf("%d requests before the budget's floor", old.V[Requests])
	}
}

// fillZipf fills the retentions as a gateway of routes routes over
// services services (3 upstream hosts each) would leave them after total
// requests a second spread over the routes by Zipf's law (exponent 1.1):
// a few busy routes and a long tail that sees a request every few seconds
// or minutes. Each second and minute of each series holds a Poisson number
// of requests at its rate; slots with none take no record.
func fillZipf(h *History, routes, services int, total float64, end int64) {
	r := rand.New(rand.NewPCG(9, 10))
	var hsum float64
	for i := 1; i <= routes; i++ {
		hsum += 1 / math.Pow(float64(i), 1.1)
	}
	rates := map[*series]float64{}
	add := func(sc Scope, name string, rate float64) {
		if s := h.lookup(sc, name); s != nil {
			rates[s] += rate
		}
	}
	for i := 0; i < routes; i++ {
		rate := total / math.Pow(float64(i+1), 1.1) / hsum
		svc := fmt.Sprintf("svc-%d", i%services)
		add(ScopeRoute, fmt.Sprintf("route-%d", i), rate)
		add(ScopeService, svc, rate)
		for k := 0; k < 3; k++ {
			add(ScopeHost, fmt.Sprintf("%s/10.1.%d.%d:8080", svc, i%services, k), rate/3)
		}
		add(ScopeGateway, "", rate)
	}
	type key struct {
		n            int
		host, minute bool
		v            int
	}
	pool := map[key][]byte{}
	record := func(n int, host, minute bool) []byte {
		k := key{n, host, minute, r.IntN(64)}
		if b, ok := pool[k]; ok {
			return b
		}
		b := syntheticRecord(r, n, host, minute)
		pool[k] = b
		return b
	}
	poisson := func(l float64) int {
		if l > 50 {
			return max(0, int(l+math.Sqrt(l)*r.NormFloat64()+0.5))
		}
		n, p, lim := 0, 1.0, math.Exp(-l)
		for {
			p *= r.Float64()
			if p <= lim {
				return n
			}
			n++
		}
	}
	h.rot.Lock()
	defer h.rot.Unlock()
	h.started.Store(true)
	lastMin := end/60 - 1
	for m := lastMin - h.minSlots + 1; m <= lastMin; m++ {
		for s, rate := range rates {
			if n := poisson(60 * rate); n > 0 {
				s.mu.Lock()
				h.bytes.Add(int64(s.mins.add(h.minChunks, m, record(n, s.key.scope == ScopeHost, true))))
				s.mu.Unlock()
			}
			if mod(m+1, 60) == 0 {
				s.mu.Lock()
				h.bytes.Add(int64(s.mins.seal(h.codec, m)))
				s.mu.Unlock()
			}
		}
		h.lastRolled.Store(m)
		h.lastSealed.Store(m*60 + 59)
		h.enforceBudget()
	}
	for sec := end - h.secSlots; sec < end; sec++ {
		for s, rate := range rates {
			if n := poisson(rate); n > 0 {
				s.mu.Lock()
				h.bytes.Add(int64(s.secs.add(h.secChunks, sec, record(n, s.key.scope == ScopeHost, false))))
				s.mu.Unlock()
			}
			if mod(sec+1, 60) == 0 {
				s.mu.Lock()
				h.bytes.Add(int64(s.secs.seal(h.codec, sec)))
				s.mu.Unlock()
			}
		}
		if mod(sec+1, 60) == 0 {
			h.lastSealed.Store(sec)
			h.enforceBudget()
		}
	}
	h.lastSealed.Store(end - 1)
}

// BenchmarkMemoryZipf measures the live heap at 1,000 routes over 100
// services and 300 upstream hosts (1,401 series) with the retentions full
// of Zipf-spread traffic, by total request rate and byte budget:
//
//	go test ./internal/history -run XXX -bench MemoryZipf -benchtime 1x
func BenchmarkMemoryZipf(b *testing.B) {
	for _, tc := range []struct {
		rps    float64
		budget int64
	}{{100, 0}, {1000, 0}, {1000, 40 << 20}} {
		b.Run(fmt.Sprintf("routes=1000/total-rps=%g/max_bytes=%dMiB", tc.rps, tc.budget>>20), func(b *testing.B) {
			for b.Loop() {
				before := memsize.LiveHeap()
				h, err := New(config.History{MaxBytes: config.ByteSize(tc.budget)}, Options{NoMachine: true})
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < 1000; i++ {
					svc := fmt.Sprintf("svc-%d", i%100)
					st := h.stageFor(middleware.Route{Name: fmt.Sprintf("route-%d", i), Services: []string{svc}})
					for k := 0; k < 3; k++ {
						st.host(svc, fmt.Sprintf("10.1.%d.%d:8080", i%100, k))
					}
				}
				fillZipf(h, 1000, 100, tc.rps, t0.Unix())
				after := memsize.LiveHeap()
				st := h.Stats()
				runtime.KeepAlive(h)
				b.ReportMetric(float64(after-before)/(1<<20), "heap-MiB")
				b.ReportMetric(float64(st.RingBytes)/(1<<20), "rings-MiB")
				b.ReportMetric(float64(st.HeldBytes)/(1<<20), "held-MiB")
				b.ReportMetric(float64(st.Series), "series")
				b.ReportMetric(float64(t0.Unix()-st.SecondsFrom.Unix())/60, "seconds-kept-min")
				b.ReportMetric(float64(t0.Unix()-st.MinutesFrom.Unix())/3600, "minutes-kept-h")
			}
		})
	}
}

// TestAccountingMatchesHeap checks that what the history counts against
// max_bytes (RingBytes + HeldBytes, plus the coders' constant) is the heap
// it takes: 150 routes, each with its service and upstream host, whose
// retentions are filled past a 4 MiB budget, then five seconds of real
// requests through every route's cells (their histograms allocated,
// exemplars taken, the rotator's sums used). The budget must bind, the
// counted bytes stay within it, and the live heap (HeapAlloc after two
// collections, less the same before) must be within 0.9–1.1 of them.
func TestAccountingMatchesHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 4 MiB of history")
	}
	const routes, budget = 150, 4 << 20
	cfg := config.History{SecondRetention: config.Duration(20 * time.Minute), MinuteRetention: config.Duration(4 * time.Hour), MaxBytes: budget}
	before := memsize.LiveHeap()
	clk := clock.NewFake(t0)
	h, err := New(cfg, Options{Clock: clk, NoMachine: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	stages := make([]*stage, routes)
	for i := range stages {
		svc := fmt.Sprintf("svc-%d", i)
		stages[i] = h.stageFor(middleware.Route{Name: fmt.Sprintf("route-%d", i), Services: []string{svc}})
		stages[i].host(svc, fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250))
	}
	fillRetention(h, 5, t0.Unix())
	r := rand.New(rand.NewPCG(1, 2))
	for sec := 0; sec < 5; sec++ {
		for i, st := range stages {
			for k := 0; k < 5; k++ {
				rec := req(fmt.Sprintf("svc-%d", i), 200, time.Duration(5e6*math.Exp(0.6*r.NormFloat64())), observe.ErrNone)
				rec.Trace.Valid, rec.Trace.TraceID = true, [16]byte{byte(i), byte(k), byte(sec)}
				rec.Attempts[0].Upstream = fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250)
				st.Record(rec)
			}
		}
		clk.Advance(time.Second)
		h.Tick(clk.Now())
	}
	heap := int64(memsize.LiveHeap()) - int64(before)
	st := h.Stats()
	runtime.KeepAlive(stages)
	counted := st.RingBytes + st.HeldBytes
	ratio := float64(heap) / float64(counted+codecBytes)
	t.Logf("budget %d: counted %d (rings %d, held %d of which cells %d) + coders %d; heap %d: heap/counted %.3f; %d series, %d refused; seconds kept from %v, minutes from %v",
		budget, counted, st.RingBytes, st.HeldBytes, st.CellBytes, codecBytes, heap, ratio, st.Series, st.Refused, st.SecondsFrom.Sub(t0), st.MinutesFrom.Sub(t0))
	if st.DroppedMinutes == 0 || counted < budget*9/10 || counted > budget {
		t.Errorf("the budget should bind: counted %d of %d, %d minutes dropped", counted, budget, st.DroppedMinutes)
	}
	if st.CellBytes < int64(routes)*(2*atomBytes+hostCellBytes+3*histBytes) {
		t.Errorf("cells %d bytes for %d routes that had requests: their histograms are not counted", st.CellBytes, routes)
	}
	if ratio > 1.10 || ratio < 0.90 {
		t.Errorf("heap %d is %.2f times the %d bytes counted (with the coders); want within 0.90–1.10", heap, ratio, counted+codecBytes)
	}
}

// TestHeldBytesCapSeries checks that new series are refused, and counted
// as refused, once the series and cells hold half of max_bytes, so that
// the rest is left for records, and that requests of a refused route
// still count in the gateway's series.
func TestHeldBytesCapSeries(t *testing.T) {
	const budget = 64 << 10
	h, clk := newTestHistory(t, config.History{MaxBytes: budget})
	buildRoutes(h, 100) // 300 series wanted, far more than 32 KiB
	st := h.Stats()
	if st.Refused == 0 || st.Series >= 300 || st.Series < 10 {
		t.Fatalf("%d series, %d refused, held %d bytes of a %d budget", st.Series, st.Refused, st.HeldBytes, budget)
	}
	// The last series admitted may pass the half by one route's cells.
	if st.HeldBytes > budget/2+4<<10 {
		t.Fatalf("held %d bytes, more than half the budget %d", st.HeldBytes, budget)
	}
	last := h.stageFor(middleware.Route{Name: "late", Services: []string{"late-svc"}})
	h.Tick(clk.Now())
	last.Record(req("late-svc", 200, time.Millisecond, observe.ErrNone))
	clk.Advance(time.Second)
	h.Tick(clk.Now())
	end := clk.Now().Truncate(time.Second)
	if gw := rangeOf(t, h, ScopeGateway, "", end.Add(-time.Second), end, time.Second); gw[0].V[Requests] != 1 {
		t.Fatalf("the gateway saw %d of the refused route's request", gw[0].V[Requests])
	}
	if h.lookup(ScopeRoute, "late") != nil {
		t.Fatal("a series was created past half the budget")
	}
}
