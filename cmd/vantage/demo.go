package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/demo"
	"github.com/vantage-gateway/vantage/internal/tracestore"
)

// demoSummaryEvery is how often the demo prints a traffic summary.
const demoSummaryEvery = 10 * time.Second

// cmdDemo runs the demo shop behind a gateway built from a generated config
// file, with gentle traffic, until a signal or --duration.
func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "gateway listener address")
	adminAddr := fs.String("admin", "127.0.0.1:9901", "admin listener address (off to disable)")
	rate := fs.Float64("traffic", 5, "demo traffic in requests per second (0: none)")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	otlpGRPC := fs.String("otlp-grpc", "127.0.0.1:4317", "OTLP/gRPC receiver address for services' spans and logs (off to disable)")
	badCanary := fs.Bool("bad-canary", false, "make the catalog canary fail half its calls, so that its rollout rolls back")
	configOut := fs.String("config-out", filepath.Join(os.TempDir(), "vantage-demo.yml"), "file to write the generated gateway config to")
	alertmanager := fs.String("alertmanager", "", "an Alertmanager base URL the demo's alerts are also delivered to (e.g. http://127.0.0.1:9093)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "vantage demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	case *rate < 0 || *rate > demo.MaxRate:
		fmt.Fprintf(stderr, "vantage demo: --traffic must be between 0 and %d requests per second\n", demo.MaxRate)
		return 2
	case *duration < 0:
		fmt.Fprintln(stderr, "vantage demo: --duration must not be negative")
		return 2
	}
	// The summary goroutine, the ready callback and the gateway's own
	// writers share stdout.
	out := &lockedWriter{w: stdout}

	// The demo services' spans go to the gateway's trace store (once it is
	// built) as each span ends, and also over OTLP when the environment
	// names an endpoint.
	newExporter, otlpEndpoint := demo.OTLPFromEnv(os.LookupEnv)
	stores := &storeHolder{}
	canaryErrors := 0.005 // as often as catalog: the rollout steps it up
	if *badCanary {
		canaryErrors = 0.5
	}
	shop, err := demo.Start(context.Background(), demo.Options{NewExporter: newExporter,
		SpanProcessor:   sdktrace.NewSimpleSpanProcessor(&storeExporter{h: stores}),
		CanaryErrorRate: canaryErrors})
	if err != nil {
		fmt.Fprintf(stderr, "vantage demo: %v\n", err)
		return 1
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shop.Close(ctx); err != nil {
			fmt.Fprintf(stderr, "vantage demo: %v\n", err)
		}
	}()

	accessLog := strings.TrimSuffix(*configOut, filepath.Ext(*configOut)) + "-access.log"
	data, err := demo.GatewayConfig(demo.ConfigOptions{
		Listen:       *listen,
		Admin:        *adminAddr,
		Upstreams:    shop.Upstreams(),
		AccessLog:    accessLog,
		Alertmanager: *alertmanager,
		Rollout:      true,
	})
	if err != nil {
		fmt.Fprintf(stderr, "vantage demo: %v\n", err)
		return 1
	}
	if err := os.MkdirAll(filepath.Dir(*configOut), 0o755); err != nil {
		fmt.Fprintf(stderr, "vantage demo: writing the config: %v\n", err)
		return 1
	}
	if err := os.WriteFile(*configOut, data, 0o644); err != nil {
		fmt.Fprintf(stderr, "vantage demo: writing the config: %v\n", err)
		return 1
	}
	// Validated like a user's file, then given what the one-line commands
	// do differently from a file.
	cfg, err := config.Parse(*configOut, data, os.LookupEnv)
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	applyProxyDefaults(cfg)
	if *otlpGRPC != "off" {
		cfg.OTLPReceiver.GRPCAddress = *otlpGRPC
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		printConfigErrors(stderr, err)
		return 1
	}

	d := &demoRun{out: out, shop: shop, rate: *rate, duration: *duration, stop: make(chan struct{}), done: make(chan struct{}), stores: stores}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case <-sigs: // serve sees the signal too; this also covers one sent before it listens
			d.finish()
		case <-d.done:
			return
		}
		select {
		case <-sigs: // a second Ctrl-C does not wait for the drain
			fmt.Fprintln(stderr, "vantage demo: stopping now")
			os.Exit(130)
		case <-d.done:
		}
	}()

	code := serve(cfg, serveOptions{
		stdout: out,
		stderr: stderr,
		stop:   d.stop,
		traceStore: func(st *tracestore.Store) {
			stores.p.Store(st)
		},
		ready: func(b boundAddrs) {
			d.started(b, *configOut, accessLog, otlpEndpoint)
		},
	})
	d.finish()
	close(d.done)
	d.wg.Wait()
	if code != 0 && !d.wasReady() {
		fmt.Fprintln(stderr, "vantage demo: the gateway did not start (see above); if an address is taken, choose others with --listen, --admin and --otlp-grpc")
	}
	if d.traffic != nil {
		fmt.Fprintf(out, "traffic  total: %s\n", d.traffic.Stats())
	}
	return code
}

