// Package demo is the demo shop behind "vantage demo": a handful of small
// HTTP microservices started in-process on loopback ports, a gateway
// configuration that routes to them, and a gentle traffic generator.
//
// The shop is a storefront (pages), a catalog in two replicas and a canary
// catalog-v2 that fails more often, an inventory, orders, a flaky payments
// service with bursts of errors and slow calls, and payments-queue, the
// fallback that defers charges while payments is failing. Every service is
// traced with the OpenTelemetry SDK (its own tracer provider and
// service.name, W3C trace context on the way in and out), so one request
// through the gateway becomes a multi-hop trace.
//
// Everything here is for demonstration and tests: latencies and failures are
// simulated, state is bounded, nothing is persisted.
package demo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/clock"
)

// Names of the demo services, as they appear in the gateway configuration,
// in span resources and in the admin API.
const (
	Storefront    = "storefront"
	Catalog       = "catalog"
	CatalogV2     = "catalog-v2"
	Inventory     = "inventory"
	Orders        = "orders"
	Payments      = "payments"
	PaymentsQueue = "payments-queue"
)

// Options configures a Shop. The zero value is usable.
type Options struct {
	// Clock drives the payments service's good and bad phases (default
	// clock.Real{}).
	Clock clock.Clock
	// Seed seeds the simulated latencies and failures; the same seed gives
	// the same draws in the same order (default 0: a random seed).
	Seed uint64
	// NewExporter, when set, is called once per service instance to build
	// the exporter its spans are batched to. Default nil: spans are not
	// exported, but trace context still propagates between the services.
	NewExporter func(ctx context.Context) (sdktrace.SpanExporter, error)
	// SpanProcessor, when set, is added to every instance's tracer provider
	// (tests pass a tracetest.SpanRecorder). It must be safe for concurrent
	// use; Shop.Close calls its Shutdown once per instance.
	SpanProcessor sdktrace.SpanProcessor
	// Payments shapes the payments service's bursts of trouble.
	Payments Flaky
	// CanaryErrorRate is the share of catalog-v2 calls that fail with 500
	// (0: 0.08; negative: none).
	CanaryErrorRate float64
}

// Flaky shapes the payments service's trouble: within every Period, the
// window from Offset to Offset+Bad (measured from the shop's start) is a bad
// phase in which about half the charges fail with 503 and the others are
// slow. Outside it, payments is fast and almost always succeeds.
type Flaky struct {
	// Period is the length of one good+bad cycle (default 2m).
	Period time.Duration
	// Offset is where the bad phase starts within a cycle (default 60s, so
	// a new user sees the first one after a minute).
	Offset time.Duration
	// Bad is the length of the bad phase (default 20s; negative: never
	// bad).
	Bad time.Duration
}

func (f *Flaky) setDefaults() {
	if f.Period <= 0 {
		f.Period = 2 * time.Minute
	}
	if f.Offset <= 0 {
		f.Offset = time.Minute
	}
	if f.Bad == 0 {
		f.Bad = 20 * time.Second
	}
}

// bad reports whether elapsed (since the shop started) falls in a bad
// phase.
func (f Flaky) bad(elapsed time.Duration) bool {
	if f.Bad < 0 || elapsed < 0 {
		return false
	}
	in := elapsed % f.Period
	return in >= f.Offset && in < f.Offset+f.Bad
}

// Shop is a running demo shop. Its methods are safe for concurrent use.
type Shop struct {
	opts      Options
	start     time.Time
	prop      propagation.TextMapPropagator
	transport *http.Transport
	instances []*instance
	byService map[string][]*instance
	// gateway, when set, is the gateway's base URL: orders then reach
	// payments through it, so the gateway's breaker protects them.
	gateway atomic.Pointer[string]
	orderID atomic.Int64
	wg      sync.WaitGroup
	closed  atomic.Bool
}

// instance is one running replica of a service.
type instance struct {
	shop    *Shop
	service string
	version string
	id      string
	url     string
	ln      net.Listener
	srv     *http.Server
	tp      *sdktrace.TracerProvider
	tracer  trace.Tracer
	rng     *rng
	clients map[string]*http.Client // by peer service
	next    atomic.Uint64           // round robin over a peer's replicas
}

// layout lists the instances the shop runs: service, version, replicas.
var layout = []struct {
	service  string
	version  string
	replicas int
}{
	{Storefront, "1.4.2", 1},
	{Catalog, "1.8.0", 2},
	{CatalogV2, "2.0.0-rc.1", 1},
	{Inventory, "1.1.0", 1},
	{Orders, "3.2.1", 1},
	{Payments, "2.7.4", 1},
	{PaymentsQueue, "0.9.0", 1},
}

// peers lists whom each service calls directly.
var peers = map[string][]string{
	Storefront: {Catalog, Inventory},
	Orders:     {Payments},
}

