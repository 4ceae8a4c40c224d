// Package host reports the machine the gateway runs on: CPU time, load,
// memory, filesystem space, disk I/O and network I/O, read from procfs and
// statfs (via prometheus/procfs), each per device where it has devices.
//
// The figures are read in the background every interval and a scrape
// serves the latest reading, so a slow or hung filesystem never delays a
// scrape. Reading works on Linux; elsewhere the collector reports nothing
// but its error counter.
package host

import (
	"errors"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/blockdevice"
)

// MaxDevices bounds the devices reported per kind (filesystems, disks,
// network interfaces); the rest are skipped and counted.
const MaxDevices = 64

// Options configure a Collector.
type Options struct {
	// ProcPath and SysPath are the procfs and sysfs mount points
	// ("/proc", "/sys" when empty).
	ProcPath, SysPath string
	// Interval is how often the figures are read (15s when <= 0).
	Interval time.Duration
	// Logger receives read errors at debug level (discarded when nil).
	Logger *slog.Logger
	// Now tells the time of a reading (time.Now when nil).
	Now func() time.Time
}

// Collector is a prometheus.Collector of host metrics. Build it with New,
// call Start to read in the background and Close to stop. It is safe for
// concurrent use.
type Collector struct {
	opts Options
	proc procfs.FS
	blk  blockdevice.FS

	snap    atomic.Pointer[[]prometheus.Metric]
	errs    [numSources]atomic.Uint64
	skipped [numKinds]atomic.Uint64

	d descs

	stop      chan struct{}
	done      chan struct{}
	startOnce sync.Once
	closeOnce sync.Once
}

type source int

const (
	srcStat source = iota
	srcLoad
	srcMem
	srcFS
	srcDisk
	srcNet
	numSources
)

var sourceNames = [numSources]string{"stat", "loadavg", "meminfo", "filesystem", "diskstats", "netdev"}

const (
	kindFS = iota
	kindDisk
	kindNet
	numKinds
)

var kindNames = [numKinds]string{"filesystem", "disk", "network"}

type descs struct {
	cpus, cpuSeconds, load1, load5, load15                   *prometheus.Desc
	memTotal, memAvail, memFree, memCached, memBuffers       *prometheus.Desc
	swapTotal, swapFree                                      *prometheus.Desc
	fsSize, fsFree, fsAvail, fsFiles, fsFilesFree            *prometheus.Desc
	diskRead, diskWritten, diskReads, diskWrites, diskIOTime *prometheus.Desc
	netRxBytes, netTxBytes, netRxPackets, netTxPackets       *prometheus.Desc
	netRxErrors, netTxErrors, netRxDrops, netTxDrops         *prometheus.Desc
	readErrors, skippedDevs, lastRead                        *prometheus.Desc
}

