package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProcStat is the part of /proc/<pid>/stat the harness reads. For a process
// (thread-group leader) UTime and STime cover all its threads, live and
// exited; they are in clock ticks (see `getconf CLK_TCK`).
type ProcStat struct {
	PID   int
	Comm  string
	State byte
	PPID  int
	UTime uint64 // field 14: user-mode ticks
	STime uint64 // field 15: kernel-mode ticks
}

// CPUTicks returns UTime+STime.
func (s ProcStat) CPUTicks() uint64 { return s.UTime + s.STime }

// ParseProcStat parses one /proc/<pid>/stat line. The command name is taken
// between the first '(' and the last ')', so names holding spaces or
// parentheses parse correctly.
func ParseProcStat(line string) (ProcStat, error) {
	var s ProcStat
	lp := strings.IndexByte(line, '(')
	rp := strings.LastIndexByte(line, ')')
	if lp < 0 || rp < lp {
		return s, fmt.Errorf("proc stat %.40q: no (comm)", line)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:lp]))
	if err != nil {
		return s, fmt.Errorf("proc stat pid: %w", err)
	}
	s.PID, s.Comm = pid, line[lp+1:rp]
	// After ")": state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8)
	// flags(9) minflt(10) cminflt(11) majflt(12) cmajflt(13) utime(14)
	// stime(15) ...
	f := strings.Fields(line[rp+1:])
	if len(f) < 13 {
		return s, fmt.Errorf("proc stat of pid %d: %d fields after comm, want >= 13", pid, len(f))
	}
	if len(f[0]) != 1 {
		return s, fmt.Errorf("proc stat of pid %d: state %q", pid, f[0])
	}
	s.State = f[0][0]
	if s.PPID, err = strconv.Atoi(f[1]); err != nil {
		return s, fmt.Errorf("proc stat of pid %d: ppid: %w", pid, err)
	}
	if s.UTime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return s, fmt.Errorf("proc stat of pid %d: utime: %w", pid, err)
	}
	if s.STime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return s, fmt.Errorf("proc stat of pid %d: stime: %w", pid, err)
	}
	return s, nil
}

// ReadProcStat reads and parses <procRoot>/<pid>/stat (procRoot is "/proc"
// outside tests).
func ReadProcStat(procRoot string, pid int) (ProcStat, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return ProcStat{}, fmt.Errorf("reading stat of pid %d: %w", pid, err)
	}
	return ParseProcStat(string(b))
}

// TreeCPUTicks returns the CPU ticks (user+system) of process pid and of
// every live descendant of it, so that a server made of a master and
// workers (nginx) is measured whole. It fails only when pid itself cannot be
// read; processes that vanish during the scan are skipped.
func TreeCPUTicks(procRoot string, pid int) (uint64, error) {
	root, err := ReadProcStat(procRoot, pid)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, fmt.Errorf("listing %s: %w", procRoot, err)
	}
	children := make(map[int][]ProcStat)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == pid {
			continue
		}
		st, err := ReadProcStat(procRoot, p)
		if err != nil {
			continue // exited meanwhile, or not readable
		}
		children[st.PPID] = append(children[st.PPID], st)
	}
	total := root.CPUTicks()
	queue := []int{pid}
	seen := map[int]bool{pid: true}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if seen[c.PID] {
				continue
			}
			seen[c.PID] = true
			total += c.CPUTicks()
			queue = append(queue, c.PID)
		}
	}
	return total, nil
}
