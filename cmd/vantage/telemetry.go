package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantage-gateway/vantage/internal/accesslog"
	"github.com/vantage-gateway/vantage/internal/alerts"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/dashboard"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/listener"
	"github.com/vantage-gateway/vantage/internal/metrics"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/redact"
	"github.com/vantage-gateway/vantage/internal/tracestore"
	"github.com/vantage-gateway/vantage/internal/tracestore/queryapi"
	"github.com/vantage-gateway/vantage/internal/tracing"
)

// telemetry holds the signal pipelines built once at start: tracing,
// metrics and access logs, and what the gateway and admin API need of them.
type telemetry struct {
	stages         middleware.Telemetry
	observers      []observe.Observer
	observer       observe.Observer
	wrapTransport  func(service string, rt http.RoundTripper) http.RoundTripper
	metricsHandler http.Handler
	rejects        listener.Rejects // counts requests the listeners refuse
	history        *history.History
	alerts         *alerts.Manager
	// configured is told every config that starts serving, so the
	// counters of its controls exist at zero from then on.
	configured func(*config.Config)
	registerer prometheus.Registerer
	closers    []func()
	reopeners  []func() error
	log        *slog.Logger
	otlp       *otlpReceiver // nil when otlp_receiver is disabled
	// store is the embedded trace store, nil when off.
	store *tracestore.Store
	// redact is the redaction policy every reader of request data applies.
	redact *redact.Policy
}

func buildTelemetry(cfg *config.Config, logger *slog.Logger, stdout, stderr io.Writer) (*telemetry, error) {
	t := &telemetry{log: logger}
	m, err := metrics.New(cfg.Metrics, metrics.Options{Logger: logger, Version: versionString()})
	if err != nil {
		return nil, err
	}
	t.closers = append(t.closers, m.Close)
	t.observers = append(t.observers, m)
	t.metricsHandler = m.Handler()
	t.configured = m.Configured
	reg := m.Registerer()
	t.registerer = reg
	names := make([]string, 0, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		names = append(names, l.Name)
	}
	rejects, err := metrics.NewListenerRejects(reg, names, listener.RejectReasons)
	if err != nil {
		return nil, err
	}
	t.rejects = rejects

	var sink *tracestore.Sink
	if cfg.TraceStore.IsEnabled() {
		st, err := newTraceStore(cfg.TraceStore, reg)
		if err != nil {
			return nil, err
		}
		t.store = st
		// Closed last (closers run in reverse), after tracing and the
		// access log have flushed into it.
		t.closers = append(t.closers, func() {
			if err := st.Close(); err != nil {
				logger.Warn("closing the trace store", "error", err)
			}
		})
		if dir := cfg.TraceStore.DataDir; dir != "" {
			stats := st.Stats()
			logger.Info("trace store read its data directory", "data_dir", dir, "traces", stats.Traces,
				"spans", stats.Spans, "took", st.ReplayTime().String())
		}
		sink = st.NewSink(tracing.Resource(cfg.Tracing, versionString()), cfg.Tracing.Sampling.Late.SlowerThan.D())
	}
	// One redaction policy for spans, access-log records and pages.
	t.redact = cfg.RedactPolicy()

	topts := tracing.Options{Logger: logger, Registerer: reg, Version: versionString(), Redaction: t.redact}
	if sink != nil {
		topts.Sink = sink
	}
	tr, err := tracing.New(cfg.Tracing, topts)
	if err != nil {
		return nil, err
	}
	t.closers = append(t.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(ctx); err != nil {
			logger.Warn("flushing traces", "error", err)
		}
	})
	t.observers = append(t.observers, tr)
	t.wrapTransport = tr.WrapTransport

	alOpts := accesslog.Options{Logger: logger, Registerer: reg, Stdout: stdout, Stderr: stderr,
		Tracing: &cfg.Tracing, Version: versionString(), Redaction: t.redact}
	if sink != nil {
		alOpts.Tap = sink
	}
	al, err := accesslog.New(cfg.AccessLog, alOpts)
	if err != nil {
		return nil, err
	}
	hist, err := history.New(cfg.History, history.Options{Logger: logger, ProcPath: cfg.Metrics.Host.ProcPath, KPIs: cfg.Metrics.KPIs})
	if err != nil {
		return nil, err
	}
	hist.Start()
	t.history = hist
	t.closers = append(t.closers, hist.Close)
	t.observers = append(t.observers, hist)
	if hist.Enabled() {
		am, err := alerts.New(cfg, alerts.Options{Source: hist.Source(), Logger: logger, Registerer: reg, DataSince: time.Now()})
		if err != nil {
			return nil, err
		}
		am.Start()
		t.alerts = am
		t.closers = append(t.closers, am.Close)
	}

	// The gateway puts each slot in its place (tracing outermost).
	t.stages = middleware.Telemetry{Tracing: tr, Metrics: m, AccessLog: al, History: hist}
	t.reopeners = append(t.reopeners, al.Reopen)
	t.closers = append(t.closers, func() {
		if err := al.Close(); err != nil {
			logger.Warn("closing the access log", "error", err)
		}
	})

	if t.otlp, err = buildOTLPReceiver(cfg, logger, reg, t.store); err != nil {
		return nil, err
	}
	t.closers = append(t.closers, t.otlp.close)

	t.observer = observe.Join(t.observers...)
	return t, nil
}

