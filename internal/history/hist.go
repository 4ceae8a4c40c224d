package history

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The latency histogram's buckets are log-linear, as in HdrHistogram: a
// duration is taken in whole microseconds, values below SubBuckets each
// have a bucket of their own, and every power of two above is split into
// SubBuckets equal sub-buckets. Every histogram of the package has the same
// fixed layout, so merging two (across time now, across replicas later) is
// a bucket-wise add, and a merged histogram's quantiles are as accurate as
// a single one's.
//
// The estimate of a quantile is the midpoint of the bucket holding the
// sample of that rank, so it is off from the exact sample by at most half a
// bucket: at most MaxRelativeError of the sample's value for samples of
// SubBuckets µs or more, at most 0.5 µs below.
const (
	// subBits is log2 of SubBuckets.
	subBits = 4
	// SubBuckets is the number of buckets per power of two.
	SubBuckets = 1 << subBits
	// maxExp bounds the range: values of 2^maxExp µs (about 134 s) or
	// more go to the overflow bucket.
	maxExp = 27
	// NumBuckets is the number of regular buckets, the overflow bucket
	// not counted.
	NumBuckets = SubBuckets + (maxExp-subBits)*SubBuckets
	// overflowIndex is the overflow bucket's index.
	overflowIndex = NumBuckets
	// numSlots counts the regular buckets and the overflow bucket.
	numSlots = NumBuckets + 1
)

// MaxRelativeError bounds how far a quantile estimate is from the exact
// sample of that rank, relative to that sample, for samples of at least
// SubBuckets microseconds: half a bucket's width over its lower bound.
const MaxRelativeError = 1.0 / (2 * SubBuckets)

// MaxTrackable is the largest duration with a bucket of its own; longer
// ones are counted in the overflow bucket, whose quantile estimate is
// MaxTrackable.
const MaxTrackable = time.Duration(1<<maxExp) * time.Microsecond

// bucketIndex returns the bucket of a duration.
func bucketIndex(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	us := uint64(d / time.Microsecond)
	if us < SubBuckets {
		return int(us)
	}
	e := bits.Len64(us) - 1 // us in [2^e, 2^(e+1)), e >= subBits
	if e >= maxExp {
		return overflowIndex
	}
	sub := int(us>>(uint(e)-subBits)) - SubBuckets
	return SubBuckets + (e-subBits)*SubBuckets + sub
}

// bucketBounds returns the lower bound and width of bucket i, in
// microseconds. The overflow bucket starts at MaxTrackable.
func bucketBounds(i int) (lo, width float64) {
	if i < SubBuckets {
		return float64(i), 1
	}
	if i >= overflowIndex {
		return float64(uint64(1) << maxExp), 0
	}
	j := i - SubBuckets
	e := j/SubBuckets + subBits
	sub := j % SubBuckets
	w := float64(uint64(1) << uint(e-subBits))
	return float64(uint64(1)<<uint(e)) + float64(sub)*w, w
}

// bucketValue is the estimate of every sample of bucket i: its midpoint.
func bucketValue(i int) time.Duration {
	lo, w := bucketBounds(i)
	return time.Duration((lo + w/2) * float64(time.Microsecond))
}

// Histogram is a latency distribution in the package's fixed log-linear
// layout: Counts[j] is the number of samples in bucket Offset+j (the
// overflow bucket is index NumBuckets). The zero value is empty and ready
// to use. A Histogram is a value owned by its holder; it is not safe for
// concurrent mutation.
type Histogram struct {
	Offset int      `json:"offset"`
	Counts []uint64 `json:"counts"`
}

// Observe adds one sample.
func (h *Histogram) Observe(d time.Duration) { h.addBucket(bucketIndex(d), 1) }

func (h *Histogram) addBucket(i int, n uint64) {
	if n == 0 {
		return
	}
	if len(h.Counts) == 0 {
		h.Offset = i
		h.Counts = append(h.Counts[:0], n)
		return
	}
	if i < h.Offset {
		grow := h.Offset - i
		c := make([]uint64, len(h.Counts)+grow)
		copy(c[grow:], h.Counts)
		h.Counts, h.Offset = c, i
	} else if j := i - h.Offset; j >= len(h.Counts) {
		h.Counts = append(h.Counts, make([]uint64, j-len(h.Counts)+1)...)
	}
	h.Counts[i-h.Offset] += n
}

// Merge adds every bucket of o to h.
func (h *Histogram) Merge(o Histogram) {
	if len(o.Counts) == 0 {
		return
	}
	// Grow once to the union of both spans.
	lo, hi := o.Offset, o.Offset+len(o.Counts)
	if len(h.Counts) > 0 {
		lo, hi = min(lo, h.Offset), max(hi, h.Offset+len(h.Counts))
	}
	if len(h.Counts) == 0 || lo < h.Offset || hi > h.Offset+len(h.Counts) {
		c := make([]uint64, hi-lo)
		if len(h.Counts) > 0 {
			copy(c[h.Offset-lo:], h.Counts)
		}
		h.Counts, h.Offset = c, lo
	}
	for j, n := range o.Counts {
		h.Counts[o.Offset-h.Offset+j] += n
	}
}

