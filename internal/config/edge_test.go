package config

import (
	"strings"
	"testing"
)

func TestEdgeLimitsAndUpgradesDefaults(t *testing.T) {
	cfg, err := Parse("edge.yml", []byte(`
listeners: [{name: public, address: "127.0.0.1:0"}]
services: [{name: s, upstreams: [{url: "http://127.0.0.1:1"}]}]
routes: [{name: r, service: s}, {name: off, service: s, upgrades: []}]
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Listeners[0]
	if l.MaxHeaderBytes != 61440 || l.MaxHeaders != 100 || l.MaxURIBytes != 16384 {
		t.Errorf("limits %d %d %d", l.MaxHeaderBytes, l.MaxHeaders, l.MaxURIBytes)
	}
	if !cfg.Routes[0].AllowsUpgrade("WebSocket") || cfg.Routes[0].AllowsUpgrade("h2c") {
		t.Errorf("default upgrades: %v", cfg.Routes[0].Upgrades)
	}
	if cfg.Routes[1].AllowsUpgrade("websocket") {
		t.Errorf("upgrades: [] allows websocket")
	}
}

func TestEdgeLimitsAndUpgradesValidated(t *testing.T) {
	_, err := Parse("edge.yml", []byte(`
listeners:
  - name: public
    address: "127.0.0.1:0"
    max_header_bytes: 512
    max_headers: -1
    max_uri_bytes: -2
  - name: other
    address: "127.0.0.1:0"
    max_header_bytes: 2048
    max_uri_bytes: 4096
services: [{name: s, upstreams: [{url: "http://127.0.0.1:1"}]}]
routes:
  - name: r
    service: s
    upgrades: [websocket, h2c, "bad name"]
`), nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"edge.yml:5: listeners[0].max_header_bytes: must be at least 1024, got 512",
		"edge.yml:6: listeners[0].max_headers: must not be negative, got -1",
		"edge.yml:7: listeners[0].max_uri_bytes: must not be negative, got -2",
		"edge.yml:11: listeners[1].max_uri_bytes: must not exceed max_header_bytes (2048), got 4096",
		"routes[0].upgrades[1]: h2c upgrades are never forwarded",
		`routes[0].upgrades[2]: must be a protocol name like websocket, got "bad name"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
