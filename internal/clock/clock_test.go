package clock

import (
	"context"
	"testing"
	"time"
)

func TestFake(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := NewFake(start)
	f.Advance(1500 * time.Millisecond)
	if got := f.Now().Sub(start); got != 1500*time.Millisecond {
		t.Fatalf("advanced %v, want 1.5s", got)
	}
	f.Set(start)
	if !f.Now().Equal(start) {
		t.Fatalf("Set did not move the clock")
	}
}

func TestSleepReturnsEarlyOnCancel(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("Wait did not complete")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan bool)
	go func() { done <- Sleep(ctx, time.Hour) }()
	cancel()
	select {
	case full := <-done:
		if full {
			t.Error("Wait reported a full wait after cancel")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait ignored the canceled context")
	}
	if Sleep(ctx, 0) {
		t.Error("Sleep(canceled, 0) = true")
	}
}

func TestFakeTimer(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	tm := NewTimer(f, time.Second)
	fired := func() bool {
		select {
		case <-tm.C():
			return true
		default:
			return false
		}
	}
	f.Advance(999 * time.Millisecond)
	if fired() {
		t.Fatal("fired before its time")
	}
	f.Advance(time.Millisecond)
	if !fired() {
		t.Fatal("did not fire at its time")
	}
	f.Advance(time.Hour)
	if fired() {
		t.Fatal("fired twice")
	}
	tm.Reset(time.Second)
	f.Set(start.Add(time.Hour + 2*time.Second))
	if !fired() {
		t.Fatal("did not fire after Reset and Set")
	}
	tm.Reset(time.Second)
	tm.Stop()
	f.Advance(time.Minute)
	if fired() {
		t.Fatal("fired after Stop")
	}
	tm.Reset(0)
	if !fired() {
		t.Fatal("Reset(0) did not fire at once")
	}
	// Reset leaves no stale value.
	tm.Reset(time.Second)
	f.Advance(time.Second)
	tm.Reset(time.Second)
	if fired() {
		t.Fatal("a stale value survived Reset")
	}
}

func TestRealTimer(t *testing.T) {
	tm := NewTimer(Real{}, time.Millisecond)
	select {
	case <-tm.C():
	case <-time.After(10 * time.Second):
		t.Fatal("real timer did not fire")
	}
}
