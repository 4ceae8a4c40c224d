// Package accesslog writes one access log record per request: JSON with
// OpenTelemetry field names, or the Common / Combined Log Format, to stdout,
// stderr or a file, and optionally as OpenTelemetry log records over OTLP
// (access_log.otlp), carrying the request's trace and span id.
//
// The middleware reads the request's observe.Record when the inner handlers
// return, encodes the record synchronously into a pooled buffer (no
// allocation in steady state) and hands the bytes to a bounded queue
// (internal/batch). Its one worker writes the records out in batches. The
// request never waits for the output: when the queue is full the record is
// dropped and counted (vantage_accesslog_records_dropped_total and a
// periodic warning on the operational logger). The OTLP export works the
// same way with its own queue: the request copies what the export needs
// into a recycled entry, and the queue's worker builds and exports the log
// records.
//
// Credential headers (Authorization, Cookie, Proxy-Authorization,
// Set-Cookie) and configured headers are never written; configured query
// parameters have their values replaced; every client-controlled value is
// escaped so that no header can break a line or forge one.
//
// All methods of Logger are safe for concurrent use.
package accesslog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/vantage-gateway/vantage/internal/batch"
	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/redact"
)

const (
	defaultCloseTimeout   = 5 * time.Second
	defaultReportInterval = 10 * time.Second
	defaultFlushInterval  = 100 * time.Millisecond
	// batchBytes is the size of the writer's batch: records queued
	// together go out in one write of at most this size (a larger record
	// goes alone).
	batchBytes = 64 << 10
	// writeBatch is the most records the writer takes at once, and the
	// number that wakes it before the flush interval: about one write of
	// batchBytes, a short turn on the processor.
	writeBatch = 128
	// maxPooledBuffer: a buffer that grew past this (a huge record) is
	// replaced by a small one when it is given back.
	maxPooledBuffer = 64 << 10
	// initialBuffer is the capacity of a new record buffer.
	initialBuffer = 1024
)

// Options are the dependencies of a Logger. The zero value is usable.
type Options struct {
	// Logger receives operational warnings (drops, write errors, rotation
	// failures). Nil discards them.
	Logger *slog.Logger
	// Registerer registers vantage_accesslog_records_written_total,
	// vantage_accesslog_records_dropped_total{reason} and
	// vantage_accesslog_queue_length. Nil registers nothing.
	Registerer prometheus.Registerer
	// Stdout and Stderr are the outputs "stdout" and "stderr" (default
	// os.Stdout and os.Stderr). The Logger does not close them.
	Stdout, Stderr io.Writer
	// Clock gives OTLP log records their observed time (default
	// clock.Real). Request times come from the Record, which the gateway
	// ends before the access log reads it.
	Clock clock.Clock
	// Random returns a uniform number in [0, 1) for the success sampling;
	// it must be safe for concurrent use (default math/rand/v2.Float64).
	Random func() float64
	// CloseTimeout bounds how long Close waits for queued records to be
	// written (default 5s).
	CloseTimeout time.Duration
	// ReportInterval is how often dropped records are reported to Logger
	// (default 10s).
	ReportInterval time.Duration
	// FlushInterval is how long a record may wait in the queue before the
	// writer takes it (default 100ms). The writer wakes after this delay,
	// or earlier once a batch of records waits, never once per record,
	// which keeps the per-request cost low.
	FlushInterval time.Duration
	// Tracing is the tracing section, read when access_log.otlp is set:
	// the exporter it names provides the connection settings, and the
	// log records carry the resource of the gateway's spans. Nil means
	// none (then access_log.otlp needs LogExporter).
	Tracing *config.Tracing
	// Version is service.version and the instrumentation scope version of
	// OTLP log records ("" omits it).
	Version string
	// Redaction is the redaction policy applied to every record, whatever
	// the format or output (nil: the default policy with the access log's
	// own redact_query_params and redact_headers).
	Redaction *redact.Policy
	// LogExporter, when not nil and access_log.otlp is set, replaces the
	// OTLP exporter built from the config (tests, in-process stores). The
	// Logger owns it: Close shuts it down.
	LogExporter sdklog.Exporter
	// Tap, when set, also receives the records it wants, encoded in the
	// configured format (the embedded trace store keeps them beside their
	// trace). It sees every logged route's records before the filter.
	Tap Tap
}