// Count returns the number of samples.
func (h Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Quantile returns the estimate of the q-quantile (0 <= q <= 1): the
// midpoint of the bucket holding the sample of rank ceil(q·n) (the nearest
// rank; rank 1 for q = 0). It returns 0 for an empty histogram.
func (h Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	q = math.Max(0, math.Min(1, q))
	rank := uint64(math.Ceil(q * float64(n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for j, c := range h.Counts {
		seen += c
		if seen >= rank {
			return bucketValue(h.Offset + j)
		}
	}
	return bucketValue(h.Offset + len(h.Counts) - 1)
}

// CountAbove returns the samples above d, judged by their bucket's
// midpoint (the same estimate Quantile makes, within 1/32 of d): the
// requests slower than a latency objective.
func (h Histogram) CountAbove(d time.Duration) uint64 {
	var n uint64
	for j, c := range h.Counts {
		if c != 0 && bucketValue(h.Offset+j) > d {
			n += c
		}
	}
	return n
}

// Clone returns a deep copy of h.
func (h Histogram) Clone() Histogram {
	if len(h.Counts) == 0 {
		return Histogram{}
	}
	return Histogram{Offset: h.Offset, Counts: append([]uint64(nil), h.Counts...)}
}

// atomicHist is the current second's histogram of a series: one atomic
// counter per bucket, written by request goroutines without a lock, and a
// mask of the blocks of histBlock buckets that may hold counts, so that the
// rotator reads the few blocks a second's requests touched instead of every
// bucket (a route of an estate sees a request or two a second, which land
// in one or two of its 25 blocks).
type atomicHist struct {
	touched atomic.Uint32 // bit i: block i may be non-zero
	b       [numSlots]atomic.Uint32
}

// histBlock is the number of buckets per bit of atomicHist.touched: one
// 64-byte cache line of counters.
const histBlock = 16

// histBlocks is the number of blocks of an atomicHist.
const histBlocks = (numSlots + histBlock - 1) / histBlock

// The touched mask must hold a bit per block.
var _ [32 - histBlocks]struct{}

// observe adds a sample. The count is added before the block is marked,
// so that a drain that clears the mark after the add takes the count, and
// one that clears it before finds the mark set again.
func (a *atomicHist) observe(d time.Duration) {
	i := bucketIndex(d)
	a.b[i].Add(1)
	if bit := uint32(1) << uint(i/histBlock); a.touched.Load()&bit == 0 {
		a.touched.Or(bit)
	}
}

// drainInto moves every count to dst (adding) and zeroes a. It reads only
// the blocks marked touched since the previous drain.
func (a *atomicHist) drainInto(dst *denseHist) {
	m := a.touched.Swap(0)
	for m != 0 {
		blk := bits.TrailingZeros32(m)
		m &= m - 1
		lo := blk * histBlock
		for i := lo; i < min(lo+histBlock, numSlots); i++ {
			if a.b[i].Load() != 0 {
				dst[i] += uint64(a.b[i].Swap(0))
			}
		}
	}
}

// denseHist is a histogram in full, for aggregation off the request path.
type denseHist [numSlots]uint64

// add adds o into d. o is usually a drained second of one series, a few
// non-zero buckets: it skips o's empty groups of four buckets, so that d's
// memory is written only where o has counts.
func (d *denseHist) add(o *denseHist) {
	i := 0
	for ; i+4 <= numSlots; i += 4 {
		if o[i]|o[i+1]|o[i+2]|o[i+3] == 0 {
			continue
		}
		d[i] += o[i]
		d[i+1] += o[i+1]
		d[i+2] += o[i+2]
		d[i+3] += o[i+3]
	}
	for ; i < numSlots; i++ {
		d[i] += o[i]
	}
}

// span returns the first and last non-zero buckets of d, or -1, -1 when d
// is empty. It reads four buckets at a time.
func (d *denseHist) span() (lo, hi int) {
	lo, hi = -1, -1
	i := 0
	for ; i+4 <= numSlots; i += 4 {
		if d[i]|d[i+1]|d[i+2]|d[i+3] == 0 {
			continue
		}
		for j := i; j < i+4; j++ {
			if d[j] != 0 {
				if lo < 0 {
					lo = j
				}
				hi = j
			}
		}
	}
	for ; i < numSlots; i++ {
		if d[i] != 0 {
			if lo < 0 {
				lo = i
			}
			hi = i
		}
	}
	return lo, hi
}

func (d *denseHist) addHist(h Histogram) {
	for j, n := range h.Counts {
		if i := h.Offset + j; i >= 0 && i < numSlots {
			d[i] += n
		}
	}
}

// coarseGroup is how many adjacent buckets a coarse histogram merges
// (from SubBuckets µs on): SubBuckets/coarseGroup buckets per power of two.
const coarseGroup = 4

// MaxCoarseRelativeError bounds a quantile estimate's error, relative to
// the exact sample, in a coarse histogram (the overhead of per-minute
// data), for samples of at least SubBuckets microseconds: a coarse group
// of coarseGroup buckets is counted in its second bucket, whose midpoint is
// 1.5 buckets above the group's lower bound and 2.5 below its upper one,
// and a bucket is at most 1/SubBuckets of its lower bound wide.
const MaxCoarseRelativeError = 2.5 / (SubBuckets + coarseGroup)

// coarsen merges each group of coarseGroup buckets from SubBuckets µs up
// into the group's second bucket (the layout stays the same, so coarse
// and fine histograms still merge by adding); the buckets below
// SubBuckets µs and the overflow bucket stay as they are.
func (d *denseHist) coarsen() {
	for g := SubBuckets; g+coarseGroup <= NumBuckets; g += coarseGroup {
		var n uint64
		for i := g; i < g+coarseGroup; i++ {
			n += d[i]
			d[i] = 0
		}
		d[g+1] = n
	}
}

// hist returns d in sparse form (nil Counts when empty).
func (d *denseHist) hist() Histogram {
	lo, hi := d.span()
	if lo < 0 {
		return Histogram{}
	}
	return Histogram{Offset: lo, Counts: append([]uint64(nil), d[lo:hi+1]...)}
}
