package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
)

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("listeners:\n  - address: nope\nroutes:\n  - name: r\n    service: ghost\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"validate", "--config", bad}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"config has 2 error(s)", "bad.yml:2: listeners[0].address: must be host:port", "bad.yml:5: routes[0].service: unknown service \"ghost\""} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("missing %q in:\n%s", want, errb.String())
		}
	}
	out.Reset()
	if code := run([]string{"validate", "--config", "../../examples/basic.yml"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "ok") {
		t.Fatalf("example config: exit %d: %s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "vantage ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
}

// TestServeDrainsAndReloads runs the real serve loop: a bad edit of the file
// is rejected while the old config serves, a good edit is picked up, and
// stopping drains a request in flight.
func TestServeDrainsAndReloads(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		fmt.Fprint(w, "v1")
	}))
	defer slow.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "v2") }))
	defer other.Close()

	dir := t.TempDir()
	file := filepath.Join(dir, "vantage.yml")
	write := func(upstream string) {
		data := fmt.Sprintf(`
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
shutdown_grace: 5s
access_log: {enabled: false}
services: [{name: s, upstreams: [{url: %q}]}]
routes: [{name: r, match: {path_prefix: /}, service: s}]
`, upstream)
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(slow.URL)
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan boundAddrs, 1)
	stop := make(chan struct{})
	done := make(chan int, 1)
	var logs bytes.Buffer
	go func() {
		done <- serve(cfg, serveOptions{file: file, watch: true, stdout: io.Discard, stderr: &syncWriter{w: &logs}, ready: func(a boundAddrs) { ready <- a }, stop: stop})
	}()
	var addrs boundAddrs
	select {
	case addrs = <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("never ready")
	}
	base := "http://" + addrs.Listeners["public"]
	get := func(path string) string {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get("/"); got != "v1" {
		t.Fatalf("got %q", got)
	}
	// A broken file is rejected; the old config keeps serving.
	os.WriteFile(file, []byte("listeners: [{address: \"127.0.0.1:0\"}]\nroutes: [{name: r, service: nope}]\n"), 0o644)
	waitUntil(t, func() bool { return strings.Contains(adminGet(t, addrs.Admin, "/api/reload"), `"success": false`) }, &logs)
	if got := get("/"); got != "v1" {
		t.Fatalf("after a bad edit got %q", got)
	}
	// A good edit is picked up.
	write(other.URL)
	waitUntil(t, func() bool { return get("/") == "v2" })

	// Stop while a request is in flight: it completes.
	write(slow.URL)
	waitUntil(t, func() bool { return get("/") == "v1" })
	result := make(chan string, 1)
	go func() { result <- get("/slow") }()
	time.Sleep(100 * time.Millisecond)
	close(stop)
	select {
	case got := <-result:
		if got != "v1" {
			t.Fatalf("in-flight request during shutdown got %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight request never finished")
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exit %d; logs:\n%s", code, logs.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return")
	}
}

func adminGet(t *testing.T, addr, path string) string {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func waitUntil(t *testing.T, cond func() bool, logs ...*bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, l := range logs {
		t.Logf("logs:\n%s", l.String())
	}
	t.Fatal("condition not met in time")
}
