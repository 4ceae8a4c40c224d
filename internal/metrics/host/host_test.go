package host

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func gather(t *testing.T, c *Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			if len(ls) > 0 {
				key += "{" + strings.Join(ls, ",") + "}"
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// fixture writes a small procfs tree.
func fixture(t *testing.T) string {
	dir := t.TempDir()
	files := map[string]string{
		"stat": "cpu  100 5 50 1000 10 1 2 3 0 0\ncpu0 50 2 25 500 5 0 1 1 0 0\ncpu1 50 3 25 500 5 1 1 2 0 0\n" +
			"intr 0\nctxt 10\nbtime 1700000000\nprocesses 5\nprocs_running 1\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n",
		"loadavg": "0.50 0.25 0.10 1/100 1234\n",
		"meminfo": "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    600 kB\nBuffers:          10 kB\nCached:          300 kB\nSwapTotal:       100 kB\nSwapFree:         90 kB\n",
		"net/dev": "Inter-|   Receive                                                |  Transmit\n" +
			" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
			"  eth0: 1000 10 1 2 0 0 0 0 2000 20 3 4 0 0 0 0\n    lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n",
		"diskstats":      "   7       0 loop0 9 0 9 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n 254       0 vda 100 0 2000 0 50 0 4000 0 0 1500 0 0 0 0 0 0 0\n 254       1 vda1 90 0 1800 0 40 0 3000 0 0 1200 0 0 0 0 0 0 0\n",
		"1234/mountinfo": "26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n21 26 0:20 / /proc rw,relatime - proc proc rw\n27 26 254:0 /x /bind rw - ext4 /dev/vda rw\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("1234", filepath.Join(dir, "self")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sys"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReadsFixture(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("statfs figures are read on Linux only")
	}
	dir := fixture(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := New(Options{ProcPath: dir, SysPath: filepath.Join(dir, "sys"), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := gather(t, c)
	userHZ := 100.0 // procfs converts ticks with USER_HZ
	for k, want := range map[string]float64{
		"vantage_host_cpus":                                       2,
		"vantage_host_cpu_seconds_total{mode=user}":               100 / userHZ,
		"vantage_host_cpu_seconds_total{mode=idle}":               1000 / userHZ,
		"vantage_host_cpu_seconds_total{mode=steal}":              3 / userHZ,
		"vantage_host_load1":                                      0.5,
		"vantage_host_load15":                                     0.1,
		"vantage_host_memory_total_bytes":                         1000 * 1024,
		"vantage_host_memory_available_bytes":                     600 * 1024,
		"vantage_host_swap_free_bytes":                            90 * 1024,
		"vantage_host_network_receive_bytes_total{device=eth0}":   1000,
		"vantage_host_network_transmit_errors_total{device=eth0}": 3,
		"vantage_host_network_receive_drops_total{device=eth0}":   2,
		"vantage_host_disk_read_bytes_total{device=vda}":          2000 * 512,
		"vantage_host_disk_written_bytes_total{device=vda}":       4000 * 512,
		"vantage_host_disk_io_time_seconds_total{device=vda}":     1.5,
		"vantage_host_read_errors_total{source=stat}":             0,
		"vantage_host_last_read_timestamp_seconds":                float64(now.Unix()),
		"vantage_host_devices_skipped_total{kind=filesystem}":     0,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
	for k := range got {
		if strings.Contains(k, "device=loop0") || strings.Contains(k, "device=vda1") {
			t.Errorf("partition or loop device reported: %s", k)
		}
		if strings.Contains(k, "mountpoint=/proc") || strings.Contains(k, "mountpoint=/bind") {
			t.Errorf("pseudo or duplicate mount reported: %s", k)
		}
	}
	if got["vantage_host_filesystem_size_bytes{device=/dev/vda,fstype=ext4,mountpoint=/}"] <= 0 {
		t.Error("root filesystem size missing")
	}
}

func TestMissingSourcesAreCounted(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Options{ProcPath: dir, SysPath: dir})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	c.Close()
	c.Close()
	got := gather(t, c)
	for _, src := range sourceNames {
		if got["vantage_host_read_errors_total{source="+src+"}"] != 1 {
			t.Errorf("read errors of %s = %v, want 1", src, got["vantage_host_read_errors_total{source="+src+"}"])
		}
	}
}

func TestRealProc(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	c, err := New(Options{Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	time.Sleep(5 * time.Millisecond) // let a few background readings race the gather
	got := gather(t, c)
	c.Close()
	if got["vantage_host_cpus"] < 1 || got["vantage_host_memory_total_bytes"] <= 0 {
		t.Errorf("implausible readings: cpus %v memory %v", got["vantage_host_cpus"], got["vantage_host_memory_total_bytes"])
	}
}
