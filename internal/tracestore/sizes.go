package tracestore

import (
	"unsafe"

	"github.com/vantage-gateway/vantage/internal/memsize"
)

// The store counts the memory it holds as the Go allocator hands it out
// (internal/memsize), so the bytes the budget counts are close to the heap
// the store holds (TestAccountingMatchesHeap), not a third below it.

// strBytes is what a string of n bytes held in the store costs.
func strBytes(n int) int64 { return memsize.Alloc(int64(n)) }

var (
	spanOverhead = int64(unsafe.Sizeof(storedSpan{}))
	logOverhead  = int64(unsafe.Sizeof(storedLog{}))
	// slotOverhead is a trace's slots in the tables of entries and of
	// extensions (its block counts itself, blockBytes; the table of ids
	// counts its own memory, as it grows).
	slotOverhead = int64(unsafe.Sizeof(entSlot{})) + 8
	// extOverhead is an entry's extension (entryExt), when it has one.
	extOverhead = memsize.AllocPtr(int64(unsafe.Sizeof(entryExt{})))
	postingSize = int64(unsafe.Sizeof(posting{}))
	// byIDEntry is one entry of a trace's span-id map.
	byIDEntry = memsize.MapEntry(8, 4)
	// indexListOverhead is a posting list's header, its index entry and
	// its slot in the table of lists.
	indexListOverhead = memsize.AllocPtr(int64(unsafe.Sizeof(postings{}))) + memsize.MapEntry(16, 8) + 8
	// procOverhead is an interned process, its map entry and its slot in
	// the table of processes.
	procOverhead = memsize.AllocPtr(int64(unsafe.Sizeof(process{}))) + memsize.MapEntry(16, 8) + 8
	// nameOverhead is an interned span name's map entry and its slot in
	// the table of names.
	nameOverhead = memsize.MapEntry(16, 4) + 16
	// p99RingBytes is one operation's duration window and its map entry.
	p99RingBytes = memsize.AllocPtr(int64(unsafe.Sizeof(p99Ring{}))) + memsize.MapEntry(int64(unsafe.Sizeof(depEdge{})), 8)
	// depEdgeBytes is one service pair of one minute of the dependency map.
	depEdgeBytes = memsize.MapEntry(int64(unsafe.Sizeof(depEdge{})), 8)
	// depMinuteBytes is one minute's map of the dependency map.
	depMinuteBytes = int64(256) + memsize.MapEntry(8, 8)
	spanInSize     = int64(unsafe.Sizeof(spanIn{}))
	logInSize      = int64(unsafe.Sizeof(logIn{}))
)

// noscanGrowth is what growing a slice of elements of size elem,
// without pointers, from capacity from to capacity to costs.
func noscanGrowth(from, to int, elem int64) int64 {
	return memsize.Alloc(int64(to)*elem) - memsize.Alloc(int64(from)*elem)
}

// sliceGrowth is what growing a slice of elements of size elem, holding
// pointers, from capacity from to capacity to costs.
func sliceGrowth(from, to int, elem int64) int64 {
	return memsize.AllocPtr(int64(to)*elem) - memsize.AllocPtr(int64(from)*elem)
}
