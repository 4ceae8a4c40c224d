package listener

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "vantage test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func serve(t *testing.T, cfg config.Listener, h http.Handler) *Server {
	t.Helper()
	s, err := Listen(cfg, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	return s
}

func TestTLSNegotiatesHTTP2(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	s := serve(t, config.Listener{Name: "tls", Address: "127.0.0.1:0", TLS: &config.TLS{CertFile: certFile, KeyFile: keyFile}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.TLS == nil || !r.TLS.HandshakeComplete || r.TLS.ServerName != "127.0.0.1" && r.TLS.ServerName != "" {
				http.Error(w, "no TLS state", 500)
				return
			}
			fmt.Fprint(w, r.Proto)
		}))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	resp, err := client.Get("https://" + s.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/2.0" {
		t.Fatalf("server saw %q, want HTTP/2.0 by ALPN", b)
	}
	// HTTP/1.1-only clients still work.
	client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}}}
	resp, err = client.Get("https://" + s.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "HTTP/1.1" {
		t.Fatalf("HTTP/1.1 client: %q", b)
	}
}

func TestBadCertificateIsAClearError(t *testing.T) {
	_, err := Listen(config.Listener{Name: "tls", Address: "127.0.0.1:0", TLS: &config.TLS{CertFile: "nope.pem", KeyFile: "nope.key"}}, http.NotFoundHandler(), nil)
	if err == nil || !strings.Contains(err.Error(), `listener "tls": loading TLS certificate`) {
		t.Fatalf("got %v", err)
	}
}

func TestReadHeaderTimeoutClosesSlowClients(t *testing.T) {
	s := serve(t, config.Listener{Name: "p", Address: "127.0.0.1:0",
		Timeouts: config.ListenerTimeouts{ReadHeader: config.Duration(100 * time.Millisecond)}}, http.NotFoundHandler())
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n") // never finishes its headers
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn)
	if err != nil {
		t.Fatalf("connection not closed by the server: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("slow client held the connection for %v", time.Since(start))
	}
}

func TestMaxHeaderBytes(t *testing.T) {
	s := serve(t, config.Listener{Name: "p", Address: "127.0.0.1:0", MaxHeaderBytes: 1024}, http.NotFoundHandler())
	req, _ := http.NewRequest("GET", "http://"+s.Addr().String()+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 8192))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
}

// TestTLSHandshakeBoundedByReadHeader: a client that connects to a TLS
// listener and never completes its handshake is cut at read_header.
func TestTLSHandshakeBoundedByReadHeader(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	s := serve(t, config.Listener{Name: "tls", Address: "127.0.0.1:0", TLS: &config.TLS{CertFile: certFile, KeyFile: keyFile},
		Timeouts: config.ListenerTimeouts{ReadHeader: config.Duration(100 * time.Millisecond)}}, http.NotFoundHandler())
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "\x16\x03\x01") // the start of a ClientHello, never finished
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("connection not closed by the server: %v", err)
	}
}