// demoRun is the state of one "vantage demo" run around serve.
type demoRun struct {
	out  io.Writer
	shop *demo.Shop
	rate float64
	// duration, when positive, ends the run that long after it started.
	duration time.Duration
	// stop, closed by finish, ends serve.
	stop chan struct{}
	// done is closed after serve returned.
	done chan struct{}
	// stores holds the gateway's trace store once built.
	stores *storeHolder
	// admin is the admin listener's address ("" when off).
	admin string

	mu      sync.Mutex
	timer   *time.Timer        // --duration, nil without
	cancel  context.CancelFunc // stops the traffic; nil before started
	traffic *demo.Traffic
	ready   bool
	stopped bool
	wg      sync.WaitGroup // traffic and summary goroutines
}

// started prints where everything is and starts the traffic. It runs once,
// on serve's goroutine, when the listeners are bound.
func (d *demoRun) started(b boundAddrs, configPath, accessLog, otlpEndpoint string) {
	gw := "http://" + b.Listeners["public"]
	w := d.out
	fmt.Fprintf(w, "gateway  %s\n", gw)
	if b.Admin != "" {
		fmt.Fprintf(w, "admin    http://%s\n", b.Admin)
		fmt.Fprintf(w, "dashboard http://%s/ (open it in a browser)\n", b.Admin)
	}
	fmt.Fprintf(w, "config   %s\n", configPath)
	fmt.Fprintf(w, "logs     %s (access log)\n", accessLog)
	fmt.Fprintf(w, "try      curl -i %s/products/42\n", gw)
	fmt.Fprintf(w, "         curl %s/api/catalog/products\n", gw)
	fmt.Fprintf(w, "         curl -H 'X-Canary: always' %s/api/catalog/products/7\n", gw)
	fmt.Fprintf(w, "         curl -X POST -d '{\"product_id\": 42, \"quantity\": 1}' %s/api/orders\n", gw)
	if b.Admin != "" {
		fmt.Fprintf(w, "         curl http://%s/api/routes\n", b.Admin)
		fmt.Fprintf(w, "         curl http://%s/api/services\n", b.Admin)
		fmt.Fprintf(w, "         curl http://%s/metrics\n", b.Admin)
		fmt.Fprintf(w, "         curl 'http://%s/api/history?window=1m&step=10s'\n", b.Admin)
		fmt.Fprintf(w, "         curl http://%s/api/alerts\n", b.Admin)
		fmt.Fprintf(w, "rollout  catalog-v2 steps 25%% → 50%% → 100%% every 30s while it does as well as catalog: vantage rollout status catalog-v2 --admin %s\n", b.Admin)
	}
	if b.Admin != "" {
		fmt.Fprintf(w, "otlp     services may send spans and logs to the gateway: OTEL_EXPORTER_OTLP_ENDPOINT=http://%s (OTLP/HTTP)\n", b.Admin)
	}
	if b.OTLPGRPC != "" {
		fmt.Fprintf(w, "otlp     OTLP/gRPC receiver on %s (OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT=http://%s)\n", b.OTLPGRPC, b.OTLPGRPC)
	}
	if d.stores.p.Load() != nil && b.Admin != "" {
		d.admin = b.Admin
		fmt.Fprintf(w, "traces   kept in the gateway's trace store, gateway and demo services together; look one up with\n")
		fmt.Fprintf(w, "         vantage trace --admin http://%s TRACE_ID   (the id is in the traceresponse header)\n", b.Admin)
		fmt.Fprintf(w, "         curl http://%s/api/traces?service=payments   (recent traces; error=true, status=5xx, class=slow ...)\n", b.Admin)
		fmt.Fprintf(w, "jaeger   http://%s/jaeger   (Jaeger query API: a Grafana Jaeger data source URL; try /jaeger/api/services)\n", b.Admin)
	}
	if otlpEndpoint != "" {
		fmt.Fprintf(w, "traces   exporting to %s (OTLP) from the gateway and every demo service\n", otlpEndpoint)
	} else if d.stores.p.Load() == nil {
		fmt.Fprintln(w, "traces   not exported; trace ids still flow (see the traceresponse header). Set OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 to send spans to a collector")
	} else {
		fmt.Fprintln(w, "         (set OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 to send the spans to a collector as well)")
	}

	// From now on orders reach payments through the gateway, behind its
	// circuit breaker.
	d.shop.SetGateway(gw)

	d.mu.Lock()
	defer d.mu.Unlock()
	d.ready = true
	if d.duration > 0 && !d.stopped {
		d.timer = time.AfterFunc(d.duration, d.finish)
	}
	if d.stopped || d.rate == 0 {
		if d.rate == 0 {
			fmt.Fprintln(w, "traffic  none (--traffic 0)")
		}
		return
	}
	t, err := demo.NewTraffic(demo.TrafficOptions{Target: gw, Rate: d.rate})
	if err != nil {
		fmt.Fprintf(w, "traffic  not started: %v\n", err)
		return
	}
	fmt.Fprintf(w, "traffic  %g req/s with User-Agent %s; a summary every %s; Ctrl-C to stop\n", d.rate, demo.UserAgent, demoSummaryEvery)
	ctx, cancel := context.WithCancel(context.Background())
	d.traffic, d.cancel = t, cancel
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		t.Run(ctx)
	}()
	go func() {
		defer d.wg.Done()
		d.summarize(ctx, t)
	}()
}

