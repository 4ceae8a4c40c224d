package main

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

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
	applyRuntime(config.Runtime{}, logger) // defaults: 400, no limit
	if got := debug.SetGCPercent(-1); got != config.DefaultGCPercent {
		t.Errorf("default gc percent %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("default memory limit %d", got)
	}
}
