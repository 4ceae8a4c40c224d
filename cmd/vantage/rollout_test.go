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

// TestRolloutCommand runs the real serve loop with a rollout and steers it
// with "vantage rollout": list, pause, status, resume, abort; a reload
// keeps the rollout's state and weights; /metrics shows it.
func TestRolloutCommand(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer up.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "vantage.yml")
	data := fmt.Sprintf(`
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
access_log: {enabled: false}
services: [{name: v1, upstreams: [{url: %q}]}, {name: v2, upstreams: [{url: %q}]}]
routes: [{name: r, match: {path_prefix: /}, split: {services: [{service: v1, weight: 100}, {service: v2, weight: 0}]}}]
rollouts: [{name: r, route: r, canary: v2, stable: v1, steps: [5, 100], min_requests: 1000}]
rollout: {state_dir: %q}
`, up.URL, up.URL, filepath.Join(dir, "state"))
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan boundAddrs, 1)
	stop := make(chan struct{})
	done := make(chan int, 1)
	go func() {
		done <- serve(cfg, serveOptions{file: file, stdout: io.Discard, stderr: io.Discard, ready: func(a boundAddrs) { ready <- a }, stop: stop})
	}()
	var addrs boundAddrs
	select {
	case addrs = <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	defer func() {
		close(stop)
		<-done
	}()
	cli := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := run(append(append([]string{"rollout"}, args...), "--admin", addrs.Admin), &out, &errb)
		return out.String() + errb.String(), code
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, code := cli("list")
		if code == 0 && strings.Contains(out, "progressing") && strings.Contains(out, "5%") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never started: %d %s", code, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, code := cli("pause", "r"); code != 0 || !strings.Contains(out, "state paused") {
		t.Fatalf("pause: %d %s", code, out)
	}
	if out, code := cli("pause", "r"); code != 1 || !strings.Contains(out, "409") {
		t.Fatalf("pause twice: %d %s", code, out)
	}
	if out, code := cli("status", "nope"); code != 1 || !strings.Contains(out, "404") {
		t.Fatalf("unknown: %d %s", code, out)
	}
	// A reload keeps the state and the rollout's weights.
	resp, err := http.Post("http://"+addrs.Admin+"/api/reload", "application/json", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reload: %v %v", err, resp)
	}
	resp.Body.Close()
	resp, err = http.Get("http://" + addrs.Admin + "/api/routes/r/split")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"weight": 5`) {
		t.Fatalf("weights after reload: %s", body)
	}
	if out, code := cli("status", "r"); code != 0 || !strings.Contains(out, "state paused") {
		t.Fatalf("status after reload: %d %s", code, out)
	}
	if out, code := cli("abort", "r"); code != 0 || !strings.Contains(out, "rolled_back") {
		t.Fatalf("abort: %d %s", code, out)
	}
	resp, err = http.Get("http://" + addrs.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`vantage_rollout_state{rollout="r",route="r",state="rolled_back"} 1`, `vantage_rollout_weight{rollout="r",route="r"} 0`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "rollout-r.json")); err != nil {
		t.Fatalf("state not saved: %v", err)
	}
	if out, code := cli("explode", "r"); code != 2 {
		t.Fatalf("unknown verb: %d %s", code, out)
	}
}
