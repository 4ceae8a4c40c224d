package alerts

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/history"
)

// Reader is what a reader of the alerts' state (the dashboard) needs.
type Reader interface {
	// Alerts returns the alerts that are pending, firing or recently
	// resolved; the caller owns the result.
	Alerts() []Alert
}

// Options carry the Manager's dependencies.
type Options struct {
	// Source is the history the rules read. Required.
	Source history.Source
	// Logger receives one line per transition and delivery failures
	// (default: discard).
	Logger *slog.Logger
	// Registerer registers the alerts' metrics (none when nil).
	Registerer prometheus.Registerer
	// DataSince is when the history's data starts (the process start):
	// windows reaching before it are marked incomplete.
	DataSince time.Time
}

// Manager evaluates the rules on a ticker, logs transitions, keeps the
// metrics, serves the state and hands notifications to the receivers. Its
// methods are safe for concurrent use.
type Manager struct {
	src  history.Source
	log  *slog.Logger
	dm   *deliveryMetrics
	am   *prometheus.GaugeVec
	dur  prometheus.Histogram
	fail prometheus.Counter

	mu       sync.Mutex // serialises evaluation and swaps
	eval     *Evaluator
	disp     *Dispatcher
	recvCfg  []config.AlertReceiver
	interval time.Duration

	state    sync.RWMutex
	alerts   []Alert
	lastEval time.Time
	lastErr  string

	// dataDir keeps the state across restarts ("": not kept); sig is
	// the state last written.
	dataDir string
	sig     string

	// adminAddr is the admin listener's bound address (SetAdminAddr),
	// the base of links when neither external_url nor a fixed admin
	// address gives one.
	adminAddr string

	swap   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds a Manager over cfg's alerts section. Start starts its
// evaluation loop.
func New(cfg *config.Config, o Options) (*Manager, error) {
	rs, err := Compile(cfg)
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Manager{src: o.Source, log: log, dm: newDeliveryMetrics(o.Registerer), swap: make(chan struct{}, 1)}
	m.am = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vantage_alerts",
		Help: "Alerts pending or firing, as Prometheus' ALERTS (value: how many of the rule's alerts are in that state)."},
		[]string{"alertname", "alertstate", "severity"})
	m.dur = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vantage_alert_evaluation_duration_seconds",
		Help: "Time to evaluate every alert rule once.", Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}})
	m.fail = prometheus.NewCounter(prometheus.CounterOpts{Name: "vantage_alert_evaluation_failures_total",
		Help: "Evaluations in which some rule could not be evaluated."})
	if o.Registerer != nil {
		o.Registerer.MustRegister(m.am, m.dur, m.fail)
	}
	m.eval = NewEvaluator(rs)
	m.eval.DataSince = o.DataSince
	m.dataDir = rs.cfg.DataDir
	if m.dataDir != "" {
		m.eval.keepSLO = true
		st, err := readState(m.dataDir)
		switch {
		case err != nil:
			log.Warn("alerts: the state file cannot be read; starting afresh", "error", err)
		case st != nil:
			n := m.eval.restore(st.Alerts)
			m.eval.slo.load(st.SLOs)
			log.Info("alerts: state restored", "alerts", n, "slo_series", len(st.SLOs), "saved_at", st.SavedAt)
		}
	}
	m.interval = rs.interval
	m.recvCfg = rs.cfg.Receivers
	m.disp = newDispatcher(rs, log, m.dm)
	return m, nil
}

// Update swaps in cfg's rules (a reload), keeping the state of unchanged
// alerts. Receivers are rebuilt only when their settings changed. A
// config that does not compile keeps the old rules and returns the error.
func (m *Manager) Update(cfg *config.Config) error {
	rs, err := Compile(cfg)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.linkBase(rs)
	trans := m.eval.SetRules(rs)
	m.logTransitions(trans)
	if !reflect.DeepEqual(m.recvCfg, rs.cfg.Receivers) || m.disp.resend != rs.resend || m.disp.external != rs.external {
		m.disp.Close()
		m.disp = newDispatcher(rs, m.log, m.dm)
		m.recvCfg = rs.cfg.Receivers
	}
	m.dataDir = rs.cfg.DataDir
	m.eval.keepSLO = m.dataDir != ""
	if m.interval != rs.interval {
		m.interval = rs.interval
		select {
		case m.swap <- struct{}{}:
		default:
		}
	}
	return nil
}

