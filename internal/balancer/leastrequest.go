package balancer

import (
	"math/bits"
	"math/rand/v2"
	"net/http"
	"sync/atomic"

	"github.com/vantage-gateway/vantage/internal/upstream"
)

// leastRequest is the power of two random choices: two distinct hosts are
// drawn uniformly at random among the eligible ones (available, weight > 0,
// not excluded), and the one with fewer in-flight attempts per unit of weight
// wins: a is preferred over b when (inflight(a)+1)/weight(a) is smaller.
// Weights therefore bias the choice (a heavier host wins more comparisons)
// but are not exact shares. Ties are broken at random, so an idle pool is
// spread evenly.
//
// The two candidates are drawn from all hosts first; when one of them is not
// eligible, they are drawn again in one pass over the eligible hosts by
// reservoir sampling. Both ways the pair is uniform over eligible pairs.
//
// Randomness comes from a per-picker splitmix64 stream: one atomic add per
// pick seeds a local generator, so there is no lock and no shared generator
// state to contend on beyond that add.
type leastRequest struct {
	hosts []*upstream.Host
	seed  atomic.Uint64
}

func newLeastRequest(hosts []*upstream.Host, seed uint64) *leastRequest {
	lr := &leastRequest{hosts: hosts}
	if seed == 0 {
		seed = rand.Uint64()
	}
	lr.seed.Store(seed)
	return lr
}

const golden = 0x9e3779b97f4a7c15

// mix64 is splitmix64's output function.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// below returns a number in [0, n) from the random r (Lemire's method,
// without the rejection step: the bias is below n/2^64).
func below(r uint64, n int) int {
	hi, _ := bits.Mul64(r, uint64(n))
	return int(hi)
}

// Pick implements Picker.
func (lr *leastRequest) Pick(_ *http.Request, exclude *upstream.Host) (*upstream.Host, error) {
	s := mix64(lr.seed.Add(golden)) // this pick's own stream
	// Fast path: two distinct hosts drawn from all of them are usually both
	// eligible. When they are, the pair is uniform over eligible pairs; when
	// not, the scan below draws again among the eligible only. Either way
	// the result is a uniform pair of eligible hosts.
	if n := len(lr.hosts); n >= 2 {
		i := below(s, n)
		s += golden
		j := below(mix64(s), n-1)
		if j >= i {
			j++
		}
		a, b := lr.hosts[i], lr.hosts[j]
		if eligible(a, exclude) && eligible(b, exclude) {
			return lr.lessLoaded(a, b, s), nil
		}
	}
	var a, b *upstream.Host
	n := 0
	excluded := false
	for _, h := range lr.hosts {
		if h.Weight <= 0 || !h.Available() {
			continue
		}
		if h == exclude {
			excluded = true
			continue
		}
		n++
		switch n {
		case 1:
			a = h
		case 2:
			b = h
		default: // reservoir sampling: keep h with probability 2/n
			s += golden
			switch below(mix64(s), n) {
			case 0:
				a = h
			case 1:
				b = h
			}
		}
	}
	switch {
	case a == nil && excluded:
		return exclude, nil
	case a == nil:
		return nil, ErrNoHealthyUpstream
	case b == nil:
		return a, nil
	}
	return lr.lessLoaded(a, b, s), nil
}

func eligible(h, exclude *upstream.Host) bool {
	return h != exclude && h.Weight > 0 && h.Available()
}

// lessLoaded returns the one of a and b with fewer in-flight attempts per
// unit of weight, breaking a tie with a bit from the random stream s.
func (lr *leastRequest) lessLoaded(a, b *upstream.Host, s uint64) *upstream.Host {
	la := (a.InFlight() + 1) * int64(b.Weight)
	lb := (b.InFlight() + 1) * int64(a.Weight)
	switch {
	case la < lb:
		return a
	case lb < la:
		return b
	}
	if mix64(s+golden)&1 == 0 {
		return a
	}
	return b
}
