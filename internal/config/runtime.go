package config

import (
	"strconv"
	"strings"
)

// DefaultGCPercent is runtime.gc_percent's default. Go's own default, 100,
// collects whenever the heap doubles, with a floor of 4 MB: a gateway's live
// heap is a few megabytes while it allocates tens of megabytes a second
// under load, so at 100 it collects tens of times a second, and each
// collection scans every connection's goroutine stack. At 400 it collects
// four times less often for a heap a few megabytes larger.
const DefaultGCPercent = 400

// Runtime tunes the Go runtime's garbage collector. Unset fields come from
// the standard GOGC and GOMEMLIMIT environment variables when they are set,
// else from the defaults.
type Runtime struct {
	// GCPercent is the heap growth, in percent of the live heap, that
	// triggers a collection (Go's GOGC). -1 turns proportional collection
	// off, leaving MemoryLimit to trigger it. Default 400.
	GCPercent *int `yaml:"gc_percent,omitempty" json:"gc_percent,omitempty"`
	// MemoryLimit is a soft cap on the memory the Go runtime uses (Go's
	// GOMEMLIMIT): as it is approached the collector runs more often,
	// whatever GCPercent says. 0 (default) sets no limit.
	MemoryLimit ByteSize `yaml:"memory_limit,omitempty" json:"memory_limit,omitempty"`
}

// applyEnv fills the unset fields from GOGC and GOMEMLIMIT. Values the Go
// runtime would not accept are left for the defaults (the runtime itself
// ignores them too).
func (r *Runtime) applyEnv(lookup func(string) (string, bool)) {
	if v, ok := lookup("GOGC"); ok && r.GCPercent == nil {
		v = strings.TrimSpace(v)
		if strings.EqualFold(v, "off") {
			off := -1
			r.GCPercent = &off
		} else if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			r.GCPercent = &n
		}
	}
	if v, ok := lookup("GOMEMLIMIT"); ok && r.MemoryLimit == 0 && !strings.EqualFold(strings.TrimSpace(v), "off") {
		if n, err := ParseByteSize(v); err == nil && n > 0 {
			r.MemoryLimit = n
		}
	}
}

func (r *Runtime) setDefaults() {
	if r.GCPercent == nil {
		p := DefaultGCPercent
		r.GCPercent = &p
	}
}

func (r *Runtime) validate(v *validator, path string) {
	if p := r.GCPercent; p != nil && *p < -1 {
		v.errorf(path+".gc_percent", "must be -1 (off) or more, got %d", *p)
	}
	if p := r.GCPercent; p != nil && *p == -1 && r.MemoryLimit == 0 {
		v.errorf(path+".gc_percent", "-1 turns the collector off; set runtime.memory_limit too, or the heap grows without bound")
	}
	if r.MemoryLimit < 0 {
		v.errorf(path+".memory_limit", "must not be negative")
	}
}
