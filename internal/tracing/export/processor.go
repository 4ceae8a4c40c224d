package export

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/vantage-gateway/vantage/internal/batch"
	"github.com/vantage-gateway/vantage/internal/clock"
)

// Drop reasons, the values of the reason label of
// vantage_tracing_spans_dropped_total.
const (
	DropQueueFull   = "queue_full"   // the queue was full when the span ended
	DropExportError = "export_error" // the backend refused or did not answer
	DropShutdown    = "shutdown"     // the span ended after Shutdown
)

// Metrics counts what every Processor of one tracer does. Register it once
// per registry; a nil *Metrics counts nothing. It is safe for concurrent
// use.
type Metrics struct {
	exported *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	errors   *prometheus.CounterVec

	mu    sync.Mutex
	procs []*Processor
	queue *prometheus.Desc
	capa  *prometheus.Desc
}

// NewMetrics creates the export metrics and registers them on reg (nil: not
// registered, still counted).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		exported: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vantage", Subsystem: "tracing", Name: "spans_exported_total",
			Help: "Spans the backend accepted, per exporter.",
		}, []string{"exporter"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vantage", Subsystem: "tracing", Name: "spans_dropped_total",
			Help: "Spans lost before reaching the backend, per exporter and reason (queue_full, export_error, shutdown).",
		}, []string{"exporter", "reason"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vantage", Subsystem: "tracing", Name: "export_errors_total",
			Help: "Failed export calls, per exporter.",
		}, []string{"exporter"}),
		queue: prometheus.NewDesc("vantage_tracing_export_queue_spans", "Spans waiting in an exporter's queue.", []string{"exporter"}, nil),
		capa:  prometheus.NewDesc("vantage_tracing_export_queue_capacity", "Capacity of an exporter's queue.", []string{"exporter"}, nil),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.exported, m.dropped, m.errors, m} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Describe implements prometheus.Collector for the queue gauges.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.queue
	ch <- m.capa
}

// Collect implements prometheus.Collector for the queue gauges.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.procs {
		ch <- prometheus.MustNewConstMetric(m.queue, prometheus.GaugeValue, float64(p.Len()), p.name)
		ch <- prometheus.MustNewConstMetric(m.capa, prometheus.GaugeValue, float64(p.capacity), p.name)
	}
}

// ProcessorOptions configures a Processor.
type ProcessorOptions struct {
	// Name identifies the exporter in metrics and logs.
	Name string
	// QueueSize bounds the spans waiting for export (default 2048).
	QueueSize int
	// BatchSize is the most spans per export call (default 512).
	BatchSize int
	// FlushInterval is the longest a span waits for its batch (default 1s).
	FlushInterval time.Duration
	// Timeout bounds one export call (default 10s).
	Timeout time.Duration
	// Logger receives export errors, at most one line per ErrorLogInterval
	// with the count of the ones left out. Nil discards them.
	Logger *slog.Logger
	// ErrorLogInterval is the least time between two error lines (default
	// 30s).
	ErrorLogInterval time.Duration
	// Clock paces the error log (default the real clock).
	Clock clock.Clock
	// Metrics counts exported and dropped spans; nil counts nothing.
	Metrics *Metrics
	// Resource and Scope are those of the spans given to EnqueueEncoded.
	Resource *resource.Resource
	Scope    instrumentation.Scope
}

// Processor is an sdktrace.SpanProcessor that queues ended spans in a
// bounded queue (internal/batch) and exports them in batches from the
// queue's one worker. OnEnd never blocks: when the queue is full the span
// is dropped and counted.
//
// In front of this package's OTLP exporters it also takes spans already
// encoded (EnqueueEncoded): a request's spans wait as bytes, which the
// garbage collector need not scan, in a recycled buffer, and are sent
// without being encoded again. The worker is woken once per full batch or
// flush interval, not per span. It is safe for concurrent use; Shutdown
// is safe to call more than once.
type Processor struct {
	name     string
	exporter sdktrace.SpanExporter
	capacity int
	timeout  time.Duration

	encExp encodedExporter // exporter as an encodedExporter; nil when it is not one
	src    encodedSource   // resource and scope of the encoded spans

	queue *batch.Queue[queued]
	blobs *batch.Pool[*blob] // buffers of encoded spans, at most QueueSize

	// The worker's batch being exported.
	out    []sdktrace.ReadOnlySpan
	encOut []byte

	stopOnce sync.Once
	stopped  atomic.Bool

	exportedN, droppedN atomic.Uint64

	exportedC, droppedFull, droppedErr, droppedShut, errorsC prometheus.Counter

	logger      *slog.Logger
	clock       clock.Clock
	logEvery    time.Duration
	logMu       sync.Mutex
	lastLog     time.Time
	suppressed  int
	loggedFirst bool
}

