package tracestore

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"
)

// The writer's memos (posting lists by kind and parts, operations, tag
// values) must give the answers the maps they stand in front of give.

func TestKeyCacheMatchesDict(t *testing.T) {
	d := newDict()
	var c keyCache
	// More keys than the cache has slots, and than the dictionary holds,
	// each asked for twice, the second time as a copy at another address.
	for round := range 2 {
		for i := range maxDictKeys + 500 {
			k := fmt.Sprintf("attr.%d", i)
			if round == 1 {
				k = string([]byte(k))
			}
			if got, want := c.ref(d, k), d.ref(k); got != want {
				t.Fatalf("round %d: key %q: cache gives ref %d, dictionary %d", round, k, got, want)
			}
		}
	}
	if got := c.ref(d, ""); got != d.ref("") {
		t.Errorf("empty key: cache gives %d, dictionary %d", got, d.ref(""))
	}
}

func TestMemosForgetListsThatLeaveTheIndex(t *testing.T) {
	s, fc := newTestStore(t, Options{MaxAge: time.Minute})
	attrs := []KeyValue{String("tier", "gold"), Int("shard", 7)}
	put(s, 1, 1, spanOpts{service: "a", route: "/r", status: 200, attrs: attrs})
	fc.Advance(2 * time.Minute)
	put(s, 2, 1, spanOpts{service: "b"}) // expires trace 1: the lists of service a empty and leave the index
	s.mu.RLock()
	_, still := s.idx["s\x00a"]
	s.mu.RUnlock()
	if still {
		t.Fatal("the service list of an expired trace is still in the index")
	}
	put(s, 3, 1, spanOpts{service: "a", route: "/r", status: 200, attrs: attrs})
	for _, q := range []Query{
		{Service: "a"},
		{Service: "a", Operation: "GET /x"},
		{Tags: map[string]string{"tier": "gold"}},
		{Tags: map[string]string{"shard": "7"}},
		{Tags: map[string]string{keyHTTPRoute: "/r"}},
	} {
		got := s.Search(q)
		if len(got) != 1 || got[0].TraceID != tid(3) {
			t.Errorf("search %+v after the lists were rebuilt: %d results, want trace 3", q, len(got))
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, k := range []string{"s\x00a", "o\x00a\x00GET /x", "r\x00/r", "h\x002", "t\x00tier\x00gold"} {
		p := s.idx[k]
		if p == nil || len(p.list) != 1 || s.entryOf(p.list[0]) == nil || s.entryOf(p.list[0]).id != tid(3) {
			t.Errorf("list %q does not hold just trace 3", k)
		}
	}
}

func TestTagMemoFindsEveryValue(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	const traces, values = 600, 50
	for n := uint64(1); n <= traces; n++ {
		v := int64(n % values)
		put(s, n, 1, spanOpts{attrs: []KeyValue{
			Int("n", v), String("s", "v"+strconv.FormatInt(v, 10)), Bool("odd", v%2 == 1), Float("f", float64(v)/2),
		}})
	}
	for v := range int64(values) {
		var want []TraceID
		for n := uint64(1); n <= traces; n++ {
			if int64(n%values) == v {
				want = append(want, tid(n))
			}
		}
		for _, tags := range []map[string]string{
			{"n": strconv.FormatInt(v, 10)},
			{"s": "v" + strconv.FormatInt(v, 10)},
			{"f": KeyValue{Type: TypeFloat64, Float: float64(v) / 2}.AsString()},
		} {
			q := Query{Tags: tags, Limit: traces}
			var got []TraceID
			for _, sum := range s.Search(q) {
				got = append(got, sum.TraceID)
			}
			slices.SortFunc(got, func(a, b TraceID) int { return slices.Compare(a[:], b[:]) })
			if !slices.Equal(got, want) {
				t.Fatalf("tags %v: %d traces, want %d", tags, len(got), len(want))
			}
		}
	}
	// The lists exist (the index answered, not a scan).
	s.mu.RLock()
	defer s.mu.RUnlock()
	if p := s.idx["t\x00n\x0049"]; p == nil || len(p.list) != traces/values {
		t.Errorf("tag list n=49 missing or wrong")
	}
}
