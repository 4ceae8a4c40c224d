package tracestore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// scanFind answers q by checking every stored trace, newest first: what
// the indexes must agree with.
func scanFind(s *Store, q Query) []TraceID {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var es []*traceEntry
	s.eachTrace(func(e *traceEntry) {
		if s.matches(e, &q) {
			es = append(es, e)
		}
	})
	var out []TraceID
	for _, e := range es {
		out = append(out, e.id)
	}
	slices.SortFunc(out, func(a, b TraceID) int { return slices.Compare(a[:], b[:]) })
	return out
}

func searchIDs(s *Store, q Query) []TraceID {
	q.Limit = MaxLimit
	var out []TraceID
	for _, sum := range s.Search(q) {
		out = append(out, sum.TraceID)
	}
	slices.SortFunc(out, func(a, b TraceID) int { return slices.Compare(a[:], b[:]) })
	return out
}

func TestTagIndexAnswersLowCardinalityTags(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	plans := []string{"free", "team", "enterprise"}
	for n := uint64(1); n <= 300; n++ {
		attrs := []KeyValue{
			String("customer.plan", plans[n%3]), String("user.id", fmt.Sprintf("u%d", n)),
			Int("shard", int64(n%7)), Bool("cached", n%2 == 0), Float("ratio", float64(n%4)/4),
			{Key: "blob", Type: TypeBinary, Bytes: []byte{byte(n % 5)}},
		}
		put(s, n, 1, spanOpts{service: "api", attrs: attrs, err: n%10 == 0})
		b := s.NewBatch(Resource{ServiceName: "db", Attributes: []KeyValue{String("deployment.environment", []string{"prod", "staging"}[n%2])}})
		b.AddSpan(&Span{TraceID: tid(n), SpanID: sid(n*100 + 2), ParentSpanID: sid(n*100 + 1), Name: "query", Start: t0, End: t0.Add(1e6),
			Events:     []Event{{Time: t0, Name: "exception", Attributes: []KeyValue{String("exception.type", []string{"Timeout", "Refused"}[n%2])}}},
			Attributes: []KeyValue{String(keyErrorKind, []string{"timeout", "reset", "none"}[n%3])}})
		s.Write(b)
	}
	queries := []Query{
		{Tags: map[string]string{"customer.plan": "enterprise"}},
		{Service: "api", Tags: map[string]string{"customer.plan": "team", "shard": "3"}},
		{Tags: map[string]string{"cached": "true", "shard": "0"}},
		{Tags: map[string]string{"ratio": "0.25"}},
		{Tags: map[string]string{"blob": "03"}},
		{Tags: map[string]string{"deployment.environment": "staging"}}, // resource
		{Tags: map[string]string{"exception.type": "Timeout"}},         // event
		{Tags: map[string]string{"customer.plan": "enterprise"}, Error: true},
		{ErrorKind: "reset"},
		{Tags: map[string]string{"customer.plan": "gold"}},             // indexed key, no such value
		{Tags: map[string]string{"no.such.key": "x"}},                  // never seen
		{Tags: map[string]string{"user.id": "u77"}},                    // high cardinality: a scan
		{Tags: map[string]string{"error": "true"}},                     // derived
		{Tags: map[string]string{"span.kind": "server", "shard": "5"}}, // derived + indexed
	}
	for _, q := range queries {
		want, got := scanFind(s, q), searchIDs(s, q)
		if !slices.Equal(got, want) {
			t.Errorf("%+v: the search found %d traces, a scan %d", q, len(got), len(want))
		}
	}
	if got := len(searchIDs(s, Query{Tags: map[string]string{"customer.plan": "enterprise"}})); got != 100 {
		t.Errorf("customer.plan=enterprise: %d traces, want 100", got)
	}
	// The indexed searches read the tag list, not the whole store.
	s.mu.RLock()
	lists := s.candidates(&Query{Tags: map[string]string{"customer.plan": "enterprise", "shard": "3"}})
	s.mu.RUnlock()
	if len(lists) != 1 || lists[0].key != "t\x00shard\x003" {
		t.Errorf("candidates %v, want the shard=3 list (the smaller)", keysOf(lists))
	}
	st := s.TagIndexStats()
	if st.Off != 1 || !s.tagKeys["user.id"].off {
		t.Errorf("tag index %+v: user.id (300 values) should be the one key switched off", st)
	}
	s.mu.RLock()
	for k := range s.idx {
		if len(k) > 10 && k[:10] == "t\x00user.id\x00" {
			t.Errorf("list %q of a key switched off still held", k)
		}
	}
	s.mu.RUnlock()
}

func keysOf(ps []*postings) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.key)
	}
	return out
}