// Start starts every demo service on its own 127.0.0.1 port and returns
// once all of them accept connections. ctx bounds the start (exporter
// construction); the services run until Close. On error, whatever was
// started is stopped.
func Start(ctx context.Context, o Options) (*Shop, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64()
	}
	o.Payments.setDefaults()
	s := &Shop{
		opts:  o,
		start: o.Clock.Now(),
		prop:  propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   16,
			IdleConnTimeout:       30 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
		},
		byService: map[string][]*instance{},
	}
	var seq uint64
	for _, l := range layout {
		for i := 1; i <= l.replicas; i++ {
			seq++
			id := l.service
			if l.replicas > 1 {
				id = fmt.Sprintf("%s-%d", l.service, i)
			}
			in, err := s.listen(ctx, l.service, l.version, id, seq)
			if err != nil {
				_ = s.Close(context.Background())
				return nil, err
			}
			s.instances = append(s.instances, in)
			s.byService[l.service] = append(s.byService[l.service], in)
		}
	}
	for _, in := range s.instances {
		in.srv = &http.Server{
			Handler:           traced(in.handler(), in.tracer, s.prop),
			ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout:       60 * time.Second,
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = in.srv.Serve(in.ln) // returns http.ErrServerClosed on Close
		}()
	}
	return s, nil
}

// listen opens one instance's listener and builds its tracer provider and
// clients.
func (s *Shop) listen(ctx context.Context, service, version, id string, seq uint64) (*instance, error) {
	var exp sdktrace.SpanExporter
	if s.opts.NewExporter != nil {
		var err error
		if exp, err = s.opts.NewExporter(ctx); err != nil {
			return nil, fmt.Errorf("demo: span exporter for %s: %w", id, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		if exp != nil {
			_ = exp.Shutdown(ctx)
		}
		return nil, fmt.Errorf("demo: listening for %s: %w", id, err)
	}
	tp := newTracerProvider(service, version, id, exp, s.opts.SpanProcessor)
	in := &instance{
		shop:    s,
		service: service,
		version: version,
		id:      id,
		url:     "http://" + ln.Addr().String(),
		ln:      ln,
		tp:      tp,
		tracer:  tp.Tracer("github.com/vantage-gateway/vantage/internal/demo"),
		rng:     newRNG(s.opts.Seed, seq),
		clients: map[string]*http.Client{},
	}
	for _, p := range peers[service] {
		in.clients[p] = &http.Client{
			Transport: &tracedTransport{next: s.transport, tracer: in.tracer, prop: s.prop, peer: p},
			Timeout:   5 * time.Second,
		}
	}
	return in, nil
}

// Upstreams returns each service's base URLs ("http://127.0.0.1:PORT"),
// replicas in order. The map is the caller's.
func (s *Shop) Upstreams() map[string][]string {
	out := make(map[string][]string, len(s.byService))
	for name, ins := range s.byService {
		for _, in := range ins {
			out[name] = append(out[name], in.url)
		}
	}
	return out
}

// Services returns the service names, sorted.
func (s *Shop) Services() []string {
	out := make([]string, 0, len(s.byService))
	for name := range s.byService {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// SetGateway makes orders reach payments through the gateway at base
// ("http://127.0.0.1:8080"), on the route GatewayConfig declares
// (/internal/payments/...), so that the gateway's circuit breaker and its
// fallback to payments-queue protect the checkout. Before it is called (and
// when base is ""), orders call payments directly.
func (s *Shop) SetGateway(base string) {
	s.gateway.Store(&base)
}

// PaymentsBad reports whether payments is in a bad phase now.
func (s *Shop) PaymentsBad() bool {
	return s.opts.Payments.bad(s.opts.Clock.Now().Sub(s.start))
}

// Close stops every service (waiting up to ctx for in-flight requests),
// then flushes and shuts down their tracer providers. It is safe to call
// more than once; later calls do nothing.
func (s *Shop) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, in := range s.instances {
		if in.srv != nil {
			if err := in.srv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("demo: stopping %s: %w", in.id, err))
				_ = in.srv.Close()
			}
		} else {
			_ = in.ln.Close()
		}
	}
	s.wg.Wait()
	for _, in := range s.instances {
		if err := in.tp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("demo: flushing spans of %s: %w", in.id, err))
		}
	}
	s.transport.CloseIdleConnections()
	return errors.Join(errs...)
}

// peerURL returns the base URL of the next replica of service, round robin.
func (in *instance) peerURL(service string) string {
	ins := in.shop.byService[service]
	n := in.next.Add(1)
	return ins[int(n%uint64(len(ins)))].url
}

// paymentsURL returns where orders send a charge: through the gateway when
// SetGateway was called, else straight to payments.
func (in *instance) paymentsURL() string {
	if gw := in.shop.gateway.Load(); gw != nil && *gw != "" {
		return *gw + "/internal/payments/charge"
	}
	return in.peerURL(Payments) + "/charge"
}
