// Package memsize owns the model of what the Go allocator hands out for an
// object, so that stores with a byte budget (the trace store, the history)
// count memory as the heap really holds it rather than as the lengths of
// what they keep: every allocation is rounded up to its size class (or,
// past 32 KiB, to whole 8 KiB pages), objects with pointers larger than
// 512 bytes carry an 8-byte header, and each map entry is charged its slot
// at the swiss-table load Go keeps on average.
package memsize

import (
	"runtime"
	"slices"
)

// sizeClasses are the Go runtime's small-object size classes
// (internal/runtime/gc/sizeclasses.go).
var sizeClasses = [...]int64{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}

// Alloc returns the bytes the allocator takes for an object of n bytes
// without pointers (a string's bytes, say).
func Alloc(n int64) int64 {
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

// smallClasses is Alloc of the sizes up to smallMax, by size/8 rounded up:
// stores ask for it on every write, and a table is cheaper than a search.
const smallMax = 1024

var smallClasses = func() (t [smallMax/8 + 1]uint16) {
	for i := 1; i < len(t); i++ {
		j, _ := slices.BinarySearch(sizeClasses[:], int64(i*8))
		t[i] = uint16(sizeClasses[j])
	}
	return t
}()

// AllocPtr returns the bytes the allocator takes for an object of n bytes
// that holds pointers.
func AllocPtr(n int64) int64 {
	if n > 512 {
		n += 8
	}
	return Alloc(n)
}

// MapEntry is what one entry of a map with keys and values of k and v
// bytes costs on average: its slot and control byte, at a load between
// 7/16 (just grown) and 7/8 (about to grow).
func MapEntry(k, v int64) int64 { return (k + v + 1) * 12 / 7 }

// LiveHeap returns the live heap after two full collections (the second
// frees what the first's finalizers and weak pointers released), for
// measuring what a structure keeps.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
