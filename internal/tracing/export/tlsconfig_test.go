package export

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/vantage-gateway/vantage/internal/config"
)

// TestTLSConfigFromTheOneBuilder: the exporters' client TLS config (spans,
// and access-log records through TLSConfig) has the TLS floor every client
// of the gateway has, and the configured ca_file, server_name and
// insecure_skip_verify.
func TestTLSConfigFromTheOneBuilder(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, in := range []*config.ExporterTLS{nil, {CAFile: ca, ServerName: "example.com"}, {InsecureSkipVerify: true}} {
		c, err := TLSConfig(in)
		if err != nil {
			t.Fatal(err)
		}
		want := config.ExporterTLS{}
		if in != nil {
			want = *in
		}
		if c.MinVersion != tls.VersionTLS12 || c.ServerName != want.ServerName || c.InsecureSkipVerify != want.InsecureSkipVerify ||
			(c.RootCAs != nil) != (want.CAFile != "") {
			t.Errorf("%+v: TLS config min %x, server name %q, insecure %v, roots %v", in, c.MinVersion, c.ServerName, c.InsecureSkipVerify, c.RootCAs != nil)
		}
	}
	if _, err := TLSConfig(&config.ExporterTLS{CAFile: filepath.Join(t.TempDir(), "missing.pem")}); err == nil {
		t.Error("a missing ca_file was accepted")
	}
}
