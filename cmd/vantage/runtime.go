package main

import (
	"log/slog"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
)

// applyRuntime sets the garbage collector's target and fixed memory limit
// from cfg.Runtime (after defaults), and logs them when they change. With
// no fixed limit it removes any limit; the automatic one is memTuner's.
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

// autoLimit is the automatic memory limit: the runtime's memory outside
// the heap's objects (stacks, the runtime's own structures, the heap's
// fragmentation), plus the live heap, plus the room the heap may grow
// before a collection: the live heap itself (as gc_percent 100 would) but
// never less than headroom. Below that limit gc_percent (400) still
// applies, so a small heap keeps its few collections; a large one is
// collected before it reaches twice its live size instead of five times.
func autoLimit(live, other, headroom int64) int64 {
	return other + live + max(headroom, live)
}

// memTuner keeps the automatic memory limit (config.Runtime.AutoLimit)
// in step with the live heap: every second (off the request path) it
// reads the live heap the last collection measured and sets the limit
// from it. Because the limit is always above the live heap by at least
// the headroom, the collector cannot be driven to run back to back; a
// heap that grows faster than a second's worth of headroom meets a limit
// it will raise at the next update.
type memTuner struct {
	log *slog.Logger

	mu       sync.Mutex
	on       bool
	headroom int64
	limit    int64 // the limit last set, 0 when none
	samples  []metrics.Sample

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

var tunerMetrics = []string{
	"/gc/heap/live:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/unused:bytes",
}

func newMemTuner(logger *slog.Logger) *memTuner {
	t := &memTuner{log: logger, stop: make(chan struct{}), done: make(chan struct{})}
	for _, name := range tunerMetrics {
		t.samples = append(t.samples, metrics.Sample{Name: name})
	}
	return t
}

// configure takes the runtime settings (at start and on every reload,
// after applyRuntime) and sets the limit at once.
func (t *memTuner) configure(rt config.Runtime) {
	t.mu.Lock()
	t.on, t.headroom = rt.AutoLimit(), rt.Headroom().Bytes()
	if !t.on {
		t.limit = 0
	}
	t.mu.Unlock()
	t.update()
}

// update sets the limit from the live heap; it does nothing when the
// automatic limit is off. It returns the limit set (0 when none).
func (t *memTuner) update() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.on {
		return 0
	}
	metrics.Read(t.samples)
	v := func(i int) int64 {
		if t.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(min(t.samples[i].Value.Uint64(), math.MaxInt64/4))
	}
	live := v(0)
	other := max(0, v(1)-v(2)-v(3)-v(4)-v(5))
	limit := autoLimit(live, other, t.headroom)
	debug.SetMemoryLimit(limit)
	if t.limit == 0 || limit > t.limit+t.limit/4 || limit < t.limit-t.limit/4 {
		t.log.Debug("memory limit follows the live heap", "live_bytes", live, "other_bytes", other, "memory_limit_bytes", limit)
	}
	t.limit = limit
	return limit
}

// start updates the limit every interval until close.
func (t *memTuner) start(interval time.Duration) {
	go func() {
		defer close(t.done)
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			select {
			case <-t.stop:
				return
			case <-tk.C:
				t.update()
			}
		}
	}()
}

// close stops the updates and waits for them; the limit set stays. It
// must follow start.
func (t *memTuner) close() {
	t.stopOnce.Do(func() { close(t.stop) })
	<-t.done
}
