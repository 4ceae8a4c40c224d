package mirror_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
)

// TestThroughGateway mirrors a route's POSTs in the real gateway's chain
// to a real shadow server.
func TestThroughGateway(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "primary:"+string(b))
	}))
	defer up.Close()
	shadowGot := make(chan string, 1)
	shadow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		shadowGot <- r.Method + " " + r.URL.Path + " " + string(b)
		w.WriteHeader(500) // the shadow's failures never reach the client
	}))
	defer shadow.Close()
	cfg, err := config.Parse("t.yml", []byte(`
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: a, upstreams: [{url: "`+up.URL+`"}]}
  - {name: a-next, upstreams: [{url: "`+shadow.URL+`"}]}
routes:
  - name: orders
    match: {path: /orders}
    service: a
    mirror: {service: a-next}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The gateway wires the mirror stage itself, with the shadow service's
	// proxy as the Sender.
	g, err := gateway.New(cfg, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(g.Handler("public"))
	defer func() { front.Close(); g.Close() }()
	client := front.Client()
	defer client.CloseIdleConnections()

	resp, err := client.Post(front.URL+"/orders", "text/plain", strings.NewReader("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "primary:order-1" {
		t.Fatalf("client got %d %q", resp.StatusCode, body)
	}
	select {
	case got := <-shadowGot:
		if got != "POST /orders order-1" {
			t.Errorf("shadow got %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the shadow never got the copy")
	}
}
