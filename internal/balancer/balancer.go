// Package balancer picks the upstream host for each attempt of a request,
// among the available hosts of a service's upstream.Pool:
//
//   - round_robin: smooth weighted round robin (nginx's algorithm).
//   - least_request: the power of two random choices over in-flight
//     attempts, biased by weight.
//   - hash: a consistent-hash ring over a request key (a header, a cookie or
//     the client IP), with round robin for requests without the key.
//
// Hosts of weight 0 are never picked. Unavailable hosts (unhealthy or
// ejected, see upstream.Host.Available) are skipped. Pickers are built per
// pool: a reload builds new ones. Pick does not allocate.
package balancer

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/upstream"
)

// ErrNoHealthyUpstream is returned by Pick when no host of the pool is
// available. The proxy answers 503 (observe.ErrNoHealthyUpstream).
var ErrNoHealthyUpstream = errors.New("no healthy upstream")

// Picker chooses a host for a request. Implementations are safe for
// concurrent use.
type Picker interface {
	// Pick returns an available host for r, or ErrNoHealthyUpstream.
	// exclude (may be nil) is avoided when any other available host
	// exists: retries pass the host that just failed. Pick must not modify
	// r.
	Pick(r *http.Request, exclude *upstream.Host) (*upstream.Host, error)
}

// New returns the Picker for lb over pool's hosts. lb must be validated
// (config.Config.Validate); an empty Policy means round_robin.
func New(lb config.LoadBalancing, pool *upstream.Pool) (Picker, error) {
	if pool == nil {
		return nil, errors.New("balancer: nil pool")
	}
	hosts := pool.Hosts()
	switch lb.Policy {
	case config.PolicyRoundRobin, "":
		return newRoundRobin(hosts), nil
	case config.PolicyLeastRequest:
		return newLeastRequest(hosts, 0), nil
	case config.PolicyHash:
		p, err := newHash(lb.Hash, hosts)
		if err != nil {
			return nil, fmt.Errorf("balancer: service %q: %w", pool.Name(), err)
		}
		return p, nil
	}
	return nil, fmt.Errorf("balancer: service %q: unknown load-balancing policy %q", pool.Name(), lb.Policy)
}
