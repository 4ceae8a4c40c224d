// Package clock makes time an input. Breakers, rate limiters, retry budgets,
// health checks and ejections read the time through a Clock, and the
// batching queues wait on its timers (NewTimer), so that tests can drive
// them at fixed times instead of sleeping.
package clock

import (
	"context"
	"sync"
	"time"
)

// Clock tells the time. Implementations must be safe for concurrent use.
type Clock interface {
	Now() time.Time
}

// Real is the system clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Fake is a Clock that moves only when told to. The zero value starts at the
// zero time; use NewFake for a realistic start. It is safe for concurrent use.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

// NewFake returns a Fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the clock forward by d and fires the timers (NewTimer)
// that are then due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	now := f.now
	f.mu.Unlock()
	f.fireTimers(now)
}

// Set moves the clock to t and fires the timers that are then due.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	f.now = t
	f.mu.Unlock()
	f.fireTimers(t)
}

var (
	_ Clock = Real{}
	_ Clock = (*Fake)(nil)
)

// Sleep waits for d or until ctx is done, whichever comes first, and reports
// whether the whole d elapsed. Unlike time.Sleep it never outlives a
// request whose client went away.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
