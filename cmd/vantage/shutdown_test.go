package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestManyHealthCheckedHostsStopOnSIGTERM: a gateway probing thousands of
// hosts exits promptly on SIGTERM. Before the shared health checker, each
// host had a probing goroutine and the pools were stopped one after the
// other while the rest kept probing: with 1,000 services × 10 hosts the
// process went on for minutes after logging "stopped".
//
// 500 services × 10 hosts are checked every second; the hosts hold each
// probe for 300 ms, so probes are in flight (and more are due) when the
// signal arrives.
func TestManyHealthCheckedHostsStopOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a gateway with 5,000 health-checked hosts")
	}
	var probes atomic.Int64
	release := make(chan struct{})
	var hosts []string
	for range 10 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			probes.Add(1)
			select {
			case <-time.After(300 * time.Millisecond):
			case <-r.Context().Done():
			case <-release:
			}
		}))
		hosts = append(hosts, s.URL)
		t.Cleanup(s.Close)
	}
	t.Cleanup(func() { close(release) }) // before the servers close

	listen, admin := freeAddr(t), freeAddr(t)
	var b strings.Builder
	fmt.Fprintf(&b, "listeners: [{name: main, address: %q}]\nadmin: {address: %q}\n", listen, admin)
	b.WriteString("access_log: {enabled: false}\ntracing: {enabled: false}\nmetrics: {enabled: false}\n")
	b.WriteString("history: {enabled: false}\ntrace_store: {enabled: false}\nservices:\n")
	for i := range 500 {
		fmt.Fprintf(&b, "  - {name: s%d, health_check: {interval: 1s, timeout: 500ms}, upstreams: [", i)
		for j, h := range hosts {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "{url: %q}", h)
		}
		b.WriteString("]}\n")
	}
	b.WriteString("routes:\n")
	for i := range 500 {
		fmt.Fprintf(&b, "  - {name: r%d, match: {path_prefix: /s%d/}, service: s%d}\n", i, i, i)
	}
	cfgFile := filepath.Join(t.TempDir(), "vantage.yml")
	if err := os.WriteFile(cfgFile, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	p := startVantageProcess(t, cfgFile)
	deadline := time.Now().Add(60 * time.Second)
	// Ready means serving, with the signal handler installed.
	for !ready(admin) {
		if time.Now().After(deadline) || p.cmd.ProcessState != nil {
			t.Fatalf("not ready within 60 s:\n%s", tail(p.Logs(), 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for probes.Load() < 200 {
		if time.Now().After(deadline) || p.cmd.ProcessState != nil {
			t.Fatalf("only %d probes within 60 s:\n%s", probes.Load(), p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, p.Logs())
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, into the logs
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		t.Fatalf("still running 30 s after SIGTERM (%d probes):\n%s", probes.Load(), tail(p.Logs(), 4000))
	}
	if !strings.Contains(p.Logs(), "msg=stopped") {
		t.Errorf("no \"stopped\" line:\n%s", tail(p.Logs(), 2000))
	}
}

func ready(admin string) bool {
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
