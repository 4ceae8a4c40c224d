package config

import (
	"errors"
	"io/fs"
	"os"
	"sort"
	"time"
)

// Trace store defaults.
const (
	DefaultTraceStoreBudget = ByteSize(128 << 20)
	minTraceStoreBudget     = ByteSize(1 << 20)
	minTraceStoreMaxAge     = time.Second
)

// TraceStoreClasses are the retention classes of the trace store, the
// keys of trace_store.shares.
var TraceStoreClasses = []string{"error", "slow", "retried", "pinned", "ordinary"}

// DefaultTraceStoreShares returns (a fresh copy of) the default share of
// the budget of each retention class, in percent.
func DefaultTraceStoreShares() map[string]float64 {
	return map[string]float64{"error": 30, "slow": 20, "retried": 15, "pinned": 10, "ordinary": 25}
}

// TraceStore configures the embedded trace store: recent traces and their
// log records, kept in memory within a byte budget and served on the
// admin listener (the Jaeger query API under /jaeger, and /api/traces).
// Settings are read at start; a reload does not change them.
type TraceStore struct {
	// Enabled turns the store on (default true).
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// Budget is the most memory the store's traces, logs and indexes take
	// (default 128MiB, at least 1MiB), e.g. "256MiB".
	Budget ByteSize `yaml:"budget" json:"budget"`
	// Shares is each retention class's share of the budget (any unit; they
	// are normalized): error, slow, retried, pinned (opened by a person)
	// and ordinary. A class may use room the others leave; when the store
	// is full, the class most over its share loses its oldest trace.
	// Default: error 30, slow 20, retried 15, pinned 10, ordinary 25.
	Shares map[string]float64 `yaml:"shares,omitempty" json:"shares,omitempty"`
	// SlowThreshold makes a trace slow when a server or root span takes at
	// least this long (default 0: only the operation's recent p99).
	SlowThreshold Duration `yaml:"slow_threshold" json:"slow_threshold"`
	// MaxAge drops traces whose last span arrived longer ago (default 0:
	// no age limit, only the budget).
	MaxAge Duration `yaml:"max_age" json:"max_age"`
	// QueueSize bounds the batches of spans waiting to be stored (default
	// 1024); past it, batches are dropped and counted.
	QueueSize int `yaml:"queue_size" json:"queue_size"`
	// DataDir makes the store persistent: what it stores is appended to a
	// log of segment files in this directory (created if missing) and read
	// back at start, so traces survive a restart or a crash (default
	// empty: memory only).
	DataDir string `yaml:"data_dir" json:"data_dir"`
	// SyncInterval is how often the data directory's log is fsynced
	// (default 1s when DataDir is set); a crash loses at most the spans
	// stored since the last sync.
	SyncInterval Duration `yaml:"sync_interval" json:"sync_interval"`
}

// IsEnabled reports whether the store is on.
func (t *TraceStore) IsEnabled() bool { return t.Enabled == nil || *t.Enabled }

func (t *TraceStore) setDefaults() {
	if t.Enabled == nil {
		t.Enabled = boolPtr(true)
	}
	if t.Budget == 0 {
		t.Budget = DefaultTraceStoreBudget
	}
	if t.Shares == nil {
		t.Shares = DefaultTraceStoreShares()
	}
	if t.QueueSize == 0 {
		t.QueueSize = 1024
	}
}

func (t *TraceStore) validate(v *validator, path string) {
	if t.Budget < minTraceStoreBudget {
		v.errorf(path+".budget", "must be at least 1MiB, got %d bytes", t.Budget)
	}
	known := map[string]bool{}
	for _, c := range TraceStoreClasses {
		known[c] = true
	}
	names := make([]string, 0, len(t.Shares))
	for k := range t.Shares {
		names = append(names, k)
	}
	sort.Strings(names)
	var total float64
	for _, k := range names {
		s := t.Shares[k]
		switch {
		case !known[k]:
			v.errorf(path+".shares."+k, "unknown retention class %q (classes: error, slow, retried, pinned, ordinary)", k)
		case s < 0:
			v.errorf(path+".shares."+k, "must not be negative, got %g", s)
		default:
			total += s
		}
	}
	if len(t.Shares) > 0 && total <= 0 {
		v.errorf(path+".shares", "the shares add up to zero: give at least one class a share")
	}
	if t.SlowThreshold < 0 {
		v.errorf(path+".slow_threshold", "must not be negative, got %s", t.SlowThreshold)
	}
	if t.MaxAge < 0 || t.MaxAge > 0 && t.MaxAge.D() < minTraceStoreMaxAge {
		v.errorf(path+".max_age", "must be 0 (none) or at least 1s, got %s", t.MaxAge)
	}
	if t.DataDir != "" {
		if fi, err := os.Stat(t.DataDir); err == nil && !fi.IsDir() {
			v.errorf(path+".data_dir", "%q is not a directory", t.DataDir)
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			v.errorf(path+".data_dir", "%v", err)
		}
	}
	if t.SyncInterval < 0 || t.SyncInterval > 0 && (t.SyncInterval.D() < 10*time.Millisecond || t.SyncInterval.D() > time.Minute) {
		v.errorf(path+".sync_interval", "must be 0 (default 1s) or between 10ms and 1m, got %s", t.SyncInterval)
	}
	if t.SyncInterval > 0 && t.DataDir == "" {
		v.errorf(path+".sync_interval", "needs data_dir: a store in memory only is never synced")
	}
	if t.QueueSize < 0 {
		v.errorf(path+".queue_size", "must not be negative, got %d", t.QueueSize)
	}
}
