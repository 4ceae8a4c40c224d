package balancer

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/vantage-gateway/vantage/internal/upstream"
)

// roundRobin is smooth weighted round robin, nginx's algorithm: on each pick
// every eligible host's current weight grows by its weight, the host with the
// largest current weight (the first one on a tie) is picked, and its current
// weight drops by the eligible hosts' total. Over a cycle each host is picked
// in proportion to its weight, and picks of a heavy host are interleaved with
// the others instead of bunched: weights {a:5, b:1, c:1} give a a b a c a a.
//
// Unavailable hosts, and the excluded one, are simply not eligible: their
// current weights freeze, so the others keep their relative order and a host
// that comes back resumes where it was.
//
// The state is a few integers behind one mutex held for one pass over the
// hosts (a few nanoseconds per host).
//
// A pass costs time in proportion to the host count, so a pool of more than
// cycleMinHosts hosts (and a total weight of at most maxCycle) instead
// follows the sequence the algorithm yields with every host eligible,
// computed once: a pick takes the next entry of the cycle (one atomic
// add) and walks on past entries of unavailable or excluded hosts, which so
// leave their turns to the hosts after them in the cycle. With every host
// available the picks are exactly those of the pass; after cycleScan
// ineligible entries in a row the pick falls back to the pass.
type roundRobin struct {
	hosts []*upstream.Host

	mu  sync.Mutex
	cur []int // current weights, by host index; guarded by mu

	cycle []int32       // host indexes in pick order; nil for small pools
	next  atomic.Uint64 // position in cycle
}

const (
	// cycleMinHosts is the host count above which round robin follows a
	// precomputed cycle.
	cycleMinHosts = 32
	// maxCycle bounds the cycle's length (the pool's total weight).
	maxCycle = 1 << 16
	// cycleScan is how many cycle entries a pick reads before falling back
	// to a pass over the hosts.
	cycleScan = 64
)

func newRoundRobin(hosts []*upstream.Host) *roundRobin {
	rr := &roundRobin{hosts: hosts, cur: make([]int, len(hosts))}
	if len(hosts) <= cycleMinHosts {
		return rr
	}
	total := 0
	for _, h := range hosts {
		total += max(h.Weight, 0)
	}
	if total == 0 || total > maxCycle {
		return rr
	}
	cur := make([]int, len(hosts))
	rr.cycle = make([]int32, total)
	for k := range rr.cycle {
		best := -1
		for i, h := range hosts {
			if h.Weight <= 0 {
				continue
			}
			cur[i] += h.Weight
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		rr.cycle[k] = int32(best)
	}
	return rr
}

// Pick implements Picker.
func (rr *roundRobin) Pick(_ *http.Request, exclude *upstream.Host) (*upstream.Host, error) {
	if n := uint64(len(rr.cycle)); n > 0 {
		at := rr.next.Add(1) - 1
		for k := range uint64(cycleScan) {
			h := rr.hosts[rr.cycle[(at+k)%n]]
			if h != exclude && h.Available() {
				return h, nil
			}
		}
	}
	return rr.pass(exclude)
}

// pass is one step of smooth weighted round robin over every host.
func (rr *roundRobin) pass(exclude *upstream.Host) (*upstream.Host, error) {
	best, total, excluded := -1, 0, false
	rr.mu.Lock()
	for i, h := range rr.hosts {
		if h.Weight <= 0 || !h.Available() {
			continue
		}
		if h == exclude {
			excluded = true
			continue
		}
		rr.cur[i] += h.Weight
		total += h.Weight
		if best < 0 || rr.cur[i] > rr.cur[best] {
			best = i
		}
	}
	if best >= 0 {
		rr.cur[best] -= total
	}
	rr.mu.Unlock()
	switch {
	case best >= 0:
		return rr.hosts[best], nil
	case excluded:
		return exclude, nil
	}
	return nil, ErrNoHealthyUpstream
}
