package tracestore

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestStoredFormsHoldNoPointers keeps what the store holds per trace,
// span, log and posting free of pointers: the collector then marks a
// trace's entry (with its buffer, in the same block), spans, logs and
// lists without reading them, which is what keeps a full store from
// costing the gateway a collection's scan of it. For the entry it is
// more than cost: its block is allocated as bytes, so a pointer put in it
// would not be seen by the collector at all.
func TestStoredFormsHoldNoPointers(t *testing.T) {
	for _, v := range []any{traceEntry{}, storedSpan{}, storedLog{}, posting{}, SpanID{}, TraceID{}} {
		typ := reflect.TypeOf(v)
		if p := pointerIn(typ, typ.Name()); p != "" {
			t.Errorf("%s holds a pointer at %s", typ.Name(), p)
		}
	}
	var x entryExt
	for _, f := range []struct {
		name string
		elem reflect.Type
	}{
		{"spans", reflect.TypeOf(x.spans).Elem()},
		{"logs", reflect.TypeOf(x.logs).Elem()},
		{"buf", reflect.TypeOf(x.buf).Elem()},
		{"keys", reflect.TypeOf(x.keys).Elem()},
		{"segs", reflect.TypeOf(x.segs).Elem()},
	} {
		if p := pointerIn(f.elem, f.name); p != "" {
			t.Errorf("entryExt.%s holds a pointer at %s", f.name, p)
		}
	}
}

// pointerIn returns the path of a pointer-holding part of typ, or "".
func pointerIn(typ reflect.Type, path string) string {
	switch typ.Kind() {
	case reflect.Pointer, reflect.String, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func,
		reflect.Interface, reflect.UnsafePointer:
		return path
	case reflect.Array:
		return pointerIn(typ.Elem(), path+"[]")
	case reflect.Struct:
		for i := range typ.NumField() {
			f := typ.Field(i)
			if p := pointerIn(f.Type, path+"."+f.Name); p != "" {
				return p
			}
		}
	}
	return ""
}

// TestReusedSlots checks that a trace in the slot of an evicted one is
// neither found through the evicted trace's postings nor kept out of a
// list whose last posting is the evicted trace's.
func TestReusedSlots(t *testing.T) {
	s, fc := newTestStore(t, Options{MaxAge: time.Minute})
	put(s, 2, 1, spanOpts{route: "/r"})
	put(s, 1, 1, spanOpts{route: "/r"})
	put(s, 3, 1, spanOpts{})
	fc.Advance(30 * time.Second)
	put(s, 2, 2, spanOpts{parent: 1}) // trace 2 stays young
	put(s, 3, 2, spanOpts{parent: 1})
	fc.Advance(31 * time.Second)
	s.mu.Lock()
	slot1 := s.lookup(tid(1)).slot
	s.expireLocked(fc.Now().UnixNano()) // trace 1 only
	s.mu.Unlock()
	if has(s, 1) || !has(s, 2) || !has(s, 3) {
		t.Fatalf("after expiry: trace 1 %v, 2 %v, 3 %v; want only 1 gone", has(s, 1), has(s, 2), has(s, 3))
	}
	put(s, 5, 1, spanOpts{route: "/r", service: "other"})
	s.mu.RLock()
	reused := s.lookup(tid(5)).slot == slot1
	s.mu.RUnlock()
	if !reused {
		t.Fatal("trace 5 did not take trace 1's slot; the test needs it to")
	}
	ids := func(q Query) []TraceID {
		var out []TraceID
		for _, sum := range s.Search(q) {
			out = append(out, sum.TraceID)
		}
		slices.SortFunc(out, func(a, b TraceID) int { return slices.Compare(a[:], b[:]) })
		return out
	}
	if got, want := ids(Query{Route: "/r"}), []TraceID{tid(2), tid(5)}; !slices.Equal(got, want) {
		t.Errorf("route /r: %v, want traces 2 and 5", got)
	}
	if got, want := ids(Query{}), []TraceID{tid(2), tid(3), tid(5)}; !slices.Equal(got, want) {
		t.Errorf("every trace: %v, want 2, 3 and 5 once each", got)
	}
	if got := ids(Query{Service: "svc", Operation: "GET /x"}); len(got) != 2 {
		t.Errorf("service svc: %v, want traces 2 and 3", got)
	}
}

