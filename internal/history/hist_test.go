package history

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketLayout(t *testing.T) {
	prev := -1
	for us := uint64(0); us < 1<<maxExp; us = us*17/16 + 1 {
		d := time.Duration(us) * time.Microsecond
		i := bucketIndex(d)
		if i < prev {
			t.Fatalf("bucketIndex(%v) = %d < %d: not monotonic", d, i, prev)
		}
		prev = i
		lo, w := bucketBounds(i)
		if float64(us) < lo || float64(us) >= lo+w {
			t.Fatalf("%d µs is in bucket %d = [%g, %g)", us, i, lo, lo+w)
		}
		if us >= SubBuckets && w/lo > 2*MaxRelativeError+1e-12 {
			t.Fatalf("bucket %d is %g wide at %g: wider than the bound", i, w, lo)
		}
	}
	if got := bucketIndex(MaxTrackable); got != overflowIndex {
		t.Fatalf("MaxTrackable in bucket %d, want overflow %d", got, overflowIndex)
	}
	if got := bucketIndex(MaxTrackable - time.Microsecond); got != NumBuckets-1 {
		t.Fatalf("just below MaxTrackable in bucket %d, want %d", got, NumBuckets-1)
	}
	if bucketIndex(-time.Second) != 0 || bucketIndex(999*time.Nanosecond) != 0 {
		t.Fatal("negative and sub-microsecond durations must fall in bucket 0")
	}
}

// exactQuantile is the nearest-rank quantile of sorted samples.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

// withinBound reports whether est is within the documented error of the
// exact sample: MaxRelativeError of it, or 0.5 µs below SubBuckets µs.
func withinBound(est, exact time.Duration) bool {
	diff := math.Abs(float64(est - exact))
	return diff <= MaxRelativeError*float64(exact)+float64(500*time.Nanosecond)+1
}

// TestQuantileErrorBound checks, over random samples spread over seven
// orders of magnitude, that every quantile estimate is within the
// documented bound of the exact quantile, for single histograms and for
// histograms merged from parts (merging loses nothing).
func TestQuantileErrorBound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	qs := []float64{0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}
	for trial := 0; trial < 200; trial++ {
		n := 1 + r.IntN(3000)
		samples := make([]time.Duration, n)
		parts := make([]Histogram, 1+r.IntN(8))
		var whole Histogram
		for i := range samples {
			// Log-uniform from 100 ns to 100 s, with some exact ties.
			d := time.Duration(math.Exp(math.Log(100) + r.Float64()*(math.Log(100e9)-math.Log(100))))
			if r.IntN(10) == 0 && i > 0 {
				d = samples[r.IntN(i)]
			}
			samples[i] = d
			whole.Observe(d)
			parts[r.IntN(len(parts))].Observe(d)
		}
		var merged Histogram
		for _, p := range parts {
			merged.Merge(p)
		}
		if merged.Count() != uint64(n) || whole.Count() != uint64(n) {
			t.Fatalf("counts %d and %d, want %d", merged.Count(), whole.Count(), n)
		}
		slices.Sort(samples)
		for _, q := range qs {
			exact := exactQuantile(samples, q)
			for name, h := range map[string]Histogram{"whole": whole, "merged": merged} {
				if est := h.Quantile(q); !withinBound(est, exact) {
					t.Fatalf("trial %d, %s, q=%g over %d samples: estimate %v, exact %v (error %.2f%%, bound %.2f%%)",
						trial, name, q, n, est, exact, 100*math.Abs(float64(est-exact))/float64(exact), 100*MaxRelativeError)
				}
			}
			if whole.Quantile(q) != merged.Quantile(q) {
				t.Fatalf("merged and whole histograms disagree at q=%g", q)
			}
		}
	}
}

func TestHistogramMergeIsBucketwiseAdd(t *testing.T) {
	var a, b Histogram
	a.Observe(time.Millisecond)
	a.Observe(2 * time.Millisecond)
	b.Observe(5 * time.Microsecond)
	b.Observe(time.Second)
	b.Observe(time.Millisecond)
	var d denseHist
	d.addHist(a)
	d.addHist(b)
	a.Merge(b)
	if got := d.hist(); !slices.Equal(got.Counts, a.Counts) || got.Offset != a.Offset {
		t.Fatalf("merge %+v, dense add %+v", a, got)
	}
	if a.Count() != 5 || a.Quantile(0.5) != bucketValue(bucketIndex(time.Millisecond)) {
		t.Fatalf("count %d p50 %v", a.Count(), a.Quantile(0.5))
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 || empty.Count() != 0 {
		t.Fatal("empty histogram")
	}
	empty.Merge(Histogram{})
	if len(empty.Counts) != 0 {
		t.Fatal("merging nothing added buckets")
	}
	var over Histogram
	over.Observe(time.Hour)
	if over.Quantile(1) < MaxTrackable {
		t.Fatalf("overflow estimate %v", over.Quantile(1))
	}
}

// TestCoarseQuantileErrorBound checks the bound of coarsened histograms
// (the per-minute overhead), and that coarsening keeps the count and
// commutes with merging.
func TestCoarseQuantileErrorBound(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	qs := []float64{0, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 1}
	for trial := 0; trial < 200; trial++ {
		n := 1 + r.IntN(3000)
		samples := make([]time.Duration, n)
		var a, b denseHist
		for i := range samples {
			d := time.Duration(math.Exp(math.Log(100) + r.Float64()*(math.Log(100e9)-math.Log(100))))
			samples[i] = d
			if i%2 == 0 {
				a[bucketIndex(d)]++
			} else {
				b[bucketIndex(d)]++
			}
		}
		var whole denseHist
		whole.add(&a)
		whole.add(&b)
		whole.coarsen()
		a.coarsen()
		b.coarsen()
		a.add(&b)
		if a != whole {
			t.Fatal("coarsening does not commute with merging")
		}
		h := whole.hist()
		if h.Count() != uint64(n) {
			t.Fatalf("coarse count %d, want %d", h.Count(), n)
		}
		slices.Sort(samples)
		for _, q := range qs {
			exact := exactQuantile(samples, q)
			est := h.Quantile(q)
			err := math.Abs(float64(est - exact))
			if exact >= SubBuckets*time.Microsecond && err > MaxCoarseRelativeError*float64(exact)+1 ||
				exact < SubBuckets*time.Microsecond && err > float64(time.Microsecond)/2+1 {
				t.Fatalf("trial %d, q=%g: estimate %v, exact %v (error %.2f%%, bound %.2f%%)", trial, q, est, exact,
					100*err/float64(exact), 100*MaxCoarseRelativeError)
			}
		}
	}
}
