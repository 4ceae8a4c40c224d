package gateway

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/listener"
)

// h2cUpstream is a cleartext HTTP/2 server (prior knowledge), like a gRPC
// service, that answers with trailers.
func h2cUpstream(t *testing.T) string {
	t.Helper()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		w.Header().Set("X-Proto", r.Proto)
		io.WriteString(w, "payload")
		w.Header().Set("Grpc-Status", "5")
		w.Header().Set("Grpc-Message", "not found")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "h2c://" + ln.Addr().String()
}

func TestH2CEndToEndWithTrailers(t *testing.T) {
	up := h2cUpstream(t)
	cfg := parse(t, `
listeners: [{name: public, address: "127.0.0.1:0", h2c: true}]
services: [{name: grpc, upstreams: [{url: %q}]}]
routes: [{name: grpc, match: {path_prefix: /}, service: grpc}]
`, up)
	g, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv, err := listener.Listen(cfg.Listeners[0], g.Handler("public"), nil)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Shutdown(t.Context())

	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 5 * time.Second}
	req, _ := http.NewRequest("POST", "http://"+srv.Addr().String()+"/pkg.Service/Method", strings.NewReader("req"))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("client spoke %s to the gateway, want HTTP/2 (h2c)", resp.Proto)
	}
	if resp.Header.Get("X-Proto") != "HTTP/2.0" {
		t.Fatalf("upstream saw %q, want HTTP/2.0", resp.Header.Get("X-Proto"))
	}
	if string(body) != "payload" || resp.Trailer.Get("Grpc-Status") != "5" || resp.Trailer.Get("Grpc-Message") != "not found" {
		t.Fatalf("body %q trailers %v", body, resp.Trailer)
	}
}

func TestListenerRejectsBusyAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = listener.Listen(config.Listener{Name: "x", Address: ln.Addr().String()}, http.NotFoundHandler(), nil)
	if err == nil || !strings.Contains(err.Error(), `listener "x"`) {
		t.Fatalf("busy address: %v", err)
	}
}
