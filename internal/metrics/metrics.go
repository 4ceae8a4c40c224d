// Package metrics serves the gateway's Prometheus metrics: RED metrics per
// route, service and upstream read from each request's observe.Record,
// decision metrics from observe events (splits, breakers, rate limits,
// retries, health, reloads), business KPIs from the config, and the Go
// runtime, process and host collectors, all on a registry of its own.
//
// The request path records into pre-resolved series: ForRoute builds, once
// per route and config snapshot, a middleware that holds the route's
// series in fixed arrays indexed by method, status code and class, so that
// recording a request makes no label lookups and no allocations in the
// common case. Series are created on first use, capped per metric family
// and expired when idle (see package series). A scrape copies series
// pointers under a read lock and never blocks a request.
//
// All exported methods are safe for concurrent use.
package metrics

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/metrics/host"
	"github.com/vantage-gateway/vantage/internal/metrics/kpi"
	"github.com/vantage-gateway/vantage/internal/metrics/series"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Options carry the dependencies of New.
type Options struct {
	// Logger receives operational messages (scrape errors, host read
	// errors at debug level). Nil discards them.
	Logger *slog.Logger
	// Clock tells the time for series expiry and the reload
	// timestamp. Nil means clock.Real.
	Clock clock.Clock
	// Version is the gateway's version, the version label of
	// vantage_build_info ("unknown" when empty).
	Version string
}

// Metrics owns the registry and every instrument. Build it once at start
// with New and stop it with Close.
type Metrics struct {
	cfg       config.Metrics
	log       *slog.Logger
	clock     clock.Clock
	reg       *prometheus.Registry
	gatherer  gatherers // the series set, then reg
	handler   http.Handler
	set       *series.Set
	kpis      *kpi.Set
	host      *host.Collector
	enabled   bool
	exemplars bool

	f          families
	configured configured

	reloads       *prometheus.CounterVec
	reloadOK      prometheus.Gauge
	reloadSuccess prometheus.Gauge
	reloadSuccTS  prometheus.Gauge
	reloadFailTS  prometheus.Gauge

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// families are the series families of the RED and decision metrics.
type families struct {
	// RED per route and service.
	requests, errors, inflight, duration, upstreamTime, overhead, reqBytes, respBytes, grpc *series.Family
	// Latency per service, in full resolution.
	svcDuration *series.Family
	// RED per upstream.
	upRequests, upErrors, upDuration *series.Family
	// Decisions.
	splitRequests, splitWeight                               *series.Family
	breakerState, breakerTransitions, breakerRejections      *series.Family
	rateLimited, retries, retryBudget                        *series.Family
	healthy, healthTransitions, ejections, ejected, restored *series.Family
	mirrored, faults                                         *series.Family
	bodyTimeouts                                             *series.Family
}

// New builds the metrics from cfg (validated, defaults applied) and
// registers every collector on a fresh registry. When cfg is disabled it
// returns a Metrics whose ForRoute returns nil, whose Observe does nothing
// and whose Handler answers 404; Registerer still accepts collectors. Host
// and expiry work start here and stop in Close.
func New(cfg config.Metrics, opts Options) (*Metrics, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Version == "" {
		opts.Version = "unknown"
	}
	m := &Metrics{
		cfg:     cfg,
		log:     opts.Logger,
		clock:   opts.Clock,
		reg:     prometheus.NewRegistry(),
		enabled: cfg.IsEnabled(),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if !m.enabled {
		close(m.done)
		m.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "metrics are disabled (metrics.enabled: false)", http.StatusNotFound)
		})
		return m, nil
	}
	m.exemplars = cfg.ExemplarsEnabled()
	if len(cfg.Buckets) == 0 {
		cfg.Buckets = config.DefaultLatencyBuckets()
	}
	if len(cfg.OverheadBuckets) == 0 {
		cfg.OverheadBuckets = config.DefaultOverheadBuckets()
	}
	if len(cfg.RouteBuckets) == 0 {
		cfg.RouteBuckets = config.DefaultRouteBuckets()
	}
	so := series.Options{
		MaxSeries:        cfg.MaxSeriesPerMetric,
		IdleTimeout:      cfg.SeriesIdleTimeout.D(),
		Exemplars:        m.exemplars,
		ExemplarInterval: cfg.Exemplars.MinInterval.D(),
		Now:              m.clock.Now,
	}
	if so.MaxSeries == 0 {
		so.MaxSeries = 10000
	}
	if so.IdleTimeout == 0 {
		so.IdleTimeout = 10 * time.Minute
	}
	if cfg.NativeHistograms.Enabled {
		so.NativeBucketFactor = cfg.NativeHistograms.BucketFactor
		if so.NativeBucketFactor <= 1 {
			so.NativeBucketFactor = 1.1
		}
		so.NativeMaxBuckets = uint32(max(cfg.NativeHistograms.MaxBuckets, 0))
	}
	m.set = series.NewSet(so, m.clock.Now())
	if err := m.buildFamilies(cfg); err != nil {
		return nil, err
	}
	ks, err := kpi.New(cfg.KPIs, m.set)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	m.kpis = ks

	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vantage_config_reloads_total",
		Help: "Config reloads by result (success: the new config is serving; failure: it was rejected and the old one kept serving).",
	}, []string{"result"})
	m.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vantage_config_last_reload_successful",
		Help: "Whether the last config reload succeeded (1) or failed (0); 1 before any reload.",
	})
	m.reloadSuccTS = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vantage_config_last_reload_success_timestamp_seconds",
		Help: "When the serving config was loaded: the start, or the last successful reload.",
	})
	m.reloadFailTS = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vantage_config_last_reload_failure_timestamp_seconds",
		Help: "When a config reload last failed (0 if none has).",
	})
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	m.reloadOK.Set(1)
	m.reloadSuccTS.Set(unixSeconds(m.clock.Now()))
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "vantage_build_info",
		Help:        "Always 1; labels carry the gateway's version and the Go version it was built with.",
		ConstLabels: prometheus.Labels{"version": opts.Version, "go_version": runtime.Version()},
	})
	buildInfo.Set(1)

	cs := []prometheus.Collector{m.reloads, m.reloadOK, m.reloadSuccTS, m.reloadFailTS, buildInfo}
	if cfg.ProcessEnabled() {
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if cfg.HostEnabled() && runtime.GOOS == "linux" {
		h, err := host.New(host.Options{
			ProcPath: cfg.Host.ProcPath,
			SysPath:  cfg.Host.SysPath,
			Interval: cfg.Host.Interval.D(),
			Logger:   m.log,
			Now:      m.clock.Now,
		})
		if err != nil {
			m.log.Warn("host metrics unavailable", "err", err)
		} else {
			m.host = h
			cs = append(cs, h)
		}
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: registering: %w", err)
		}
	}
	m.gatherer = gatherers{m.set, m.reg}
	m.handler = promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{
		ErrorLog:            errorLog{m.log},
		ErrorHandling:       promhttp.ContinueOnError,
		EnableOpenMetrics:   true,
		MaxRequestsInFlight: 4,
	})

	if m.host != nil {
		m.host.Start()
	}
	go m.sweepLoop()
	return m, nil
}

