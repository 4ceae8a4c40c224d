package accesslog

import (
	"math/rand/v2"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// filter decides, after a request finished, whether it is logged. It is
// immutable after newFilter and safe for concurrent use.
type filter struct {
	// status has bit code-100 set for every status code to log (100-599).
	status    [8]uint64
	hasStatus bool
	minDur    time.Duration
	ratio     float64
	random    func() float64
}

func newFilter(cfg config.AccessLogFilter, random func() float64) (filter, error) {
	f := filter{minDur: cfg.MinDuration.D(), ratio: cfg.SampleRatio(), random: random}
	if f.random == nil {
		f.random = rand.Float64
	}
	for _, s := range cfg.Status {
		m, err := config.ParseStatusMatcher(s)
		if err != nil {
			return filter{}, err
		}
		for c := m.Lo; c <= m.Hi; c++ {
			f.setStatus(c)
		}
		f.hasStatus = true
	}
	return f, nil
}

func (f *filter) setStatus(code int) {
	if code < 100 || code > 599 {
		return
	}
	i := code - 100
	f.status[i/64] |= 1 << (i % 64)
}

func (f *filter) statusMatch(code int) bool {
	if code < 100 || code > 599 {
		return false
	}
	i := code - 100
	return f.status[i/64]&(1<<(i%64)) != 0
}

// keep reports whether the finished request rec is logged: when a status
// list or a minimum duration is configured it must match one of them; then
// successful requests are sampled by ratio. Errors are never sampled away.
func (f *filter) keep(rec *observe.Record) bool {
	if f.hasStatus || f.minDur > 0 {
		if !(f.hasStatus && f.statusMatch(rec.Status) || f.minDur > 0 && rec.Total() >= f.minDur) {
			return false
		}
	}
	if f.ratio >= 1 || isError(rec) {
		return true
	}
	if f.ratio <= 0 {
		return false
	}
	return f.random() < f.ratio
}
