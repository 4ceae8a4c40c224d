package balancer

import (
	"testing"

	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/upstream"
)

// lrCounts runs n picks of a seeded least_request picker over f's hosts.
func lrCounts(t *testing.T, f *fixture, exclude *upstream.Host, n int) map[string]int {
	t.Helper()
	p := newLeastRequest(f.pool.Hosts(), 42)
	counts := map[string]int{}
	for range n {
		h, err := p.Pick(nil, exclude)
		if err != nil {
			t.Fatal(err)
		}
		counts[h.URL.Hostname()]++
	}
	return counts
}

func busy(h *upstream.Host, n int) func() {
	for range n {
		h.Begin()
	}
	return func() {
		for range n {
			h.End(observe.ErrNone, 200)
		}
	}
}

func within(got, want, tolerancePct int) bool {
	d := got - want
	if d < 0 {
		d = -d
	}
	return d*100 <= want*tolerancePct
}

func TestLeastRequestSpreadsAnIdlePoolEvenly(t *testing.T) {
	f := newFixture(t, "a", "b", "c", "d")
	counts := lrCounts(t, f, nil, 4000)
	for _, id := range []string{"a", "b", "c", "d"} {
		if !within(counts[id], 1000, 15) {
			t.Fatalf("counts = %v, want about 1000 each", counts)
		}
	}
}

func TestLeastRequestPrefersTheLessLoaded(t *testing.T) {
	f := newFixture(t, "a", "b")
	defer busy(f.host("a"), 3)()
	if counts := lrCounts(t, f, nil, 100); counts["b"] != 100 {
		t.Fatalf("two hosts, a busy: counts = %v, want all on b", counts)
	}

	// Three hosts, two busy: the idle one wins whenever it is one of the two
	// candidates, that is in 2/3 of the picks; the busy ones share the rest.
	f = newFixture(t, "a", "b", "c")
	defer busy(f.host("a"), 10)()
	defer busy(f.host("b"), 10)()
	counts := lrCounts(t, f, nil, 3000)
	if !within(counts["c"], 2000, 10) || !within(counts["a"], 500, 25) || !within(counts["b"], 500, 25) {
		t.Fatalf("counts = %v, want c about 2000, a and b about 500", counts)
	}
}

func TestLeastRequestWeightsBias(t *testing.T) {
	// Idle, weight 2 against 1: cost 1/2 beats 1 in every comparison.
	f := newFixture(t, "a:2", "b:1")
	if counts := lrCounts(t, f, nil, 100); counts["a"] != 100 {
		t.Fatalf("counts = %v, want all on the heavier a", counts)
	}
	// With 3 in flight on a, (3+1)/2 = 2 > (0+1)/1: b wins.
	defer busy(f.host("a"), 3)()
	if counts := lrCounts(t, f, nil, 100); counts["b"] != 100 {
		t.Fatalf("counts = %v, want all on b", counts)
	}
}

func TestLeastRequestSkipsUnavailableAndExcluded(t *testing.T) {
	f := newFixture(t, "a", "b", "c", "d", "z:0")
	f.eject(t, "b")
	counts := lrCounts(t, f, f.host("c"), 3000)
	if counts["b"] != 0 || counts["c"] != 0 || counts["z"] != 0 {
		t.Fatalf("counts = %v: picked an ejected, excluded or weight 0 host", counts)
	}
	// Reservoir sampling keeps the draw uniform over the rest.
	if !within(counts["a"], 1500, 10) || !within(counts["d"], 1500, 10) {
		t.Fatalf("counts = %v, want a and d about 1500 each", counts)
	}
}