// Tap takes access-log records on the request goroutine. Both methods
// must return without waiting; TakeLog must copy line, which is reused.
type Tap interface {
	WantsLog(rec *observe.Record) bool
	TakeLog(rec *observe.Record, line []byte)
}

// tapBuffers are the encoding buffers of records for the Tap.
var tapBuffers = sync.Pool{New: func() any { return &buffer{b: make([]byte, 0, initialBuffer)} }}

// Stats are a Logger's counters since New.
type Stats struct {
	// Written is the number of records written to the output.
	Written uint64
	// DroppedQueueFull is the number of records dropped because the queue
	// was full (or the Logger closed).
	DroppedQueueFull uint64
	// DroppedWriteError is the number of records lost to output errors.
	DroppedWriteError uint64
	// OTLPExported is the number of records the OTLP export delivered.
	OTLPExported uint64
	// OTLPDroppedQueueFull is the number of records dropped because the
	// OTLP queue was full (or the Logger closed).
	OTLPDroppedQueueFull uint64
	// OTLPDroppedExportError is the number of records lost to failed
	// OTLP exports.
	OTLPDroppedExportError uint64
}

// buffer holds one encoded record on its way to the output. There are at
// most BufferSize of them, allocated on first need and then recycled through
// Logger.bufs, so that the queue's memory is bounded and steady-state
// logging allocates nothing.
type buffer struct{ b []byte }

func newBuffer() *buffer { return &buffer{b: make([]byte, 0, initialBuffer)} }

// Logger is the access log: a middleware factory, a bounded queue and the
// goroutine that writes it out. A disabled Logger (access_log.enabled:
// false) is inert: ForRoute returns nil and the other methods do nothing.
type Logger struct {
	enabled bool
	enc     *encoder
	tap     Tap
	filter  filter
	routes  map[string]bool // logged routes; nil means all
	exclude map[string]bool
	clock   clock.Clock
	log     *slog.Logger

	queue  *batch.Queue[*buffer] // records waiting for the writer; nil with output none
	bufs   *batch.Pool[*buffer]  // record buffers, at most BufferSize
	writer batchWriter           // owned by the queue's worker
	sink   sink                  // nil with output none
	otlp   *otlpSink             // nil without access_log.otlp

	written, droppedFull, droppedWrite atomic.Uint64
	closed                             atomic.Bool

	stop, reportDone chan struct{}
	closeOnce        sync.Once
	closeErr         error
	closeTimeout     time.Duration
	reportInterval   time.Duration
	flushInterval    time.Duration

	// reporter state, owned by the report goroutine (and tests).
	reportedFull, reportedWrite uint64
	// lastWriteErr is the latest output error, for the next report.
	lastWriteErr atomic.Pointer[error]
}

