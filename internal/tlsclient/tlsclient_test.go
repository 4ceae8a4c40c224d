package tlsclient

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vantage-gateway/vantage/internal/config"
)

// server starts an HTTPS server and writes its certificate (valid for
// example.com and 127.0.0.1) to a PEM file.
func server(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, ca
}

// get sends one request to srv with a client using c.
func get(srv *httptest.Server, c *tls.Config) error {
	tr := &http.Transport{TLSClientConfig: c}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL)
	if err == nil {
		resp.Body.Close()
	}
	return err
}

func TestConfigAgainstARealServer(t *testing.T) {
	srv, ca := server(t)
	for _, tc := range []struct {
		name   string
		s      Settings
		wantOK bool
	}{
		{"system roots do not know the test CA", Settings{}, false},
		{"ca_file", Settings{CAFile: ca}, true},
		{"server_name in the certificate", Settings{CAFile: ca, ServerName: "example.com"}, true},
		{"server_name not in the certificate", Settings{CAFile: ca, ServerName: "other.test"}, false},
		{"insecure_skip_verify", Settings{InsecureSkipVerify: true, ServerName: "other.test"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Config(tc.s)
			if err != nil {
				t.Fatal(err)
			}
			if c.MinVersion != tls.VersionTLS12 || c.ServerName != tc.s.ServerName || c.InsecureSkipVerify != tc.s.InsecureSkipVerify {
				t.Fatalf("config %+v does not hold %+v", c, tc.s)
			}
			if err := get(srv, c); (err == nil) != tc.wantOK {
				t.Fatalf("request error %v, want ok=%v", err, tc.wantOK)
			}
		})
	}
}

func TestConfigErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("no certificate here"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		s    Settings
		want string
	}{
		{Settings{CAFile: filepath.Join(dir, "missing.pem")}, "reading ca_file"},
		{Settings{CAFile: empty}, "holds no PEM certificate"},
		{Settings{CertFile: empty, KeyFile: empty}, "loading cert_file and key_file"},
		{Settings{CertFile: empty}, "loading cert_file and key_file"},
	} {
		if _, err := Config(tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.s, err, tc.want)
		}
	}
}

func TestSettingsFromConfig(t *testing.T) {
	up := ForUpstream(config.Transport{CAFile: "ca", ServerName: "sni", InsecureSkipVerify: true})
	if up != (Settings{CAFile: "ca", ServerName: "sni", InsecureSkipVerify: true}) {
		t.Errorf("upstream %+v", up)
	}
	ex := ForExporter(&config.ExporterTLS{CAFile: "ca", ServerName: "sni", InsecureSkipVerify: true, CertFile: "c", KeyFile: "k"})
	if ex != (Settings{CAFile: "ca", ServerName: "sni", InsecureSkipVerify: true, CertFile: "c", KeyFile: "k"}) {
		t.Errorf("exporter %+v", ex)
	}
	if ForExporter(nil) != (Settings{}) {
		t.Error("nil exporter tls")
	}
}
