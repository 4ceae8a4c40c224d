package config

// Metrics configures the Prometheus metrics served on the admin listener.
type Metrics struct {
	// Enabled turns metrics on (default true).
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
}

func (m *Metrics) setDefaults() {
	if m.Enabled == nil {
		m.Enabled = boolPtr(true)
	}
}

func (m *Metrics) validate(v *validator, path string) {}
