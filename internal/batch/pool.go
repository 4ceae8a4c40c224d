package batch

import "sync/atomic"

// Pool is a bounded free list of reusable items (record buffers, export
// entries) for the producers of a Queue: at most Max items ever exist, made
// on first need and then recycled, so that a queue's memory is bounded by
// what it holds and steady-state producing allocates nothing. Unlike
// sync.Pool it keeps its items across garbage collections and refuses
// rather than allocating past its bound. It is safe for concurrent use.
type Pool[T any] struct {
	free      chan T
	allocated atomic.Int64
	newItem   func() T
}

// NewPool returns a pool of at most n items (at least 1), made by
// newItem.
func NewPool[T any](n int, newItem func() T) *Pool[T] {
	return &Pool[T]{free: make(chan T, max(n, 1)), newItem: newItem}
}

// Get returns a free item, a new one while fewer than the pool's bound
// exist, or ok false when every item is in use. It never blocks.
func (p *Pool[T]) Get() (v T, ok bool) {
	select {
	case v = <-p.free:
		return v, true
	default:
	}
	if p.allocated.Add(1) <= int64(cap(p.free)) {
		return p.newItem(), true
	}
	p.allocated.Add(-1)
	return v, false
}

// Put makes v available again; the caller has reset it. Items that do not
// fit (never more than the bound were made) are left to the collector.
func (p *Pool[T]) Put(v T) {
	select {
	case p.free <- v:
	default:
		p.allocated.Add(-1)
	}
}

// Max returns the pool's bound.
func (p *Pool[T]) Max() int { return cap(p.free) }
