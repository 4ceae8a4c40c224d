package listener

import (
	"log/slog"
	"sync"

	"github.com/vantage-gateway/vantage/internal/clock"
)

// rateLog writes at most burst lines per second and counts the rest: the
// next line written says how many were suppressed since the last one.
// Attack traffic thus shows in the log without flooding it. It is safe for
// concurrent use.
type rateLog struct {
	log   *slog.Logger
	clock clock.Clock
	burst int

	mu         sync.Mutex
	second     int64 // the Unix second being counted
	n          int   // lines written in it
	suppressed int64
}

// allow reports whether a line may be written now, and how many lines were
// suppressed before it.
func (r *rateLog) allow() (bool, int64) {
	now := r.clock.Now().Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now != r.second {
		r.second, r.n = now, 0
	}
	if r.n >= r.burst {
		r.suppressed++
		return false, 0
	}
	r.n++
	s := r.suppressed
	r.suppressed = 0
	return true, s
}
