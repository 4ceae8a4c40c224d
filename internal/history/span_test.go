package history

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestAtomicHistDrainKeepsEveryCount records from several goroutines while
// the rotator drains: every sample ends up in exactly one drain, in its
// bucket, although a drain reads only the blocks marked touched.
func TestAtomicHistDrainKeepsEveryCount(t *testing.T) {
	const writers, perWriter = 4, 20000
	var h atomicHist
	var want [numSlots]uint64
	samples := make([][]time.Duration, writers)
	for w := range samples {
		r := rand.New(rand.NewPCG(uint64(w), 1))
		for range perWriter {
			// Log-uniform from 0 to past MaxTrackable: every block.
			d := time.Duration(r.Uint64N(uint64(2*MaxTrackable))) >> r.IntN(40)
			samples[w] = append(samples[w], d)
			want[bucketIndex(d)]++
		}
	}
	var got denseHist
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, d := range samples[w] {
				h.observe(d)
			}
		}()
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-done:
				return
			default:
				h.drainInto(&got)
			}
		}
	}()
	wg.Wait()
	close(done)
	<-drained
	h.drainInto(&got)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("bucket %d: drained %d, recorded %d", i, got[i], want[i])
		}
	}
	if m := h.touched.Load(); m != 0 {
		t.Fatalf("touched mask %b after the last drain", m)
	}
	for i := range h.b {
		if n := h.b[i].Load(); n != 0 {
			t.Fatalf("bucket %d holds %d after the last drain", i, n)
		}
	}
}

// TestDenseHistSpanAddClear checks span, add and clear against their
// plain definitions on random histograms, sparse and dense, every bucket
// (the overflow bucket and the tail past the last group of four included).
func TestDenseHistSpanAddClear(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := range 2000 {
		var a, b denseHist
		k := r.IntN(8)
		if n%10 == 0 {
			k = numSlots
		}
		for range k {
			a[r.IntN(numSlots)] = r.Uint64N(1000)
			b[r.IntN(numSlots)] = r.Uint64N(1000)
		}
		if n%7 == 0 {
			a[numSlots-1] = 5 // the overflow bucket, past the groups of four
		}
		lo, hi := -1, -1
		for i, c := range a {
			if c != 0 {
				if lo < 0 {
					lo = i
				}
				hi = i
			}
		}
		if glo, ghi := a.span(); glo != lo || ghi != hi {
			t.Fatalf("span = %d, %d, want %d, %d", glo, ghi, lo, hi)
		}
		if a.empty() != (lo < 0) {
			t.Fatalf("empty = %v with span %d, %d", a.empty(), lo, hi)
		}
		var want denseHist
		for i := range want {
			want[i] = a[i] + b[i]
		}
		sum := b
		sum.add(&a)
		if sum != want {
			t.Fatalf("add differs from the bucket-wise sum")
		}
		a.clear()
		if a != (denseHist{}) {
			t.Fatalf("clear left counts")
		}
	}
}