// summarize prints what the traffic did every demoSummaryEvery until ctx
// ends.
func (d *demoRun) summarize(ctx context.Context, t *demo.Traffic) {
	tick := time.NewTicker(demoSummaryEvery)
	defer tick.Stop()
	var prev demo.TrafficStats
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cur := t.Stats()
		note := ""
		if d.shop.PaymentsBad() {
			note = "  (payments is in a bad phase: watch the breaker)"
		}
		fmt.Fprintf(d.out, "traffic  last %s: %s%s\n", demoSummaryEvery, cur.Sub(prev), note)
		prev = cur
		d.printExampleTrace()
	}
}

// wasReady reports whether serve got as far as listening.
func (d *demoRun) wasReady() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ready
}

// finish stops the traffic and then serve. It is safe to call more than
// once and from any goroutine.
func (d *demoRun) finish() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
	}
	if d.cancel != nil {
		d.cancel()
	}
	close(d.stop)
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// printExampleTrace prints how to look up a recent multi-service trace of
// the store (an erroneous one when there is one).
func (d *demoRun) printExampleTrace() {
	st := d.stores.p.Load()
	if st == nil || d.admin == "" {
		return
	}
	pick := func(q tracestore.Query) (tracestore.Summary, bool) {
		q.Limit = 50
		for _, s := range st.Search(q) {
			if len(s.Services) > 1 {
				return s, true
			}
		}
		return tracestore.Summary{}, false
	}
	s, ok := pick(tracestore.Query{Error: true})
	if !ok {
		if s, ok = pick(tracestore.Query{}); !ok {
			return
		}
	}
	fmt.Fprintf(d.out, "trace    %s %s (%d spans over %s): vantage trace --admin http://%s %s\n",
		s.RootName, s.Class, s.Spans, strings.Join(s.Services, ", "), d.admin, s.TraceID)
}

// storeHolder holds the trace store once the gateway has built it.
type storeHolder struct {
	p atomic.Pointer[tracestore.Store]
}

// storeExporter exports the demo services' spans into the gateway's trace
// store, without blocking; spans ended before the store exists are
// dropped.
type storeExporter struct {
	h   *storeHolder
	exp atomic.Pointer[sdktrace.SpanExporter]
}

func (e *storeExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	exp := e.exp.Load()
	if exp == nil {
		st := e.h.p.Load()
		if st == nil {
			return nil
		}
		x := st.SpanExporter()
		e.exp.CompareAndSwap(nil, &x)
		exp = e.exp.Load()
	}
	return (*exp).ExportSpans(ctx, spans)
}

func (e *storeExporter) Shutdown(context.Context) error { return nil }
