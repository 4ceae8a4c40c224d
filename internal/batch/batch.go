// Package batch owns the gateway's one bounded batching queue: the way
// telemetry leaves the request path. Producers (request goroutines) put
// items without ever waiting; one worker goroutine per queue takes them in
// batches and hands each batch to the owner's handler (export, write,
// deliver). The span export, the access log's file writer and its OTLP
// export are built on it, and so should be every later writer that takes
// work off the request path (alert and webhook delivery, forwarders).
//
// The behaviour, tested once here:
//
//   - Bounded: at most Capacity items wait. A Put that does not fit is
//     refused at once (ErrFull) and counted; the producer never blocks and
//     memory never grows with traffic.
//   - Batches by size and by time: the worker is woken once per full batch
//     (BatchSize items), never per item, and then delivers only full
//     batches; what is left waits until MaxDelay has passed since the last
//     delivery, and then goes out with everything queued by then. (Sending
//     the remainder at once would turn a busy queue's deliveries into a
//     stream of small batches, each paying the fixed cost of one.)
//   - Drained: Close stops taking items, delivers what is queued until its
//     context ends, and reports what it had to leave. Flush delivers what is
//     queued now and waits for it.
//   - Observable: Len, Cap and Stats (accepted, dropped by reason, batches,
//     items delivered) for the owner's metrics.
//
// Time (MaxDelay) is read from a clock.Clock, so a test with clock.Fake
// decides when the delay has passed. All methods are safe for concurrent
// use.
package batch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
)

// The errors Put and PutN return. They are values (not wrapped), so that
// refusing an item allocates nothing.
var (
	// ErrFull: the queue holds Capacity items; the item was dropped.
	ErrFull = errors.New("batch: queue full")
	// ErrClosed: Close was called; the item was dropped.
	ErrClosed = errors.New("batch: queue closed")
)

// Defaults of Options.
const (
	DefaultCapacity  = 2048
	DefaultBatchSize = 512
	DefaultMaxDelay  = time.Second
)

// Options configure a Queue. The zero value gives the defaults.
type Options struct {
	// Capacity is the most items waiting (default 2048).
	Capacity int
	// BatchSize is the most items per batch and the number that wakes the
	// worker (default min(512, Capacity); at most Capacity).
	BatchSize int
	// MaxDelay is the longest an item waits for its batch to fill, counted
	// from the last delivery (default 1s).
	MaxDelay time.Duration
	// Clock times MaxDelay (default clock.Real).
	Clock clock.Clock
}

// Stats are a queue's counters since New.
type Stats struct {
	// Queued is the number of items waiting now; Capacity the most there
	// may be.
	Queued, Capacity int
	// Accepted counts the items Put took.
	Accepted uint64
	// DroppedFull and DroppedClosed count the items refused because the
	// queue was full or closed; Abandoned those Close left queued when its
	// context ended.
	DroppedFull, DroppedClosed, Abandoned uint64
	// Batches counts the handler's calls; Delivered the items it was given.
	Batches, Delivered uint64
}

// entry is one queued item and how many items it counts for.
type entry[T any] struct {
	v T
	n int
}

// Queue is a bounded batching queue of T, delivered to its handler by one
// worker goroutine. Create it with New; a Queue must not be copied.
type Queue[T any] struct {
	handle   func([]T)
	capacity int
	batch    int
	delay    time.Duration
	clock    clock.Clock

	mu     sync.Mutex
	ring   []entry[T] // len == capacity; entries [head, head+n) are queued
	head   int
	n      int  // entries queued
	weight int  // items queued (the sum of the entries' n)
	kicked bool // a wake is pending for a full batch
	closed bool

	out []T // the batch being delivered; owned by the worker

	kick     chan struct{} // capacity 1
	flushReq chan chan struct{}
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once

	accepted, droppedFull, droppedClosed, abandoned atomic.Uint64
	batches, delivered                              atomic.Uint64
}

