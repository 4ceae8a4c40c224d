package config

import "time"

// History defaults and bounds.
const (
	defaultHistorySecondRetention = time.Hour
	defaultHistoryMinuteRetention = 24 * time.Hour
	defaultHistoryMaxSeries       = 5000
	defaultHistoryMaxBytes        = 40 << 20
	minHistoryMaxBytes            = 1 << 20
	maxHistorySecondRetention     = 24 * time.Hour
	maxHistoryMinuteRetention     = 31 * 24 * time.Hour
	maxHistoryMaxSeries           = 100000
)

// History configures the gateway's in-process time series (per route,
// leg, service, upstream host and the gateway as a whole), served at
// /api/history on the admin listener and read by the dashboard. Settings
// are read at start; a reload does not change them.
type History struct {
	// Enabled turns the history on (default true).
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// SecondRetention is how long per-second data is kept: a whole
	// number of minutes from 1m to 24h (default 1h).
	SecondRetention Duration `yaml:"second_retention" json:"second_retention"`
	// MinuteRetention is how long per-minute data is kept: a whole number
	// of minutes, at least SecondRetention, at most 31 days (default 24h).
	MinuteRetention Duration `yaml:"minute_retention" json:"minute_retention"`
	// MaxSeries caps the series kept (routes, split legs, services and
	// upstream hosts; the gateway's own series is not counted), from 1 to
	// 100000 (default 5000). Requests of a series past the cap still
	// count in the gateway's series, and the refusals are counted.
	MaxSeries int `yaml:"max_series" json:"max_series"`
	// MaxBytes caps the memory the history holds (default 40MiB, at least
	// 1MiB): the stored records and their chunk tables, and the series,
	// request-path cells and exemplars. When it is reached, the oldest
	// hour of per-minute data is dropped, then (only if that is not
	// enough) the oldest minute of per-second data: the retentions shrink
	// until the records fit beside the rest, and /api/history/stats shows
	// what was dropped. Once series and cells hold half of it, new series
	// are refused (counted as past MaxSeries).
	MaxBytes ByteSize `yaml:"max_bytes" json:"max_bytes"`
}

// IsEnabled reports whether the history is on (after defaults).
func (h *History) IsEnabled() bool { return h.Enabled == nil || *h.Enabled }

func (h *History) setDefaults() {
	if h.Enabled == nil {
		h.Enabled = boolPtr(true)
	}
	if h.SecondRetention == 0 {
		h.SecondRetention = Duration(defaultHistorySecondRetention)
	}
	if h.MinuteRetention == 0 {
		h.MinuteRetention = Duration(defaultHistoryMinuteRetention)
	}
	if h.MaxSeries == 0 {
		h.MaxSeries = defaultHistoryMaxSeries
	}
	if h.MaxBytes == 0 {
		h.MaxBytes = defaultHistoryMaxBytes
	}
}

func (h *History) validate(v *validator, path string) {
	s, m := h.SecondRetention.D(), h.MinuteRetention.D()
	switch {
	case s < time.Minute || s > maxHistorySecondRetention || s%time.Minute != 0:
		v.errorf(path+".second_retention", "must be a whole number of minutes from 1m to 24h, got %s", h.SecondRetention)
	case m < s || m > maxHistoryMinuteRetention || m%time.Minute != 0:
		v.errorf(path+".minute_retention", "must be a whole number of minutes from second_retention (%s) to 744h (31 days), got %s", h.SecondRetention, h.MinuteRetention)
	}
	if h.MaxSeries < 1 || h.MaxSeries > maxHistoryMaxSeries {
		v.errorf(path+".max_series", "must be from 1 to %d, got %d", maxHistoryMaxSeries, h.MaxSeries)
	}
	if h.MaxBytes < minHistoryMaxBytes {
		v.errorf(path+".max_bytes", "must be at least 1MiB, got %s", h.MaxBytes)
	}
}
