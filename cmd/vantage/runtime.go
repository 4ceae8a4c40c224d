package main

import (
	"log/slog"
	"math"
	"runtime/debug"

	"github.com/vantage-gateway/vantage/internal/config"
)

// applyRuntime sets the garbage collector's target and memory limit from
// cfg.Runtime (after defaults), and logs them when they change.
func applyRuntime(rt config.Runtime, logger *slog.Logger) {
	pct := config.DefaultGCPercent
	if rt.GCPercent != nil {
		pct = *rt.GCPercent
	}
	limit := int64(math.MaxInt64)
	if rt.MemoryLimit > 0 {
		limit = rt.MemoryLimit.Bytes()
	}
	oldPct := debug.SetGCPercent(pct)
	oldLimit := debug.SetMemoryLimit(limit)
	if oldPct != pct || oldLimit != limit {
		attrs := []any{"gc_percent", pct}
		if rt.MemoryLimit > 0 {
			attrs = append(attrs, "memory_limit", rt.MemoryLimit.String())
		}
		logger.Debug("garbage collector tuned", attrs...)
	}
}
