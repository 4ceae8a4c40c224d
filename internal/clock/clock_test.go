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