// New starts a queue whose worker calls handle with each batch, one batch
// at a time. handle may keep nothing of the slice it is given (it is
// reused) but owns the items in it. The caller must Close the queue.
func New[T any](o Options, handle func(batch []T)) *Queue[T] {
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	if o.BatchSize <= 0 {
		o.BatchSize = min(DefaultBatchSize, o.Capacity)
	}
	o.BatchSize = min(o.BatchSize, o.Capacity)
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	q := &Queue[T]{
		handle:   handle,
		capacity: o.Capacity,
		batch:    o.BatchSize,
		delay:    o.MaxDelay,
		clock:    o.Clock,
		ring:     make([]entry[T], o.Capacity),
		out:      make([]T, 0, o.BatchSize),
		kick:     make(chan struct{}, 1),
		flushReq: make(chan chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	// The timer is made here, not on the worker, so that it starts with
	// New's time (a test's fake clock may move right after New returns).
	timer := clock.NewTimer(q.clock, q.delay)
	go q.run(timer)
	return q
}

// Put queues v as one item. It never blocks: it returns ErrFull or
// ErrClosed (and counts the drop) when v is not taken.
func (q *Queue[T]) Put(v T) error { return q.PutN(v, 1) }

// PutN queues v as n items (n >= 1; for example the spans of one request
// encoded together): v counts n toward Capacity and BatchSize, and is
// taken or dropped whole. It never blocks.
func (q *Queue[T]) PutN(v T, n int) error {
	n = max(n, 1)
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.droppedClosed.Add(uint64(n))
		return ErrClosed
	}
	if q.weight+n > q.capacity {
		q.mu.Unlock()
		q.droppedFull.Add(uint64(n))
		return ErrFull
	}
	i := q.head + q.n
	if i >= q.capacity {
		i -= q.capacity
	}
	q.ring[i] = entry[T]{v: v, n: n}
	q.n++
	q.weight += n
	wake := q.weight >= q.batch && !q.kicked
	if wake {
		q.kicked = true
	}
	q.mu.Unlock()
	q.accepted.Add(uint64(n))
	if wake {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Len returns the number of items waiting.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.weight
}

// Cap returns the most items that may wait.
func (q *Queue[T]) Cap() int { return q.capacity }

// Stats returns the counters.
func (q *Queue[T]) Stats() Stats {
	return Stats{
		Queued:        q.Len(),
		Capacity:      q.capacity,
		Accepted:      q.accepted.Load(),
		DroppedFull:   q.droppedFull.Load(),
		DroppedClosed: q.droppedClosed.Load(),
		Abandoned:     q.abandoned.Load(),
		Batches:       q.batches.Load(),
		Delivered:     q.delivered.Load(),
	}
}

// Flush delivers every item queued at the call and waits until the handler
// has had them, or until ctx ends. After Close it returns at once.
func (q *Queue[T]) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case q.flushReq <- done:
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking items (later Puts return ErrClosed), delivers what is
// queued and stops the worker. When ctx ends first it gives up: the items
// still queued are dropped and returned as left (counted as Abandoned),
// with ctx's error; a batch the handler is working on stays the handler's,
// and the worker stops once that call returns. Later calls return 0, nil.
func (q *Queue[T]) Close(ctx context.Context) (left int, err error) {
	first := false
	q.once.Do(func() {
		first = true
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		close(q.stop)
	})
	if !first {
		return 0, nil
	}
	select {
	case <-q.done:
		return 0, nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	left = q.weight
	q.clearLocked(q.n)
	q.weight = 0
	q.mu.Unlock()
	q.abandoned.Add(uint64(left))
	return left, ctx.Err()
}

// Done is closed when the worker has stopped (after Close).
func (q *Queue[T]) Done() <-chan struct{} { return q.done }

func (q *Queue[T]) run(timer clock.Timer) {
	defer close(q.done)
	defer timer.Stop()
	for {
		select {
		case <-q.kick:
			// A wake may find nothing to do (its batch went out with the
			// previous one); it then leaves the timer alone.
			q.deliver(false, timer)
		case <-timer.C():
			if q.deliver(true, timer) == 0 {
				timer.Reset(q.delay)
			}
		case done := <-q.flushReq:
			q.deliver(true, timer)
			close(done)
		case <-q.stop:
			q.deliver(true, timer)
			return
		}
	}
}

// deliver hands full batches to the handler while there are any and, with
// all, also the items queued when it was called, the last of them in a
// partial batch. Items that arrive meanwhile wait for their batch to fill
// or for the delay, which restarts (timer) when the first batch goes out.
// It returns how many batches it delivered.
func (q *Queue[T]) deliver(all bool, timer clock.Timer) (batches int) {
	left := 0 // items queued at the call not yet delivered
	if all {
		q.mu.Lock()
		left = q.weight
		q.mu.Unlock()
	}
	for {
		q.mu.Lock()
		if q.weight < q.batch && left <= 0 {
			q.kicked = false
			q.mu.Unlock()
			return batches
		}
		items := q.takeLocked()
		q.kicked = q.weight >= q.batch
		q.mu.Unlock()
		if len(q.out) == 0 {
			return batches
		}
		if batches == 0 {
			timer.Reset(q.delay)
		}
		batches++
		left -= items
		q.batches.Add(1)
		q.delivered.Add(uint64(items))
		q.handle(q.out)
		clear(q.out) // drop the references: the items are the handler's
		q.out = q.out[:0]
	}
}

// takeLocked moves the oldest entries, at most a batch of items (but at
// least one entry), to q.out and returns how many items they count for.
func (q *Queue[T]) takeLocked() int {
	items, taken := 0, 0
	for taken < q.n {
		e := &q.ring[(q.head+taken)%q.capacity]
		if taken > 0 && items+e.n > q.batch {
			break
		}
		q.out = append(q.out, e.v)
		items += e.n
		taken++
	}
	q.clearLocked(taken)
	q.weight -= items
	return items
}

// clearLocked removes the k oldest entries, zeroing their slots so that
// the queue keeps no reference to what it no longer holds. The caller
// adjusts q.weight.
func (q *Queue[T]) clearLocked(k int) {
	for range k {
		q.ring[q.head] = entry[T]{}
		q.head++
		if q.head == q.capacity {
			q.head = 0
		}
		q.n--
	}
	if q.n == 0 {
		q.head = 0
	}
}
