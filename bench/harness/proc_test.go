package harness

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func startShell(t *testing.T, script string) *Proc {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	p, err := Start(StartOptions{
		Name:    "sh",
		Argv:    []string{sh, "-c", script},
		LogPath: filepath.Join(t.TempDir(), "sh.log"),
		CPU:     -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(time.Second) })
	return p
}

func TestProcStartStop(t *testing.T) {
	// The shell prints, then waits on a child: Stop must end both.
	p := startShell(t, "echo one; echo two; sleep 30 & wait")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.LogTail(5), "two") {
		if time.Now().After(deadline) {
			t.Fatalf("log never got the output; tail: %q", p.LogTail(5))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := p.LogTail(1); got != "two" {
		t.Errorf("LogTail(1) = %q, want %q", got, "two")
	}
	if done, _ := p.Exited(); done {
		t.Fatal("process exited early")
	}
	if _, err := ReadProcStat("/proc", p.PID()); err != nil {
		t.Errorf("reading the started process's stat: %v", err)
	}
	p.Stop(2 * time.Second)
	if done, _ := p.Exited(); !done {
		t.Fatal("process still running after Stop")
	}
	// SIGTERM to the shell leaves its sleep; Stop's group kill must not.
	// The kill is asynchronous, so poll until the group is gone.
	deadline = time.Now().Add(5 * time.Second)
	for syscall.Kill(-p.PID(), 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("process group still has members 5s after Stop")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Stop(time.Second) // idempotent
}

func TestStartValidates(t *testing.T) {
	if _, err := Start(StartOptions{Name: "x", Argv: []string{"true"}, LogPath: filepath.Join(t.TempDir(), "l"), CPU: 0}); err == nil {
		t.Error("Start with CPU but no taskset succeeded")
	}
	if _, err := Start(StartOptions{Name: "x", LogPath: "l", CPU: -1}); err == nil {
		t.Error("Start without Argv succeeded")
	}
}

func TestWaitReady(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 { // not ready for the first two probes
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("0123456789"))
	}))
	defer srv.Close()
	ctx := context.Background()

	if err := WaitReady(ctx, nil, srv.URL, 10, 5*time.Second); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if calls.Load() < 3 {
		t.Errorf("ready after %d probes, want >= 3", calls.Load())
	}
	err := WaitReady(ctx, nil, srv.URL, 64, time.Second)
	if err == nil || !strings.Contains(err.Error(), "body of 10 bytes, want 64") {
		t.Errorf("WaitReady with the wrong body size = %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := WaitReady(cctx, nil, srv.URL, 64, 5*time.Second); err != context.Canceled {
		t.Errorf("WaitReady with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestWaitReadyProcessExits(t *testing.T) {
	p := startShell(t, "echo boom >&2; exit 3")
	// Nothing listens on this URL; the process's exit must end the wait
	// long before the timeout.
	start := time.Now()
	err := WaitReady(context.Background(), p, "http://127.0.0.1:1/", -1, 20*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited before answering") {
		t.Fatalf("WaitReady = %v, want an exit error", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("WaitReady took %s after the process exited", time.Since(start))
	}
	if !strings.Contains(p.LogTail(5), "boom") {
		t.Errorf("log tail %q lacks the process's stderr", p.LogTail(5))
	}
}
