package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTraceStoreDefaults(t *testing.T) {
	cfg, err := Parse("ts.yml", []byte("listeners: [{address: \"127.0.0.1:0\"}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := cfg.TraceStore
	if !ts.IsEnabled() || ts.Budget != 128<<20 || ts.Shares["error"] != 30 || ts.QueueSize != 1024 || ts.MaxAge != 0 {
		t.Errorf("defaults: %+v", ts)
	}
	cfg, err = Parse("ts.yml", []byte("listeners: [{address: \"127.0.0.1:0\"}]\ntrace_store: {enabled: false, budget: 16MiB, shares: {error: 1, ordinary: 1}, max_age: 10m}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ts := cfg.TraceStore; ts.IsEnabled() || ts.Budget != 16<<20 || len(ts.Shares) != 2 || ts.MaxAge.D().Minutes() != 10 {
		t.Errorf("file: %+v", ts)
	}
}

func TestTraceStoreValidation(t *testing.T) {
	yml := `listeners: [{address: "127.0.0.1:0"}]
trace_store:
  budget: 1000
  shares:
    error: -1
    vip: 5
  slow_threshold: -1s
  max_age: 10ms
  queue_size: -3
`
	_, err := Parse("ts.yml", []byte(yml), nil)
	if err == nil {
		t.Fatal("invalid trace_store accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		"ts.yml:3: trace_store.budget: must be at least 1MiB",
		"ts.yml:5: trace_store.shares.error: must not be negative",
		"ts.yml:6: trace_store.shares.vip: unknown retention class",
		"ts.yml:7: trace_store.slow_threshold: must not be negative",
		"ts.yml:8: trace_store.max_age: must be 0 (none) or at least 1s",
		"ts.yml:9: trace_store.queue_size: must not be negative",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	_, err = Parse("ts.yml", []byte("listeners: [{address: \"127.0.0.1:0\"}]\ntrace_store: {shares: {error: 0}}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "trace_store.shares: the shares add up to zero") {
		t.Errorf("zero shares: %v", err)
	}
	_, err = Parse("ts.yml", []byte("listeners: [{address: \"127.0.0.1:0\"}]\ntrace_store: {budjet: 5MiB}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "budjet") {
		t.Errorf("unknown key: %v", err)
	}
}

func TestTraceStoreDataDirValidation(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	yml := fmt.Sprintf("listeners: [{address: \"127.0.0.1:0\"}]\ntrace_store:\n  data_dir: %q\n  sync_interval: 1ms\n", file)
	_, err := Parse("ts.yml", []byte(yml), nil)
	if err == nil {
		t.Fatal("a file as data_dir accepted")
	}
	for _, want := range []string{
		"ts.yml:3: trace_store.data_dir: " + fmt.Sprintf("%q", file) + " is not a directory",
		"ts.yml:4: trace_store.sync_interval: must be 0 (default 1s) or between 10ms and 1m",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%s", want, err)
		}
	}
	_, err = Parse("ts.yml", []byte("listeners: [{address: \"127.0.0.1:0\"}]\ntrace_store: {sync_interval: 2s}\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "trace_store.sync_interval: needs data_dir") {
		t.Errorf("sync_interval without data_dir: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "new")
	cfg, err := Parse("ts.yml", []byte(fmt.Sprintf("listeners: [{address: \"127.0.0.1:0\"}]\ntrace_store: {data_dir: %q}\n", dir)), nil)
	if err != nil || cfg.TraceStore.DataDir != dir {
		t.Errorf("a data_dir still to be created: %v", err)
	}
}
