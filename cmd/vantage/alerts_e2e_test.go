package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
)

const alertmanagerBin = "/usr/bin/prometheus-alertmanager"

// startAlertmanager starts a real Alertmanager on a free loopback port and
// returns its base URL; it is stopped by its PID when the test ends.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(alertmanagerBin); err != nil {
		t.Skipf("%s not installed (Debian package prometheus-alertmanager; scripts/test installs it)", alertmanagerBin)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route: {receiver: none, group_wait: 0s}\nreceivers: [{name: none}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var out bytes.Buffer
	cmd := exec.Command(alertmanagerBin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &out, &syncWriter{w: &out}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager not ready: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type amGot struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

func amAlerts(t *testing.T, base, name string) []amGot {
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all, out []amGot
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if a.Labels["alertname"] == name && a.EndsAt.After(time.Now()) {
			out = append(out, a)
		}
	}
	return out
}

// TestAlertsEndToEndAlertmanager sends a burst of upstream 5xx through a
// real gateway and checks that a real Alertmanager gets a firing alert
// with exemplar trace ids within for + 2s of the condition holding (plus
// the second in which the failures happen, which must end before the
// history has it), then a resolve; a two-request blip before it produces
// none.
func TestAlertsEndToEndAlertmanager(t *testing.T) {
	am := startAlertmanager(t)
	var failing atomic.Bool
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer up.Close()
	const forD = 2 * time.Second
	file := filepath.Join(t.TempDir(), "vantage.yml")
	data := fmt.Sprintf(`
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
access_log: {enabled: false}
services: [{name: shop, upstreams: [{url: %q}]}]
routes: [{name: checkout, match: {path_prefix: /}, service: shop}]
alerts:
  external_url: "http://127.0.0.1:9901"
  rules:
    - name: CheckoutErrors
      scope: route
      target: checkout
      metric: error_ratio
      window: 2s
      threshold: 0.2
      for: %s
      min_requests: 10
      severity: page
      annotations: {summary: "{{ .Labels.route }}: {{ printf \"%%.0f\" .Value }} of requests fail"}
  receivers:
    - {name: am, type: alertmanager, url: %q}
`, up.URL, forD, am)
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
	var logs bytes.Buffer
	go func() {
		done <- serve(cfg, serveOptions{file: file, stdout: io.Discard, stderr: &syncWriter{w: &logs}, ready: func(a boundAddrs) { ready <- a }, stop: stop})
	}()
	defer func() {
		close(stop)
		<-done
	}()
	var addrs boundAddrs
	select {
	case addrs = <-ready:
	case <-time.After(5 * time.Second):
		t.Fatal("never ready")
	}
	base := "http://" + addrs.Listeners["public"]
	send := func() {
		resp, err := http.Get(base + "/buy")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	// A two-request blip: nothing reaches Alertmanager.
	failing.Store(true)
	send()
	send()
	failing.Store(false)
	blipEnd := time.Now().Add(forD + 3*time.Second)
	for time.Now().Before(blipEnd) {
		if got := amAlerts(t, am, "CheckoutErrors"); len(got) > 0 {
			t.Fatalf("a two-request blip produced %+v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A burst: every request fails, 50 per second, for at most 15s.
	failing.Store(true)
	start := time.Now()
	var fired []amGot
	var detect time.Duration
	for i := 0; i < 750 && time.Since(start) < 15*time.Second; i++ {
		send()
		time.Sleep(20 * time.Millisecond)
		if i%5 == 0 {
			if fired = amAlerts(t, am, "CheckoutErrors"); len(fired) > 0 {
				detect = time.Since(start)
				break
			}
		}
	}
	if len(fired) == 0 {
		t.Fatalf("no alert in Alertmanager after %s; gateway logs:\n%s", time.Since(start), logs.String())
	}
	t.Logf("first 5xx -> firing in Alertmanager: %s (for %s)", detect, forD)
	if limit := forD + 3*time.Second; detect > limit {
		t.Errorf("delivered after %s, promised within %s", detect, limit)
	}
	a := fired[0]
	if a.Labels["severity"] != "page" || a.Labels["route"] != "checkout" || a.Labels["service"] != "shop" || a.Status.State != "active" {
		t.Fatalf("alert %+v", a)
	}
	ids := strings.Fields(a.Annotations["exemplar_trace_ids"])
	if len(ids) == 0 || len(ids[0]) != 32 || !strings.HasPrefix(a.Annotations["exemplar_url"], "http://127.0.0.1:9901/traces/") {
		t.Fatalf("no exemplar trace ids in annotations %v", a.Annotations)
	}
	if a.Annotations["summary"] != "checkout: 1 of requests fail" {
		t.Fatalf("summary %q", a.Annotations["summary"])
	}
	st := adminGet(t, addrs.Admin, "/api/alerts")
	if !strings.Contains(st, `"state": "firing"`) || !strings.Contains(st, ids[0]) {
		t.Fatalf("/api/alerts:\n%s", st)
	}

	// Recovery: healthy traffic until the alert is resolved there.
	failing.Store(false)
	start = time.Now()
	resolved := false
	for i := 0; i < 750 && time.Since(start) < 15*time.Second; i++ {
		send()
		time.Sleep(20 * time.Millisecond)
		if i%5 == 0 && len(amAlerts(t, am, "CheckoutErrors")) == 0 {
			resolved = true
			break
		}
	}
	if !resolved {
		t.Fatalf("not resolved in Alertmanager after %s", time.Since(start))
	}
	t.Logf("recovery -> resolved in Alertmanager: %s", time.Since(start))
	if !strings.Contains(logs.String(), "to=firing") || !strings.Contains(logs.String(), "to=resolved") {
		t.Fatalf("no transition log lines:\n%s", logs.String())
	}
	m := adminGet(t, addrs.Admin, "/metrics")
	if !strings.Contains(m, `vantage_alert_notifications_total{outcome="sent",receiver="am"}`) {
		t.Fatalf("no delivery counter in metrics")
	}
}

func TestAlertsExportCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vantage.yml")
	os.WriteFile(file, []byte(`listeners: [{address: "127.0.0.1:0"}]
services: [{name: s, upstreams: [{url: "http://127.0.0.1:9"}]}]
routes: [{name: r, match: {path_prefix: /}, service: s}]
alerts:
  rules: [{name: RErrors, scope: route, target: r, metric: error_ratio, threshold: 0.1}]
`), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"alerts", "export", "--config", file, "--out", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "vantage-rules.yml"))
	if err != nil || !strings.Contains(string(b), "alert: RErrors") {
		t.Fatalf("rules %s %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "vantage-rules-test.yml")); err != nil {
		t.Fatal(err)
	}
}