func newDescs() descs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("vantage_host_"+name, help, labels, nil)
	}
	fsl := []string{"device", "mountpoint", "fstype"}
	return descs{
		cpus:         d("cpus", "Logical CPUs of the host."),
		cpuSeconds:   d("cpu_seconds_total", "CPU time of the host summed over all CPUs, by mode.", "mode"),
		load1:        d("load1", "Host load average over 1 minute."),
		load5:        d("load5", "Host load average over 5 minutes."),
		load15:       d("load15", "Host load average over 15 minutes."),
		memTotal:     d("memory_total_bytes", "Host memory size (MemTotal)."),
		memAvail:     d("memory_available_bytes", "Host memory available for new work without swapping (MemAvailable)."),
		memFree:      d("memory_free_bytes", "Host memory unused (MemFree)."),
		memCached:    d("memory_cached_bytes", "Host memory used by the page cache (Cached)."),
		memBuffers:   d("memory_buffers_bytes", "Host memory used by block-device buffers (Buffers)."),
		swapTotal:    d("swap_total_bytes", "Host swap size."),
		swapFree:     d("swap_free_bytes", "Host swap unused."),
		fsSize:       d("filesystem_size_bytes", "Filesystem size.", fsl...),
		fsFree:       d("filesystem_free_bytes", "Filesystem free space, including space reserved for root.", fsl...),
		fsAvail:      d("filesystem_avail_bytes", "Filesystem space available to unprivileged users.", fsl...),
		fsFiles:      d("filesystem_files", "Filesystem inodes.", fsl...),
		fsFilesFree:  d("filesystem_files_free", "Filesystem free inodes.", fsl...),
		diskRead:     d("disk_read_bytes_total", "Bytes read from the disk.", "device"),
		diskWritten:  d("disk_written_bytes_total", "Bytes written to the disk.", "device"),
		diskReads:    d("disk_reads_completed_total", "Reads completed by the disk.", "device"),
		diskWrites:   d("disk_writes_completed_total", "Writes completed by the disk.", "device"),
		diskIOTime:   d("disk_io_time_seconds_total", "Time the disk spent doing I/O (its utilisation when taken as a rate).", "device"),
		netRxBytes:   d("network_receive_bytes_total", "Bytes received by the network interface.", "device"),
		netTxBytes:   d("network_transmit_bytes_total", "Bytes sent by the network interface.", "device"),
		netRxPackets: d("network_receive_packets_total", "Packets received by the network interface.", "device"),
		netTxPackets: d("network_transmit_packets_total", "Packets sent by the network interface.", "device"),
		netRxErrors:  d("network_receive_errors_total", "Receive errors of the network interface.", "device"),
		netTxErrors:  d("network_transmit_errors_total", "Transmit errors of the network interface.", "device"),
		netRxDrops:   d("network_receive_drops_total", "Received packets dropped by the network interface.", "device"),
		netTxDrops:   d("network_transmit_drops_total", "Packets to send dropped by the network interface.", "device"),
		readErrors:   d("read_errors_total", "Failed readings of a host figure source.", "source"),
		skippedDevs:  d("devices_skipped_total", "Devices left out of a reading because more than 64 of their kind were present.", "kind"),
		lastRead:     d("last_read_timestamp_seconds", "When the host figures were last read."),
	}
}

// New returns a Collector reading from opts' paths. It reads once before
// returning so that the first scrape has figures; a source that cannot be
// read is counted, not fatal. It fails only when procfs cannot be opened.
func New(opts Options) (*Collector, error) {
	if opts.ProcPath == "" {
		opts.ProcPath = "/proc"
	}
	if opts.SysPath == "" {
		opts.SysPath = "/sys"
	}
	if opts.Interval <= 0 {
		opts.Interval = 15 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	pfs, err := procfs.NewFS(opts.ProcPath)
	if err != nil {
		return nil, err
	}
	c := &Collector{opts: opts, proc: pfs, d: newDescs(), stop: make(chan struct{}), done: make(chan struct{})}
	if bfs, err := blockdevice.NewFS(opts.ProcPath, opts.SysPath); err == nil {
		c.blk = bfs
	}
	c.Refresh()
	return c, nil
}

// Start reads the figures every interval in a goroutine until Close. It is
// idempotent.
func (c *Collector) Start() {
	c.startOnce.Do(func() {
		go func() {
			defer close(c.done)
			t := time.NewTicker(c.opts.Interval)
			defer t.Stop()
			for {
				select {
				case <-c.stop:
					return
				case <-t.C:
					c.Refresh()
				}
			}
		}()
	})
}

// Close stops the background reading and waits for it to end. It is safe
// to call more than once, and without Start.
func (c *Collector) Close() {
	c.closeOnce.Do(func() {
		close(c.stop)
		started := true
		c.startOnce.Do(func() { started = false })
		if started {
			<-c.done
		}
	})
}

// Describe implements prometheus.Collector. The collector is unchecked:
// devices come and go.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector: it sends the latest reading.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if p := c.snap.Load(); p != nil {
		for _, m := range *p {
			ch <- m
		}
	}
	for i := range c.errs {
		ch <- prometheus.MustNewConstMetric(c.d.readErrors, prometheus.CounterValue, float64(c.errs[i].Load()), sourceNames[i])
	}
	for i := range c.skipped {
		ch <- prometheus.MustNewConstMetric(c.d.skippedDevs, prometheus.CounterValue, float64(c.skipped[i].Load()), kindNames[i])
	}
}

