package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vantage-gateway/vantage/internal/config"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	cfgPath, script := filepath.Join(dir, "v.yml"), filepath.Join(dir, "e.lua")
	err := run([]string{"-n", "25", "-template", "../../configs/estate.yml", "-config", cfgPath, "-script", script})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(cfgPath, b, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 26 || len(cfg.Services) != 26 {
		t.Fatalf("%d routes and %d services, want 26 and 26", len(cfg.Routes), len(cfg.Services))
	}
	s, err := os.ReadFile(script)
	if err != nil || !strings.Contains(string(s), "local n = 25\n") {
		t.Fatalf("script %q, %v", s, err)
	}
	if err := run([]string{"-n", "0"}); err == nil || !strings.Contains(err.Error(), "-n must be") {
		t.Fatalf("-n 0: %v", err)
	}
}
