package batch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
)

// recorder is a handler that reports each batch (a copy) on a channel and,
// when gate is set, waits for the test before returning from each call.
type recorder struct {
	got  chan []int
	gate chan struct{}
}

func newRecorder(gated bool) *recorder {
	r := &recorder{got: make(chan []int, 100)}
	if gated {
		r.gate = make(chan struct{})
	}
	return r
}

func (r *recorder) handle(b []int) {
	r.got <- slices.Clone(b)
	if r.gate != nil {
		<-r.gate
	}
}

// next waits for the next batch (bounded, so a broken queue fails rather
// than hangs).
func (r *recorder) next(t *testing.T) []int {
	t.Helper()
	select {
	case b := <-r.got:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no batch delivered")
		return nil
	}
}

func newFake() *clock.Fake { return clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) }

func putAll(t *testing.T, q *Queue[int], vs ...int) {
	t.Helper()
	for _, v := range vs {
		if err := q.Put(v); err != nil {
			t.Fatalf("Put(%d): %v", v, err)
		}
	}
}

func closeNow(t *testing.T, q *Queue[int]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if left, err := q.Close(ctx); err != nil || left != 0 {
		t.Fatalf("Close: left %d, %v", left, err)
	}
}

// A wake delivers only full batches; the rest waits for MaxDelay, then
// goes out with everything queued by then.
func TestWakeDeliversOnlyFullBatches(t *testing.T) {
	clk := newFake()
	r := newRecorder(false)
	q := New(Options{Capacity: 16, BatchSize: 4, MaxDelay: time.Minute, Clock: clk}, r.handle)
	defer closeNow(t, q)

	putAll(t, q, 0, 1, 2, 3, 4, 5)
	if b := r.next(t); !slices.Equal(b, []int{0, 1, 2, 3}) {
		t.Fatalf("first batch %v, want the full batch [0 1 2 3]", b)
	}
	// 4 and 5 wait for the delay: a partial batch is never sent on a wake.
	putAll(t, q, 6, 7, 8, 9)
	if b := r.next(t); !slices.Equal(b, []int{4, 5, 6, 7}) {
		t.Fatalf("second batch %v, want [4 5 6 7]", b)
	}
	clk.Advance(time.Minute)
	if b := r.next(t); !slices.Equal(b, []int{8, 9}) {
		t.Fatalf("after the delay %v, want the rest [8 9]", b)
	}
	if st := q.Stats(); st.Batches != 3 || st.Delivered != 10 || st.Accepted != 10 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Items that arrive while a batch is being delivered do not go out as a
// stream of small batches: the worker sends the full ones and leaves the
// remainder (the batching bug the exporters had).
func TestBacklogGoesOutInFullBatches(t *testing.T) {
	clk := newFake()
	r := newRecorder(true)
	q := New(Options{Capacity: 32, BatchSize: 4, MaxDelay: time.Minute, Clock: clk}, r.handle)
	defer closeNow(t, q)

	putAll(t, q, 0, 1, 2, 3)
	if b := r.next(t); !slices.Equal(b, []int{0, 1, 2, 3}) {
		t.Fatalf("first batch %v", b)
	}
	// The handler is busy: 10 more arrive.
	putAll(t, q, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
	r.gate <- struct{}{}
	for _, want := range [][]int{{4, 5, 6, 7}, {8, 9, 10, 11}} {
		if b := r.next(t); !slices.Equal(b, want) {
			t.Fatalf("batch %v, want %v", b, want)
		}
		r.gate <- struct{}{}
	}
	clk.Advance(time.Minute)
	if b := r.next(t); !slices.Equal(b, []int{12, 13}) {
		t.Fatalf("after the delay %v, want [12 13]", b)
	}
	r.gate <- struct{}{}
}

// The delay counts from the last delivery: a wake for a full batch
// restarts it.
func TestDelayCountsFromTheLastDelivery(t *testing.T) {
	clk := newFake()
	r := newRecorder(false)
	q := New(Options{Capacity: 16, BatchSize: 4, MaxDelay: time.Minute, Clock: clk}, r.handle)
	defer closeNow(t, q)

	clk.Advance(50 * time.Second)
	putAll(t, q, 0, 1, 2, 3, 4)
	if b := r.next(t); !slices.Equal(b, []int{0, 1, 2, 3}) {
		t.Fatalf("first batch %v", b)
	}
	// Flush is a delivery too; it shows the worker has reset its timer.
	putAll(t, q, 5)
	if err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b := r.next(t); !slices.Equal(b, []int{4, 5}) {
		t.Fatalf("flushed %v, want [4 5]", b)
	}
	putAll(t, q, 6)
	clk.Advance(59 * time.Second)
	putAll(t, q, 7, 8, 9) // fills a batch: proves 6 had not gone out at +59s
	if b := r.next(t); !slices.Equal(b, []int{6, 7, 8, 9}) {
		t.Fatalf("batch %v, want [6 7 8 9]", b)
	}
}

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	r := newRecorder(true)
	q := New(Options{Capacity: 4, BatchSize: 4, MaxDelay: time.Hour, Clock: newFake()}, r.handle)
	putAll(t, q, 0, 1, 2, 3)
	r.next(t) // the worker holds 0..3 in its handler
	putAll(t, q, 4, 5, 6, 7)
	if err := q.Put(8); !errors.Is(err, ErrFull) {
		t.Fatalf("Put on a full queue: %v, want ErrFull", err)
	}
	if err := q.PutN(9, 2); !errors.Is(err, ErrFull) {
		t.Fatalf("PutN on a full queue: %v, want ErrFull", err)
	}
	if st := q.Stats(); st.DroppedFull != 3 || st.Queued != 4 || st.Capacity != 4 || st.Accepted != 8 {
		t.Fatalf("stats %+v", st)
	}
	if q.Len() != 4 || q.Cap() != 4 {
		t.Fatalf("Len %d Cap %d", q.Len(), q.Cap())
	}
	r.gate <- struct{}{}
	r.next(t)
	r.gate <- struct{}{}
	closeNow(t, q)
}

// PutN counts an entry as several items, toward the capacity and the
// batch, and takes or drops it whole.
func TestPutNWeighsEntries(t *testing.T) {
	clk := newFake()
	r := newRecorder(false)
	q := New(Options{Capacity: 5, BatchSize: 4, MaxDelay: time.Hour, Clock: clk}, r.handle)
	defer closeNow(t, q)
	if err := q.PutN(10, 3); err != nil {
		t.Fatal(err)
	}
	if err := q.PutN(20, 3); !errors.Is(err, ErrFull) {
		t.Fatalf("PutN past capacity: %v", err)
	}
	if q.Len() != 3 {
		t.Fatalf("Len %d, want 3", q.Len())
	}
	if err := q.PutN(30, 2); err != nil { // 5 items: wakes the worker
		t.Fatal(err)
	}
	// A batch holds at most 4 items, but at least one entry.
	if b := r.next(t); !slices.Equal(b, []int{10}) {
		t.Fatalf("batch %v, want [10]", b)
	}
	clk.Advance(time.Hour)
	if b := r.next(t); !slices.Equal(b, []int{30}) {
		t.Fatalf("batch %v, want [30]", b)
	}
	if st := q.Stats(); st.Delivered != 5 || st.DroppedFull != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCloseDeliversWhatIsQueued(t *testing.T) {
	r := newRecorder(false)
	q := New(Options{Capacity: 16, BatchSize: 8, MaxDelay: time.Hour, Clock: newFake()}, r.handle)
	putAll(t, q, 1, 2, 3)
	closeNow(t, q)
	if b := r.next(t); !slices.Equal(b, []int{1, 2, 3}) {
		t.Fatalf("on close %v, want [1 2 3]", b)
	}
	if err := q.Put(4); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v, want ErrClosed", err)
	}
	if st := q.Stats(); st.DroppedClosed != 1 {
		t.Fatalf("stats %+v", st)
	}
	select {
	case <-q.Done():
	default:
		t.Fatal("worker still running after Close")
	}
	if left, err := q.Close(context.Background()); left != 0 || err != nil {
		t.Fatalf("second Close: %d, %v", left, err)
	}
	if err := q.Flush(context.Background()); err != nil {
		t.Fatalf("Flush after Close: %v", err)
	}
}

// Close gives up when its context ends: what is still queued is dropped and
// reported; the batch in the handler finishes, then the worker stops.
func TestCloseGivesUpAtItsDeadline(t *testing.T) {
	r := newRecorder(true)
	q := New(Options{Capacity: 16, BatchSize: 4, MaxDelay: time.Hour, Clock: newFake()}, r.handle)
	putAll(t, q, 0, 1, 2, 3)
	r.next(t) // stuck in the handler
	putAll(t, q, 4, 5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	left, err := q.Close(ctx)
	if left != 2 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Close: left %d, %v; want 2, context.Canceled", left, err)
	}
	if st := q.Stats(); st.Abandoned != 2 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
	r.gate <- struct{}{}
	select {
	case <-q.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not stop after its handler returned")
	}
	if st := q.Stats(); st.Delivered != 4 {
		t.Fatalf("delivered %d after giving up, want only the 4 in the handler", st.Delivered)
	}
}

func TestFlushWaitsForTheHandler(t *testing.T) {
	var mu sync.Mutex
	var got []int
	q := New(Options{Capacity: 16, BatchSize: 8, MaxDelay: time.Hour, Clock: newFake()}, func(b []int) {
		mu.Lock()
		got = append(got, b...)
		mu.Unlock()
	})
	defer closeNow(t, q)
	putAll(t, q, 1, 2)
	if err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("after Flush the handler had %v", got)
	}
}

