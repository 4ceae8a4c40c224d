package config

import (
	"strings"
	"testing"
	"time"
)

func TestHistoryDefaults(t *testing.T) {
	cfg, err := Parse("h.yml", []byte("listeners: [{address: \"127.0.0.1:0\"}]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.History
	if !h.IsEnabled() || h.SecondRetention.D() != time.Hour || h.MinuteRetention.D() != 24*time.Hour || h.MaxSeries != 5000 || h.MaxBytes != 40<<20 {
		t.Fatalf("defaults %+v", h)
	}
	cfg, err = Parse("h.yml", []byte("listeners: [{address: \"127.0.0.1:0\"}]\nhistory: {enabled: false, second_retention: 10m, minute_retention: 48h, max_series: 10, max_bytes: 8MiB}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.History; h.IsEnabled() || h.SecondRetention.D() != 10*time.Minute || h.MinuteRetention.D() != 48*time.Hour || h.MaxSeries != 10 || h.MaxBytes != 8<<20 {
		t.Fatalf("set %+v", h)
	}
}

func TestHistoryValidation(t *testing.T) {
	base := "listeners: [{address: \"127.0.0.1:0\"}]\nhistory:\n"
	for yaml, want := range map[string]string{
		"  second_retention: 90s\n":  "h.yml:3: history.second_retention: must be a whole number of minutes from 1m to 24h, got 1m30s",
		"  second_retention: 25h\n":  "history.second_retention: must be a whole number of minutes from 1m to 24h",
		"  minute_retention: 30m\n":  "h.yml:3: history.minute_retention: must be a whole number of minutes from second_retention (1h0m0s)",
		"  minute_retention: 800h\n": "history.minute_retention: must be a whole number of minutes",
		"  max_series: -1\n":         "h.yml:3: history.max_series: must be from 1 to 100000, got -1",
		"  max_series: 1000000\n":    "history.max_series: must be from 1 to 100000",
		"  max_bytes: 1000\n":        "h.yml:3: history.max_bytes: must be at least 1MiB, got 1000",
		"  retention: 1h\n":          "retention",
		"  second_retention: soon\n": "invalid duration",
	} {
		_, err := Parse("h.yml", []byte(base+yaml), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
}
