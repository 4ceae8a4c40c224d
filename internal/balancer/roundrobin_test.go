package balancer

import (
	"strconv"
	"testing"
)

// TestRoundRobinCycleMatchesPass: in a pool large enough for the
// precomputed cycle, with every host available, two cycles of picks are
// exactly those of the pass over the hosts; with hosts ejected or excluded
// no pick lands on them and the others keep their turns.
func TestRoundRobinCycleMatchesPass(t *testing.T) {
	var specs []string
	for i := range 100 {
		specs = append(specs, "h"+strconv.Itoa(i)+":"+strconv.Itoa(1+i%4))
	}
	f := newFixture(t, specs...)
	fast := newRoundRobin(f.pool.Hosts())
	slow := newRoundRobin(f.pool.Hosts())
	if len(fast.cycle) != 250 {
		t.Fatalf("cycle of %d entries, want the total weight 250", len(fast.cycle))
	}
	r := req()
	for k := range 2 * len(fast.cycle) {
		a, err := fast.Pick(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := slow.pass(nil)
		if a != b {
			t.Fatalf("pick %d: cycle gave %s, pass gave %s", k, a.Key, b.Key)
		}
	}

	f.eject(t, "h3")
	f.eject(t, "h7")
	ex := f.host("h11")
	counts := map[string]int{}
	for range 2 * len(fast.cycle) {
		h, err := fast.Pick(r, ex)
		if err != nil {
			t.Fatal(err)
		}
		counts[h.URL.Hostname()]++
	}
	for _, id := range []string{"h3", "h7", "h11"} {
		if counts[id] != 0 {
			t.Fatalf("unavailable or excluded host %s picked %d times", id, counts[id])
		}
	}
	// Every other host keeps at least its own turns: 2 per unit of weight.
	for i := range 100 {
		id := "h" + strconv.Itoa(i)
		if id == "h3" || id == "h7" || id == "h11" {
			continue
		}
		if w := 1 + i%4; counts[id] < 2*w {
			t.Fatalf("host %s (weight %d) picked %d times in two cycles, want at least %d", id, w, counts[id], 2*w)
		}
	}
}

// TestRoundRobinSmallPoolHasNoCycle: pools up to cycleMinHosts keep the
// pass (and its exact freeze-and-resume behaviour).
func TestRoundRobinSmallPoolHasNoCycle(t *testing.T) {
	var specs []string
	for i := range cycleMinHosts {
		specs = append(specs, "h"+strconv.Itoa(i))
	}
	if rr := newRoundRobin(newFixture(t, specs...).pool.Hosts()); rr.cycle != nil {
		t.Fatalf("a pool of %d hosts got a cycle", cycleMinHosts)
	}
}
