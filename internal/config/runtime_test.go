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
	}{
		{"default", "", nil, DefaultGCPercent, 0},
		{"env", "", map[string]string{"GOGC": "150", "GOMEMLIMIT": "256MiB"}, 150, 256 << 20},
		{"env off with a limit", "", map[string]string{"GOGC": "off", "GOMEMLIMIT": "1GiB"}, -1, 1 << 30},
		{"file wins over env", "runtime: {gc_percent: 200, memory_limit: 64MiB}\n", map[string]string{"GOGC": "150", "GOMEMLIMIT": "256MiB"}, 200, 64 << 20},
		{"invalid env ignored", "", map[string]string{"GOGC": "lots", "GOMEMLIMIT": "off"}, DefaultGCPercent, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("rt.yml", []byte(base+tt.yaml), env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if got := *cfg.Runtime.GCPercent; got != tt.wantPct || cfg.Runtime.MemoryLimit != tt.wantLimit {
				t.Errorf("gc_percent %d memory_limit %d, want %d %d", got, cfg.Runtime.MemoryLimit, tt.wantPct, tt.wantLimit)
			}
		})
	}
}

func TestRuntimeValidation(t *testing.T) {
	base := "listeners: [{address: \"127.0.0.1:0\"}]\n"
	for yaml, want := range map[string]string{
		"runtime: {gc_percent: -5}\n":   "rt.yml:2: runtime.gc_percent: must be -1 (off) or more",
		"runtime: {gc_percent: -1}\n":   "rt.yml:2: runtime.gc_percent: -1 turns the collector off; set runtime.memory_limit too",
		"runtime: {memory_limit: -1}\n": "runtime.memory_limit: must not be negative",
	} {
		_, err := Parse("rt.yml", []byte(base+yaml), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
}