// shutdown flushes and stops every pipeline, last built first.
func (t *telemetry) shutdown() {
	for i := len(t.closers) - 1; i >= 0; i-- {
		t.closers[i]()
	}
}

// reopen reopens log files (SIGUSR1, for logrotate).
func (t *telemetry) reopen() {
	for _, f := range t.reopeners {
		if err := f(); err != nil {
			t.log.Error("reopening log file", "error", err)
		}
	}
}

// sameSettings reports whether the telemetry sections of a and b match.
func (t *telemetry) sameSettings(a, b *config.Config) bool {
	return reflect.DeepEqual(a.Tracing, b.Tracing) && reflect.DeepEqual(a.Metrics, b.Metrics) &&
		reflect.DeepEqual(a.AccessLog, b.AccessLog) && reflect.DeepEqual(a.Log, b.Log) && reflect.DeepEqual(a.OTLPReceiver, b.OTLPReceiver) &&
		reflect.DeepEqual(a.History, b.History) && reflect.DeepEqual(a.TraceStore, b.TraceStore) &&
		reflect.DeepEqual(a.Redaction, b.Redaction)
}

// adminExtra returns extra admin endpoints: the OTLP/HTTP receiver, the
// history's JSON API, and the trace store's query APIs (Jaeger's under
// /jaeger/, Vantage's /api/traces) when the store is on.
func (t *telemetry) adminExtra(g *gateway.Gateway) map[string]http.Handler {
	extra := map[string]http.Handler{}
	for pattern, h := range t.otlp.handlers() {
		extra[pattern] = h
	}
	if t.store != nil {
		v := queryapi.Vantage(t.store, queryapi.Options{})
		extra["/jaeger/"] = http.StripPrefix("/jaeger", queryapi.Jaeger(t.store, queryapi.Options{}))
		extra["GET /api/traces"] = v
		extra["GET /api/traces/{traceID}"] = v
	}
	if t.history == nil || !t.history.Enabled() {
		return extra
	}
	hh := t.history.Handler()
	extra["GET /api/history"] = hh
	extra["GET /api/history/"] = hh
	if t.alerts != nil {
		extra["GET /api/alerts"] = t.alerts.Handler()
	}
	return extra
}

// reloadAlerts swaps in cfg's alert rules and receivers.
func (t *telemetry) reloadAlerts(cfg *config.Config) {
	if t.alerts == nil {
		return
	}
	if err := t.alerts.Update(cfg); err != nil {
		t.log.Error("alert rules not reloaded; the previous rules stay", "error", err)
	}
}

// newTraceStore builds the embedded trace store from its config section.
func newTraceStore(c config.TraceStore, reg prometheus.Registerer) (*tracestore.Store, error) {
	shares := map[tracestore.Class]float64{}
	for name, v := range c.Shares {
		if cl, ok := tracestore.ParseClass(name); ok {
			shares[cl] = v
		}
	}
	if len(shares) == 0 {
		shares = nil
	}
	return tracestore.New(tracestore.Options{
		Budget: c.Budget.Bytes(), Shares: shares, SlowThreshold: c.SlowThreshold.D(), MaxAge: c.MaxAge.D(),
		QueueSize: c.QueueSize, Registerer: reg,
		DataDir: c.DataDir, SyncInterval: c.SyncInterval.D(),
	})
}

// dashboard returns the live dashboard over the history (when enabled),
// the trace store (when on) and g.
func (t *telemetry) dashboard(g *gateway.Gateway) *dashboard.Handler {
	o := dashboard.Options{Gateway: g}
	if t.store != nil {
		o.Traces = dashboard.StoreTraces(t.store)
	}
	if t.history != nil && t.history.Enabled() {
		o.History = t.history.Source()
	}
	return dashboard.New(o)
}

// applyProxyDefaults sets what "vantage proxy" and "vantage demo" do
// differently from a config file: they return the trace id to the client
// in a traceresponse header (a config file's default is off, so a public
// edge does not advertise trace ids unless asked).
func applyProxyDefaults(cfg *config.Config) {
	if cfg.Tracing.ResponseHeader == "" {
		cfg.Tracing.ResponseHeader = config.ResponseHeaderTraceresponse
	}
}
