package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is one process under test, started by Start and stopped by its PID.
// Its standard output and error go to a log file whose tail explains a
// failure. Methods are safe for use by one goroutine at a time.
type Proc struct {
	// Name labels the process in messages.
	Name string
	// LogPath is the file holding the process's stdout and stderr.
	LogPath string

	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done is closed
}

// StartOptions describe how to start a Proc.
type StartOptions struct {
	// Name labels the process in messages. Required.
	Name string
	// Argv is the program and its arguments. Required.
	Argv []string
	// Env, when non-nil, is the whole environment; nil inherits the
	// harness's.
	Env []string
	// Dir is the working directory ("" for the harness's).
	Dir string
	// LogPath receives stdout and stderr. Required.
	LogPath string
	// CPU, when >= 0, pins the process to that CPU with taskset, which execs
	// the program so the recorded PID is the program's own.
	CPU int
	// Taskset is the taskset binary to pin with; required when CPU >= 0.
	Taskset string
}

// Start starts a process. The process gets its own process group, so a
// Ctrl-C at the terminal reaches only the harness, which then stops it; and
// it is killed by the kernel if the harness dies without cleaning up
// (Pdeathsig). Call Stop to end it.
func Start(o StartOptions) (*Proc, error) {
	if o.Name == "" || len(o.Argv) == 0 || o.LogPath == "" {
		return nil, errors.New("start: Name, Argv and LogPath are required")
	}
	argv := o.Argv
	if o.CPU >= 0 {
		if o.Taskset == "" {
			return nil, fmt.Errorf("start %s: CPU %d given without taskset", o.Name, o.CPU)
		}
		argv = append([]string{o.Taskset, "-c", strconv.Itoa(o.CPU)}, argv...)
	}
	logf, err := os.OpenFile(o.LogPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: opening log: %w", o.Name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = o.Env
	cmd.Dir = o.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", o.Name, err)
	}
	p := &Proc{Name: o.Name, LogPath: o.LogPath, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and if so how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		if p.err == nil {
			return true, errors.New("exited with status 0")
		}
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process, waits up to grace for it to exit, then
// sends SIGKILL to its process group (the group holds only what it started,
// e.g. nginx workers). It is safe to call more than once.
func (p *Proc) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	pid := p.PID()
	_ = syscall.Kill(pid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		// The leader is gone; make sure no worker outlives it.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return
	case <-t.C:
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-p.done
}

// LogTail returns up to the last n lines of the process's log.
func (p *Proc) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return "(log unreadable: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitReady polls GET url until it answers 200 with a body of wantBody bytes
// (wantBody < 0 accepts any length), the process exits, ctx ends or timeout
// passes. The error says which, with the last failure seen. proc may be nil
// for a target without a process of its own.
func WaitReady(ctx context.Context, proc *Proc, url string, wantBody int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if proc != nil {
			if done, err := proc.Exited(); done {
				return fmt.Errorf("%s exited before answering: %v", proc.Name, err)
			}
		}
		err := probe(ctx, client, url, wantBody)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil || last == nil {
			last = err // keep the last real failure, not the cut-off probe
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s did not answer 200 within %s: %w", url, timeout, last)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func probe(ctx context.Context, client *http.Client, url string, wantBody int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d, body %.200q", resp.StatusCode, body)
	}
	if wantBody >= 0 && len(body) != wantBody {
		return fmt.Errorf("body of %d bytes, want %d (is it proxying to the bench upstream?)", len(body), wantBody)
	}
	return nil
}
