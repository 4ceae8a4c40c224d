package memsize

import (
	"slices"
	"testing"
)

// TestAllocMatchesSearch checks the small-size table against the search
// over the size classes it stands for, and the page rounding past them.
func TestAllocMatchesSearch(t *testing.T) {
	for n := int64(1); n <= 40000; n++ {
		var want int64
		if n > sizeClasses[len(sizeClasses)-1] {
			want = (n + 8191) &^ 8191
		} else {
			i, _ := slices.BinarySearch(sizeClasses[:], n)
			want = sizeClasses[i]
		}
		if got := Alloc(n); got != want {
			t.Fatalf("Alloc(%d) = %d, want %d", n, got, want)
		}
	}
	if Alloc(0) != 0 || Alloc(-3) != 0 {
		t.Fatal("Alloc of nothing is not 0")
	}
	if AllocPtr(512) != 512 || AllocPtr(513) != 576 || AllocPtr(570) != 640 {
		t.Fatalf("AllocPtr: %d %d %d", AllocPtr(512), AllocPtr(513), AllocPtr(570))
	}
}

func TestAllocSizes(t *testing.T) {
	for _, c := range []struct{ n, want int64 }{{0, 0}, {1, 8}, {8, 8}, {9, 16}, {33, 48}, {513, 576}, {32768, 32768}, {32769, 40960}} {
		if got := Alloc(c.n); got != c.want {
			t.Errorf("Alloc(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	if got := AllocPtr(512); got != 512 {
		t.Errorf("AllocPtr(512) = %d", got)
	}
	if got := AllocPtr(513); got != 576 {
		t.Errorf("AllocPtr(513) = %d (8-byte header)", got)
	}
}
