package config

import "strings"

// DefaultOTLPReceiverMaxBodyBytes is otlp_receiver.max_body_bytes' default.
const DefaultOTLPReceiverMaxBodyBytes = 4 << 20

// OTLPReceiver configures the OTLP receiver: services export their spans
// and log records to the gateway over OTLP/HTTP (POST /v1/traces and
// /v1/logs on the admin listener, never a public one) and, when
// GRPCAddress is set, OTLP/gRPC on a listener of its own.
type OTLPReceiver struct {
	// Enabled serves the receiver (default true).
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// GRPCAddress is the host:port of the OTLP/gRPC listener (default ""
	// : no gRPC listener). Bind it to loopback or a private interface.
	GRPCAddress string `yaml:"grpc_address,omitempty" json:"grpc_address,omitempty"`
	// MaxBodyBytes is the largest request, after decompression, accepted
	// (default 4MiB); larger ones get 413 (gRPC: RESOURCE_EXHAUSTED).
	MaxBodyBytes ByteSize `yaml:"max_body_bytes,omitempty" json:"max_body_bytes,omitempty"`
	// Forward also sends what the receiver accepts to every OTLP exporter
	// of tracing.exporters (default false), so a fleet can run services →
	// gateway → Collector. Spans go to the exporter's traces endpoint, log
	// records to its logs endpoint, through a bounded queue.
	Forward bool `yaml:"forward,omitempty" json:"forward,omitempty"`
	// BearerToken, when set, is required from every client as
	// "Authorization: Bearer <token>" (default none). It is never logged
	// and is redacted from /api/config.
	BearerToken string `yaml:"bearer_token,omitempty" json:"bearer_token,omitempty"`
}

// IsEnabled reports whether the receiver is served (true when unset).
func (o *OTLPReceiver) IsEnabled() bool { return o.Enabled == nil || *o.Enabled }

func (o *OTLPReceiver) setDefaults() {
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultOTLPReceiverMaxBodyBytes
	}
}

func (o *OTLPReceiver) validate(v *validator, path string, c *Config) {
	if o.MaxBodyBytes < 0 {
		v.errorf(path+".max_body_bytes", "must not be negative")
	} else if o.MaxBodyBytes > 1<<30 {
		v.errorf(path+".max_body_bytes", "must be at most 1GiB, got %d bytes", o.MaxBodyBytes)
	}
	if o.GRPCAddress != "" {
		if err := checkHostPort(o.GRPCAddress); err != nil {
			v.errorf(path+".grpc_address", "%v", err)
		} else if !strings.HasSuffix(o.GRPCAddress, ":0") {
			for _, l := range c.Listeners {
				if l.Address == o.GRPCAddress {
					v.errorf(path+".grpc_address", "must not be a public listener's address (listener %q uses %s)", l.Name, l.Address)
				}
			}
			if c.Admin.Address == o.GRPCAddress {
				v.errorf(path+".grpc_address", "must not be the admin listener's address (%s)", o.GRPCAddress)
			}
		}
	}
	if strings.ContainsAny(o.BearerToken, " \t\r\n") {
		v.errorf(path+".bearer_token", "must not contain spaces or line breaks")
	}
	if o.Forward && o.IsEnabled() {
		found := false
		for _, e := range c.Tracing.Exporters {
			if e.Type == "otlp_grpc" || e.Type == "otlp_http" {
				found = true
			}
		}
		if !found {
			v.errorf(path+".forward", "needs an otlp_grpc or otlp_http entry in tracing.exporters to forward to")
		}
	}
}
