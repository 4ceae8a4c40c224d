package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// estateYAML is n services, each with the upstream as its one host and a
// route /svc{i}/..., plus transport settings for every service.
func estateYAML(n int, upstream, transport string) string {
	var b strings.Builder
	b.WriteString("listeners: [{name: public, address: \"127.0.0.1:0\"}]\nservices:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: svc%d, upstreams: [{url: %q}]%s}\n", i, upstream, transport)
	}
	b.WriteString("routes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: svc%d, match: {path_prefix: /svc%d/}, service: svc%d}\n", i, i, i)
	}
	return b.String()
}

// TestServicesShareConnectionsToOneAddress: requests spread over many
// services that reach one upstream address reuse one connection, across
// reloads too, while a service with other transport settings keeps its own
// pool.
func TestServicesShareConnectionsToOneAddress(t *testing.T) {
	var conns atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	up.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)

	const n = 50
	cfg, err := config.Parse("estate.yml", []byte(estateYAML(n, up.URL, "")), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, cfg, Options{})
	send := func(round int) {
		for i := range n {
			path := fmt.Sprintf("/svc%d/r%d", i, round)
			if resp, body := f.get(path); resp.StatusCode != 200 || body != path {
				t.Fatalf("GET %s: %d %q", path, resp.StatusCode, body)
			}
		}
	}
	send(0)
	if c := conns.Load(); c != 1 {
		t.Fatalf("%d sequential requests over %d services dialed %d connections, want 1", n, n, c)
	}
	// A reload with the same settings: the new snapshot's transports take
	// the connection over.
	cfg2, err := config.Parse("estate.yml", []byte(estateYAML(n, up.URL, "")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.g.Reload(cfg2, observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	send(1)
	// Changed settings on every service: one new pool for all of them.
	cfg3, err := config.Parse("estate.yml", []byte(estateYAML(n, up.URL, ", transport: {idle_conn_timeout: 61s}")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.g.Reload(cfg3, observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	send(2)
	if c := conns.Load(); c != 2 {
		t.Fatalf("after two reloads, %d connections, want 2 (one per transport settings)", c)
	}
	if st := f.g.pools.Stats(); st.Clients > 2 {
		t.Fatalf("pool stats %+v: more clients than settings in use", st)
	}
}