// New builds the access log from cfg (defaults applied and validated) and
// starts its writer. It opens the file output, so a bad path fails here.
// With cfg.Enabled false it returns an inert Logger. The caller must Close
// the Logger.
func New(cfg config.AccessLog, opts Options) (*Logger, error) {
	l := &Logger{
		tap:            opts.Tap,
		log:            opts.Logger,
		clock:          opts.Clock,
		closeTimeout:   opts.CloseTimeout,
		reportInterval: opts.ReportInterval,
		flushInterval:  opts.FlushInterval,
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Enabled != nil && !*cfg.Enabled {
		return l, nil
	}
	if l.clock == nil {
		l.clock = clock.Real{}
	}
	if l.closeTimeout <= 0 {
		l.closeTimeout = defaultCloseTimeout
	}
	if l.reportInterval <= 0 {
		l.reportInterval = defaultReportInterval
	}
	if l.flushInterval <= 0 {
		l.flushInterval = defaultFlushInterval
	}
	f, err := newFilter(cfg.Filter, opts.Random)
	if err != nil {
		return nil, err
	}
	l.filter = f
	if len(cfg.Filter.Routes) > 0 {
		l.routes = map[string]bool{}
		for _, r := range cfg.Filter.Routes {
			l.routes[r] = true
		}
	}
	l.exclude = map[string]bool{}
	for _, r := range cfg.Filter.ExcludeRoutes {
		l.exclude[r] = true
	}
	l.enc = newEncoder(cfg, opts.Redaction)

	size := cfg.BufferSize
	if size <= 0 {
		size = 4096
	}

	switch cfg.Output {
	case config.OutputNone:
	case config.OutputStderr:
		w := opts.Stderr
		if w == nil {
			w = os.Stderr
		}
		l.sink = streamSink{w}
	case config.OutputFile:
		fs, err := openFileSink(cfg.File.Path, cfg.File.MaxSize.Bytes(), cfg.File.MaxBackups, func(msg string, err error) {
			l.log.Warn(msg, "path", cfg.File.Path, "err", err)
		})
		if err != nil {
			return nil, err
		}
		l.sink = fs
	default:
		w := opts.Stdout
		if w == nil {
			w = os.Stdout
		}
		l.sink = streamSink{w}
	}
	if cfg.OTLP != nil {
		o, err := newOTLPSink(l, cfg, opts.Tracing, opts.Version, opts.LogExporter)
		if err != nil {
			l.closeSink()
			return nil, err
		}
		l.otlp = o
	}

	if l.sink != nil {
		l.bufs = batch.NewPool(size, newBuffer)
		l.writer = batchWriter{l: l, batch: make([]byte, 0, batchBytes)}
		// The flush interval runs on the real clock (the batch package's
		// tests drive it with a fake one); Options.Clock dates records.
		l.queue = batch.New(batch.Options{
			Capacity: size, BatchSize: min(writeBatch, size), MaxDelay: l.flushInterval,
		}, l.writer.write)
	}
	if err := l.register(opts.Registerer); err != nil {
		l.closeSink()
		if l.queue != nil {
			_, _ = l.queue.Close(context.Background())
		}
		if l.otlp != nil {
			_ = l.otlp.close(time.Now())
		}
		return nil, err
	}
	l.enabled = true
	l.stop = make(chan struct{})
	l.reportDone = make(chan struct{})
	go l.report()
	return l, nil
}

// closeSink closes the local output, if any.
func (l *Logger) closeSink() error {
	if l.sink == nil {
		return nil
	}
	return l.sink.Close()
}

func (l *Logger) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	dropped := func(reason string, c *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "vantage_accesslog_records_dropped_total",
			Help:        "Access log records dropped: queue_full (the output could not keep up), write_error (the output failed), otlp_queue_full (the OTLP export could not keep up) or otlp_export_error (the OTLP export failed).",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(c.Load()) })
	}
	cs := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vantage_accesslog_records_written_total",
			Help: "Access log records written to the output.",
		}, func() float64 { return float64(l.written.Load()) }),
		dropped("queue_full", &l.droppedFull),
		dropped("write_error", &l.droppedWrite),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vantage_accesslog_queue_length",
			Help: "Access log records waiting to be written.",
		}, func() float64 { return float64(queueLen(l.queue)) }),
	}
	if o := l.otlp; o != nil {
		cs = append(cs,
			dropped("otlp_queue_full", &o.dropped),
			dropped("otlp_export_error", &o.failed),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "vantage_accesslog_otlp_records_exported_total",
				Help: "Access log records delivered to the OTLP collector.",
			}, func() float64 { return float64(o.exported.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "vantage_accesslog_otlp_queue_length",
				Help: "Access log records waiting for the OTLP export.",
			}, func() float64 { return float64(o.queue.Len()) }),
		)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("access log: registering metrics: %w", err)
		}
	}
	return nil
}

