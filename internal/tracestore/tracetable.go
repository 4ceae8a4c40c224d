package tracestore

import (
	"hash/maphash"
	"math/bits"

	"github.com/vantage-gateway/vantage/internal/memsize"
)

// traceTable finds a stored trace's slot (in Store.ents) by its id. It is
// an open-addressing hash table with linear probing whose items are 8
// bytes: the slot and the top 32 bits of the id's hash, which also give
// the item's home position. So finding that a trace is new and inserting
// it are one probe, usually within one cache line; an item is removed by
// its slot, found without reading the trace; and the table grows without
// hashing an id again. A Go map of the ids took about a quarter of the
// writer's time in a full store, most of it waiting for memory on each
// lookup, insert and delete (docs/performance.md).
//
// The hash is seeded per store (hash/maphash), so ids chosen to collide
// cannot make the probes long. Removal shifts the items that follow back
// (no tombstones), so probes stay short in a store that evicts as fast as
// it stores. The table holds at most half as many items as it has places,
// and halves when it holds under an eighth.
type traceTable struct {
	items []traceItem // len is a power of two (at least minTraceTable)
	shift uint        // 32 - log2(len): an item's home is tag >> shift
	n     int
	seed  maphash.Seed
	// touched keeps touch's reads from being left out.
	touched uint32
}

// traceItem is a stored trace in the table: its slot in Store.ents (0:
// an empty place) and the top 32 bits of its id's hash.
type traceItem struct {
	slot, tag uint32
}

const minTraceTable = 1 << 10

func newTraceTable() traceTable {
	return traceTable{items: make([]traceItem, minTraceTable), shift: 32 - 10, seed: maphash.MakeSeed()}
}

// bytes is the table's memory.
func (t *traceTable) bytes() int64 { return memsize.Alloc(int64(len(t.items)) * 8) }

// tag returns the top 32 bits of id's hash.
func (t *traceTable) tag(id TraceID) uint32 {
	return uint32(maphash.Bytes(t.seed, id[:]) >> 32)
}

// find returns the slot of trace id (0: absent) and, when it is absent,
// the place to insert it at (insert), with its tag. ents resolves a tag
// that matches to the trace's id.
func (t *traceTable) find(id TraceID, ents []entSlot) (slot uint32, at int, tag uint32) {
	tag = t.tag(id)
	slot, at = t.findTag(id, tag, ents)
	return slot, at, tag
}

// findTag is find with id's tag already computed.
func (t *traceTable) findTag(id TraceID, tag uint32, ents []entSlot) (slot uint32, at int) {
	mask := len(t.items) - 1
	for i := int(tag >> t.shift); ; i = (i + 1) & mask {
		it := t.items[i]
		if it.slot == 0 {
			return 0, i
		}
		if it.tag == tag && ents[it.slot].e.id == id {
			return it.slot, i
		}
	}
}

// touch computes the tags of the traces of spans (into their tag
// fields) and reads the place each would be found at, all before any is
// looked up: the reads wait for memory side by side instead of one after
// another, and the lookups that follow find their places in the cache.
func (t *traceTable) touch(spans []spanIn) {
	var sum uint32
	for i := range spans {
		in := &spans[i]
		if i > 0 && spans[i-1].traceID == in.traceID {
			in.tag = spans[i-1].tag
			continue
		}
		in.tag = t.tag(in.traceID)
		sum += t.items[in.tag>>t.shift].slot
	}
	t.touched += sum
}

// insert puts a trace in the empty place at, which find returned for it;
// it reports the change of the table's memory (growth).
func (t *traceTable) insert(at int, tag, slot uint32) int64 {
	t.items[at] = traceItem{slot: slot, tag: tag}
	t.n++
	if 2*t.n > len(t.items) {
		return t.resize(2 * len(t.items))
	}
	return 0
}

// remove takes out the trace in slot, whose id has tag; it reports the
// change of the table's memory (shrinking).
func (t *traceTable) remove(tag, slot uint32) int64 {
	mask := len(t.items) - 1
	i := int(tag >> t.shift)
	for t.items[i].slot != slot {
		if t.items[i].slot == 0 {
			return 0 // not in the table
		}
		i = (i + 1) & mask
	}
	// Move back each following item of the run whose home is not
	// between the hole and it (cyclically), so that every item stays
	// reachable from its home without a gap.
	for j := i; ; {
		j = (j + 1) & mask
		it := t.items[j]
		if it.slot == 0 {
			break
		}
		home := int(it.tag >> t.shift)
		if (j-home)&mask >= (j-i)&mask {
			t.items[i] = it
			i = j
		}
	}
	t.items[i] = traceItem{}
	t.n--
	if len(t.items) > minTraceTable && 8*t.n < len(t.items) {
		return t.resize(len(t.items) / 2)
	}
	return 0
}

// resize moves the items to a table of n places and returns the change
// of its memory.
func (t *traceTable) resize(n int) int64 {
	before := t.bytes()
	old := t.items
	t.items = make([]traceItem, n)
	t.shift = uint(32 - bits.Len(uint(n-1)))
	mask := n - 1
	for _, it := range old {
		if it.slot == 0 {
			continue
		}
		i := int(it.tag >> t.shift)
		for t.items[i].slot != 0 {
			i = (i + 1) & mask
		}
		t.items[i] = it
	}
	return t.bytes() - before
}

// len is how many traces the table holds.
func (t *traceTable) len() int { return t.n }
