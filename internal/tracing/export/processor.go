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
// bounded buffer and exports them in batches from one goroutine. OnEnd
// never blocks: when the queue is full the span is dropped and counted.
//
// In front of this package's OTLP exporters it also takes spans already
// encoded (EnqueueEncoded): they wait as bytes, which the garbage
// collector need not scan, and are sent without being encoded again.
// The exporting goroutine is woken once per full batch or flush interval,
// not per span. It is safe for concurrent use; Shutdown is safe to call
// more than once.
type Processor struct {
	name     string
	exporter sdktrace.SpanExporter
	capacity int
	batch    int
	interval time.Duration
	timeout  time.Duration

	encExp encodedExporter // exporter as an encodedExporter; nil when it is not one
	src    encodedSource   // resource and scope of the encoded spans

	mu     sync.Mutex
	queue  []sdktrace.ReadOnlySpan // pending spans, len(queue)+encN <= capacity
	enc    []byte                  // pending encoded spans (AppendSpan's Span fields)
	encN   int                     // how many spans enc holds
	out    []sdktrace.ReadOnlySpan // the batch being exported; owned by the worker
	encOut []byte                  // the encoded batch being exported; owned by the worker
	kick   chan struct{}           // a full batch is waiting (capacity 1)

	flushReq chan chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	stopped  atomic.Bool // set before stop closes; enqueuers read it under mu, so nothing is queued after the last export

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
		queue:    make([]sdktrace.ReadOnlySpan, 0, o.QueueSize),
		out:      make([]sdktrace.ReadOnlySpan, 0, o.BatchSize),
		kick:     make(chan struct{}, 1),
		batch:    o.BatchSize,
		interval: o.FlushInterval,
		timeout:  o.Timeout,
		flushReq: make(chan chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		logger:   o.Logger,
		clock:    o.Clock,
		logEvery: o.ErrorLogInterval,
		src:      encodedSource{res: o.Resource, scope: o.Scope},
	}
	p.encExp, _ = exp.(encodedExporter)
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
	go p.run()
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
func (p *Processor) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) + p.encN
}

// OnEnd queues s for export, or drops and counts it when the queue is full
// or the processor is shut down. It never blocks. Unsampled spans are
// ignored.
func (p *Processor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	p.Enqueue(s)
}

// Enqueue queues spans for export under one lock, dropping (and counting)
// those that do not fit. It never blocks. The caller keeps ownership of
// the slice.
func (p *Processor) Enqueue(spans ...sdktrace.ReadOnlySpan) {
	p.mu.Lock()
	if p.stopped.Load() {
		p.mu.Unlock()
		p.drop(len(spans), p.droppedShut)
		return
	}
	n := min(len(spans), p.capacity-len(p.queue)-p.encN)
	p.queue = append(p.queue, spans[:n]...)
	full := len(p.queue) >= p.batch
	p.mu.Unlock()
	p.queued(len(spans)-n, full)
}

// TakesEncoded reports whether EnqueueEncoded may be used: the exporter is
// one of this package's OTLP exporters.
func (p *Processor) TakesEncoded() bool { return p.encExp != nil }

// EnqueueEncoded queues n spans that AppendSpan wrote one after the other
// into spans, all of the resource and scope of the ProcessorOptions,
// dropping (and counting) those that do not fit. It never blocks; spans is
// copied. When TakesEncoded reports false, the spans are dropped and
// counted as export errors.
func (p *Processor) EnqueueEncoded(spans []byte, n int) {
	if p.encExp == nil {
		p.drop(n, p.droppedErr)
		return
	}
	p.mu.Lock()
	if p.stopped.Load() {
		p.mu.Unlock()
		p.drop(n, p.droppedShut)
		return
	}
	take := min(n, p.capacity-len(p.queue)-p.encN)
	if take < n {
		head, _ := splitSpans(spans, take)
		spans = spans[:head]
	}
	p.enc = append(p.enc, spans...)
	p.encN += take
	full := p.encN >= p.batch
	p.mu.Unlock()
	p.queued(n-take, full)
}