// TestTagIndexAgreesWithScanUnderEviction stores random traces through a
// small budget (so lists die and keys come and go) and compares every
// search with a scan.
func TestTagIndexAgreesWithScanUnderEviction(t *testing.T) {
	s, _ := newTestStore(t, Options{Budget: MinBudget})
	r := rand.New(rand.NewPCG(7, 8))
	for n := uint64(1); n <= 6000; n++ {
		attrs := []KeyValue{
			String("tier", fmt.Sprintf("t%d", r.IntN(5))),
			String("version", fmt.Sprintf("v%d", n/500)), // drifts: old values die with their traces
			Int("slot", int64(r.IntN(100))),              // > maxTagValuesPerKey values
			String("region", []string{"eu", "eu", "eu", "eu", "eu", "eu", "eu", "eu", "eu", "us"}[r.IntN(10)]),
		}
		put(s, n, 1, spanOpts{service: fmt.Sprintf("svc-%d", r.IntN(3)), attrs: attrs})
	}
	if k := s.tagKeys["region"]; k.off || len(k.common) != 1 || k.common[0] != "eu" || s.idx["t\x00region\x00us"] == nil {
		t.Fatalf("region: %+v; eu (90%% of traces) should be common, us indexed", *k)
	}
	if !s.tagKeys["slot"].off || s.tagKeys["tier"].off || s.tagKeys["version"].off {
		t.Fatalf("key states: slot %+v tier %+v version %+v", *s.tagKeys["slot"], *s.tagKeys["tier"], *s.tagKeys["version"])
	}
	alive := map[string]bool{}
	s.eachTrace(func(e *traceEntry) {
		for _, kv := range s.copyTrace(e).Spans[0].Attributes {
			if kv.Key == "version" {
				alive[kv.Str] = true
			}
		}
	})
	if v := s.tagKeys["version"].values; v != len(alive) || v >= 12 {
		t.Errorf("version has %d lists alive for %d values stored; lists of evicted values should be gone", v, len(alive))
	}
	for i := 0; i < 200; i++ {
		q := Query{Tags: map[string]string{}}
		if r.IntN(2) == 0 {
			q.Tags["tier"] = fmt.Sprintf("t%d", r.IntN(6))
		}
		if r.IntN(2) == 0 {
			q.Tags["version"] = fmt.Sprintf("v%d", r.IntN(13))
		}
		if r.IntN(3) == 0 {
			q.Tags["slot"] = fmt.Sprint(r.IntN(100))
		}
		if r.IntN(3) == 0 {
			q.Service = fmt.Sprintf("svc-%d", r.IntN(3))
		}
		if r.IntN(3) == 0 {
			q.Tags["region"] = []string{"eu", "us", "ap"}[r.IntN(3)]
		}
		want, got := scanFind(s, q), searchIDs(s, q)
		if len(want) > MaxLimit {
			continue
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%+v: the search found %d traces, a scan %d", q, len(got), len(want))
		}
	}
	st := s.Stats()
	if st.Bytes > st.Budget {
		t.Fatalf("bytes %d over budget %d", st.Bytes, st.Budget)
	}
}

// TestTagIndexBounds: the caps on keys and lists hold, and the index's
// bytes are counted (a store emptied of traces returns to what the
// catalogues hold).
func TestTagIndexBounds(t *testing.T) {
	s, fc := newTestStore(t, Options{MaxAge: 60e9})
	for n := uint64(1); n <= 3000; n++ {
		put(s, n, 1, spanOpts{attrs: []KeyValue{String(fmt.Sprintf("k%d", n%1500), fmt.Sprint(n%40))}})
	}
	st := s.TagIndexStats()
	if st.Keys > maxTagKeys || st.Lists > maxTagLists || !s.tagKeysFull {
		t.Fatalf("tag index %+v (full %v): over its caps", st, s.tagKeysFull)
	}
	// A key that came after the cap is not trusted as "never seen".
	if _, tracked := s.tagKeys["k1400"]; tracked {
		t.Fatal("k1400 tracked past the cap")
	}
	if got := len(searchIDs(s, Query{Tags: map[string]string{"k1400": "0"}})); got != 1 {
		t.Fatalf("k1400=0 (a key past the cap): %d traces, want 1", got)
	}
	withIndex := s.Stats().Bytes
	fc.Advance(120e9)
	put(s, 9999, 1, spanOpts{})
	after := s.Stats()
	if after.Traces != 1 {
		t.Fatalf("%d traces after expiry", after.Traces)
	}
	if s.tagLists != 0 {
		t.Fatalf("%d tag lists after every trace went", s.tagLists)
	}
	if withIndex-after.Bytes < int64(st.Lists)*64 {
		t.Fatalf("bytes %d → %d: the tag lists were not counted", withIndex, after.Bytes)
	}
}

