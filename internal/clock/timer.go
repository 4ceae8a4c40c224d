package clock

import (
	"sync"
	"time"
)

// Timer is a one-shot timer on a Clock: C delivers the clock's time once
// the timer's duration has passed on that clock. Reset and Stop leave no
// stale value in C. A Timer is used by one goroutine at a time.
type Timer interface {
	// C is the channel the time is delivered on (at most one value waits).
	C() <-chan time.Time
	// Reset makes the timer fire d from now, whether or not it had fired
	// or was stopped.
	Reset(d time.Duration)
	// Stop keeps the timer from firing.
	Stop()
}

// TimerClock is a Clock that also makes timers. Real and Fake are
// TimerClocks.
type TimerClock interface {
	Clock
	NewTimer(d time.Duration) Timer
}

// NewTimer returns a timer of c that fires d from now: c's own when c is a
// TimerClock, else a timer of the system clock.
func NewTimer(c Clock, d time.Duration) Timer {
	if tc, ok := c.(TimerClock); ok {
		return tc.NewTimer(d)
	}
	return Real{}.NewTimer(d)
}

// NewTimer returns a timer of the system clock.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }

// Reset and Stop rely on the timer semantics of Go 1.23 and later: no
// stale value is received after either returns.
func (r realTimer) Reset(d time.Duration) { r.t.Reset(d) }
func (r realTimer) Stop()                 { r.t.Stop() }

// fakeTimer is a Timer of a Fake clock: it fires when Advance or Set takes
// the clock to or past its deadline.
type fakeTimer struct {
	f        *Fake
	c        chan time.Time
	mu       sync.Mutex
	deadline time.Time
	active   bool
}

// NewTimer returns a timer that fires when the fake clock reaches d from
// now (at once when d <= 0).
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	f.mu.Lock()
	f.timers = append(f.timers, t)
	f.mu.Unlock()
	t.Reset(d)
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Reset(d time.Duration) {
	now := t.f.Now()
	t.mu.Lock()
	t.drain()
	t.deadline, t.active = now.Add(d), true
	t.mu.Unlock()
	t.fire(now)
}

func (t *fakeTimer) Stop() {
	t.mu.Lock()
	t.active = false
	t.drain()
	t.mu.Unlock()
}

func (t *fakeTimer) drain() {
	select {
	case <-t.c:
	default:
	}
}

// fire delivers now when the timer is due.
func (t *fakeTimer) fire(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.active && !now.Before(t.deadline) {
		t.active = false
		select {
		case t.c <- now:
		default:
		}
	}
}

// fireTimers fires the timers due at now. It is called without f.mu held.
func (f *Fake) fireTimers(now time.Time) {
	f.mu.Lock()
	ts := append([]*fakeTimer(nil), f.timers...)
	f.mu.Unlock()
	for _, t := range ts {
		t.fire(now)
	}
}

var (
	_ TimerClock = Real{}
	_ TimerClock = (*Fake)(nil)
)
