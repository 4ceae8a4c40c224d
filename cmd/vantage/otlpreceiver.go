package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/otlpreceiver"
	"github.com/vantage-gateway/vantage/internal/tracestore"
	"github.com/vantage-gateway/vantage/internal/tracing/export"
)

// otlpReceiver is the OTLP receiver and what it hands data to: its
// OTLP/HTTP handlers go on the admin listener, its gRPC server on a
// listener of its own.
type otlpReceiver struct {
	cfg        config.OTLPReceiver
	r          *otlpreceiver.Receiver
	forwarders []*otlpreceiver.Forwarder
	log        *slog.Logger
}

// buildOTLPReceiver builds the receiver cfg.OTLPReceiver describes, or nil
// when it is disabled. What it receives goes to the primary consumer and,
// with forward, to every OTLP exporter of tracing.exporters.
func buildOTLPReceiver(cfg *config.Config, logger *slog.Logger, reg prometheus.Registerer, store *tracestore.Store) (*otlpReceiver, error) {
	rc := cfg.OTLPReceiver
	if !rc.IsEnabled() {
		return nil, nil
	}
	o := &otlpReceiver{cfg: rc, log: logger}
	// The primary consumer: the trace store, when it is on; otherwise
	// accepted spans and log records are counted and dropped (or only
	// forwarded).
	var primaryTraces otlpreceiver.TraceConsumer = otlpreceiver.Discard{}
	var primaryLogs otlpreceiver.LogConsumer = otlpreceiver.Discard{}
	if store != nil {
		c := store.OTLPConsumer()
		primaryTraces, primaryLogs = c, c
	}
	fan := otlpreceiver.Fanout{Traces: []otlpreceiver.TraceConsumer{primaryTraces}, Logs: []otlpreceiver.LogConsumer{primaryLogs}}
	if rc.Forward {
		for _, e := range cfg.Tracing.Exporters {
			t, ok, err := forwardTarget(e)
			if err != nil {
				o.close()
				return nil, fmt.Errorf("otlp_receiver.forward: %w", err)
			}
			if !ok {
				continue
			}
			f, err := otlpreceiver.NewForwarder(t, otlpreceiver.ForwarderOptions{Registerer: reg, Logger: logger})
			if err != nil {
				o.close()
				return nil, err
			}
			o.forwarders = append(o.forwarders, f)
			fan.Traces = append(fan.Traces, f)
			fan.Logs = append(fan.Logs, f)
		}
	}
	r, err := otlpreceiver.New(otlpreceiver.Options{
		Traces: fan, Logs: fan,
		MaxBodyBytes: rc.MaxBodyBytes.Bytes(), BearerToken: rc.BearerToken,
		Registerer: reg, Logger: logger,
	})
	if err != nil {
		o.close()
		return nil, err
	}
	o.r = r
	return o, nil
}

// forwardTarget maps an OTLP exporter's connection settings to a forward
// target; ok is false for exporters that do not speak OTLP.
func forwardTarget(e config.TracingExporter) (t otlpreceiver.ForwardTarget, ok bool, err error) {
	t = otlpreceiver.ForwardTarget{Name: e.Name, Headers: e.Headers, Gzip: e.Compression == "gzip", Timeout: e.Timeout.D()}
	t.TLS, err = export.TLSConfig(e.TLS)
	if err != nil {
		return t, false, fmt.Errorf("exporter %q: %w", e.Name, err)
	}
	switch e.Type {
	case config.ExporterOTLPGRPC:
		t.GRPCTarget, t.Plaintext, err = export.GRPCTarget(e)
		if err != nil {
			return t, false, fmt.Errorf("exporter %q: endpoint: %w", e.Name, err)
		}
		return t, true, nil
	case config.ExporterOTLPHTTP:
		traces, err := url.Parse(e.Endpoint)
		if err != nil {
			return t, false, fmt.Errorf("exporter %q: endpoint: %w", e.Name, err)
		}
		if e.TLS != nil && e.TLS.Insecure {
			traces.Scheme = "http"
		}
		logsURL, err := (&config.AccessLogOTLP{Exporter: e.Name}).LogsEndpoint(config.TracingExporter{Type: e.Type, Name: e.Name, Endpoint: traces.String()})
		if err != nil {
			logsURL = "" // a traces path that names no logs path: spans only
		}
		if traces.Path == "" || traces.Path == "/" {
			traces.Path = otlpreceiver.TracesPath
		}
		t.TracesURL, t.LogsURL = traces.String(), logsURL
		return t, true, nil
	}
	return t, false, nil
}

// handlers returns the OTLP/HTTP handlers for the admin listener.
func (o *otlpReceiver) handlers() map[string]http.Handler {
	if o == nil {
		return nil
	}
	return o.r.Handlers()
}

// serveGRPC starts the OTLP/gRPC listener when grpc_address is set. It
// returns the bound address ("" when not configured) and a stop function.
func (o *otlpReceiver) serveGRPC() (string, func(), error) {
	if o == nil || o.cfg.GRPCAddress == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", o.cfg.GRPCAddress)
	if err != nil {
		return "", nil, fmt.Errorf("otlp_receiver.grpc_address: %w", err)
	}
	s := o.r.NewGRPCServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Serve(ln); err != nil {
			o.log.Error("OTLP/gRPC listener failed", "error", err)
		}
	}()
	o.log.Info("OTLP/gRPC receiver listening", "address", ln.Addr().String())
	return ln.Addr().String(), func() {
		stopped := make(chan struct{})
		go func() { s.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(time.Second):
			s.Stop()
		}
		<-done
	}, nil
}

// close flushes the forwarders (for at most 5 seconds).
func (o *otlpReceiver) close() {
	if o == nil || len(o.forwarders) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, f := range o.forwarders {
		if err := f.Close(ctx); err != nil {
			o.log.Warn("flushing forwarded OTLP", "error", err)
		}
	}
}
