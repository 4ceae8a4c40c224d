package harness

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	b, err := os.ReadFile("testdata/proc_stat.txt")
	if err != nil {
		t.Fatal(err)
	}
	captured := strings.TrimSpace(string(b))
	tests := []struct {
		name string
		line string
		want ProcStat
	}{
		{"captured", captured, ProcStat{PID: 7640, Comm: "hp", State: 'S', PPID: 7638, UTime: 114, STime: 99}},
		{"comm with spaces and parens", "42 (nginx: worker (x) ) R 41 42 42 0 -1 0 0 0 0 0 5000 1234 0 0 20 0",
			ProcStat{PID: 42, Comm: "nginx: worker (x) ", State: 'R', PPID: 41, UTime: 5000, STime: 1234}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProcStat(tt.line)
			if err != nil {
				t.Fatalf("ParseProcStat: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseProcStat = %+v, want %+v", got, tt.want)
			}
			if got.CPUTicks() != tt.want.UTime+tt.want.STime {
				t.Errorf("CPUTicks = %d", got.CPUTicks())
			}
		})
	}
}

func TestParseProcStatErrors(t *testing.T) {
	for _, line := range []string{
		"",
		"7640 hp S 1 2 3",
		"x (hp) S 7638 7636 6743 0 -1 4194560 2575 0 0 0 114 99",
		"7640 (hp) S 7638 7636",
		"7640 (hp) S 7638 7636 6743 0 -1 4194560 2575 0 0 0 u 99",
		"7640 (hp) S 7638 7636 6743 0 -1 4194560 2575 0 0 0 114 -1",
		"7640 (hp) SS 7638 7636 6743 0 -1 4194560 2575 0 0 0 114 99",
	} {
		if _, err := ParseProcStat(line); err == nil {
			t.Errorf("ParseProcStat(%q) succeeded, want an error", line)
		}
	}
}

// writeStat writes a fake /proc/<pid>/stat under root.
func writeStat(t *testing.T, root string, pid, ppid int, utime, stime uint64) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	line := strconv.Itoa(pid) + " (p) S " + strconv.Itoa(ppid) + " 1 1 0 -1 0 0 0 0 0 " +
		strconv.FormatUint(utime, 10) + " " + strconv.FormatUint(stime, 10) + " 0 0 20 0 1 0\n"
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTreeCPUTicks(t *testing.T) {
	root := t.TempDir()
	writeStat(t, root, 1, 0, 1000, 1000)   // init: not part of the tree
	writeStat(t, root, 100, 1, 10, 5)      // master
	writeStat(t, root, 101, 100, 300, 200) // worker
	writeStat(t, root, 102, 101, 7, 3)     // worker's child
	writeStat(t, root, 200, 1, 50, 50)     // unrelated
	if err := os.MkdirAll(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "300"), 0o755); err != nil { // vanished: no stat
		t.Fatal(err)
	}
	got, err := TreeCPUTicks(root, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(15 + 500 + 10); got != want {
		t.Errorf("TreeCPUTicks(100) = %d, want %d", got, want)
	}
	if got, _ := TreeCPUTicks(root, 102); got != 10 {
		t.Errorf("TreeCPUTicks(102) = %d, want 10", got)
	}
	if _, err := TreeCPUTicks(root, 999); err == nil {
		t.Error("TreeCPUTicks of a missing pid succeeded")
	}
}

func TestTreeCPUTicksSelf(t *testing.T) {
	// The real /proc: this process exists and has used some CPU.
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := TreeCPUTicks("/proc", os.Getpid()); err != nil {
		t.Fatal(err)
	}
}
