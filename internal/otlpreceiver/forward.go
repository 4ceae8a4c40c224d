package otlpreceiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Discard is a consumer that accepts everything and keeps nothing: the
// receiver's metrics still count what arrived. Its zero value is ready.
type Discard struct{}

// ConsumeTraces implements TraceConsumer.
func (Discard) ConsumeTraces(context.Context, *coltracepb.ExportTraceServiceRequest) (int64, error) {
	return 0, nil
}

// ConsumeLogs implements LogConsumer.
func (Discard) ConsumeLogs(context.Context, *collogspb.ExportLogsServiceRequest) (int64, error) {
	return 0, nil
}

// Fanout hands each request to several consumers. The first of each list
// is primary: its rejected count and error are the answer, and when it
// fails the others are not called (the client will retry, and they would
// get the request twice). The others must be best-effort consumers that do
// not modify the request, such as a Forwarder. Empty lists accept
// everything.
type Fanout struct {
	Traces []TraceConsumer
	Logs   []LogConsumer
}

// ConsumeTraces implements TraceConsumer.
func (f Fanout) ConsumeTraces(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (int64, error) {
	if len(f.Traces) == 0 {
		return 0, nil
	}
	rejected, err := f.Traces[0].ConsumeTraces(ctx, req)
	if err != nil {
		return rejected, err
	}
	for _, c := range f.Traces[1:] {
		_, _ = c.ConsumeTraces(ctx, req)
	}
	return rejected, nil
}

// ConsumeLogs implements LogConsumer.
func (f Fanout) ConsumeLogs(ctx context.Context, req *collogspb.ExportLogsServiceRequest) (int64, error) {
	if len(f.Logs) == 0 {
		return 0, nil
	}
	rejected, err := f.Logs[0].ConsumeLogs(ctx, req)
	if err != nil {
		return rejected, err
	}
	for _, c := range f.Logs[1:] {
		_, _ = c.ConsumeLogs(ctx, req)
	}
	return rejected, nil
}

// ForwardTarget is where a Forwarder sends: an OTLP/gRPC target or
// OTLP/HTTP URLs.
type ForwardTarget struct {
	// Name identifies the target in metrics (a config name).
	Name string
	// GRPCTarget is the host:port of an OTLP/gRPC endpoint. Exactly one of
	// GRPCTarget and TracesURL/LogsURL is set.
	GRPCTarget string
	// TracesURL and LogsURL are the OTLP/HTTP endpoints (protobuf). An
	// empty one drops that signal.
	TracesURL, LogsURL string
	// Plaintext speaks gRPC without TLS; TLS is used otherwise (nil: the
	// system roots). For HTTP the URL's scheme decides.
	Plaintext bool
	TLS       *tls.Config
	// Headers are sent with every request (API keys).
	Headers map[string]string
	// Gzip compresses the requests.
	Gzip bool
	// Timeout bounds one send (default 10s).
	Timeout time.Duration
}

// ForwarderOptions tune a Forwarder. Zero fields take their defaults.
type ForwarderOptions struct {
	// QueueBytes bounds the encoded size of the requests waiting to be sent
	// (default 32 MiB); a request that does not fit is dropped and counted.
	QueueBytes int64
	// Registerer receives vantage_otlp_receiver_forwarded_total. Nil: a
	// private registry. Several Forwarders may share one.
	Registerer prometheus.Registerer
	// Logger reports send failures, at most one line per target every 10
	// seconds. Nil: discarded.
	Logger *slog.Logger
}

// maxQueued bounds the number of queued requests, whatever their size.
const maxQueued = 1024

// Forwarder is a TraceConsumer and LogConsumer that re-sends what it is
// given, as OTLP, to one target, from a goroutine of its own behind a
// bounded queue: it never blocks and never refuses (a request that does
// not fit is dropped and counted). It does not modify the requests. Close
// stops it.
type Forwarder struct {
	t       ForwardTarget
	log     *slog.Logger
	queue   chan forwardItem
	queued  atomic.Int64 // bytes in queue
	limit   int64
	counter *prometheus.CounterVec
	hc      *http.Client
	cc      *grpc.ClientConn
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	lastLog time.Time
}

type forwardItem struct {
	traces *coltracepb.ExportTraceServiceRequest
	logs   *collogspb.ExportLogsServiceRequest
	size   int64
	items  int64
}

var forwardedDesc = prometheus.CounterOpts{
	Name: "vantage_otlp_receiver_forwarded_total",
	Help: "Spans or log records the OTLP receiver forwarded, by target, signal and outcome: sent, failed (the target refused or was unreachable), dropped (the forwarding queue was full).",
}

// NewForwarder starts a Forwarder. It does not connect: gRPC connects
// lazily, so a target that is down does not fail startup.
func NewForwarder(t ForwardTarget, o ForwarderOptions) (*Forwarder, error) {
	if t.Timeout <= 0 {
		t.Timeout = 10 * time.Second
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 32 << 20
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	counter := prometheus.NewCounterVec(forwardedDesc, []string{"target", "signal", "outcome"})
	if err := o.Registerer.Register(counter); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("otlpreceiver: forwarder %q: registering metrics: %w", t.Name, err)
		}
		counter = are.ExistingCollector.(*prometheus.CounterVec)
	}
	f := &Forwarder{t: t, log: o.Logger, queue: make(chan forwardItem, maxQueued), limit: o.QueueBytes, counter: counter,
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, s := range []string{signalTraces, signalLogs} {
		for _, outcome := range []string{"sent", "failed", "dropped"} {
			counter.WithLabelValues(t.Name, s, outcome)
		}
	}
	if t.GRPCTarget != "" {
		creds := credentials.NewTLS(t.TLS)
		if t.Plaintext {
			creds = insecure.NewCredentials()
		}
		cc, err := grpc.NewClient(t.GRPCTarget, grpc.WithTransportCredentials(creds))
		if err != nil {
			return nil, fmt.Errorf("otlpreceiver: forwarder %q: %w", t.Name, err)
		}
		f.cc = cc
	} else {
		f.hc = &http.Client{Timeout: t.Timeout, Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, TLSClientConfig: t.TLS, MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second,
		}}
	}
	go f.run()
	return f, nil
}