// Refresh reads every source now and publishes the reading.
func (c *Collector) Refresh() {
	var out []prometheus.Metric
	add := func(d *prometheus.Desc, t prometheus.ValueType, v float64, lv ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, t, v, lv...))
	}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue

	if st, err := c.proc.Stat(); c.check(srcStat, err) {
		add(c.d.cpus, gauge, float64(len(st.CPU)))
		t := st.CPUTotal
		for _, m := range []struct {
			mode string
			v    float64
		}{{"user", t.User}, {"nice", t.Nice}, {"system", t.System}, {"idle", t.Idle}, {"iowait", t.Iowait}, {"irq", t.IRQ}, {"softirq", t.SoftIRQ}, {"steal", t.Steal}} {
			add(c.d.cpuSeconds, counter, m.v, m.mode)
		}
	}
	if la, err := c.proc.LoadAvg(); c.check(srcLoad, err) {
		add(c.d.load1, gauge, la.Load1)
		add(c.d.load5, gauge, la.Load5)
		add(c.d.load15, gauge, la.Load15)
	}
	if mi, err := c.proc.Meminfo(); c.check(srcMem, err) {
		for _, m := range []struct {
			d *prometheus.Desc
			v *uint64
		}{{c.d.memTotal, mi.MemTotalBytes}, {c.d.memAvail, mi.MemAvailableBytes}, {c.d.memFree, mi.MemFreeBytes}, {c.d.memCached, mi.CachedBytes}, {c.d.memBuffers, mi.BuffersBytes}, {c.d.swapTotal, mi.SwapTotalBytes}, {c.d.swapFree, mi.SwapFreeBytes}} {
			if m.v != nil {
				add(m.d, gauge, float64(*m.v))
			}
		}
	}
	c.readFilesystems(add)
	c.readDisks(add)
	if nd, err := c.proc.NetDev(); c.check(srcNet, err) {
		names := make([]string, 0, len(nd))
		for n := range nd {
			names = append(names, n)
		}
		sort.Strings(names)
		if len(names) > MaxDevices {
			c.skipped[kindNet].Add(uint64(len(names) - MaxDevices))
			names = names[:MaxDevices]
		}
		for _, n := range names {
			l := nd[n]
			add(c.d.netRxBytes, counter, float64(l.RxBytes), n)
			add(c.d.netTxBytes, counter, float64(l.TxBytes), n)
			add(c.d.netRxPackets, counter, float64(l.RxPackets), n)
			add(c.d.netTxPackets, counter, float64(l.TxPackets), n)
			add(c.d.netRxErrors, counter, float64(l.RxErrors), n)
			add(c.d.netTxErrors, counter, float64(l.TxErrors), n)
			add(c.d.netRxDrops, counter, float64(l.RxDropped), n)
			add(c.d.netTxDrops, counter, float64(l.TxDropped), n)
		}
	}
	add(c.d.lastRead, gauge, float64(c.opts.Now().UnixNano())/1e9)
	c.snap.Store(&out)
}

func (c *Collector) check(s source, err error) bool {
	if err != nil {
		c.errs[s].Add(1)
		c.opts.Logger.Debug("host metrics: read failed", "source", sourceNames[s], "err", err)
		return false
	}
	return true
}

