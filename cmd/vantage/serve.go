package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/vantage-gateway/vantage/internal/admin"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/dashboard"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/listener"
	"github.com/vantage-gateway/vantage/internal/logging"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/rollout"
	"github.com/vantage-gateway/vantage/internal/tracestore"
)

type serveOptions struct {
	file   string // config file, "" when built in code
	watch  bool   // poll file for changes
	stdout io.Writer
	stderr io.Writer
	// ready, when set, receives the bound addresses once serving.
	ready func(addrs boundAddrs)
	// stop, when set, ends serving when closed (besides signals).
	stop <-chan struct{}
	// traceStore, when set, is given the embedded trace store once built
	// (not called when the store is off).
	traceStore func(*tracestore.Store)
}

type boundAddrs struct {
	Listeners map[string]string
	Admin     string
	OTLPGRPC  string // the OTLP/gRPC receiver, "" when not listening
}

// serve runs the gateway for cfg until SIGINT/SIGTERM (or opts.stop),
// reloading on SIGHUP and on file change, and shuts down in order:
// readiness off, listeners drain, gateway closes, telemetry flushes.
func serve(cfg *config.Config, opts serveOptions) int {
	logger := newLogger(cfg, opts.stderr)
	applyRuntime(cfg.Runtime, logger)
	tel, err := buildTelemetry(cfg, logger, opts.stdout, opts.stderr)
	if err != nil {
		logger.Error("telemetry", "error", err)
		return 1
	}
	defer tel.shutdown()
	if opts.traceStore != nil && tel.store != nil {
		opts.traceStore(tel.store)
	}

	// The rollouts' per-request bookkeeping reads every finished record.
	tally := &rollout.Tally{}
	stages := tel.stages
	stages.Readers = append(stages.Readers[:len(stages.Readers):len(stages.Readers)], tally)
	g, err := gateway.New(cfg, gateway.Options{
		Logger:        logger,
		Observer:      tel.observer,
		Telemetry:     stages,
		Mirrors:       tally,
		WrapTransport: tel.wrapTransport,
		// A replaced snapshot of a large config leaves hundreds of MB
		// free in the heap; give it back once it has drained.
		Retired: debug.FreeOSMemory,
	})
	if err != nil {
		logger.Error("building the gateway", "error", err)
		return 1
	}
	defer g.Close()
	tel.configured(cfg)

	var servers []*listener.Server
	bound := boundAddrs{Listeners: map[string]string{}}
	for _, lc := range cfg.Listeners {
		s, err := listener.ListenWith(lc, g.Handler(lc.Name), listener.Options{Logger: logger, Rejects: tel.rejects})
		if err != nil {
			logger.Error("listen", "error", err)
			return 1
		}
		servers = append(servers, s)
		bound.Listeners[lc.Name] = s.Addr().String()
	}

	rollouts, err := startRollouts(cfg, g, tel, tally, logger)
	if err != nil {
		logger.Error("rollouts", "error", err)
		return 1
	}
	defer rollouts.stop()
	reloader := &reloader{g: g, file: opts.file, log: logger, tel: tel, onReload: rollouts.update}
	if opts.file != "" && opts.watch {
		// The baseline is taken before serving, so an edit made right after
		// start-up is not mistaken for the loaded content.
		if data, err := os.ReadFile(opts.file); err == nil {
			reloader.sum = sha256.Sum256(data)
		}
	}
	var adminSrv *listener.Server
	var adminH *admin.Handler
	var dash *dashboard.Handler
	if cfg.Admin.Address != "off" {
		var reload func() error
		if opts.file != "" {
			reload = func() error { return reloader.reload(observe.SourceAPI) }
		}
		access, err := admin.AccessFromConfig(cfg.Admin)
		if err != nil {
			logger.Error("admin credentials", "error", err)
			return 1
		}
		dash = tel.dashboard(g)
		adminH = admin.New(g, admin.Options{Metrics: tel.metricsHandler, Reload: reload, Pprof: cfg.Admin.Pprof, Version: versionString(), Extra: rollouts.mount(tel.adminExtra(g)),
			Access: access, Logger: logger, Dashboard: dash})
		adminSrv, err = listener.Listen(config.Listener{Name: "admin", Address: cfg.Admin.Address,
			Timeouts: config.ListenerTimeouts{ReadHeader: config.Duration(10 * time.Second), Idle: config.Duration(60 * time.Second)}}, adminH, logger)
		if err != nil {
			logger.Error("admin listener", "error", err)
			return 1
		}
		bound.Admin = adminSrv.Addr().String()
		adminH.SetAddr(bound.Admin)
		if tel.alerts != nil {
			tel.alerts.SetAdminAddr(bound.Admin)
		}
	}

	otlpAddr, stopOTLP, err := tel.otlp.serveGRPC()
	if err != nil {
		logger.Error("OTLP/gRPC listener", "error", err)
		return 1
	}
	defer stopOTLP()
	bound.OTLPGRPC = otlpAddr

	// Building the first snapshot of a large config leaves garbage several
	// times the size of what it keeps (the parsed YAML, the compile's
	// temporaries), and with runtime.gc_percent's default of 400 the next
	// collection would wait until the heap is five times that peak. One
	// collection now, with the memory handed back to the system, starts the
	// gateway at the size of what it actually keeps.
	debug.FreeOSMemory()
	// From the live heap that collection measured on, the automatic
	// memory limit (runtime.auto_memory_limit) bounds the collector's
	// headroom, instead of gc_percent's five times the live heap.
	tuner := newMemTuner(logger)
	tuner.configure(cfg.Runtime)
	tuner.start(time.Second)
	defer tuner.close()
	reloader.tuner = tuner

	errc := make(chan error, len(servers)+1)
	for _, s := range servers {
		go func() { errc <- s.Serve() }()
		logger.Info("listening", "listener", s.Name(), "address", s.Addr().String())
	}
	if adminSrv != nil {
		go func() { errc <- adminSrv.Serve() }()
		adminH.SetReady(true)
		logger.Info("admin listening", "address", adminSrv.Addr().String())
	}
	if opts.ready != nil {
		opts.ready(bound)
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if opts.file != "" && opts.watch {
		go reloader.watch(ctx, time.Second)
	}

	code := 0
loop:
	for {
		select {
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				_ = reloader.reload(observe.SourceSignal)
			case syscall.SIGUSR1:
				tel.reopen()
			default:
				logger.Info("shutting down", "signal", sig.String(), "grace", cfg.ShutdownGrace.String())
				break loop
			}
		case <-opts.stop:
			break loop
		case err := <-errc:
			if err != nil {
				logger.Error("listener failed", "error", err)
				code = 1
				break loop
			}
		}
	}

	if adminH != nil {
		adminH.SetDraining()
	}
	grace := g.Config().ShutdownGrace.D()
	sctx, scancel := context.WithTimeout(context.Background(), grace)
	defer scancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Shutdown(sctx); err != nil {
				logger.Warn("drain cut short", "listener", s.Name(), "error", err)
			}
		}()
	}
	wg.Wait()
	if adminSrv != nil {
		dash.Close() // live streams never end by themselves
		actx, acancel := context.WithTimeout(context.Background(), time.Second)
		_ = adminSrv.Shutdown(actx)
		acancel()
	}
	logger.Info("stopped")
	return code
}

