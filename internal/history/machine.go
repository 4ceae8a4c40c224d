package history

import (
	"log/slog"
	"regexp"
	"runtime"
	"time"

	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/blockdevice"
)

// machine reads the figures of the machine the gateway runs on from procfs
// once a second, on the rotator's goroutine: busy CPU time, memory in use,
// disk and network bytes. A source that cannot be read is skipped (logged
// once at debug level).
type machine struct {
	log    *slog.Logger
	proc   procfs.FS
	blk    *blockdevice.FS
	ok     bool
	warned bool

	prevBusy                   float64 // seconds
	prevRead, prevWrite        uint64
	prevRx, prevTx             uint64
	haveCPU, haveDisk, haveNet bool
}

// ignoredDisks are virtual devices and partitions (their disk counts their
// I/O already).
var ignoredDisks = regexp.MustCompile(`^(z?ram|loop|fd|sr)\d+$|^((h|s|v|xv)d[a-z]+|nvme\d+n\d+p|mmcblk\d+p)\d+$`)

func newMachine(procPath string, log *slog.Logger) *machine {
	m := &machine{log: log}
	if runtime.GOOS != "linux" {
		return m
	}
	if procPath == "" {
		procPath = "/proc"
	}
	fs, err := procfs.NewFS(procPath)
	if err != nil {
		log.Debug("history: machine figures unavailable", "error", err)
		return m
	}
	m.proc, m.ok = fs, true
	if b, err := blockdevice.NewFS(procPath, "/sys"); err == nil {
		m.blk = &b
	}
	return m
}

// sample adds this second's figures to a (the gateway's series).
func (m *machine) sample(v *Values) {
	if !m.ok {
		return
	}
	start := time.Now()
	if st, err := m.proc.Stat(); err == nil {
		t := st.CPUTotal
		busy := t.User + t.Nice + t.System + t.IRQ + t.SoftIRQ + t.Steal
		if m.haveCPU && busy >= m.prevBusy {
			v[CPUMillis] += uint64((busy - m.prevBusy) * 1000)
		}
		m.prevBusy, m.haveCPU = busy, true
	} else {
		m.fail("stat", err)
	}
	if mi, err := m.proc.Meminfo(); err == nil && mi.MemTotalBytes != nil && mi.MemAvailableBytes != nil {
		v[MemTotal] = *mi.MemTotalBytes
		v[MemUsed] = *mi.MemTotalBytes - min(*mi.MemAvailableBytes, *mi.MemTotalBytes)
	} else if err != nil {
		m.fail("meminfo", err)
	}
	if m.blk != nil {
		if ds, err := m.blk.ProcDiskstats(); err == nil {
			var r, w uint64
			for _, d := range ds {
				if !ignoredDisks.MatchString(d.DeviceName) {
					r += d.ReadSectors * 512
					w += d.WriteSectors * 512
				}
			}
			if m.haveDisk && r >= m.prevRead && w >= m.prevWrite {
				v[DiskRead] += r - m.prevRead
				v[DiskWritten] += w - m.prevWrite
			}
			m.prevRead, m.prevWrite, m.haveDisk = r, w, true
		} else {
			m.fail("diskstats", err)
		}
	}
	if nd, err := m.proc.NetDev(); err == nil {
		var rx, tx uint64
		for name, l := range nd {
			if name != "lo" {
				rx += l.RxBytes
				tx += l.TxBytes
			}
		}
		if m.haveNet && rx >= m.prevRx && tx >= m.prevTx {
			v[NetRx] += rx - m.prevRx
			v[NetTx] += tx - m.prevTx
		}
		m.prevRx, m.prevTx, m.haveNet = rx, tx, true
	} else {
		m.fail("netdev", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		m.log.Debug("history: reading the machine figures was slow", "took", d)
	}
}

func (m *machine) fail(src string, err error) {
	if !m.warned {
		m.warned = true
		m.log.Debug("history: reading machine figures", "source", src, "error", err)
	}
}
