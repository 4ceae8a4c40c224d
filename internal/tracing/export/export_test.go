package export

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/otlptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gRPC and net/http keep-alive goroutines wind down asynchronously.
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

func span(i int) sdktrace.ReadOnlySpan {
	var tid trace.TraceID
	tid[0], tid[15] = 1, byte(i)
	sid := trace.SpanID{1, byte(i)}
	now := time.Now()
	return tracetest.SpanStub{
		Name:        "GET /x",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}),
		SpanKind:    trace.SpanKindServer,
		StartTime:   now.Add(-time.Millisecond),
		EndTime:     now,
		Attributes:  []attribute.KeyValue{attribute.Int("i", i)},
	}.Snapshot()
}

// stuckExporter blocks every export until released or its context ends.
type stuckExporter struct {
	release chan struct{}
	calls   atomic.Int32
}

func (s *stuckExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	s.calls.Add(1)
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (s *stuckExporter) Shutdown(context.Context) error { return nil }

func TestProcessorDropsWhenQueueIsFull(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	exp := &stuckExporter{release: make(chan struct{})}
	p := NewProcessor(exp, ProcessorOptions{Name: "stuck", QueueSize: 8, BatchSize: 4, FlushInterval: time.Hour, Timeout: time.Hour, Metrics: m})
	const n = 1000
	start := time.Now()
	for i := 0; i < n; i++ {
		p.OnEnd(span(i))
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("OnEnd x%d took %v: it must not wait for the exporter", n, el)
	}
	// The worker holds at most one batch; the queue holds 8.
	if d := p.Dropped(); d < n-8-4 {
		t.Errorf("dropped %d, want at least %d", d, n-12)
	}
	if got := gathered(t, reg, "vantage_tracing_spans_dropped_total", "reason", DropQueueFull); got != float64(p.Dropped()) {
		t.Errorf("metric dropped = %v, counter %d", got, p.Dropped())
	}
	if got := gathered(t, reg, "vantage_tracing_export_queue_capacity", "exporter", "stuck"); got != 8 {
		t.Errorf("queue capacity = %v", got)
	}
	close(exp.release)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := p.Exported() + p.Dropped(); got != n {
		t.Errorf("exported %d + dropped %d != %d", p.Exported(), p.Dropped(), n)
	}
	p.OnEnd(span(0))
	if got := gathered(t, reg, "vantage_tracing_spans_dropped_total", "reason", DropShutdown); got != 1 {
		t.Errorf("dropped after shutdown = %v", got)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

type failingExporter struct{ n atomic.Int32 }

func (f *failingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	f.n.Add(1)
	return errors.New("backend says no")
}
func (f *failingExporter) Shutdown(context.Context) error { return nil }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestProcessorLogsErrorsAtABoundedRate(t *testing.T) {
	var buf syncBuffer
	clk := clock.NewFake(time.Unix(1000, 0))
	exp := &failingExporter{}
	p := NewProcessor(exp, ProcessorOptions{
		Name: "bad", BatchSize: 1, QueueSize: 16, FlushInterval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&buf, nil)), Clock: clk, ErrorLogInterval: 30 * time.Second,
	})
	defer p.Shutdown(context.Background())
	for i := 0; i < 10; i++ {
		p.OnEnd(span(i))
		if err := p.ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Count(buf.String(), "trace export failed"); got != 1 {
		t.Fatalf("logged %d lines, want 1:\n%s", got, buf.String())
	}
	clk.Advance(31 * time.Second)
	p.OnEnd(span(11))
	_ = p.ForceFlush(context.Background())
	out := buf.String()
	if got := strings.Count(out, "trace export failed"); got != 2 || !strings.Contains(out, "errors_not_logged=9") {
		t.Fatalf("second window:\n%s", out)
	}
	if p.Dropped() != 11 {
		t.Errorf("dropped = %d, want 11", p.Dropped())
	}
}

func exportOne(t *testing.T, cfg config.TracingExporter) {
	t.Helper()
	exp, err := NewExporter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProcessor(exp, ProcessorOptions{Name: cfg.Name, Timeout: 5 * time.Second})
	p.OnEnd(span(7))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Exported() != 1 {
		t.Fatalf("exported %d, dropped %d", p.Exported(), p.Dropped())
	}
}

func TestExportersReachRealReceivers(t *testing.T) {
	t.Run("otlp grpc", func(t *testing.T) {
		rcv, addr := otlptest.StartGRPC(t)
		exportOne(t, config.TracingExporter{Name: "g", Type: config.ExporterOTLPGRPC, Endpoint: addr,
			TLS: &config.ExporterTLS{Insecure: true}, Headers: map[string]string{"x-api-key": "k1"}, Compression: "gzip"})
		s := rcv.WaitSpans(t, 1, 5*time.Second)
		if s[0].Name != "GET /x" || s[0].Kind != "server" || s[0].Attrs["i"] != int64(7) {
			t.Errorf("span %+v", s[0])
		}
		if rcv.Headers()[0].Get("x-api-key") != "k1" {
			t.Errorf("headers %v", rcv.Headers()[0])
		}
	})
	t.Run("otlp grpc http scheme means plaintext", func(t *testing.T) {
		rcv, addr := otlptest.StartGRPC(t)
		exportOne(t, config.TracingExporter{Name: "g2", Type: config.ExporterOTLPGRPC, Endpoint: "http://" + addr})
		rcv.WaitSpans(t, 1, 5*time.Second)
	})
	t.Run("otlp http", func(t *testing.T) {
		rcv, base := otlptest.StartHTTP(t)
		exportOne(t, config.TracingExporter{Name: "h", Type: config.ExporterOTLPHTTP, Endpoint: base,
			Headers: map[string]string{"Authorization": "Bearer t"}, Compression: "gzip"})
		s := rcv.WaitSpans(t, 1, 5*time.Second)
		if s[0].TraceID != "0100000000000000000000000000000"+"7" {
			t.Errorf("trace id %s", s[0].TraceID)
		}
		if got := rcv.Headers()[0].Get("Authorization"); got != "Bearer t" {
			t.Errorf("authorization %q", got)
		}
	})
	t.Run("zipkin", func(t *testing.T) {
		rcv, url := otlptest.StartZipkin(t)
		exportOne(t, config.TracingExporter{Name: "z", Type: config.ExporterZipkin, Endpoint: url})
		s := rcv.WaitSpans(t, 1, 5*time.Second)
		if s[0].Name != "get /x" && s[0].Name != "GET /x" || s[0].Kind != "SERVER" {
			t.Errorf("zipkin span %+v", s[0])
		}
	})
}

func TestBlackHoledExporterTimesOut(t *testing.T) {
	addr := otlptest.StartBlackHole(t)
	for _, typ := range []string{config.ExporterOTLPGRPC, config.ExporterOTLPHTTP} {
		ep := addr
		if typ == config.ExporterOTLPHTTP {
			ep = "http://" + addr
		}
		exp, err := NewExporter(config.TracingExporter{Name: typ, Type: typ, Endpoint: ep,
			TLS: &config.ExporterTLS{Insecure: true}, Timeout: config.Duration(300 * time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		p := NewProcessor(exp, ProcessorOptions{Name: typ, Timeout: 300 * time.Millisecond, QueueSize: 4, BatchSize: 2})
		for i := 0; i < 50; i++ {
			p.OnEnd(span(i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := p.ForceFlush(ctx); err != nil {
			t.Fatalf("%s: flush: %v", typ, err)
		}
		_ = p.Shutdown(ctx)
		cancel()
		if p.Exported() != 0 || p.Dropped() != 50 {
			t.Errorf("%s: exported %d dropped %d, want 0 and 50", typ, p.Exported(), p.Dropped())
		}
	}
}

// gathered returns the value of the series of name whose label has value.
func gathered(t *testing.T, g prometheus.Gatherer, name, label, value string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return metricValue(m)
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}

func metricValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

// batchRecorder records the size of every export; the first export waits
// for release.
type batchRecorder struct {
	first   chan struct{} // closed when the first export has begun
	release chan struct{}
	mu      sync.Mutex
	sizes   []int
}

func (b *batchRecorder) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(spans))
	n := len(b.sizes)
	b.mu.Unlock()
	if n == 1 {
		close(b.first)
		<-b.release
	}
	return nil
}
func (b *batchRecorder) Shutdown(context.Context) error { return nil }

func (b *batchRecorder) batches() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.sizes)
}

// Spans that arrive while a full batch is being exported wait for their own
// batch to fill (or for the interval); they are not sent at once as a small
// batch of their own.
func TestProcessorExportsFullBatchesUnderLoad(t *testing.T) {
	exp := &batchRecorder{first: make(chan struct{}), release: make(chan struct{})}
	p := NewProcessor(exp, ProcessorOptions{Name: "rec", QueueSize: 64, BatchSize: 4, FlushInterval: time.Hour, Timeout: time.Hour})
	defer p.Shutdown(context.Background())
	for i := range 4 {
		p.OnEnd(span(i))
	}
	<-exp.first
	for i := range 2 {
		p.OnEnd(span(4 + i))
	}
	close(exp.release)
	// The worker finishes the first export; the two spans must still be
	// queued, not exported as a batch of two.
	deadline := time.Now().Add(5 * time.Second)
	for p.Exported() < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // room for a wrong early export to show
	if got := p.Len(); got != 2 {
		t.Fatalf("queued after the first export = %d, want 2 (batches %v)", got, exp.batches())
	}
	for i := range 6 {
		p.OnEnd(span(6 + i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	// The first batch, then the eight others in full batches.
	if got, want := exp.batches(), []int{4, 4, 4}; !slices.Equal(got, want) {
		t.Errorf("batches = %v, want %v", got, want)
	}
}

// A flush sends what was queued when it began, even as a partial batch, but
// not the partial batch of spans that arrived during its export.
func TestProcessorFlushTakesWhatWasQueued(t *testing.T) {
	exp := &batchRecorder{first: make(chan struct{}), release: make(chan struct{})}
	p := NewProcessor(exp, ProcessorOptions{Name: "rec", QueueSize: 64, BatchSize: 4, FlushInterval: time.Hour, Timeout: time.Hour})
	defer p.Shutdown(context.Background())
	p.OnEnd(span(0))
	p.OnEnd(span(1))
	flushed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		flushed <- p.ForceFlush(ctx)
	}()
	<-exp.first
	for i := range 3 {
		p.OnEnd(span(2 + i))
	}
	close(exp.release)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if got := p.Len(); got != 3 {
		t.Errorf("queued after the flush = %d, want 3 (batches %v)", got, exp.batches())
	}
	if got, want := exp.batches(), []int{2}; !slices.Equal(got, want) {
		t.Errorf("batches = %v, want %v", got, want)
	}
}

type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// Spans queued while the processor shuts down are either exported or
// counted as dropped: none is left behind in the queue.
func TestProcessorShutdownAccountsForEverySpan(t *testing.T) {
	p := NewProcessor(discardExporter{}, ProcessorOptions{Name: "d", QueueSize: 256, BatchSize: 16, FlushInterval: time.Hour, Timeout: time.Second})
	s := span(1)
	const workers, each = 4, 5000
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				p.OnEnd(s)
			}
		}()
	}
	time.Sleep(time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := p.Exported() + p.Dropped(); got != workers*each {
		t.Errorf("exported %d + dropped %d = %d, want %d (queued: %d)", p.Exported(), p.Dropped(), got, workers*each, p.Len())
	}
}
