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

// DefaultHeapHeadroom is runtime.heap_headroom's default: the automatic
// memory limit lets the heap grow past its live size by this much, or by
// the live size itself when that is more.
const DefaultHeapHeadroom = ByteSize(128 << 20)

// minHeapHeadroom is the smallest heap_headroom accepted: below it the
// collector would run several times a second under load.
const minHeapHeadroom = ByteSize(16 << 20)

// Runtime tunes the Go runtime's garbage collector. Unset fields come from
// the standard GOGC and GOMEMLIMIT environment variables when they are set,
// else from the defaults.
type Runtime struct {
	// GCPercent is the heap growth, in percent of the live heap, that
	// triggers a collection (Go's GOGC). -1 turns proportional collection
	// off, leaving MemoryLimit to trigger it. Default 400.
	GCPercent *int `yaml:"gc_percent,omitempty" json:"gc_percent,omitempty"`
	// MemoryLimit is a fixed soft cap on the memory the Go runtime uses
	// (Go's GOMEMLIMIT): as it is approached the collector runs more
	// often, whatever GCPercent says. 0 (default): the automatic limit
	// (AutoMemoryLimit) applies instead.
	MemoryLimit ByteSize `yaml:"memory_limit,omitempty" json:"memory_limit,omitempty"`
	// AutoMemoryLimit, when no MemoryLimit is set, keeps a soft limit that
	// follows the live heap: the runtime's memory outside the heap, plus
	// the live heap, plus the larger of HeapHeadroom and the live heap
	// (so the heap grows at most to twice its live size, or by
	// HeapHeadroom, before a collection, instead of GCPercent's five
	// times). Default true; GOMEMLIMIT=off sets it to false.
	AutoMemoryLimit *bool `yaml:"auto_memory_limit,omitempty" json:"auto_memory_limit,omitempty"`
	// HeapHeadroom is the automatic limit's least room for the heap to
	// grow past its live size (default 128MiB, at least 16MiB).
	HeapHeadroom ByteSize `yaml:"heap_headroom,omitempty" json:"heap_headroom,omitempty"`
}

// AutoLimit reports whether the automatic memory limit applies: no fixed
// memory_limit is set and auto_memory_limit is not false.
func (r Runtime) AutoLimit() bool {
	return r.MemoryLimit == 0 && (r.AutoMemoryLimit == nil || *r.AutoMemoryLimit)
}

// Headroom returns HeapHeadroom, or its default when unset.
func (r Runtime) Headroom() ByteSize {
	if r.HeapHeadroom == 0 {
		return DefaultHeapHeadroom
	}
	return r.HeapHeadroom
}

// applyEnv fills the unset fields from GOGC and GOMEMLIMIT. Values the Go
// runtime would not accept are left for the defaults (the runtime itself
// ignores them too). GOMEMLIMIT=off turns the automatic limit off.
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
	v, ok := lookup("GOMEMLIMIT")
	if !ok || r.MemoryLimit != 0 {
		return
	}
	if strings.EqualFold(strings.TrimSpace(v), "off") {
		if r.AutoMemoryLimit == nil {
			off := false
			r.AutoMemoryLimit = &off
		}
	} else if n, err := ParseByteSize(v); err == nil && n > 0 {
		r.MemoryLimit = n
	}
}

func (r *Runtime) setDefaults() {
	if r.GCPercent == nil {
		p := DefaultGCPercent
		r.GCPercent = &p
	}
	if r.AutoMemoryLimit == nil {
		on := true
		r.AutoMemoryLimit = &on
	}
	if r.HeapHeadroom == 0 {
		r.HeapHeadroom = DefaultHeapHeadroom
	}
}

func (r *Runtime) validate(v *validator, path string) {
	if p := r.GCPercent; p != nil && *p < -1 {
		v.errorf(path+".gc_percent", "must be -1 (off) or more, got %d", *p)
	}
	if p := r.GCPercent; p != nil && *p == -1 && r.MemoryLimit == 0 && !r.AutoLimit() {
		v.errorf(path+".gc_percent", "-1 turns the collector off; set runtime.memory_limit or turn runtime.auto_memory_limit on, or the heap grows without bound")
	}
	if r.MemoryLimit < 0 {
		v.errorf(path+".memory_limit", "must not be negative")
	}
	if r.HeapHeadroom < 0 {
		v.errorf(path+".heap_headroom", "must not be negative")
	} else if r.HeapHeadroom != 0 && r.HeapHeadroom < minHeapHeadroom {
		v.errorf(path+".heap_headroom", "must be at least %s, got %s", minHeapHeadroom, r.HeapHeadroom)
	}
}
