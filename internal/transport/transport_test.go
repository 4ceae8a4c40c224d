package transport

import (
	"bufio"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// tlsUpstream starts an HTTPS server (HTTP/2 enabled) and writes its
// certificate to a PEM file for ca_file.
func tlsUpstream(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Proto, r.Host)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, block, 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, ca
}

func TestHTTPS(t *testing.T) {
	srv, ca := tlsUpstream(t)
	tests := []struct {
		name      string
		edit      func(c *config.Transport)
		wantProto string
		wantKind  observe.ErrorKind
	}{
		{"auto negotiates h2", func(c *config.Transport) { c.CAFile = ca }, "HTTP/2.0", observe.ErrNone},
		{"http1", func(c *config.Transport) { c.CAFile = ca; c.Protocol = config.ProtocolHTTP1 }, "HTTP/1.1", observe.ErrNone},
		{"http2", func(c *config.Transport) { c.CAFile = ca; c.Protocol = config.ProtocolHTTP2 }, "HTTP/2.0", observe.ErrNone},
		{"server_name in cert", func(c *config.Transport) { c.CAFile = ca; c.ServerName = "example.com" }, "HTTP/2.0", observe.ErrNone},
		{"server_name not in cert", func(c *config.Transport) { c.CAFile = ca; c.ServerName = "other.test" }, "", observe.ErrUpstreamConnect},
		{"unknown authority", func(c *config.Transport) {}, "", observe.ErrUpstreamConnect},
		{"insecure_skip_verify", func(c *config.Transport) { c.InsecureSkipVerify = true }, "HTTP/2.0", observe.ErrNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.edit(&cfg)
			tr := newTestTransport(t, cfg, Options{})
			req, _ := http.NewRequest("GET", srv.URL+"/", nil)
			resp, err := tr.RoundTrip(req)
			if k := classify(err); k != tt.wantKind {
				t.Fatalf("error %v: kind %v, want %v", err, k, tt.wantKind)
			}
			if err != nil {
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasPrefix(string(b), tt.wantProto+" ") {
				t.Fatalf("upstream saw %q, want %s", b, tt.wantProto)
			}
		})
	}
}

func TestNewBadCAFile(t *testing.T) {
	cfg := testConfig()
	cfg.CAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := New(cfg); err == nil {
		t.Fatal("missing ca_file accepted")
	}
	cfg.CAFile = filepath.Join(t.TempDir(), "empty.pem")
	os.WriteFile(cfg.CAFile, []byte("not pem"), 0o600)
	if _, err := New(cfg); err == nil {
		t.Fatal("ca_file without certificates accepted")
	}
}

func TestH2C(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		// gRPC style: headers, body, then status in trailers.
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		w.Header().Set("Content-Type", "application/grpc")
		in, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %q", r.Proto, r.Method, in)
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set("Grpc-Message", "ok")
	})
	// net/http's own cleartext HTTP/2 (not the h2c wrapper, which hijacks
	// connections), so srv.Close also ends the server side of every
	// connection and no goroutine outlives the test.
	srv := httptest.NewUnstartedServer(handler)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &protocols
	srv.Start()
	t.Cleanup(srv.Close)
	cfg := testConfig()
	cfg.ResponseHeaderTimeout = config.Duration(100 * time.Millisecond)
	tr := newTestTransport(t, cfg, Options{})
	url := "h2c://" + hostOf(srv.URL)

	for range 2 {
		req, _ := http.NewRequest("POST", url+"/svc/Method", strings.NewReader("payload"))
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != `HTTP/2.0 POST "payload"` {
			t.Fatalf("body %q %v", b, err)
		}
		if resp.ProtoMajor != 2 || resp.Request != req {
			t.Fatalf("proto %d, request %p want %p", resp.ProtoMajor, resp.Request, req)
		}
		if resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("Grpc-Message") != "ok" {
			t.Fatalf("trailers %v", resp.Trailer)
		}
	}

	req, _ := http.NewRequest("GET", url+"/slow", nil)
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, ErrResponseHeaderTimeout) || classify(err) != observe.ErrUpstreamTimeout {
		t.Fatalf("slow h2c: %v (%v)", err, classify(err))
	}
}

func TestClassifyLive(t *testing.T) {
	// A port nobody listens on, on a loopback IP no test server binds, so
	// no server started later can be given it.
	ln, err := net.Listen("tcp", "127.0.0.254:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()

	garbage := cannedServer(t, "SMTP ready\r\n\r\n")
	resetMidBody := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := readHead(br, nil); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
		}
	})
	badChunk := cannedServer(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
	hugeHead := cannedServer(t, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 8<<10)+"\r\n\r\n")

	tr := newTestTransport(t, testConfig(), Options{MaxResponseHeaderBytes: 4 << 10})

	t.Run("dial", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+deadAddr+"/", nil)
		_, err := tr.RoundTrip(req)
		var oe *net.OpError
		var te *Error
		if classify(err) != observe.ErrUpstreamConnect || !errors.As(err, &oe) || oe.Op != "dial" ||
			!errors.As(err, &te) || te.Op != "dial" {
			t.Fatalf("got %v (%v)", err, classify(err))
		}
	})
	for _, tc := range []struct {
		name   string
		url    string
		inBody bool
		want   observe.ErrorKind
	}{
		{"garbage", garbage.URL(), false, observe.ErrUpstreamProtocol},
		{"huge head", hugeHead.URL(), false, observe.ErrUpstreamProtocol},
		{"reset mid-body", resetMidBody.URL(), true, observe.ErrUpstreamReset},
		{"bad chunk", badChunk.URL(), true, observe.ErrUpstreamProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tc.url, nil)
			resp, err := tr.RoundTrip(req)
			if tc.inBody {
				if err != nil {
					t.Fatalf("head: %v", err)
				}
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if k := classify(err); k != tc.want {
				t.Fatalf("got %v (%v), want %v", err, k, tc.want)
			}
		})
	}
}
