package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
)

// TestAdminCredentialsThroughServe runs the real serve loop with admin
// credentials from the environment and a file, and checks the admin
// listener's answers and that no credential value reaches the log, whatever
// clients send.
func TestAdminCredentialsThroughServe(t *testing.T) {
	const envToken, fileToken = "env-tok-5e1d9a7c3b", "file-tok-8f2a6c4e0d"
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "viewer-token")
	if err := os.WriteFile(tokenFile, []byte(fileToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(k string) (string, bool) {
		if k == "VANTAGE_ADMIN_TOKEN" {
			return envToken, true
		}
		return "", false
	}
	cfg, err := config.Parse("admin.yml", []byte(fmt.Sprintf(`
listeners: [{name: public, address: "127.0.0.1:0"}]
admin:
  address: "127.0.0.1:0"
  auth:
    tokens:
      - {name: ci, token: "${VANTAGE_ADMIN_TOKEN}"}
      - {name: viewer, role: read_only, token_file: %q}
access_log: {enabled: false}
log: {level: debug}
services: [{name: s, upstreams: [{url: "http://127.0.0.1:1"}]}]
routes: [{name: r, match: {path_prefix: /}, service: s}]
`, tokenFile)), env)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	ready := make(chan boundAddrs, 1)
	stop := make(chan struct{})
	done := make(chan int, 1)
	go func() {
		done <- serve(cfg, serveOptions{stdout: io.Discard, stderr: &syncWriter{w: &logs}, ready: func(a boundAddrs) { ready <- a }, stop: stop})
	}()
	var addrs boundAddrs
	select {
	case addrs = <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("never ready")
	}
	call := func(method, path, host, auth string) int {
		r, _ := http.NewRequest(method, "http://"+addrs.Admin+path, nil)
		if host != "" {
			r.Host = host
		}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	checks := []struct {
		method, path, host, auth string
		want                     int
	}{
		{"GET", "/api/routes", "", "", 401},
		{"GET", "/api/routes", "", "Bearer " + envToken[:len(envToken)-1], 401},
		{"GET", "/api/routes", "", "Bearer " + envToken, 200},
		{"GET", "/api/routes", "rebind.example:80", "Bearer " + envToken, 421},
		{"GET", "/api/config", "", "Bearer " + fileToken, 200},
		{"PUT", "/api/routes/r/split", "", "Bearer " + fileToken, 403},
		{"GET", "/metrics", "", "Bearer " + fileToken, 200},
	}
	for _, c := range checks {
		if got := call(c.method, c.path, c.host, c.auth); got != c.want {
			t.Errorf("%s %s (Host %q): %d, want %d", c.method, c.path, c.host, got, c.want)
		}
	}
	close(stop)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return")
	}
	out := logs.String()
	if !strings.Contains(out, "admin request refused") {
		t.Errorf("no refusal logged:\n%s", out)
	}
	for _, s := range []string{envToken, fileToken, envToken[:len(envToken)-1]} {
		if strings.Contains(out, s) {
			t.Errorf("credential %q in the log:\n%s", s, out)
		}
	}
}

// vantage proxy refuses an admin address off loopback without a token, and
// says which flag provides one. (Nothing is bound: validation fails first.)
func TestProxyRefusesOpenAdmin(t *testing.T) {
	var out, errb strings.Builder
	code := run([]string{"proxy", "--listen", "127.0.0.1:0", "--to", "http://127.0.0.1:1", "--admin", "0.0.0.0:0"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "admin.auth: is required when admin.address (0.0.0.0:0) is not a loopback address") {
		t.Fatalf("exit %d:\n%s", code, errb.String())
	}
}
