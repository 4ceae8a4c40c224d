package history

import (
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Rate-limit rejections are kept per policy in the ratelimit scope, as the
// RateLimitRejections field of these series:
//
//   - RateLimitName(policy): every request the policy refused;
//   - RateLimitKeyName(policy, key): those it refused counting by key
//     (the key kind: route, client_ip, header, client_ip+header,
//     in_flight), at most MaxRateLimitKeys per policy, the rest under
//     RateLimitOtherKey.
//
// Policies are config names and keys a fixed set, so the series are
// bounded by the config (and by max_series).

// MaxRateLimitKeys bounds the key series of one policy; rejections by
// further keys count under RateLimitOtherKey. (The keys are the limiter's
// key kinds, fewer than this today; the cap keeps the series bounded if a
// limiter ever reports more.)
const MaxRateLimitKeys = 8

// RateLimitOtherKey is the key series of a policy's rejections past
// MaxRateLimitKeys keys.
const RateLimitOtherKey = "other"

// RateLimitName returns the name of the ratelimit-scope series of every
// rejection of policy.
func RateLimitName(policy string) string { return policy }

// RateLimitKeyName returns the name of the ratelimit-scope series of
// policy's rejections by key: "policy/key".
func RateLimitKeyName(policy, key string) string { return policy + "/" + key }

type rlKey struct {
	policy string
	key    observe.RateLimitKey
}

// rlSeries are the series one (policy, key) rejection adds to.
type rlSeries struct {
	all, key *series
}

// rateLimited counts one rejection. Once the policy's series exist it
// takes no lock and does not allocate.
func (h *History) rateLimited(hit observe.RateLimitHit) {
	k := rlKey{hit.Policy, hit.Key}
	rs, ok := (*h.rlBy.Load())[k]
	if !ok {
		rs = h.rlSeriesOf(k)
	}
	for _, s := range [2]*series{rs.all, rs.key} {
		if s != nil {
			s.side[RateLimitRejections].Add(1)
			if !s.sideUsed.Load() {
				s.sideUsed.Store(true)
			}
		}
	}
}

// rlSeriesOf creates (within the caps) the series of k, once.
func (h *History) rlSeriesOf(k rlKey) rlSeries {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := *h.rlBy.Load()
	if rs, ok := cur[k]; ok {
		return rs
	}
	policy := k.policy
	if policy == "" {
		policy = "none"
	}
	key := k.key.String()
	if key == "" {
		key = "none"
	}
	name := RateLimitKeyName(policy, key)
	keys := map[*series]bool{}
	for o, v := range cur {
		if o.policy == k.policy && v.key != nil {
			keys[v.key] = true
		}
	}
	if len(keys) >= h.rlMaxKeys && h.series[seriesKey{ScopeRateLimit, name}] == nil {
		name = RateLimitKeyName(policy, RateLimitOtherKey)
	}
	rs := rlSeries{
		all: h.seriesLocked(ScopeRateLimit, RateLimitName(policy)),
		key: h.seriesLocked(ScopeRateLimit, name),
	}
	nm := make(map[rlKey]rlSeries, len(cur)+1)
	for o, v := range cur {
		nm[o] = v
	}
	nm[k] = rs
	h.rlBy.Store(&nm)
	h.publishLocked()
	return rs
}
