package upstream

import (
	"crypto/tls"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/observe/observetest"
)

// TestHealthChecksSpeakTLSAsTheTransportDoes: the probes of an https://
// host use the service's transport settings (ca_file, server_name) and the
// TLS floor every client of the gateway has (MinVersion TLS 1.2), built by
// the one builder the transport uses too.
func TestHealthChecksSpeakTLSAsTheTransportDoes(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, serverName string
		wantHealthy      bool
	}{
		{"ca_file and server_name in the certificate", "example.com", true},
		{"server_name not in the certificate", "other.test", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := withHealth(service("s", srv.URL), time.Hour, time.Second, 1, 1)
			s.Transport.CAFile, s.Transport.ServerName = ca, tc.serverName
			rec := &observetest.Recorder{}
			p := mustPool(t, s, nil, rec, clock.NewFake(t0))
			c := p.hc.transport.TLSClientConfig
			if c.MinVersion != tls.VersionTLS12 || c.ServerName != tc.serverName || c.RootCAs == nil || c.InsecureSkipVerify {
				t.Fatalf("probe TLS config: min %x, server name %q, roots %v", c.MinVersion, c.ServerName, c.RootCAs != nil)
			}
			probeOnce(p, 0)
			h := p.Hosts()[0]
			if h.Healthy() != tc.wantHealthy {
				t.Fatalf("healthy %v, want %v (events %+v)", h.Healthy(), tc.wantHealthy, rec.Of(observe.EventHealthChanged))
			}
		})
	}
}