func (m *Metrics) buildFamilies(cfg config.Metrics) error {
	var err error
	fam := func(o series.FamilyOpts) *series.Family {
		if err != nil {
			return nil
		}
		var f *series.Family
		f, err = m.set.Family(o)
		return f
	}
	const (
		C = series.Counter
		G = series.Gauge
		H = series.Histogram
	)
	rs := []string{"route", "service"}
	l := func(extra ...string) []string { return append(append([]string(nil), rs...), extra...) }
	// Histograms labelled by route take the (coarse) route buckets, those
	// of services the full ones: an estate of thousands of routes stays
	// within one scrape while the service-level quantiles keep their
	// resolution.
	lb, ob := cfg.RouteBuckets, cfg.OverheadBuckets
	hcap := cfg.MaxHistogramSeriesPerMetric
	if hcap == 0 {
		hcap = min(2000, max(cfg.MaxSeriesPerMetric, 1))
	}
	f := &m.f
	f.requests = fam(series.FamilyOpts{Name: "vantage_requests_total", Kind: C, Labels: l("method", "code", "class"),
		Help: "Requests handled, by route, service, sanitised method, status code and status class."})
	f.errors = fam(series.FamilyOpts{Name: "vantage_request_errors_total", Kind: C, Labels: l("error_kind"),
		Help: "Requests that failed, by route, service and error kind (requests without an error are not counted here). Carries trace-id exemplars."})
	f.inflight = fam(series.FamilyOpts{Name: "vantage_requests_in_flight", Kind: G, Labels: []string{"route"}, KeepNonZero: true,
		Help: "Requests of the route being handled now."})
	f.duration = fam(series.FamilyOpts{Name: "vantage_request_duration_seconds", Kind: H, Labels: l("method", "class"), Buckets: lb, MaxSeries: hcap,
		Help: "Total time to handle a request, from its arrival to the end of its response. Carries trace-id exemplars. Buckets: metrics.route_buckets."})
	f.svcDuration = fam(series.FamilyOpts{Name: "vantage_service_request_duration_seconds", Kind: H, Labels: []string{"service", "class"}, Buckets: cfg.Buckets, MaxSeries: hcap,
		Help: "Total time to handle a request, by service and status class, over all routes. Carries trace-id exemplars. Buckets: metrics.buckets."})
	f.upstreamTime = fam(series.FamilyOpts{Name: "vantage_request_upstream_seconds", Kind: H, Labels: rs, Buckets: lb, MaxSeries: hcap,
		Help: "Share of a request's time spent waiting on upstreams, all attempts included (requests that reached no upstream are not observed). Carries trace-id exemplars."})
	f.overhead = fam(series.FamilyOpts{Name: "vantage_request_overhead_seconds", Kind: H, Labels: rs, Buckets: ob, MaxSeries: hcap,
		Help: "Gateway overhead of a request: its total time minus its upstream time. Buckets: metrics.overhead_buckets."})
	f.reqBytes = fam(series.FamilyOpts{Name: "vantage_request_body_bytes_total", Kind: C, Labels: rs,
		Help: "Request body bytes received from clients."})
	f.respBytes = fam(series.FamilyOpts{Name: "vantage_response_body_bytes_total", Kind: C, Labels: rs,
		Help: "Response body bytes sent to clients."})
	f.grpc = fam(series.FamilyOpts{Name: "vantage_grpc_requests_total", Kind: C, Labels: l("grpc_status"),
		Help: "gRPC requests by their grpc-status (canonical code name)."})
	ul := l("upstream")
	f.upRequests = fam(series.FamilyOpts{Name: "vantage_upstream_requests_total", Kind: C, Labels: append(ul[:3:3], "class"),
		Help: "Attempts sent to an upstream host, by the class of its response (none: no response)."})
	f.upErrors = fam(series.FamilyOpts{Name: "vantage_upstream_errors_total", Kind: C, Labels: append(ul[:3:3], "error_kind"),
		Help: "Failed attempts to an upstream host, by error kind. Carries trace-id exemplars."})
	f.upDuration = fam(series.FamilyOpts{Name: "vantage_upstream_request_duration_seconds", Kind: H, Labels: ul, Buckets: lb, MaxSeries: hcap,
		Help: "Duration of one attempt at an upstream host, response body included. Carries trace-id exemplars."})

	f.splitRequests = fam(series.FamilyOpts{Name: "vantage_split_requests_total", Kind: C, Labels: []string{"route", "rule", "service", "reason"},
		Help: "Requests a weighted split sent to each service, by reason (weight, sticky, override)."})
	f.splitWeight = fam(series.FamilyOpts{Name: "vantage_split_weight", Kind: G, Labels: []string{"route", "service"},
		Help: "Weight of each service of a route's split: the configured one, or the last runtime change."})
	f.breakerState = fam(series.FamilyOpts{Name: "vantage_circuit_breaker_state", Kind: G, Labels: []string{"service", "upstream", "state"}, Persistent: true,
		Help: "Circuit breaker state: 1 for the current state (closed, open, half_open), 0 for the others; upstream is none for the service-wide breaker. Absent until the breaker first changes state."})
	f.breakerTransitions = fam(series.FamilyOpts{Name: "vantage_circuit_breaker_transitions_total", Kind: C, Labels: []string{"service", "upstream", "from", "to", "reason"},
		Help: "Circuit breaker state changes, by reason (consecutive_failures, error_ratio, slow_call_ratio, probe_success, probe_failure, cooldown)."})
	f.breakerRejections = fam(series.FamilyOpts{Name: "vantage_circuit_breaker_rejections_total", Kind: C, Labels: []string{"route", "service", "upstream"},
		Help: "Requests an open circuit breaker refused."})
	f.rateLimited = fam(series.FamilyOpts{Name: "vantage_rate_limit_rejections_total", Kind: C, Labels: []string{"route", "policy", "key"},
		Help: "Requests a rate limit refused, by policy and key kind."})
	f.retries = fam(series.FamilyOpts{Name: "vantage_retries_total", Kind: C, Labels: []string{"route", "service", "reason"},
		Help: "Retries of upstream attempts, by reason."})
	f.retryBudget = fam(series.FamilyOpts{Name: "vantage_retry_budget_exhausted_total", Kind: C, Labels: []string{"route", "service"},
		Help: "Retries that were wanted but refused by the retry budget."})
	hl := []string{"service", "upstream"}
	f.healthy = fam(series.FamilyOpts{Name: "vantage_upstream_healthy", Kind: G, Labels: hl, Persistent: true,
		Help: "Active health of an upstream host: 1 healthy, 0 unhealthy. Absent until its health first changes."})
	f.healthTransitions = fam(series.FamilyOpts{Name: "vantage_upstream_health_transitions_total", Kind: C, Labels: append(hl[:2:2], "state"),
		Help: "Changes of an upstream host's active health, by new state."})
	f.ejections = fam(series.FamilyOpts{Name: "vantage_upstream_ejections_total", Kind: C, Labels: hl,
		Help: "Ejections of an upstream host by passive outlier detection."})
	f.restored = fam(series.FamilyOpts{Name: "vantage_upstream_restorations_total", Kind: C, Labels: hl,
		Help: "Returns of an ejected upstream host to rotation."})
	f.ejected = fam(series.FamilyOpts{Name: "vantage_upstream_ejected", Kind: G, Labels: hl, Persistent: true,
		Help: "Whether an upstream host is ejected by outlier detection now (1) or not (0)."})
	f.mirrored = fam(series.FamilyOpts{Name: "vantage_mirrored_requests_total", Kind: C, Labels: []string{"route", "service"},
		Help: "Requests copied to a shadow service."})
	f.faults = fam(series.FamilyOpts{Name: "vantage_faults_injected_total", Kind: C, Labels: []string{"route", "fault"},
		Help: "Faults injected into requests, by kind (delay, abort)."})
	f.bodyTimeouts = fam(series.FamilyOpts{Name: "vantage_request_body_timeouts_total", Kind: C, Labels: []string{"route", "reason"},
		Help: "Request bodies cut for arriving too slowly (answered 408, error kind client_timeout), by the limit that fired (idle, min_rate, read_timeout: the listener's timeouts.read)."})
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

func (m *Metrics) sweepLoop() {
	defer close(m.done)
	t := time.NewTicker(m.set.SweepInterval())
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.sweep(m.clock.Now())
		}
	}
}