// ignoredFSTypes are pseudo filesystems without meaningful space figures.
var ignoredFSTypes = map[string]bool{
	"autofs": true, "binfmt_misc": true, "bpf": true, "cgroup": true, "cgroup2": true, "configfs": true,
	"debugfs": true, "devpts": true, "devtmpfs": true, "fusectl": true, "hugetlbfs": true, "iso9660": true,
	"mqueue": true, "nsfs": true, "proc": true, "procfs": true, "pstore": true, "rpc_pipefs": true,
	"securityfs": true, "selinuxfs": true, "squashfs": true, "erofs": true, "sysfs": true, "tracefs": true,
	"efivarfs": true, "ramfs": true,
}

func ignoredMountPoint(mp string) bool {
	for _, p := range []string{"/dev", "/proc", "/sys"} {
		if mp == p || strings.HasPrefix(mp, p+"/") {
			return true
		}
	}
	return false
}

func (c *Collector) readFilesystems(add func(*prometheus.Desc, prometheus.ValueType, float64, ...string)) {
	self, err := c.proc.Self()
	if !c.check(srcFS, err) {
		return
	}
	mounts, err := self.MountInfo()
	if !c.check(srcFS, err) {
		return
	}
	seen := map[string]bool{}
	n := 0
	var statErr error
	for _, m := range mounts {
		if ignoredFSTypes[m.FSType] || ignoredMountPoint(m.MountPoint) || seen[m.MajorMinorVer] {
			continue
		}
		seen[m.MajorMinorVer] = true
		if n >= MaxDevices {
			c.skipped[kindFS].Add(1)
			continue
		}
		st, err := statfs(m.MountPoint)
		if err != nil {
			statErr = errors.Join(statErr, err)
			continue
		}
		n++
		lv := []string{m.Source, m.MountPoint, m.FSType}
		add(c.d.fsSize, prometheus.GaugeValue, float64(st.size), lv...)
		add(c.d.fsFree, prometheus.GaugeValue, float64(st.free), lv...)
		add(c.d.fsAvail, prometheus.GaugeValue, float64(st.avail), lv...)
		add(c.d.fsFiles, prometheus.GaugeValue, float64(st.files), lv...)
		add(c.d.fsFilesFree, prometheus.GaugeValue, float64(st.filesFree), lv...)
	}
	if statErr != nil {
		c.check(srcFS, statErr)
	}
}

// ignoredDisks are virtual devices and partitions (whose I/O their disk
// already counts).
var ignoredDisks = regexp.MustCompile(`^(z?ram|loop|fd|sr)\d+$|^((h|s|v|xv)d[a-z]+|nvme\d+n\d+p|mmcblk\d+p)\d+$`)

// sectorSize is the unit of /proc/diskstats sector counts, whatever the
// device's real sector size.
const sectorSize = 512

func (c *Collector) readDisks(add func(*prometheus.Desc, prometheus.ValueType, float64, ...string)) {
	if c.blk == (blockdevice.FS{}) {
		c.check(srcDisk, errors.New("blockdevice filesystem unavailable"))
		return
	}
	stats, err := c.blk.ProcDiskstats()
	if !c.check(srcDisk, err) {
		return
	}
	n := 0
	for _, d := range stats {
		name := d.DeviceName
		if ignoredDisks.MatchString(name) {
			continue
		}
		if n >= MaxDevices {
			c.skipped[kindDisk].Add(1)
			continue
		}
		n++
		add(c.d.diskRead, prometheus.CounterValue, float64(d.ReadSectors*sectorSize), name)
		add(c.d.diskWritten, prometheus.CounterValue, float64(d.WriteSectors*sectorSize), name)
		add(c.d.diskReads, prometheus.CounterValue, float64(d.ReadIOs), name)
		add(c.d.diskWrites, prometheus.CounterValue, float64(d.WriteIOs), name)
		add(c.d.diskIOTime, prometheus.CounterValue, float64(d.IOsTotalTicks)/1000, name)
	}
}

type fsStat struct {
	size, free, avail, files, filesFree uint64
}