// TestTagMatchEveryAttribute checks the span scan (the path a search takes
// for a key the tag index does not hold) at every attribute position and
// type: each attribute is found by its value as text, and not by another.
func TestTagMatchEveryAttribute(t *testing.T) {
	for _, index := range []bool{false, true} {
		s, _ := newTestStore(t, Options{})
		s.noTagLookup = !index
		attrs := []KeyValue{
			String("a.string", "alpha"), Int("b.int", -42), Bool("c.bool", true), Float("d.float", 2.5),
			{Key: "e.binary", Type: TypeBinary, Bytes: []byte{0xca, 0xfe}}, String("f.string", "omega"),
			String("g.long", fmt.Sprintf("%0100d", 7)), Int("h.int", 9),
		}
		put(s, 1, 1, spanOpts{attrs: attrs})
		put(s, 2, 1, spanOpts{attrs: []KeyValue{String("a.string", "beta")}})
		for _, kv := range attrs {
			if got := searchIDs(s, Query{Tags: map[string]string{kv.Key: kv.AsString()}}); len(got) != 1 || got[0] != tid(1) {
				t.Errorf("index %v: %s=%s found %v", index, kv.Key, kv.AsString(), got)
			}
			if got := searchIDs(s, Query{Tags: map[string]string{kv.Key: kv.AsString() + "0"}}); len(got) != 0 {
				t.Errorf("index %v: %s=%s0 found %v", index, kv.Key, kv.AsString(), got)
			}
		}
	}
}

// TestTagIndexByPositionAgreesWithScan stores spans of a few operations
// whose attributes mostly repeat in place, as the gateway's do, but whose
// values change length, whose keys come and go (which shifts the ones
// after), and whose keys and values leave the index on the way (high
// cardinality, common values, evicted lists): every tag search must agree
// with a scan of the stored traces, and the operations' attribute memos
// must have been used.
func TestTagIndexByPositionAgreesWithScan(t *testing.T) {
	s, _ := newTestStore(t, Options{Budget: MinBudget})
	rng := rand.New(rand.NewPCG(5, 6))
	ops := []string{"GET /a", "GET upstream", "POST /b"}
	for n := uint64(1); n <= 6000; n++ {
		attrs := []KeyValue{
			String("method", "GET"), // common
			String("tier", []string{"gold", "silver", "bronze-long-name"}[rng.IntN(3)]),
			Int("peer.port", int64(30000+rng.IntN(5000))), // switched off
			Int("status", []int64{200, 200, 200, 503, 7}[rng.IntN(5)]),
		}
		if rng.IntN(4) == 0 {
			attrs = append(attrs[:2], append([]KeyValue{String("extra", fmt.Sprint(rng.IntN(3)))}, attrs[2:]...)...)
		}
		if n > 3000 && rng.IntN(3) == 0 {
			attrs = append(attrs, Bool("late", rng.IntN(2) == 0)) // a key first seen late
		}
		attrs = append(attrs, String("zone", fmt.Sprintf("z%d", rng.IntN(4))))
		op := ops[rng.IntN(len(ops))]
		if n%2100 < 50 {
			// An operation that comes back after the store has evicted
			// every trace of it: its memo's lists have left the index.
			op = "GET /rare"
			attrs = []KeyValue{String("method", "GET"), Int("peer.port", int64(30000+rng.IntN(5000))), String("burst", "on")}
		}
		put(s, n, 1, spanOpts{service: "edge", name: op, attrs: attrs})
		if n%1000 == 0 || n%2100 == 49 {
			for _, q := range []Query{
				{Tags: map[string]string{"tier": "bronze-long-name"}},
				{Tags: map[string]string{"tier": "gold", "status": "503"}},
				{Tags: map[string]string{"status": "7"}},
				{Tags: map[string]string{"extra": "1"}},
				{Tags: map[string]string{"late": "true", "zone": "z2"}},
				{Tags: map[string]string{"zone": "z3"}, Operation: "POST /b", Service: "edge"},
				{Tags: map[string]string{"method": "GET", "zone": "z0"}},
				{Tags: map[string]string{"peer.port": "31234"}},
				{Tags: map[string]string{"burst": "on"}},
			} {
				want, got := scanFind(s, q), searchIDs(s, q)
				if len(want) >= MaxLimit {
					t.Fatalf("%+v matches %d traces: the test needs fewer than the searches' limit", q, len(want))
				}
				if !slices.Equal(got, want) {
					t.Fatalf("after %d traces, %+v: the search found %d traces, a scan %d", n, q, len(got), len(want))
				}
			}
		}
	}
	memos := 0
	for i := range s.ops.slots {
		if am := s.ops.slots[i].attrs; am != nil && len(am.ends) > 0 {
			memos++
		}
	}
	if memos < len(ops) {
		t.Fatalf("%d operations hold an attribute memo, want %d", memos, len(ops))
	}
	if !s.tagKeys["peer.port"].off {
		t.Fatal("peer.port is still indexed: the test needs a key switched off")
	}
}
