package config

// Tracing configures trace context propagation, spans and export.
type Tracing struct {
	// Enabled turns tracing on (default true).
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
}

// RouteTracing overrides tracing settings for one route.
type RouteTracing struct{}

func (t *Tracing) setDefaults() {
	if t.Enabled == nil {
		t.Enabled = boolPtr(true)
	}
}

func (t *Tracing) applyEnv(lookup func(string) (string, bool)) {}

func (t *Tracing) validate(v *validator, path string) {}
