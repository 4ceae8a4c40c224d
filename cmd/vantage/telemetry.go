package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"time"

	"github.com/vantage-gateway/vantage/internal/accesslog"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/listener"
	"github.com/vantage-gateway/vantage/internal/metrics"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/tracing"
)

// telemetry holds the signal pipelines built once at start: tracing,
// metrics and access logs, and what the gateway and admin API need of them.
type telemetry struct {
	factories      []middleware.Factory
	observers      []observe.Observer
	observer       observe.Observer
	wrapTransport  func(service string, rt http.RoundTripper) http.RoundTripper
	metricsHandler http.Handler
	rejects        listener.Rejects // counts requests the listeners refuse
	history        *history.History
	closers        []func()
	reopeners      []func() error
	log            *slog.Logger
	otlp           *otlpReceiver // nil when otlp_receiver is disabled
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
	reg := m.Registerer()
	names := make([]string, 0, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		names = append(names, l.Name)
	}
	rejects, err := metrics.NewListenerRejects(reg, names, listener.RejectReasons)
	if err != nil {
		return nil, err
	}
	t.rejects = rejects

	tr, err := tracing.New(cfg.Tracing, tracing.Options{Logger: logger, Registerer: reg, Version: versionString()})
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

	al, err := accesslog.New(cfg.AccessLog, accesslog.Options{Logger: logger, Registerer: reg, Stdout: stdout, Stderr: stderr,
		Tracing: &cfg.Tracing, Version: versionString()})
	if err != nil {
		return nil, err
	}
	hist, err := history.New(cfg.History, history.Options{Logger: logger, ProcPath: cfg.Metrics.Host.ProcPath})
	if err != nil {
		return nil, err
	}
	hist.Start()
	t.history = hist
	t.closers = append(t.closers, hist.Close)
	t.observers = append(t.observers, hist)

	// Tracing outermost, so metrics, access logs and history see the
	// trace id.
	t.factories = append(t.factories, tr, m, al, hist)
	t.reopeners = append(t.reopeners, al.Reopen)
	t.closers = append(t.closers, func() {
		if err := al.Close(); err != nil {
			logger.Warn("closing the access log", "error", err)
		}
	})

	if t.otlp, err = buildOTLPReceiver(cfg, logger, reg); err != nil {
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
		reflect.DeepEqual(a.History, b.History)
}

// adminExtra returns extra admin endpoints: the OTLP/HTTP receiver and the
// history's JSON API.
func (t *telemetry) adminExtra(g *gateway.Gateway) map[string]http.Handler {
	extra := map[string]http.Handler{}
	for pattern, h := range t.otlp.handlers() {
		extra[pattern] = h
	}
	if t.history == nil || !t.history.Enabled() {
		return extra
	}
	hh := t.history.Handler()
	extra["GET /api/history"] = hh
	extra["GET /api/history/"] = hh
	return extra
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