// reloader re-reads the config file and swaps it in.
type reloader struct {
	mu   sync.Mutex
	g    *gateway.Gateway
	file string
	log  *slog.Logger
	tel  *telemetry
	sum  [32]byte
	// onReload, when set, is told of each config that starts serving.
	onReload func(*config.Config)
	// tuner keeps the automatic memory limit (nil until serving).
	tuner *memTuner
}

// reload loads the file and applies it; errors keep the old config.
func (r *reloader) reload(source observe.ChangeSource) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.file == "" {
		return errors.New("no config file to reload")
	}
	cfg, err := config.Load(r.file)
	if err != nil {
		r.g.ReloadFailed(source, err)
		return err
	}
	cur := r.g.Config()
	if !reflect.DeepEqual(cur.Listeners, cfg.Listeners) || !reflect.DeepEqual(cur.Admin, cfg.Admin) {
		err := config.Errors{{File: r.file, Path: "listeners", Msg: "listeners and admin cannot change while running; restart to apply"}}
		r.g.ReloadFailed(source, err)
		return err
	}
	if !r.tel.sameSettings(cur, cfg) {
		r.log.Warn("telemetry settings changed in the file; they apply at the next restart (per-route settings apply now)")
	}
	if err := r.g.Reload(cfg, source); err != nil {
		return err
	}
	r.tel.configured(cfg)
	applyRuntime(cfg.Runtime, r.log)
	if r.tuner != nil {
		r.tuner.configure(cfg.Runtime)
	}
	r.tel.reloadAlerts(cfg)
	if r.onReload != nil {
		r.onReload(cfg)
	}
	return nil
}

// watch polls the file and reloads when its content changes.
func (r *reloader) watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		data, err := os.ReadFile(r.file)
		if err != nil {
			continue // mid-rename by an editor; try again next tick
		}
		sum := sha256.Sum256(data)
		if bytes.Equal(sum[:], r.sum[:]) {
			continue
		}
		r.sum = sum
		_ = r.reload(observe.SourceFile)
	}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	return logging.New(cfg.Log, w)
}

var _ = fmt.Sprintf
var _ http.Handler = (*admin.Handler)(nil)