// ForRoute returns the access log middleware for route r, or nil when the
// route is not logged (disabled Logger, or filtered out by filter.routes /
// filter.exclude_routes; the unmatched handler, r.Name "", is logged unless
// filter.routes is set). It implements middleware.Factory.
func (l *Logger) ForRoute(r middleware.Route) middleware.Middleware {
	if l == nil || !l.enabled {
		return nil
	}
	if l.routes != nil && !l.routes[r.Name] || l.exclude[r.Name] {
		return nil
	}
	return func(next http.Handler) http.Handler {
		return &handler{l: l, next: next}
	}
}

var _ middleware.Factory = (*Logger)(nil)

// handler is the per-route middleware instance.
type handler struct {
	l    *Logger
	next http.Handler
}

// ServeHTTP runs the inner handlers, then logs the request from its
// Record, which the gateway's end stage (inside this one) has finished: it
// only reads it. Requests without a Record (outside the gateway) are not
// logged.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.next.ServeHTTP(w, r)
	rec := observe.FromContext(r.Context())
	if rec == nil {
		return
	}
	l := h.l
	tapped := l.tap != nil && l.tap.WantsLog(rec)
	keep := l.filter.keep(rec)
	if keep && l.otlp != nil {
		l.otlp.capture(rec, r, w.Header(), l.clock.Now())
	}
	if keep && l.sink != nil {
		buf, ok := l.bufs.Get()
		if ok {
			// One encoding serves the output and the tap, which copies
			// the line before the buffer is queued.
			buf.b = l.enc.encode(buf.b[:0], rec, r, w.Header())
			if tapped {
				l.tap.TakeLog(rec, buf.b)
			}
			l.enqueue(buf)
			return
		}
		// Every buffer is queued (or being filled): the output is not
		// keeping up.
		l.droppedFull.Add(1)
	}
	if tapped {
		buf := tapBuffers.Get().(*buffer)
		buf.b = l.enc.encode(buf.b[:0], rec, r, w.Header())
		l.tap.TakeLog(rec, buf.b)
		if cap(buf.b) <= maxPooledBuffer {
			tapBuffers.Put(buf)
		}
	}
}

// queueLen is q's length, 0 for no queue.
func queueLen[T any](q *batch.Queue[T]) int {
	if q == nil {
		return 0
	}
	return q.Len()
}

// enqueue hands buf to the writer. It never blocks: when the queue is full,
// or after Close, the record is dropped and counted.
func (l *Logger) enqueue(buf *buffer) {
	if l.closed.Load() || l.queue.Put(buf) != nil {
		l.droppedFull.Add(1)
		l.putBuffer(buf)
	}
}

// putBuffer makes buf available again.
func (l *Logger) putBuffer(buf *buffer) {
	if cap(buf.b) > maxPooledBuffer {
		buf.b = make([]byte, 0, initialBuffer)
	}
	buf.b = buf.b[:0]
	l.bufs.Put(buf)
}

// batchWriter gathers whole records and writes them in one call. It runs
// on the queue's worker.
type batchWriter struct {
	l     *Logger
	batch []byte
	n     uint64 // records in batch
}

// write is the queue's handler: it writes a batch of records, in as few
// calls as batchBytes allows, and recycles their buffers.
func (w *batchWriter) write(bufs []*buffer) {
	for _, buf := range bufs {
		w.add(buf)
	}
	w.flush()
}

func (w *batchWriter) add(buf *buffer) {
	if len(w.batch) > 0 && len(w.batch)+len(buf.b) > cap(w.batch) {
		w.flush()
	}
	if len(w.batch) == 0 && len(buf.b) > cap(w.batch) {
		// A record larger than the batch goes out on its own.
		w.out(buf.b, 1)
	} else {
		w.batch = append(w.batch, buf.b...)
		w.n++
	}
	w.l.putBuffer(buf)
}

