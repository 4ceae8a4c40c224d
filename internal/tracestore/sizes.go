package tracestore

import (
	"slices"
	"unsafe"
)

// The store counts the memory it holds as the Go allocator hands it out,
// not as the lengths of what it keeps: every allocation is rounded up to
// its size class (or, past 32 KiB, to whole 8 KiB pages), objects with
// pointers larger than 512 bytes carry an 8-byte header, and each map
// entry is charged its slot at the swiss-table load Go keeps on average.
// So the bytes the budget counts are close to the heap the store holds
// (TestAccountingMatchesHeap), not a third below it.

// sizeClasses are the Go runtime's small-object size classes
// (internal/runtime/gc/sizeclasses.go).
var sizeClasses = [...]int64{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}

// allocSize returns the bytes the allocator takes for an object of n
// bytes without pointers (a string's bytes).
func allocSize(n int64) int64 {
	if n <= 0 {
		return 0
	}
	if n <= smallMax {
		return int64(smallClasses[(n+7)>>3])
	}
	if n > sizeClasses[len(sizeClasses)-1] {
		return (n + 8191) &^ 8191
	}
	i, _ := slices.BinarySearch(sizeClasses[:], n)
	return sizeClasses[i]
}

// smallClasses is allocSize of the sizes up to smallMax, by size/8
// rounded up: the store asks for it on every span, and a table is
// cheaper than a search.
const smallMax = 1024

var smallClasses = func() (t [smallMax/8 + 1]uint16) {
	for i := 1; i < len(t); i++ {
		j, _ := slices.BinarySearch(sizeClasses[:], int64(i*8))
		t[i] = uint16(sizeClasses[j])
	}
	return t
}()

// allocSizePtr returns the bytes the allocator takes for an object of n
// bytes that holds pointers.
func allocSizePtr(n int64) int64 {
	if n > 512 {
		n += 8
	}
	return allocSize(n)
}

// mapEntryBytes is what one entry of a map with keys and values of k and
// v bytes costs on average: its slot and control byte, at a load between
// 7/16 (just grown) and 7/8 (about to grow).
func mapEntryBytes(k, v int64) int64 { return (k + v + 1) * 12 / 7 }

// strBytes is what a string of n bytes held in the store costs.
func strBytes(n int) int64 { return allocSize(int64(n)) }

var (
	spanOverhead  = int64(unsafe.Sizeof(storedSpan{}))
	logOverhead   = int64(unsafe.Sizeof(storedLog{}))
	entryOverhead = allocSizePtr(int64(unsafe.Sizeof(traceEntry{}))) + mapEntryBytes(int64(unsafe.Sizeof(TraceID{})), 8)
	postingSize   = int64(unsafe.Sizeof(posting{}))
	// byIDEntry is one entry of a trace's span-id map.
	byIDEntry = mapEntryBytes(8, 4)
	// indexListOverhead is a posting list's header and its index entry.
	indexListOverhead = allocSizePtr(int64(unsafe.Sizeof(postings{}))) + mapEntryBytes(16, 8)
	// procOverhead is an interned process and its map entry.
	procOverhead = allocSizePtr(int64(unsafe.Sizeof(process{}))) + mapEntryBytes(16, 8)
	// nameOverhead is an interned span name's map entry.
	nameOverhead = mapEntryBytes(16, 16)
	// p99RingBytes is one operation's duration window and its map entry.
	p99RingBytes = allocSizePtr(int64(unsafe.Sizeof(p99Ring{}))) + mapEntryBytes(int64(unsafe.Sizeof(depEdge{})), 8)
	// depEdgeBytes is one service pair of one minute of the dependency map.
	depEdgeBytes = mapEntryBytes(int64(unsafe.Sizeof(depEdge{})), 8)
	// depMinuteBytes is one minute's map of the dependency map.
	depMinuteBytes = int64(256) + mapEntryBytes(8, 8)
	spanInSize     = int64(unsafe.Sizeof(spanIn{}))
	logInSize      = int64(unsafe.Sizeof(logIn{}))
)

// sliceGrowth is what growing a slice of elements of size elem, holding
// pointers, from capacity from to capacity to costs.
func sliceGrowth(from, to int, elem int64) int64 {
	return allocSizePtr(int64(to)*elem) - allocSizePtr(int64(from)*elem)
}
