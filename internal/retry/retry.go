// Package retry holds the pieces of the proxy's retry loop that decide how
// much and how long: the retry budget, which caps retries to a share of a
// route's traffic so that retries cannot multiply the load on a failing
// service, and the exponential backoff with full jitter between attempts.
// The loop itself (what is retryable, which service, the attempts) is the
// proxy's.
package retry

import (
	"math"
	"reflect"
	"sync"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
)

// budgetBuckets is how many slices a budget's window is kept in; the window
// slides one slice at a time.
const budgetBuckets = 10

type budgetBucket struct {
	num               int64 // which slice: elapsed / width
	requests, retries int
}

// Budget caps the retries of one route: a retry is allowed when, counting
// it, the retries in the sliding window do not exceed the larger of Percent% of the
// requests in the window and MinRetriesPerSecond × window. A nil *Budget
// allows every retry. Budget is safe for concurrent use; its methods do not
// allocate.
type Budget struct {
	cfg     config.RetryBudget
	clk     clock.Clock
	epoch   time.Time
	width   int64 // ns per bucket
	share   float64
	minimum float64 // retries always allowed per window

	mu      sync.Mutex
	buckets [budgetBuckets]budgetBucket
}

// NewBudget returns a budget for cfg, which must be defaulted and valid
// (positive Window). clk tells the time; nil means the system clock.
func NewBudget(cfg config.RetryBudget, clk clock.Clock) *Budget {
	if clk == nil {
		clk = clock.Real{}
	}
	w := cfg.Window.D()
	if w <= 0 {
		w = 10 * time.Second
	}
	b := &Budget{
		cfg:     cfg,
		clk:     clk,
		epoch:   clk.Now(),
		width:   max(1, int64(w)/budgetBuckets),
		share:   cfg.Percent / 100,
		minimum: float64(cfg.MinRetriesPerSecond) * w.Seconds(),
	}
	for i := range b.buckets {
		b.buckets[i].num = math.MinInt64
	}
	return b
}

// Carry returns prev when it has the same config as cfg, so the budget's
// window survives a config reload, and a new budget otherwise.
func Carry(prev *Budget, cfg config.RetryBudget, clk clock.Clock) *Budget {
	if prev != nil && reflect.DeepEqual(prev.cfg, cfg) {
		return prev
	}
	return NewBudget(cfg, clk)
}

// bucketLocked returns the current bucket, recycled if stale, and its
// number.
func (b *Budget) bucketLocked() (*budgetBucket, int64) {
	num := int64(b.clk.Now().Sub(b.epoch)) / b.width
	bk := &b.buckets[int(uint64(num)%budgetBuckets)]
	if bk.num != num {
		*bk = budgetBucket{num: num}
	}
	return bk, num
}

func (b *Budget) sumLocked(num int64) (requests, retries int) {
	for i := range b.buckets {
		bk := &b.buckets[i]
		if bk.num > num-budgetBuckets && bk.num <= num {
			requests += bk.requests
			retries += bk.retries
		}
	}
	return requests, retries
}

// Request counts one request of the route (its first attempt; retries are
// counted by AllowRetry).
func (b *Budget) Request() {
	if b == nil {
		return
	}
	b.mu.Lock()
	bk, _ := b.bucketLocked()
	bk.requests++
	b.mu.Unlock()
}

// AllowRetry reports whether one more retry fits in the budget (the window's
// retries, this one included, stay within the limit) and, when it does,
// counts it. The proxy emits EventRetryBudgetExhausted when it is
// refused.
func (b *Budget) AllowRetry() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bk, num := b.bucketLocked()
	requests, retries := b.sumLocked(num)
	if float64(retries+1) > max(b.minimum, b.share*float64(requests)) {
		return false
	}
	bk.retries++
	return true
}

// Counts returns the requests and retries in the current window, for the
// admin API and tests.
func (b *Budget) Counts() (requests, retries int) {
	if b == nil {
		return 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_, num := b.bucketLocked()
	return b.sumLocked(num)
}

// Backoff returns how long to wait before retry number attempt (1 for the
// first retry): a uniformly random duration in [0, min(maxDelay, base ×
// 2^(attempt-1))] ("full jitter"). A maxDelay below base counts as base. rnd supplies random bits and must be safe
// for the caller's concurrency (math/rand/v2.Uint64 is); with a nil rnd the
// upper bound itself is returned. Backoff returns 0 when attempt < 1 or base
// <= 0.
func Backoff(attempt int, base, maxDelay time.Duration, rnd func() uint64) time.Duration {
	if attempt < 1 || base <= 0 {
		return 0
	}
	if maxDelay < base {
		maxDelay = base
	}
	ceil := maxDelay
	if shift := attempt - 1; shift < 63 && base <= maxDelay>>shift {
		ceil = base << shift
	}
	if rnd == nil {
		return ceil
	}
	return time.Duration(rnd() % (uint64(ceil) + 1))
}