// ConsumeTraces queues req for sending. It never fails.
func (f *Forwarder) ConsumeTraces(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (int64, error) {
	if f.cc == nil && f.t.TracesURL == "" {
		return 0, nil
	}
	f.enqueue(forwardItem{traces: req, size: int64(proto.Size(req)), items: countSpans(req)}, signalTraces)
	return 0, nil
}

// ConsumeLogs queues req for sending. It never fails.
func (f *Forwarder) ConsumeLogs(_ context.Context, req *collogspb.ExportLogsServiceRequest) (int64, error) {
	if f.cc == nil && f.t.LogsURL == "" {
		return 0, nil
	}
	f.enqueue(forwardItem{logs: req, size: int64(proto.Size(req)), items: countLogs(req)}, signalLogs)
	return 0, nil
}

func (f *Forwarder) enqueue(it forwardItem, signal string) {
	if f.queued.Add(it.size) > f.limit {
		f.queued.Add(-it.size)
		f.counter.WithLabelValues(f.t.Name, signal, "dropped").Add(float64(it.items))
		return
	}
	select {
	case <-f.stop:
	case f.queue <- it:
		return
	default:
	}
	f.queued.Add(-it.size)
	f.counter.WithLabelValues(f.t.Name, signal, "dropped").Add(float64(it.items))
}

func (f *Forwarder) run() {
	defer close(f.done)
	for {
		select {
		case it := <-f.queue:
			f.send(it)
		case <-f.stop:
			// Drain what is queued; Close bounds how long that may take.
			for {
				select {
				case it := <-f.queue:
					f.send(it)
				default:
					return
				}
			}
		}
	}
}

func (f *Forwarder) send(it forwardItem) {
	defer f.queued.Add(-it.size)
	ctx, cancel := context.WithTimeout(context.Background(), f.t.Timeout)
	defer cancel()
	signal := signalTraces
	var err error
	switch {
	case it.traces != nil && f.cc != nil:
		_, err = coltracepb.NewTraceServiceClient(f.cc).Export(f.grpcContext(ctx), it.traces, f.callOptions()...)
	case it.traces != nil:
		err = f.post(ctx, f.t.TracesURL, it.traces)
	case f.cc != nil:
		signal = signalLogs
		_, err = collogspb.NewLogsServiceClient(f.cc).Export(f.grpcContext(ctx), it.logs, f.callOptions()...)
	default:
		signal = signalLogs
		err = f.post(ctx, f.t.LogsURL, it.logs)
	}
	if err != nil {
		f.counter.WithLabelValues(f.t.Name, signal, "failed").Add(float64(it.items))
		if now := time.Now(); now.Sub(f.lastLog) >= 10*time.Second {
			f.lastLog = now
			f.log.Warn("forwarding OTLP failed", "target", f.t.Name, "signal", signal, "error", err)
		}
		return
	}
	f.counter.WithLabelValues(f.t.Name, signal, "sent").Add(float64(it.items))
}

func (f *Forwarder) grpcContext(ctx context.Context) context.Context {
	if len(f.t.Headers) == 0 {
		return ctx
	}
	return metadata.NewOutgoingContext(ctx, metadata.New(f.t.Headers))
}

func (f *Forwarder) callOptions() []grpc.CallOption {
	if f.t.Gzip {
		return []grpc.CallOption{grpc.UseCompressor("gzip")}
	}
	return nil
}

func (f *Forwarder) post(ctx context.Context, url string, msg proto.Message) error {
	b, err := proto.Marshal(msg)
	if err != nil {
		return err
	}
	if f.t.Gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		if err := zw.Close(); err != nil {
			return err
		}
		b = buf.Bytes()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if f.t.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	for k, v := range f.t.Headers {
		req.Header.Set(k, v)
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// Close stops taking requests (later ones are dropped and counted) and
// sends what is queued until ctx ends; then it closes the connections, so
// what is still queued fails fast and is counted as failed. It is safe to
// call more than once.
func (f *Forwarder) Close(ctx context.Context) error {
	f.once.Do(func() { close(f.stop) })
	var err error
	select {
	case <-f.done:
	case <-ctx.Done():
		err = fmt.Errorf("otlpreceiver: forwarder %q: %w", f.t.Name, ctx.Err())
	}
	if f.cc != nil {
		_ = f.cc.Close()
	}
	if f.hc != nil {
		f.hc.CloseIdleConnections()
	}
	return err
}

func countSpans(req *coltracepb.ExportTraceServiceRequest) int64 {
	var n int64
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += int64(len(ss.Spans))
		}
	}
	return n
}

func countLogs(req *collogspb.ExportLogsServiceRequest) int64 {
	var n int64
	for _, rl := range req.ResourceLogs {
		for _, sl := range rl.ScopeLogs {
			n += int64(len(sl.LogRecords))
		}
	}
	return n
}