func (w *batchWriter) flush() {
	if len(w.batch) == 0 {
		return
	}
	w.out(w.batch, w.n)
	w.batch, w.n = w.batch[:0], 0
}

func (w *batchWriter) out(p []byte, records uint64) {
	if _, err := w.l.sink.Write(p); err != nil {
		w.l.droppedWrite.Add(records)
		w.l.lastWriteErr.Store(&err)
		return
	}
	w.l.written.Add(records)
}

// report warns on the operational logger, at most once per interval, when
// records were dropped. It runs apart from the writer so that a stuck output
// is still reported.
func (l *Logger) report() {
	defer close(l.reportDone)
	t := time.NewTicker(l.reportInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.reportDrops()
		case <-l.stop:
			return
		}
	}
}

// reportDrops logs one warning per kind of drop seen since the last call.
func (l *Logger) reportDrops() {
	if l.otlp != nil {
		l.otlp.reportDrops()
	}
	if n := l.droppedFull.Load(); n > l.reportedFull {
		l.log.Warn("access log records dropped: the output is not keeping up",
			"dropped", n-l.reportedFull, "dropped_total", n, "buffer_size", l.queue.Cap(),
			"reason", "queue_full")
		l.reportedFull = n
	}
	if n := l.droppedWrite.Load(); n > l.reportedWrite {
		attrs := []any{"dropped", n - l.reportedWrite, "dropped_total", n, "reason", "write_error"}
		if err := l.lastWriteErr.Load(); err != nil {
			attrs = append(attrs, "err", *err)
		}
		l.log.Warn("access log records lost: writing the output failed", attrs...)
		l.reportedWrite = n
	}
}

// Stats returns the counters. A nil or disabled Logger returns zeros.
func (l *Logger) Stats() Stats {
	if l == nil {
		return Stats{}
	}
	st := Stats{
		Written:           l.written.Load(),
		DroppedQueueFull:  l.droppedFull.Load(),
		DroppedWriteError: l.droppedWrite.Load(),
	}
	if o := l.otlp; o != nil {
		st.OTLPExported = o.exported.Load()
		st.OTLPDroppedQueueFull = o.dropped.Load()
		st.OTLPDroppedExportError = o.failed.Load()
	}
	return st
}

// Reopen reopens the file output (on SIGUSR1, after logrotate renamed the
// file): records already written go to the renamed file, later ones to a
// new file at the configured path. If the new file cannot be opened, the
// old one stays in use and the error is returned. It waits for a write in
// progress. A no-op for stdout, stderr, none and a disabled Logger.
func (l *Logger) Reopen() error {
	if l == nil || !l.enabled || l.sink == nil {
		return nil
	}
	return l.sink.Reopen()
}

// Close stops accepting records, writes what is queued and exports what
// the OTLP queue holds (waiting at most CloseTimeout for both, then
// abandoning an export in progress), closes the file output and shuts the
// OTLP exporter down. Records logged after Close are dropped and counted.
// It returns an error when queued records could not be written or exported
// in time (the writer is stuck on the output, or the collector does not
// answer). Close is safe to call more than once; later calls return the
// first result.
func (l *Logger) Close() error {
	if l == nil || !l.enabled {
		return nil
	}
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		deadline := time.Now().Add(l.closeTimeout)
		close(l.stop)
		<-l.reportDone
		if l.otlp != nil {
			l.closeErr = l.otlp.close(deadline)
		}
		if l.queue != nil {
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			left, err := l.queue.Close(ctx)
			cancel()
			if err != nil {
				l.droppedFull.Add(uint64(left))
				l.closeErr = errors.Join(l.closeErr, fmt.Errorf("access log: %d records not written within %s: the output is blocked", left, l.closeTimeout))
			}
		}
		l.reportDrops()
		if err := l.closeSink(); err != nil && !errors.Is(err, os.ErrClosed) {
			l.closeErr = errors.Join(l.closeErr, fmt.Errorf("access log: closing output: %w", err))
		}
	})
	return l.closeErr
}
