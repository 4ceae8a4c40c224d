package balancer

import (
	"net/http"
	"sync"

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
type roundRobin struct {
	hosts []*upstream.Host

	mu  sync.Mutex
	cur []int // current weights, by host index; guarded by mu
}

func newRoundRobin(hosts []*upstream.Host) *roundRobin {
	return &roundRobin{hosts: hosts, cur: make([]int, len(hosts))}
}

// Pick implements Picker.
func (rr *roundRobin) Pick(_ *http.Request, exclude *upstream.Host) (*upstream.Host, error) {
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
