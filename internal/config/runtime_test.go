package config

import (
	"strings"
	"testing"
)

func TestRuntimeFileEnvDefault(t *testing.T) {
	base := "listeners: [{address: \"127.0.0.1:0\"}]\n"
	env := func(kv map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
	}
	tests := []struct {
		name      string
		yaml      string
		env       map[string]string
		wantPct   int
		wantLimit ByteSize
		wantAuto  bool
		wantRoom  ByteSize
	}{
		{"default", "", nil, DefaultGCPercent, 0, true, DefaultHeapHeadroom},
		{"env", "", map[string]string{"GOGC": "150", "GOMEMLIMIT": "256MiB"}, 150, 256 << 20, false, DefaultHeapHeadroom},
		{"env off with a limit", "", map[string]string{"GOGC": "off", "GOMEMLIMIT": "1GiB"}, -1, 1 << 30, false, DefaultHeapHeadroom},
		{"file wins over env", "runtime: {gc_percent: 200, memory_limit: 64MiB}\n", map[string]string{"GOGC": "150", "GOMEMLIMIT": "256MiB"}, 200, 64 << 20, false, DefaultHeapHeadroom},
		{"invalid env ignored", "", map[string]string{"GOGC": "lots"}, DefaultGCPercent, 0, true, DefaultHeapHeadroom},
		{"GOMEMLIMIT=off turns the automatic limit off", "", map[string]string{"GOMEMLIMIT": "off"}, DefaultGCPercent, 0, false, DefaultHeapHeadroom},
		{"the file's auto_memory_limit wins over GOMEMLIMIT=off", "runtime: {auto_memory_limit: true}\n", map[string]string{"GOMEMLIMIT": "off"}, DefaultGCPercent, 0, true, DefaultHeapHeadroom},
		{"auto off in the file", "runtime: {auto_memory_limit: false}\n", nil, DefaultGCPercent, 0, false, DefaultHeapHeadroom},
		{"headroom", "runtime: {heap_headroom: 64MiB}\n", nil, DefaultGCPercent, 0, true, 64 << 20},
		{"gc off under the automatic limit", "runtime: {gc_percent: -1}\n", nil, -1, 0, true, DefaultHeapHeadroom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("rt.yml", []byte(base+tt.yaml), env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			rt := cfg.Runtime
			if got := *rt.GCPercent; got != tt.wantPct || rt.MemoryLimit != tt.wantLimit {
				t.Errorf("gc_percent %d memory_limit %d, want %d %d", got, rt.MemoryLimit, tt.wantPct, tt.wantLimit)
			}
			if rt.AutoLimit() != tt.wantAuto || rt.Headroom() != tt.wantRoom {
				t.Errorf("automatic limit %v with headroom %s, want %v with %s", rt.AutoLimit(), rt.Headroom(), tt.wantAuto, tt.wantRoom)
			}
		})
	}
}

func TestRuntimeValidation(t *testing.T) {
	base := "listeners: [{address: \"127.0.0.1:0\"}]\n"
	for yaml, want := range map[string]string{
		"runtime: {gc_percent: -5}\n":                           "rt.yml:2: runtime.gc_percent: must be -1 (off) or more",
		"runtime: {gc_percent: -1, auto_memory_limit: false}\n": "rt.yml:2: runtime.gc_percent: -1 turns the collector off; set runtime.memory_limit or turn runtime.auto_memory_limit on",
		"runtime: {memory_limit: -1}\n":                         "runtime.memory_limit: must not be negative",
		"runtime: {heap_headroom: -1}\n":                        "runtime.heap_headroom: must not be negative",
		"runtime: {heap_headroom: 1MiB}\n":                      "runtime.heap_headroom: must be at least 16MiB, got 1MiB",
		"runtime: {auto_memory_limit: maybe}\n":                 "auto_memory_limit",
	} {
		_, err := Parse("rt.yml", []byte(base+yaml), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
}