// TestProcessesNotInternedLeaveTheTable fills the interned processes and
// checks that the processes past them are kept while their spans are and
// give their slots back with them.
func TestProcessesNotInternedLeaveTheTable(t *testing.T) {
	s, fc := newTestStore(t, Options{MaxAge: time.Minute})
	for i := range maxProcs {
		put(s, uint64(i+1), 1, spanOpts{service: fmt.Sprintf("interned-%d", i)})
	}
	fc.Advance(2 * time.Minute)
	const extra = 50
	for round := range 3 {
		for i := range extra {
			n := uint64(1_000_000 + round*extra + i)
			put(s, n, 1, spanOpts{service: fmt.Sprintf("extra-%d-%d", round, i)})
			tr, ok := s.GetTrace(tid(n), false)
			if !ok || tr.Spans[0].Resource.ServiceName != fmt.Sprintf("extra-%d-%d", round, i) {
				t.Fatalf("trace %d: stored %v, want service extra-%d-%d", n, ok, round, i)
			}
		}
		s.mu.Lock()
		held := len(s.procTab) - 1 - len(s.freeProcs)
		size := len(s.procTab)
		fc.Advance(2 * time.Minute)
		s.expireLocked(fc.Now().UnixNano())
		after := len(s.procTab) - 1 - len(s.freeProcs)
		s.mu.Unlock()
		if held != maxProcs+extra || after != maxProcs {
			t.Errorf("round %d: %d processes held with the extra traces, %d after they left; want %d and %d",
				round, held, after, maxProcs+extra, maxProcs)
		}
		if round > 0 && size != maxProcs+extra+1 {
			t.Errorf("round %d: the table grew to %d slots; want the freed ones reused (%d)", round, size, maxProcs+extra+1)
		}
	}
}

// TestListsCompactInPlace checks the posting lists of a full store that
// evicts its oldest traces as it takes new ones: a list every trace is in
// keeps the array it has (no growth, no new array) with room for at most
// about one and a quarter times as many postings again as it holds, holds
// exactly the stored traces, in order, and answers searches with them,
// newest first; a list whose traces have all gone leaves the index and
// the count.
func TestListsCompactInPlace(t *testing.T) {
	s, _ := newTestStore(t, Options{Budget: MinBudget})
	n := uint64(1)
	for ; n < 6000; n++ {
		put(s, n, 1, spanOpts{service: "a"})
	}
	p := s.idx["s\x00a"]
	if p == nil {
		t.Fatal("no list for service a")
	}
	stored := s.traces.len()
	if stored >= 5000 {
		t.Fatalf("the store did not evict: %d traces", stored)
	}
	for ; n < 12000; n++ {
		put(s, n, 1, spanOpts{service: "a"})
	}
	arr, capBefore := &p.list[:1][0], cap(p.list)
	for ; n < 18000; n++ {
		put(s, n, 1, spanOpts{service: "a"})
		if len(p.list)-p.dead != s.traces.len() {
			t.Fatalf("after trace %d: %d live postings for %d traces", n, len(p.list)-p.dead, s.traces.len())
		}
	}
	if &p.list[:1][0] != arr || cap(p.list) != capBefore {
		t.Errorf("the list was given a new array (cap %d → %d) in a steady state", capBefore, cap(p.list))
	}
	if live := len(p.list) - p.dead; cap(p.list) > (live*3/2+16)*3/2 {
		t.Errorf("cap %d for %d live postings", cap(p.list), live)
	}
	for i, x := range p.list {
		if i > 0 && x.seq <= p.list[i-1].seq {
			t.Fatalf("postings out of order at %d", i)
		}
	}
	var got, want []TraceID
	for _, sum := range s.Search(Query{Service: "a", Limit: 5}) {
		got = append(got, sum.TraceID)
	}
	for m := n - 1; m >= n-5; m-- {
		want = append(want, tid(m))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("newest traces of a: %v, want %v", got, want)
	}

	// Service b replaces a: a's list empties and leaves the index.
	used := s.Stats().Bytes
	for m := uint64(0); m < 6000; m++ {
		put(s, 100000+m, 1, spanOpts{service: "b"})
	}
	if s.idx["s\x00a"] != nil || !p.gone || p.list != nil {
		t.Fatalf("the emptied list of a is still indexed (gone %v, %d postings)", p.gone, len(p.list))
	}
	if st := s.Stats(); st.Bytes > st.Budget || st.Bytes < used/2 {
		t.Fatalf("bytes %d (before %d, budget %d)", st.Bytes, used, st.Budget)
	}
}

