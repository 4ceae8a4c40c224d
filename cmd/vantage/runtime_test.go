package main

import (
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
)

func TestApplyRuntime(t *testing.T) {
	pct0 := debug.SetGCPercent(100)
	lim0 := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(pct0); debug.SetMemoryLimit(lim0) })
	logger := slog.New(slog.DiscardHandler)

	p := 250
	applyRuntime(config.Runtime{GCPercent: &p, MemoryLimit: 300 << 20}, logger)
	if got := debug.SetGCPercent(-1); got != 250 {
		t.Errorf("gc percent %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 300<<20 { // -1 reads without changing
		t.Errorf("memory limit %d", got)
	}
	applyRuntime(config.Runtime{}, logger) // defaults: 400, no fixed limit
	if got := debug.SetGCPercent(-1); got != config.DefaultGCPercent {
		t.Errorf("default gc percent %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("default memory limit %d", got)
	}
}

func TestAutoLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct{ live, other, headroom, want int64 }{
		{10 * mib, 20 * mib, 128 * mib, 158 * mib},   // a small heap: the headroom
		{300 * mib, 40 * mib, 128 * mib, 640 * mib},  // a large one: twice the live heap
		{128 * mib, 0, 128 * mib, 256 * mib},         // where the two meet
		{0, 0, 16 * mib, 16 * mib},                   // nothing live yet
		{1 << 40, 1 << 30, 128 * mib, 1<<41 + 1<<30}, // no overflow near the top
	} {
		if got := autoLimit(tc.live, tc.other, tc.headroom); got != tc.want {
			t.Errorf("autoLimit(%d, %d, %d) = %d, want %d", tc.live, tc.other, tc.headroom, got, tc.want)
		}
	}
}

// TestMemTunerFollowsTheLiveHeap checks the limit the tuner sets against
// the runtime's own figures: above the live heap by at least the
// headroom, and within the runtime's total memory plus the larger of the
// headroom and the live heap; that it follows a live heap that grows by
// 64 MiB; that a fixed memory_limit or auto_memory_limit: false turns it
// off; and that it never sets a limit a collection could not get under.
func TestMemTunerFollowsTheLiveHeap(t *testing.T) {
	lim0 := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(lim0) })
	tuner := newMemTuner(slog.New(slog.DiscardHandler))
	const headroom = 32 << 20
	rt := config.Runtime{HeapHeadroom: headroom}
	live := func() int64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	check := func(what string) int64 {
		l := live()
		got := tuner.update()
		if set := debug.SetMemoryLimit(-1); set != got {
			t.Fatalf("%s: the tuner says %d, the runtime's limit is %d", what, got, set)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if got < l+headroom || got > int64(ms.Sys)+max(headroom, l)+l/8 {
			t.Fatalf("%s: limit %d for a live heap of %d (runtime total %d, headroom %d)", what, got, l, ms.Sys, headroom)
		}
		return got
	}
	tuner.configure(rt)
	before := check("at start")
	ballast := make([]byte, 64<<20)
	for i := range ballast {
		ballast[i] = byte(i)
	}
	after := check("with 64 MiB more live")
	if after < before+64<<20 {
		t.Fatalf("limit %d with 64 MiB more live heap, %d before", after, before)
	}
	runtime.KeepAlive(ballast)

	debug.SetMemoryLimit(math.MaxInt64)
	rt.MemoryLimit = 1 << 30
	tuner.configure(rt)
	if got := tuner.update(); got != 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Fatalf("with a fixed memory_limit the tuner set %d", got)
	}
	off := false
	rt.MemoryLimit, rt.AutoMemoryLimit = 0, &off
	tuner.configure(rt)
	if got := tuner.update(); got != 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Fatalf("with auto_memory_limit: false the tuner set %d", got)
	}

	// start and close end the updates' goroutine.
	on := true
	rt.AutoMemoryLimit = &on
	tuner.configure(rt)
	tuner.start(time.Millisecond)
	tuner.close()
}