// Handler serves the registry at /metrics (mount it on the admin
// listener): the Prometheus text format, or OpenMetrics (with exemplars)
// or protobuf (with native histograms) when the scraper asks for them. At
// most 4 scrapes run at once; more get 503. Gathering reads series
// without blocking the request path.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Registerer returns the metrics registry, for other packages' own
// collectors (tracing queue and drops, access-log drops). Never the global
// registry.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// Gatherer returns the metrics registry for reading (tests, the admin
// dashboard).
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.gatherer }

// gatherers merges the families of gatherers whose family names do not
// overlap (the series set, and the registry of everything else), sorted by
// name. Unlike prometheus.Gatherers it does not re-check every sample: each
// part has checked its own, and only a name in two parts is an error.
type gatherers []prometheus.Gatherer

// Gather implements prometheus.Gatherer.
func (gs gatherers) Gather() ([]*dto.MetricFamily, error) {
	var out []*dto.MetricFamily
	var errs prometheus.MultiError
	for _, g := range gs {
		mfs, err := g.Gather()
		if err != nil {
			errs.Append(err)
		}
		out = append(out, mfs...)
	}
	slices.SortStableFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	out = slices.CompactFunc(out, func(a, b *dto.MetricFamily) bool {
		if a.GetName() != b.GetName() {
			return false
		}
		errs.Append(fmt.Errorf("metric family %q is defined twice; the second is left out", a.GetName()))
		return true
	})
	return out, errs.MaybeUnwrap()
}

// Close stops the background work (host readings, series expiry) and
// waits for it. It is safe to call more than once. Recording after Close
// still works; series just no longer expire.
func (m *Metrics) Close() {
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
		if m.host != nil {
			m.host.Close()
		}
	})
}

var _ middleware.Factory = (*Metrics)(nil)
var _ observe.Observer = (*Metrics)(nil)

type errorLog struct{ l *slog.Logger }

func (e errorLog) Println(v ...any) { e.l.Warn("metrics: scrape error", "err", fmt.Sprint(v...)) }

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