// TestEvictedEntriesAreReused checks that a full store stores new traces
// in the entries (blocks with their buffers) of evicted ones, that a
// reused entry shows only its new trace, and that the entries kept
// meanwhile stay within their share of the budget and in its count. The
// traces are of one size, so every evicted entry fits a new one.
func TestEvictedEntriesAreReused(t *testing.T) {
	s, _ := newTestStore(t, Options{Budget: 4 * MinBudget})
	attrs := func(n uint64) []KeyValue {
		return []KeyValue{String("pad", fmt.Sprintf("%0400d", n)), Int("n", 1<<40+int64(n))}
	}
	seen := map[*traceEntry]uint64{} // entry -> the first trace stored in it
	reused := 0
	for n := uint64(1); n <= 10000; n++ {
		put(s, n, 1, spanOpts{route: fmt.Sprintf("/r%d", n%3), attrs: attrs(n)})
		s.mu.RLock()
		e := s.lookup(tid(n))
		if first, ok := seen[e]; ok && first != n {
			reused++
		} else {
			seen[e] = n
		}
		spare, spareBytes, bytes := len(s.spare), s.spareBytes, s.bytesLocked()
		s.mu.RUnlock()
		if spareBytes > s.budget/256 || spare > maxSpare || bytes > s.budget {
			t.Fatalf("after trace %d: %d spare entries of %d bytes, %d bytes of %d", n, spare, spareBytes, bytes, s.budget)
		}
	}
	if st := s.Stats(); st.Traces > 5000 || reused < 5000 {
		t.Fatalf("%d traces stored, %d new traces in an evicted trace's entry; want a full store reusing entries", st.Traces, reused)
	}
	// The traces in reused entries read as what was written for them.
	for n := uint64(9990); n <= 10000; n++ {
		tr, ok := s.GetTrace(tid(n), false)
		if !ok || len(tr.Spans) != 1 || tr.Spans[0].SpanID != sid(n*100+1) {
			t.Fatalf("trace %d: %+v", n, tr)
		}
		got := tr.Spans[0].Attributes
		if want := attrs(n); len(got) < 2 || !reflect.DeepEqual(got[:2], want) {
			t.Fatalf("trace %d: attributes %v, want %v", n, got, want)
		}
		ids := func(q Query) bool {
			q.Limit = 100
			for _, sm := range s.Search(q) {
				if sm.TraceID == tid(n) {
					return true
				}
			}
			return false
		}
		if !ids(Query{Route: fmt.Sprintf("/r%d", n%3)}) || ids(Query{Route: fmt.Sprintf("/r%d", (n+1)%3)}) {
			t.Fatalf("trace %d is not found by its route alone", n)
		}
	}
}

// TestSparesFollowTraceSizes checks that kept entries whose room does
// not fit the traces that arrive are let go: after the traces grow past
// the room of the entries evicted so far, a store turned over once more
// reuses entries again.
func TestSparesFollowTraceSizes(t *testing.T) {
	s, _ := newTestStore(t, Options{Budget: 4 * MinBudget})
	pad := 300
	n := uint64(0)
	run := func(count int) (reused int) {
		for range count {
			n++
			s.mu.RLock()
			var before map[*traceEntry]bool
			if len(s.spare) > 0 {
				before = map[*traceEntry]bool{}
				for _, e := range s.spare {
					before[e] = true
				}
			}
			s.mu.RUnlock()
			put(s, n, 1, spanOpts{attrs: []KeyValue{String("pad", strings.Repeat("p", pad))}})
			s.mu.RLock()
			if before[s.lookup(tid(n))] {
				reused++
			}
			s.mu.RUnlock()
		}
		return reused
	}
	run(8000) // fills the store
	if r := run(2000); r < 1500 {
		t.Fatalf("traces of one size: %d of 2000 reused an entry", r)
	}
	pad = 1500 // past twice the room of every entry so far
	run(int(s.Stats().Traces) + 1000)
	s.mu.RLock()
	for i, e := range s.spare {
		if e.room < 1500 {
			t.Errorf("spare entry %d: room %d kept after the traces outgrew it", i, e.room)
		}
	}
	s.mu.RUnlock()
	if r := run(2000); r < 1500 {
		t.Fatalf("after the traces grew: %d of 2000 reused an entry", r)
	}
}

// TestTraceOutgrowsItsBlock checks a trace whose spans come in many
// batches: its buffer leaves its block for the entry's extension, its
// spans and logs read back whole, and the extension goes with it.
func TestTraceOutgrowsItsBlock(t *testing.T) {
	s, _ := newTestStore(t, Options{Budget: MinBudget})
	for k := uint64(1); k <= 80; k++ {
		o := spanOpts{attrs: []KeyValue{String("pad", fmt.Sprintf("%0300d", k))}}
		if k > 1 {
			o.parent = 1
		}
		put(s, 7, k, o)
	}
	s.mu.RLock()
	e := s.lookup(tid(7))
	slot := e.slot
	if e.ext&(extBuf|extSpans) != extBuf|extSpans || s.exts[slot] == nil || s.exts[slot].byID == nil {
		t.Fatalf("a trace of 80 spans of 300 bytes: extension %b (%v)", e.ext, s.exts[slot] != nil)
	}
	if used := s.bytesLocked(); used > s.budget {
		t.Fatalf("%d bytes counted, budget %d", used, s.budget)
	}
	s.mu.RUnlock()
	tr, ok := s.GetTrace(tid(7), false)
	if !ok || len(tr.Spans) != 80 {
		t.Fatalf("trace 7: %d spans", len(tr.Spans))
	}
	for i, sp := range tr.Spans {
		if want := fmt.Sprintf("%0300d", i+1); sp.SpanID != sid(700+uint64(i+1)) || len(sp.Attributes) == 0 || sp.Attributes[0].Str != want {
			t.Fatalf("span %d: %v %v", i, sp.SpanID, sp.Attributes)
		}
	}
	// Other traces push it out: its slot's extension goes with it.
	for n := uint64(100); !func() bool { _, ok := s.GetTrace(tid(7), false); return !ok }(); n++ {
		put(s, n, 1, spanOpts{})
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if x := s.exts[slot]; x != nil && (s.ents[slot].e == nil || s.ents[slot].e.ext == 0) {
		t.Fatalf("slot %d keeps an extension its trace does not have", slot)
	}
}
