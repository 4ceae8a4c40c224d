package transport

import (
	"crypto/tls"
	"testing"

	"github.com/vantage-gateway/vantage/internal/config"
)

// TestTLSConfigFromTheOneBuilder: the transport's https:// client has the
// TLS floor every client of the gateway has, and the configured ca_file,
// server_name and insecure_skip_verify (TestHTTPS shows them at work).
func TestTLSConfigFromTheOneBuilder(t *testing.T) {
	_, ca := tlsUpstream(t)
	for _, cfg := range []config.Transport{
		{CAFile: ca, ServerName: "example.com"},
		{InsecureSkipVerify: true},
		{},
	} {
		tr, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c := tr.std.TLSClientConfig
		if c.MinVersion != tls.VersionTLS12 || c.ServerName != cfg.ServerName || c.InsecureSkipVerify != cfg.InsecureSkipVerify ||
			(c.RootCAs != nil) != (cfg.CAFile != "") {
			t.Errorf("%+v: TLS config min %x, server name %q, insecure %v, roots %v", cfg, c.MinVersion, c.ServerName, c.InsecureSkipVerify, c.RootCAs != nil)
		}
		tr.CloseIdleConnections()
	}
}