// SetAdminAddr tells the manager the address the admin listener is bound
// to. Unless alerts.external_url is set, links in alerts (exemplar traces,
// generatorURL, externalURL) use it, so a configured port 0 (as in the
// demo) still yields links that open.
func (m *Manager) SetAdminAddr(addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.adminAddr = addr
	rs := m.eval.rules
	if !m.linkBase(rs) {
		return
	}
	m.disp.Close()
	m.disp = newDispatcher(rs, m.log, m.dm)
}

// linkBase points rs's links at the bound admin address when the config
// names no external URL; it reports whether that changed them. m.mu must
// be held (or m not yet shared).
func (m *Manager) linkBase(rs *Ruleset) bool {
	if rs.cfg.ExternalURL != "" || m.adminAddr == "" {
		return false
	}
	base := "http://" + m.adminAddr
	if rs.external == base {
		return false
	}
	rs.external = base
	return true
}

// Start runs the evaluation loop until Close.
func (m *Manager) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go m.loop(ctx)
}

func (m *Manager) loop(ctx context.Context) {
	defer close(m.done)
	m.mu.Lock()
	every := m.interval
	m.mu.Unlock()
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.swap:
			m.mu.Lock()
			tk.Reset(m.interval)
			m.mu.Unlock()
		case <-tk.C:
			m.Tick(ctx)
		}
	}
}

// Close stops the loop and the receivers' workers.
func (m *Manager) Close() {
	if m.cancel != nil {
		m.cancel()
		<-m.done
	}
	m.mu.Lock()
	m.disp.Close()
	m.persist(time.Now(), true)
	m.mu.Unlock()
}

// persist writes the state file when the state changed (or force). m.mu
// must be held.
func (m *Manager) persist(now time.Time, force bool) {
	if m.dataDir == "" {
		return
	}
	sig := m.eval.stateSig()
	if sig == m.sig && !force {
		return
	}
	st := &state{Version: stateVersion, SavedAt: now.UTC(), Alerts: m.eval.snapshot(), SLOs: m.eval.slo.save()}
	if err := writeState(m.dataDir, st); err != nil {
		m.log.Warn("alerts: writing the state file", "error", err)
		return
	}
	m.sig = sig
}

// Tick evaluates every rule once, at the end of the history's newest
// complete second, and queues the notifications.
func (m *Manager) Tick(ctx context.Context) {
	t, err := m.src.Latest(ctx)
	if err != nil || t.IsZero() {
		return
	}
	m.TickAt(ctx, t)
}

// TickAt evaluates every rule once at t and queues the notifications.
func (m *Manager) TickAt(ctx context.Context, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	start := time.Now()
	alerts, trans, err := m.eval.Evaluate(ctx, m.src, t)
	m.dur.Observe(time.Since(start).Seconds())
	errText := ""
	if err != nil {
		m.fail.Inc()
		errText = err.Error()
		m.log.Warn("alert evaluation", "error", err)
	}
	m.logTransitions(trans)
	m.persist(t, false)
	m.am.Reset()
	for i := range alerts {
		a := &alerts[i]
		if a.State == StatePending || a.State == StateFiring {
			m.am.WithLabelValues(a.Rule, a.State.String(), a.Labels["severity"]).Inc()
		}
	}
	m.disp.Offer(alerts, t)
	m.state.Lock()
	m.alerts, m.lastEval, m.lastErr = alerts, t, errText
	m.state.Unlock()
}

