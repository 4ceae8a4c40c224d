package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test start this binary as a real vantage process:
// with VANTAGE_TEST_AS_MAIN=1 it runs the command line instead of the
// tests.
func TestMain(m *testing.M) {
	if os.Getenv("VANTAGE_TEST_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// vantageProcess is a vantage process started by a test.
type vantageProcess struct {
	cmd  *exec.Cmd
	buf  *bytes.Buffer
	logs *syncWriter
}

// Logs returns what the process wrote to stderr so far.
func (p *vantageProcess) Logs() string {
	p.logs.mu.Lock()
	defer p.logs.mu.Unlock()
	return p.buf.String()
}

func startVantageProcess(t *testing.T, cfgFile string) *vantageProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "run", "-config", cfgFile)
	cmd.Env = append(os.Environ(), "VANTAGE_TEST_AS_MAIN=1")
	p := &vantageProcess{cmd: cmd, buf: &bytes.Buffer{}}
	p.logs = &syncWriter{w: p.buf}
	cmd.Stdout, cmd.Stderr = io.Discard, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func persistTraceID(n int) string { return fmt.Sprintf("%016x%016x", 0xfeed, n) }

// postSpans sends traces [from, to) over OTLP/HTTP JSON, one span each.
func postSpans(client *http.Client, admin string, from, to int) error {
	now := time.Now().UnixNano()
	var b strings.Builder
	b.WriteString(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"persist"}}]},"scopeSpans":[{"spans":[`)
	for n := from; n < to; n++ {
		if n > from {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"traceId":%q,"spanId":"%016x","name":"op","kind":2,"startTimeUnixNano":"%d","endTimeUnixNano":"%d","attributes":[{"key":"n","value":{"intValue":"%d"}}]}`,
			persistTraceID(n), n+1, now, now+1000, n)
	}
	b.WriteString(`]}]}]}`)
	resp, err := client.Post("http://"+admin+"/v1/traces", "application/json", strings.NewReader(b.String()))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func traceStored(client *http.Client, admin string, n int) (bool, error) {
	resp, err := client.Get("http://" + admin + "/api/traces/" + persistTraceID(n))
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK, nil
}

// TestTraceStoreSurvivesSIGKILL starts a real vantage process with a data
// directory, ingests spans, waits past a sync, kills it with SIGKILL in
// the middle of more ingest, restarts it on the same directory and finds
// every trace synced before the kill.
func TestTraceStoreSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	deadline := time.Now().Add(20 * time.Second)
	dir := t.TempDir()
	admin := freeAddr(t)
	cfgFile := filepath.Join(dir, "vantage.yml")
	cfg := fmt.Sprintf(`
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: %q}
services: [{name: app, upstreams: [{url: "http://127.0.0.1:9"}]}]
routes: [{name: all, match: {path_prefix: /}, service: app}]
trace_store: {data_dir: %q, sync_interval: 200ms}
`, admin, filepath.Join(dir, "traces"))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	waitReady := func(p *vantageProcess) {
		for {
			resp, err := client.Get("http://" + admin + "/healthz")
			if err == nil {
				resp.Body.Close()
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("vantage never listened on %s: %v\n%s", admin, err, p.Logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	p := startVantageProcess(t, cfgFile)
	waitReady(p)
	// Phase 1: 500 traces, then wait until they are stored and synced.
	const synced = 500
	for n := 0; n < synced; n += 50 {
		if err := postSpans(client, admin, n, n+50); err != nil {
			t.Fatal(err)
		}
	}
	for {
		ok, err := traceStored(client, admin, synced-1)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %d never stored\n%s", synced-1, p.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(600 * time.Millisecond) // three sync intervals

	// Phase 2: more ingest from another goroutine, killed in its middle.
	stop := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		n := synced
		for i := 0; i < 200 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				sent <- n
				return
			default:
			}
			if postSpans(client, admin, n, n+20) != nil {
				break
			}
			n += 20
		}
		sent <- n
	}()
	time.Sleep(300 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	close(stop)
	last := <-sent
	if last == synced {
		t.Fatal("nothing was ingested while the process was killed")
	}

	q := startVantageProcess(t, cfgFile)
	waitReady(q)
	missing := 0
	for n := 0; n < synced; n++ {
		ok, err := traceStored(client, admin, n)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of the %d traces synced before the kill are missing\n%s", missing, synced, q.Logs())
	}
	after := 0
	for n := synced; n < last; n++ {
		if ok, _ := traceStored(client, admin, n); ok {
			after++
		}
	}
	t.Logf("kept all %d synced traces and %d of the %d sent in the last moments", synced, after, last-synced)
	if !strings.Contains(q.Logs(), "trace store read its data directory") {
		t.Errorf("the restart did not log reading the data directory:\n%s", q.Logs())
	}
	if err := q.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- q.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("vantage did not stop on SIGTERM")
	}
}
