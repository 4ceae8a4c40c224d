package history

import (
	"time"
	"unsafe"

	"github.com/vantage-gateway/vantage/internal/memsize"
)

// The history's budget (max_bytes) counts what it really holds: the
// rings' records and tables (bytes), and beside them (held) each series,
// each request-path cell with the histograms it has allocated, each
// series' exemplars and the compression coders, at the sizes the Go
// allocator hands out (size classes, a header on objects with pointers
// over 512 bytes, map slots at their average load; internal/memsize), so that the bytes
// counted are close to the heap the history takes
// (TestAccountingMatchesHeap).

var (
	seriesKeySize = int64(unsafe.Sizeof(seriesKey{}))
	atomKeySize   = int64(unsafe.Sizeof(atomKey{}))
	// atomBytes is a (route, service) cell without its histograms, its
	// map entry, its place in the published list and its targets.
	atomBytes = memsize.AllocPtr(int64(unsafe.Sizeof(atom{}))) + memsize.MapEntry(atomKeySize, 8) + 8 + memsize.AllocPtr(4*8)
	// hostCellBytes is a (service, host) cell without its histogram, its
	// map entry and its place in the published list.
	hostCellBytes = memsize.AllocPtr(int64(unsafe.Sizeof(hostCell{}))) + memsize.MapEntry(atomKeySize, 8) + 8
	// histBytes is a cell's histogram.
	histBytes = memsize.Alloc(int64(unsafe.Sizeof(atomicHist{})))
	// storedExemplarSize is one exemplar in a series' ring.
	storedExemplarSize = int(unsafe.Sizeof(storedExemplar{}))
)

// codecBytes is about what the zstd encoder and decoder hold once used,
// whatever the series: not counted against max_bytes, but by
// TestAccountingMatchesHeap.
const codecBytes = 1400 << 10

// seriesBytes is what a series named name holds, its rings and exemplars
// aside: the struct, its entries in the series map and in the published
// map and list, and its name.
func seriesBytes(name string) int64 {
	return memsize.AllocPtr(int64(unsafe.Sizeof(series{}))) + 2*memsize.MapEntry(seriesKeySize, 8) + 8 + memsize.Alloc(int64(len(name)))
}

// heldBytes is what the history holds outside its rings (counted against
// max_bytes with them).
func (h *History) heldBytes() int64 { return h.held.Load() + h.cellBytes.Load() }

// storedExemplar is an Exemplar as a series keeps it: 40 bytes instead of
// 64.
type storedExemplar struct {
	sec     int64
	latency time.Duration
	traceID [16]byte
	status  int32
	kind    ExemplarKind
	sampled bool
}

func storeExemplar(e Exemplar) storedExemplar {
	return storedExemplar{sec: e.Time.Unix(), latency: e.Latency, traceID: e.TraceID, status: int32(e.Status), kind: e.Kind, sampled: e.Sampled}
}

func (s storedExemplar) exemplar() Exemplar {
	return Exemplar{Time: time.Unix(s.sec, 0), Kind: s.kind, TraceID: s.traceID, Sampled: s.sampled, Latency: s.latency, Status: int(s.status)}
}

// sums is a series' current second while the rotator adds its cells into
// it: the values, and each histogram as the span of buckets it has
// counts in (a second's latencies fill a few dozen of the 385 buckets).
// It is expanded into a dense accum only to be encoded. An accum per
// touched series instead kept 6.5 KB per series of the busiest second.
type sums struct {
	v              Values
	lat, ovh       span
	hasLat, hasOvh bool
}

// span is counts of buckets lo, lo+1, ...
type span struct {
	lo int
	c  []uint64
}

// histBounds are the first and last non-zero buckets of an accum's two
// histograms (lo > hi when empty).
type histBounds struct{ latLo, latHi, ovhLo, ovhHi int }

func denseBounds(d *denseHist) (lo, hi int) {
	lo, hi = 0, -1
	for i, c := range d {
		if c != 0 {
			lo = i
			break
		}
	}
	for i := len(d) - 1; i >= lo; i-- {
		if d[i] != 0 {
			hi = i
			break
		}
	}
	return lo, hi
}

// bounds returns a's histograms' bounds.
func (a *accum) bounds() histBounds {
	var b histBounds
	b.latLo, b.latHi = 0, -1
	b.ovhLo, b.ovhHi = 0, -1
	if a.hasLat {
		b.latLo, b.latHi = denseBounds(&a.lat)
	}
	if a.hasOvh {
		b.ovhLo, b.ovhHi = denseBounds(&a.ovh)
	}
	return b
}

// add adds a, whose histograms' bounds are b.
func (s *sums) add(a *accum, b histBounds) {
	s.v.add(&a.v)
	if a.hasLat {
		s.lat.add(&a.lat, b.latLo, b.latHi)
		s.hasLat = true
	}
	if a.hasOvh {
		s.ovh.add(&a.ovh, b.ovhLo, b.ovhHi)
		s.hasOvh = true
	}
}

func (s *sums) empty() bool { return s.v == Values{} && !s.hasLat && !s.hasOvh }

func (s *sums) reset() {
	s.v = Values{}
	s.lat.c, s.ovh.c = s.lat.c[:0], s.ovh.c[:0]
	s.hasLat, s.hasOvh = false, false
}

// into sets the reset accum a to s.
func (s *sums) into(a *accum) {
	a.v = s.v
	a.hasLat, a.hasOvh = s.hasLat, s.hasOvh
	copy(a.lat[s.lat.lo:], s.lat.c)
	copy(a.ovh[s.ovh.lo:], s.ovh.c)
}

// add adds buckets lo..hi of d.
func (sp *span) add(d *denseHist, lo, hi int) {
	if lo > hi {
		return
	}
	if len(sp.c) == 0 {
		sp.lo = lo
		sp.c = append(sp.c[:0], d[lo:hi+1]...)
		return
	}
	if nlo, nhi := min(lo, sp.lo), max(hi, sp.lo+len(sp.c)-1); nlo != sp.lo || nhi-nlo+1 != len(sp.c) {
		n, off, old := nhi-nlo+1, sp.lo-nlo, len(sp.c)
		var c []uint64
		if cap(sp.c) >= n {
			c = sp.c[:n]
		} else {
			c = make([]uint64, n, n+n/2)
		}
		copy(c[off:off+old], sp.c[:old])
		clear(c[:off])
		clear(c[off+old:])
		sp.c, sp.lo = c, nlo
	}
	for i := lo; i <= hi; i++ {
		sp.c[i-sp.lo] += d[i]
	}
}
