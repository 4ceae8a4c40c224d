package tracestore

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/vantage-gateway/vantage/internal/memsize"
)

// TestTraceTableMatchesMap drives the table of trace ids with random
// inserts and removals against a Go map, through growth and shrinking,
// and checks after every step that each item is reachable from its home
// (no empty place between them), which removal's backward shift must
// keep.
func TestTraceTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tt := newTraceTable()
	ents := []entSlot{{}}
	var free []uint32
	want := map[TraceID]uint32{}
	var ids []TraceID
	newID := func() TraceID {
		var id TraceID
		binary.LittleEndian.PutUint64(id[:8], rng.Uint64())
		binary.LittleEndian.PutUint64(id[8:], rng.Uint64())
		return id
	}
	check := func(step int) {
		t.Helper()
		if tt.len() != len(want) {
			t.Fatalf("step %d: table holds %d, map %d", step, tt.len(), len(want))
		}
		if 2*tt.n > len(tt.items) || (len(tt.items) > minTraceTable && 8*tt.n < len(tt.items)) {
			t.Fatalf("step %d: %d items in %d places", step, tt.n, len(tt.items))
		}
		mask := len(tt.items) - 1
		for i, it := range tt.items {
			if it.slot == 0 {
				continue
			}
			for j := int(it.tag >> tt.shift); j != i; j = (j + 1) & mask {
				if tt.items[j].slot == 0 {
					t.Fatalf("step %d: item at %d has its home at %d and an empty place at %d between", step, i, it.tag>>tt.shift, j)
				}
			}
		}
	}
	// Fill past several growths, drain below several shrinks, and churn
	// at a steady size in between, as a full store does.
	phases := []struct{ steps, pAdd int }{{20000, 90}, {20000, 50}, {30000, 5}, {10000, 60}}
	step := 0
	for _, ph := range phases {
		for range ph.steps {
			step++
			if len(ids) == 0 || rng.IntN(100) < ph.pAdd {
				id := newID()
				slot, at, tag := tt.find(id, ents)
				if slot != 0 {
					t.Fatalf("step %d: a new id found in slot %d", step, slot)
				}
				var s uint32
				if n := len(free); n > 0 {
					s, free = free[n-1], free[:n-1]
				} else {
					s = uint32(len(ents))
					ents = append(ents, entSlot{})
				}
				ents[s] = entSlot{e: &traceEntry{id: id, slot: s}}
				tt.insert(at, tag, s)
				want[id] = s
				ids = append(ids, id)
			} else {
				k := rng.IntN(len(ids))
				id := ids[k]
				ids[k] = ids[len(ids)-1]
				ids = ids[:len(ids)-1]
				s := want[id]
				tt.remove(tt.tag(id), s)
				delete(want, id)
				ents[s] = entSlot{}
				free = append(free, s)
			}
			if step%97 == 0 {
				check(step)
			}
		}
		check(step)
		for id, s := range want {
			if got, _, _ := tt.find(id, ents); got != s {
				t.Fatalf("step %d: id in slot %d found in slot %d", step, s, got)
			}
		}
		for range 1000 {
			if got, _, _ := tt.find(newID(), ents); got != 0 {
				t.Fatalf("step %d: an absent id found in slot %d", step, got)
			}
		}
	}
	if len(tt.items) != minTraceTable && tt.n < 64 {
		t.Errorf("%d items left in %d places: the table did not shrink", tt.n, len(tt.items))
	}
}

// TestTraceTableCountsItsMemory checks that the changes insert and remove
// report add up to the table's memory.
func TestTraceTableCountsItsMemory(t *testing.T) {
	tt := newTraceTable()
	ents := []entSlot{{}}
	counted := tt.bytes()
	var ids []TraceID
	for n := range 10000 {
		var id TraceID
		binary.BigEndian.PutUint64(id[8:], uint64(n+1)) // sequential ids, as some clients make
		ents = append(ents, entSlot{e: &traceEntry{id: id}})
		_, at, tag := tt.find(id, ents)
		counted += tt.insert(at, tag, uint32(len(ents)-1))
		ids = append(ids, id)
	}
	if want := memsize.Alloc(int64(len(tt.items)) * 8); counted != want || len(tt.items) != 32768 {
		t.Fatalf("after 10000 inserts: counted %d, table of %d places holds %d", counted, len(tt.items), want)
	}
	for i, id := range ids[:9900] {
		counted += tt.remove(tt.tag(id), uint32(i+1))
	}
	if want := memsize.Alloc(int64(len(tt.items)) * 8); counted != want || len(tt.items) > 1024 {
		t.Fatalf("after removing all but 100: counted %d, table of %d places holds %d", counted, len(tt.items), want)
	}
}