// queued is one entry of the queue: an SDK span, or the encoded spans of
// one request.
type queued struct {
	span sdktrace.ReadOnlySpan
	enc  *blob
}

// blob holds n spans AppendSpan wrote one after the other.
type blob struct {
	b []byte
	n int
}

// maxPooledBlob: a blob that grew past this (a huge trace) is replaced by
// a small one when it is given back.
const maxPooledBlob = 64 << 10

var _ sdktrace.SpanProcessor = (*Processor)(nil)

// NewProcessor starts a processor in front of exp. The processor owns exp:
// Shutdown shuts it down.
func NewProcessor(exp sdktrace.SpanExporter, o ProcessorOptions) *Processor {
	if o.QueueSize <= 0 {
		o.QueueSize = 2048
	}
	if o.BatchSize <= 0 || o.BatchSize > o.QueueSize {
		o.BatchSize = min(512, o.QueueSize)
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.ErrorLogInterval <= 0 {
		o.ErrorLogInterval = 30 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	p := &Processor{
		name:     o.Name,
		exporter: exp,
		capacity: o.QueueSize,
		out:      make([]sdktrace.ReadOnlySpan, 0, o.BatchSize),
		timeout:  o.Timeout,
		logger:   o.Logger,
		clock:    o.Clock,
		logEvery: o.ErrorLogInterval,
		src:      encodedSource{res: o.Resource, scope: o.Scope},
	}
	p.encExp, _ = exp.(encodedExporter)
	if p.encExp != nil {
		p.blobs = batch.NewPool(o.QueueSize, func() *blob { return &blob{b: make([]byte, 0, 2048)} })
	}
	if m := o.Metrics; m != nil {
		p.exportedC = m.exported.WithLabelValues(o.Name)
		p.droppedFull = m.dropped.WithLabelValues(o.Name, DropQueueFull)
		p.droppedErr = m.dropped.WithLabelValues(o.Name, DropExportError)
		p.droppedShut = m.dropped.WithLabelValues(o.Name, DropShutdown)
		p.errorsC = m.errors.WithLabelValues(o.Name)
		m.mu.Lock()
		m.procs = append(m.procs, p)
		m.mu.Unlock()
	}
	// As in the OpenTelemetry batch processor, the flush interval counts
	// from the last export, so under steady load every batch is full. It
	// runs on the real clock (the batch package's tests drive it with a
	// fake one); o.Clock paces the error log.
	p.queue = batch.New(batch.Options{
		Capacity: o.QueueSize, BatchSize: o.BatchSize, MaxDelay: o.FlushInterval,
	}, p.exportBatch)
	return p
}

// Name returns the exporter's name.
func (p *Processor) Name() string { return p.name }

// Exported returns the number of spans the backend accepted.
func (p *Processor) Exported() uint64 { return p.exportedN.Load() }

// Dropped returns the number of spans lost for any reason.
func (p *Processor) Dropped() uint64 { return p.droppedN.Load() }

// OnStart implements sdktrace.SpanProcessor; it does nothing.
func (p *Processor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// Len returns the number of spans waiting in the queue.
func (p *Processor) Len() int { return p.queue.Len() }

// OnEnd queues s for export, or drops and counts it when the queue is full
// or the processor is shut down. It never blocks. Unsampled spans are
// ignored.
func (p *Processor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	p.Enqueue(s)
}

// Enqueue queues spans for export, dropping (and counting) those that do
// not fit. It never blocks. The caller keeps ownership of the slice.
func (p *Processor) Enqueue(spans ...sdktrace.ReadOnlySpan) {
	for _, s := range spans {
		p.put(queued{span: s}, 1)
	}
}

// TakesEncoded reports whether EnqueueEncoded may be used: the exporter is
// one of this package's OTLP exporters.
func (p *Processor) TakesEncoded() bool { return p.encExp != nil }

// EnqueueEncoded queues n spans that AppendSpan wrote one after the other
// into spans, all of the resource and scope of the ProcessorOptions, or
// drops (and counts) them all when they do not fit. It never blocks; spans
// is copied. When TakesEncoded reports false, the spans are dropped and
// counted as export errors.
func (p *Processor) EnqueueEncoded(spans []byte, n int) {
	if p.encExp == nil {
		p.drop(n, p.droppedErr)
		return
	}
	if p.stopped.Load() {
		p.drop(n, p.droppedShut)
		return
	}
	b, ok := p.blobs.Get()
	if !ok {
		p.drop(n, p.droppedFull)
		return
	}
	b.b, b.n = append(b.b[:0], spans...), n
	if !p.put(queued{enc: b}, n) {
		p.putBlob(b)
	}
}

// put queues e as n spans and reports whether it was taken; the drop is
// counted with its reason.
func (p *Processor) put(e queued, n int) bool {
	switch err := p.queue.PutN(e, n); err {
	case nil:
		return true
	case batch.ErrClosed:
		p.drop(n, p.droppedShut)
	default:
		p.drop(n, p.droppedFull)
	}
	return false
}

func (p *Processor) putBlob(b *blob) {
	if cap(b.b) > maxPooledBlob {
		b.b = make([]byte, 0, 2048)
	}
	p.blobs.Put(b)
}

func (p *Processor) drop(n int, c prometheus.Counter) {
	p.droppedN.Add(uint64(n))
	if c != nil {
		c.Add(float64(n))
	}
}

// ForceFlush exports every span queued so far and waits for it, or for ctx.
func (p *Processor) ForceFlush(ctx context.Context) error {
	if p.stopped.Load() {
		return nil
	}
	return p.queue.Flush(ctx)
}

// Shutdown stops accepting spans, exports what is queued (bounded by ctx
// and the export timeout) and shuts the exporter down. Spans it could not
// export in time are counted as dropped at shutdown.
func (p *Processor) Shutdown(ctx context.Context) error {
	var err error
	p.stopOnce.Do(func() {
		p.stopped.Store(true)
		left, qerr := p.queue.Close(ctx)
		if qerr != nil {
			p.drop(left, p.droppedShut)
			err = qerr
		}
		if e := p.exporter.Shutdown(ctx); e != nil {
			err = errors.Join(err, e)
		}
	})
	return err
}

// exportBatch is the queue's handler: it exports a batch, in one call for
// the SDK spans and one for the encoded ones, and recycles the buffers.
func (p *Processor) exportBatch(b []queued) {
	n, m := 0, 0
	for _, e := range b {
		if e.enc != nil {
			p.encOut = append(p.encOut, e.enc.b...)
			m += e.enc.n
			p.putBlob(e.enc)
			continue
		}
		p.out = append(p.out, e.span)
		n++
	}
	if n > 0 {
		p.export(n, func(ctx context.Context) error { return p.exporter.ExportSpans(ctx, p.out) })
		clear(p.out) // drop the references so the spans can be collected
		p.out = p.out[:0]
	}
	if m > 0 {
		p.export(m, func(ctx context.Context) error { return p.encExp.exportEncoded(ctx, p.src, p.encOut) })
	}
	p.encOut = p.encOut[:0]
	if cap(p.encOut) > maxKeptScratch {
		p.encOut = nil // a burst's buffer is left to the collector
	}
}

// export makes one export call of n spans and counts the outcome.
func (p *Processor) export(n int, send func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	err := send(ctx)
	cancel()
	if err != nil {
		p.drop(n, p.droppedErr)
		if p.errorsC != nil {
			p.errorsC.Inc()
		}
		p.logError(err, n)
		return
	}
	p.exportedN.Add(uint64(n))
	if p.exportedC != nil {
		p.exportedC.Add(float64(n))
	}
}

// logError logs err at most once per logEvery, counting the rest.
func (p *Processor) logError(err error, spans int) {
	if p.logger == nil {
		return
	}
	now := p.clock.Now()
	p.logMu.Lock()
	if p.loggedFirst && now.Sub(p.lastLog) < p.logEvery {
		p.suppressed++
		p.logMu.Unlock()
		return
	}
	suppressed := p.suppressed
	p.suppressed = 0
	p.lastLog = now
	p.loggedFirst = true
	p.logMu.Unlock()
	p.logger.Warn("trace export failed; spans dropped",
		"exporter", p.name, "spans", spans, "error", err.Error(), "errors_not_logged", suppressed)
}