func (m *Manager) logTransitions(trans []Transition) {
	for _, tr := range trans {
		a := &tr.Alert
		attrs := []any{"alertname", a.Rule, "from", tr.From.String(), "to", tr.To.String(), "labels", labelText(a.Labels),
			"value", a.Value, "threshold", a.Op + " " + formatFloat(a.Threshold), "requests", a.Requests}
		if len(a.Exemplars) > 0 {
			attrs = append(attrs, "trace_id", a.Exemplars[0].TraceID)
		}
		if a.Inhibited {
			attrs = append(attrs, "inhibited", true)
		}
		m.log.Info("alert", attrs...)
	}
}

// Alerts implements Reader.
func (m *Manager) Alerts() []Alert {
	m.state.RLock()
	defer m.state.RUnlock()
	out := make([]Alert, len(m.alerts))
	for i := range m.alerts {
		out[i] = m.alerts[i].clone()
	}
	return out
}

// RuleStatus is one rule's state in the API: the highest state of its
// alerts (inactive when none).
type RuleStatus struct {
	Name   string  `json:"name"`
	Scope  string  `json:"scope"`
	Target string  `json:"target,omitempty"`
	Metric string  `json:"metric"`
	SLO    string  `json:"slo,omitempty"`
	Op     string  `json:"op"`
	Fire   float64 `json:"threshold"`
	// Resolve is the resolve threshold (equal to threshold without
	// hysteresis).
	Resolve       float64 `json:"resolve_threshold"`
	For           string  `json:"for"`
	KeepFiringFor string  `json:"keep_firing_for"`
	Window        string  `json:"window"`
	State         State   `json:"state"`
	Alerts        int     `json:"alerts"`
}

// Rules returns every rule's status.
func (m *Manager) Rules() []RuleStatus {
	m.mu.Lock()
	rules := m.eval.Rules().rules
	m.mu.Unlock()
	alerts := m.Alerts()
	out := make([]RuleStatus, 0, len(rules))
	for _, r := range rules {
		st := RuleStatus{Name: r.name, Scope: r.scope.String(), Target: r.target, Metric: r.metric, Op: r.op, Fire: r.fire,
			Resolve: r.resolve, For: r.forD.String(), KeepFiringFor: r.keep.String(), Window: r.window.String()}
		if r.slo != nil {
			st.SLO = r.slo.name + "/" + r.slo.kind
		}
		for i := range alerts {
			a := &alerts[i]
			if a.Rule != r.name || (r.slo != nil && (a.Labels["slo"] != r.slo.name || a.Labels["severity"] != r.slo.kind)) {
				continue
			}
			st.Alerts++
			if rank(a.State) > rank(st.State) {
				st.State = a.State
			}
		}
		out = append(out, st)
	}
	return out
}

func rank(s State) int {
	switch s {
	case StateFiring:
		return 3
	case StatePending:
		return 2
	case StateResolved:
		return 1
	}
	return 0
}

// Handler serves GET /api/alerts: the rules with their state and the
// alerts (pending, firing, resolved) with since, value, threshold and
// exemplars. ?state=firing (or pending, resolved) filters the alerts.
func (m *Manager) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.state.RLock()
		at, lastErr := m.lastEval, m.lastErr
		m.state.RUnlock()
		alerts := m.Alerts()
		if f := r.URL.Query().Get("state"); f != "" {
			kept := alerts[:0]
			for _, a := range alerts {
				if a.State.String() == f {
					kept = append(kept, a)
				}
			}
			alerts = kept
		}
		m.mu.Lock()
		interval := m.interval
		m.mu.Unlock()
		body := struct {
			EvaluatedAt time.Time    `json:"evaluated_at,omitzero"`
			Interval    string       `json:"evaluation_interval"`
			Error       string       `json:"error,omitempty"`
			Rules       []RuleStatus `json:"rules"`
			Alerts      []Alert      `json:"alerts"`
		}{at, interval.String(), lastErr, m.Rules(), alerts}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(body)
	})
}

func formatFloat(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}