// The handler owns the items; the queue keeps no reference to them.
func TestQueueLetsGoOfDeliveredItems(t *testing.T) {
	r := make(chan []*int, 1)
	q := New(Options{Capacity: 4, BatchSize: 2, MaxDelay: time.Hour, Clock: newFake()}, func(b []*int) { r <- slices.Clone(b) })
	a, b := new(int), new(int)
	_ = q.Put(a)
	_ = q.Put(b)
	<-r
	q.mu.Lock()
	for i, e := range q.ring {
		if e.v != nil {
			t.Errorf("slot %d still holds an item", i)
		}
	}
	q.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q.Close(ctx)
}

// The real clock: an item below a batch goes out after MaxDelay.
func TestRealClockDelay(t *testing.T) {
	r := newRecorder(false)
	q := New(Options{Capacity: 16, BatchSize: 8, MaxDelay: 5 * time.Millisecond}, r.handle)
	defer closeNow(t, q)
	putAll(t, q, 7)
	if b := r.next(t); !slices.Equal(b, []int{7}) {
		t.Fatalf("batch %v", b)
	}
}

func TestPutDoesNotAllocate(t *testing.T) {
	q := New(Options{Capacity: 1 << 16, BatchSize: 1 << 16, MaxDelay: time.Hour, Clock: newFake()}, func([]int) {})
	defer closeNow(t, q)
	if n := testing.AllocsPerRun(1000, func() { _ = q.Put(1) }); n != 0 {
		t.Fatalf("Put allocates %.1f times", n)
	}
	full := New(Options{Capacity: 1, BatchSize: 1, MaxDelay: time.Hour, Clock: newFake()}, func([]int) { select {} })
	_ = full.Put(1) // the handler keeps this one forever
	_ = full.Put(2) // queued
	if n := testing.AllocsPerRun(1000, func() { _ = full.Put(3) }); n != 0 {
		t.Fatalf("a refused Put allocates %.1f times", n)
	}
}

func BenchmarkPut(b *testing.B) {
	q := New(Options{Capacity: 4096, BatchSize: 512, MaxDelay: 100 * time.Millisecond}, func([]int) {})
	defer q.Close(context.Background())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = q.Put(1)
		}
	})
}

func TestPoolIsBounded(t *testing.T) {
	made := 0
	p := NewPool(2, func() *[]byte { made++; b := make([]byte, 0, 8); return &b })
	a, ok1 := p.Get()
	b, ok2 := p.Get()
	_, ok3 := p.Get()
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("Get: %v %v %v, want two items then none", ok1, ok2, ok3)
	}
	p.Put(a)
	c, ok := p.Get()
	if !ok || c != a || made != 2 {
		t.Fatalf("Get after Put: %v, same item %v, made %d", ok, c == a, made)
	}
	p.Put(b)
	p.Put(c)
	if n := testing.AllocsPerRun(100, func() { v, _ := p.Get(); p.Put(v) }); n != 0 {
		t.Fatalf("Get and Put allocate %.1f times", n)
	}
	if p.Max() != 2 {
		t.Fatalf("Max %d", p.Max())
	}
}
