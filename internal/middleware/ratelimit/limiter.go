package ratelimit

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Decision is a limiter's answer for one request.
type Decision struct {
	// OK reports whether the request may go.
	OK bool
	// Remaining is how many more requests the key may send right now.
	Remaining int
	// RetryAfter is, when !OK, how long until the key may send one request.
	RetryAfter time.Duration
	// Reset is how long until the key's quota is whole again (its bucket
	// full).
	Reset time.Duration
}

// Limiter decides whether the request of one key may go now, and counts it
// when it may. key is a 64-bit hash of the key's parts (see KeyHash), so
// neither a raw client address nor a header value is kept. The in-memory
// Buckets is the implementation today; a shared store (Redis) for a global
// limit across replicas can implement the same interface. Implementations
// must be safe for concurrent use and should not allocate for a known key.
type Limiter interface {
	Allow(key uint64, now time.Time) Decision
}

// Shard layout of Buckets: one shard for small tables, 64 for large ones so
// that concurrent requests rarely share a lock.
const (
	manyShards       = 64
	minKeysPerShard  = 16
	sweepMinInterval = time.Second
)

// Buckets is an in-memory Limiter: a token bucket per key, kept in a sharded
// map of bounded size. Each bucket holds Burst tokens and refills at Rate
// per Period; it is computed as the equivalent generic cell rate algorithm
// (one timestamp per key, integer nanoseconds, so the sequence of decisions
// is exact).
//
// Memory is bounded by MaxKeys. A key whose bucket has refilled completely
// carries no information and is dropped lazily, when its shard is full (at
// most one sweep per shard per second). When a shard is full of keys that
// are all still active, new keys share that shard's overflow bucket, which
// has the same rate and burst: under a flood of distinct keys newcomers are
// limited together rather than admitted untracked or evicting active keys.
type Buckets struct {
	interval int64 // ns per token (Period / Rate)
	burst    int64
	tau      int64 // burst × interval: how far ahead of now a key may run
	perShard int
	epoch    time.Time
	nshards  int
	// shards are allocated on the first Allow, and each shard's map on its
	// first key, so that a limit of a route that gets no traffic costs a
	// few words however large its max_keys.
	shards atomic.Pointer[[]shard]
}

type shard struct {
	mu        sync.Mutex
	tat       map[uint64]int64 // key → theoretical arrival time, ns since epoch
	overflow  int64            // tat of the overflow bucket
	lastSweep int64
	_         [64]byte // keep shards on separate cache lines
}

// NewBuckets returns a limiter allowing rate requests per period with bursts
// of up to burst, for at most maxKeys keys. epoch is any time before the
// first Allow (the clock's now). rate and burst must be positive.
func NewBuckets(rate float64, period time.Duration, burst, maxKeys int, epoch time.Time) *Buckets {
	interval := int64(math.Round(float64(period) / rate))
	if interval < 1 {
		interval = 1
	}
	burst = max(burst, 1)
	maxKeys = max(maxKeys, 1)
	n := 1
	if maxKeys >= manyShards*minKeysPerShard {
		n = manyShards
	}
	return &Buckets{
		interval: interval,
		burst:    int64(burst),
		tau:      int64(burst) * interval,
		perShard: (maxKeys + n - 1) / n,
		epoch:    epoch,
		nshards:  n,
	}
}

// shardList returns the shards, allocating them on first use.
func (b *Buckets) shardList() []shard {
	if p := b.shards.Load(); p != nil {
		return *p
	}
	s := make([]shard, b.nshards)
	for i := range s {
		s[i].lastSweep = -int64(sweepMinInterval)
	}
	if b.shards.CompareAndSwap(nil, &s) {
		return s
	}
	return *b.shards.Load()
}

// Allow implements Limiter.
func (b *Buckets) Allow(key uint64, now time.Time) Decision {
	t := int64(now.Sub(b.epoch))
	shards := b.shardList()
	sh := &shards[key%uint64(len(shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	tat, known := sh.tat[key]
	if !known {
		if len(sh.tat) >= b.perShard && !b.sweepLocked(sh, t) {
			d, next := b.decide(sh.overflow, t)
			if d.OK {
				sh.overflow = next
			}
			return d
		}
		tat = t // a new key's bucket is full
	}
	d, next := b.decide(tat, t)
	if d.OK {
		if sh.tat == nil {
			sh.tat = make(map[uint64]int64)
		}
		sh.tat[key] = next
	}
	return d
}

// decide applies one request at t to a bucket whose theoretical arrival
// time is tat, and returns the decision and the new tat when allowed.
func (b *Buckets) decide(tat, t int64) (Decision, int64) {
	tat = max(tat, t)
	next := tat + b.interval
	ahead := next - t
	if ahead > b.tau {
		return Decision{
			RetryAfter: time.Duration(ahead - b.tau),
			Reset:      time.Duration(tat - t),
		}, tat
	}
	return Decision{
		OK:        true,
		Remaining: int((b.tau - ahead) / b.interval),
		Reset:     time.Duration(ahead),
	}, next
}

// sweepLocked drops the keys whose bucket is full at t and reports whether
// the shard has room. It runs at most once per sweepMinInterval per shard.
func (b *Buckets) sweepLocked(sh *shard, t int64) bool {
	if t-sh.lastSweep < int64(sweepMinInterval) {
		return false
	}
	sh.lastSweep = t
	for k, tat := range sh.tat {
		if tat <= t {
			delete(sh.tat, k)
		}
	}
	return len(sh.tat) < b.perShard
}

// Keys returns the number of keys tracked.
func (b *Buckets) Keys() int {
	n := 0
	p := b.shards.Load()
	if p == nil {
		return 0
	}
	for i := range *p {
		sh := &(*p)[i]
		sh.mu.Lock()
		n += len(sh.tat)
		sh.mu.Unlock()
	}
	return n
}

// KeyHash is FNV-1a (64 bit) over parts, each followed by a zero byte so
// that ("ab", "c") and ("a", "bc") differ. It is stable across processes,
// so replicas sharing a store agree on keys. It does not allocate.
func KeyHash(parts ...string) uint64 {
	h := uint64(14695981039346656037)
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			h ^= uint64(p[i])
			h *= 1099511628211
		}
		h *= 1099511628211 // the zero separator
	}
	return h
}

var _ Limiter = (*Buckets)(nil)
