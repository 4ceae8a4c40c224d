// Package config is Vantage's configuration as data: the typed schema, strict
// YAML decoding with ${ENV} substitution, defaults, and validation that
// collects every error with its file, line and field path.
//
// The lifecycle is separate steps, each its own function: Decode (strict, no
// defaults) → SetDefaults → Validate (never mutates) → the runtime builds
// from the result. Load runs all three.
//
// Each section of the schema lives in its own file with its defaults and its
// validation beside it: core.go (listeners, admin, services, routes),
// traffic.go (splits, breakers, rate limits, retries, mirroring, faults),
// tracing.go, metrics.go and logging.go.
package config

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is a whole Vantage configuration.
type Config struct {
	// Listeners accept client traffic. At least one is required.
	Listeners []Listener `yaml:"listeners" json:"listeners"`
	// Admin is the admin listener (health, config, status, metrics).
	Admin Admin `yaml:"admin" json:"admin"`
	// Services are named pools of upstream hosts.
	Services []Service `yaml:"services" json:"services"`
	// Routes send requests to services. The most specific match wins.
	Routes []Route `yaml:"routes" json:"routes"`
	// ShutdownGrace is how long a graceful shutdown waits for in-flight
	// requests to finish (default 15s).
	ShutdownGrace Duration `yaml:"shutdown_grace" json:"shutdown_grace"`
	// TrustedProxies lists the CIDRs (or single IPs) whose X-Forwarded-*
	// headers are kept. From any other peer those headers are replaced.
	// Default: none trusted.
	TrustedProxies []string `yaml:"trusted_proxies" json:"trusted_proxies"`

	// Tracing configures trace context propagation, spans and export.
	Tracing Tracing `yaml:"tracing" json:"tracing"`
	// Metrics configures the Prometheus metrics.
	Metrics Metrics `yaml:"metrics" json:"metrics"`
	// AccessLog configures the per-request access log.
	AccessLog AccessLog `yaml:"access_log" json:"access_log"`
	// Redaction adjusts which query parameters and headers are redacted
	// wherever request data is shown (logs, spans, pages).
	Redaction Redaction `yaml:"redaction" json:"redaction"`
	// Log configures the gateway's own operational log.
	Log Log `yaml:"log" json:"log"`
	// Runtime tunes the Go garbage collector.
	Runtime Runtime `yaml:"runtime" json:"runtime"`
	// OTLPReceiver receives OTLP spans and log records from services.
	OTLPReceiver OTLPReceiver `yaml:"otlp_receiver" json:"otlp_receiver"`
	// History configures the in-process time series behind /api/history.
	History History `yaml:"history" json:"history"`
	// TraceStore configures the embedded trace store.
	TraceStore TraceStore `yaml:"trace_store" json:"trace_store"`
	// Alerts configures alert rules on the history and their delivery.
	Alerts Alerts `yaml:"alerts" json:"alerts"`
	// Rollouts are progressive deliveries of split routes (docs/rollouts.md).
	Rollouts []Rollout `yaml:"rollouts" json:"rollouts"`
	// Rollout holds settings shared by the rollouts.
	Rollout RolloutSettings `yaml:"rollout" json:"rollout"`

	// File is the path the config was read from ("" when built in code).
	File string `yaml:"-" json:"-"`
}

// Duration is a time.Duration written as a Go duration string ("1.5s",
// "250ms") in YAML and JSON.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return typeError(n, "duration must be a string like \"1.5s\"")
	}
	s = strings.TrimSpace(s)
	if s == "0" || s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return typeError(n, "invalid duration %q (use a number with a unit: ms, s, m, h)", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Service returns the service named name, or nil.
func (c *Config) Service(name string) *Service {
	for i := range c.Services {
		if c.Services[i].Name == name {
			return &c.Services[i]
		}
	}
	return nil
}

// typeError reports a bad value at n as a *yaml.TypeError, which yaml.v3
// collects and goes on decoding past; any other error from an unmarshaler
// stops the whole decode at the first bad value.
func typeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
}
