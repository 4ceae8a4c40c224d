package config

// AccessLog configures the per-request access log.
type AccessLog struct {
	// Enabled turns the access log on (default true).
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
}

func (a *AccessLog) setDefaults() {
	if a.Enabled == nil {
		a.Enabled = boolPtr(true)
	}
}

func (a *AccessLog) validate(v *validator, path string) {}

// Log configures the gateway's own operational log (log/slog).
type Log struct {
	// Level is debug, info, warn or error (default info).
	Level string `yaml:"level" json:"level"`
	// Format is json or text (default text).
	Format string `yaml:"format" json:"format"`
}

func (l *Log) setDefaults() {
	if l.Level == "" {
		l.Level = "info"
	}
	if l.Format == "" {
		l.Format = "text"
	}
}

func (l *Log) validate(v *validator, path string) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		v.errorf(path+".level", "must be one of debug, info, warn, error; got %q", l.Level)
	}
	switch l.Format {
	case "json", "text":
	default:
		v.errorf(path+".format", "must be json or text; got %q", l.Format)
	}
}
