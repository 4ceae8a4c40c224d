// Package tlsclient builds the TLS configuration of every connection the
// gateway opens as a client: to upstreams (the transport and the active
// health checks) and to telemetry backends (the span and log exporters).
// There is one builder so that every client gets the same floor (TLS 1.2)
// and honours the same settings; a setting added here reaches them all.
package tlsclient

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/vantage-gateway/vantage/internal/config"
)

// MinVersion is the lowest TLS version any client of the gateway speaks.
const MinVersion = tls.VersionTLS12

// Settings are the client TLS settings of one destination. The zero value
// verifies the server against the system roots and the dialed host name.
type Settings struct {
	// CAFile verifies servers with the PEM roots in this file instead of
	// the system's.
	CAFile string
	// ServerName is the name sent (SNI) and verified, instead of the
	// dialed host.
	ServerName string
	// InsecureSkipVerify skips certificate verification (an operator's
	// explicit choice, for testing).
	InsecureSkipVerify bool
	// CertFile and KeyFile are a client certificate (mTLS): both or
	// neither.
	CertFile, KeyFile string
}

// ForUpstream returns the settings of a service's transport block.
func ForUpstream(t config.Transport) Settings {
	return Settings{CAFile: t.CAFile, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
}

// ForExporter returns the settings of an exporter's tls block; nil is the
// zero Settings.
func ForExporter(t *config.ExporterTLS) Settings {
	if t == nil {
		return Settings{}
	}
	return Settings{CAFile: t.CAFile, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify,
		CertFile: t.CertFile, KeyFile: t.KeyFile}
}

// Config builds a new client TLS config from s, with MinVersion set. It
// reads the files s names; errors name the setting (ca_file, cert_file)
// and wrap the cause. The config is the caller's.
func Config(s Settings) (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         MinVersion,
		ServerName:         s.ServerName,
		InsecureSkipVerify: s.InsecureSkipVerify, //nolint:gosec // explicit opt-in in config
	}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %q holds no PEM certificate", s.CAFile)
		}
		c.RootCAs = pool
	}
	if s.CertFile != "" || s.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading cert_file and key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