// queued ends an enqueue: it counts the dropped spans and wakes the
// worker when a full batch waits.
func (p *Processor) queued(dropped int, full bool) {
	if dropped > 0 {
		p.drop(dropped, p.droppedFull)
	}
	if full {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
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
	done := make(chan struct{})
	select {
	case p.flushReq <- done:
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops accepting spans, exports what is queued (bounded by ctx
// and the export timeout) and shuts the exporter down.
func (p *Processor) Shutdown(ctx context.Context) error {
	var err error
	p.stopOnce.Do(func() {
		p.stopped.Store(true)
		close(p.stop)
		select {
		case <-p.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		if e := p.exporter.Shutdown(ctx); e != nil {
			err = errors.Join(err, e)
		}
	})
	return err
}

func (p *Processor) run() {
	defer close(p.done)
	timer := time.NewTimer(p.interval)
	defer timer.Stop()
	for {
		select {
		case <-p.kick:
			p.exportPending(false)
			// As in the OpenTelemetry batch processor, the interval counts
			// from the last export: under steady load every batch is full.
			timer.Reset(p.interval)
		case <-timer.C:
			p.exportPending(true)
			timer.Reset(p.interval)
		case done := <-p.flushReq:
			p.exportPending(true)
			close(done)
		case <-p.stop:
			p.exportPending(true)
			return
		}
	}
}

// exportPending exports full batches while there are any and, when all is
// set (the flush interval, a flush, shutdown), also the spans queued when
// it was called, in a last partial batch of each kind. Spans that arrive
// during an export wait for their batch to fill or for the interval, as in
// the OpenTelemetry batch processor: sending them at once would turn a
// busy gateway's exports into a stream of small requests, each with the
// fixed cost of one. The queue stays bounded: at most capacity spans wait,
// plus the batches in flight.
func (p *Processor) exportPending(all bool) {
	var sdkLeft, encLeft int // spans queued at the call not yet taken
	if all {
		p.mu.Lock()
		sdkLeft, encLeft = len(p.queue), p.encN
		p.mu.Unlock()
	}
	for {
		p.mu.Lock()
		n := batchOf(len(p.queue), p.batch, sdkLeft)
		p.out = append(p.out[:0], p.queue[:n]...)
		rest := copy(p.queue, p.queue[n:])
		clear(p.queue[rest:])
		p.queue = p.queue[:rest]
		m := p.takeEncoded(batchOf(p.encN, p.batch, encLeft))
		p.mu.Unlock()
		if n == 0 && m == 0 {
			return
		}
		sdkLeft, encLeft = max(0, sdkLeft-n), max(0, encLeft-m)
		if n > 0 {
			p.export(n, func(ctx context.Context) error { return p.exporter.ExportSpans(ctx, p.out) })
			clear(p.out) // drop the references so the spans can be collected
		}
		if m > 0 {
			p.export(m, func(ctx context.Context) error { return p.encExp.exportEncoded(ctx, p.src, p.encOut) })
			if cap(p.encOut) > maxKeptScratch {
				p.encOut = nil // a burst's buffer is left to the collector
			}
		}
	}
}

// batchOf is how many of queued spans the next export takes: a full batch
// when there is one, else those of the left that were queued first.
func batchOf(queued, batch, left int) int {
	if queued >= batch {
		return batch
	}
	return min(queued, left)
}

// takeEncoded moves the first n encoded spans from the queue to p.encOut
// and returns how many it moved: n, as AppendSpan's output always splits
// into whole spans. p.mu is held; n is at most p.encN.
func (p *Processor) takeEncoded(n int) int {
	if n == 0 {
		return 0
	}
	if n == p.encN {
		// The usual case: take everything by swapping the buffers.
		p.enc, p.encOut, p.encN = p.encOut[:0], p.enc, 0
		return n
	}
	head, m := splitSpans(p.enc, n)
	p.encOut = append(p.encOut[:0], p.enc[:head]...)
	p.enc = p.enc[:copy(p.enc, p.enc[head:])]
	p.encN -= m
	return m
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
