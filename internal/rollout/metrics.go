package rollout

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantage-gateway/vantage/internal/config"
)

// Metrics exports the rollouts' state. Labels come from config names and
// check names only. A nil *Metrics does nothing.
type Metrics struct {
	step, weight, state *prometheus.GaugeVec
	check               *prometheus.GaugeVec
}

// NewMetrics registers the rollout metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		step: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vantage_rollout_step",
			Help: "The rollout's current step (1-based; 0 before the first)."}, []string{"rollout", "route"}),
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vantage_rollout_weight",
			Help: "The canary's weight in percent, as the rollout set it."}, []string{"rollout", "route"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vantage_rollout_state",
			Help: "1 for the rollout's current state, 0 for the others."}, []string{"rollout", "route", "state"}),
		check: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vantage_rollout_check_value",
			Help: "A check's value at the last analysis, per leg (canary, stable) and for its threshold."}, []string{"rollout", "check", "leg"}),
	}
	for _, c := range []prometheus.Collector{m.step, m.weight, m.state, m.check} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) set(r *rollout) {
	if m == nil {
		return
	}
	m.step.WithLabelValues(r.cfg.Name, r.cfg.Route).Set(float64(r.st.Step + 1))
	m.weight.WithLabelValues(r.cfg.Name, r.cfg.Route).Set(float64(r.st.Weight))
	for _, s := range allStates {
		v := 0.0
		if s == r.st.State {
			v = 1
		}
		m.state.WithLabelValues(r.cfg.Name, r.cfg.Route, string(s)).Set(v)
	}
}

func (m *Metrics) checks(r *config.Rollout, a *Analysis) {
	if m == nil {
		return
	}
	for _, c := range a.Checks {
		m.check.WithLabelValues(r.Name, c.Name, "canary").Set(c.Canary)
		m.check.WithLabelValues(r.Name, c.Name, "stable").Set(c.Stable)
		m.check.WithLabelValues(r.Name, c.Name, "threshold").Set(c.Threshold)
	}
}

func (m *Metrics) drop(name string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"rollout": name}
	m.step.DeletePartialMatch(l)
	m.weight.DeletePartialMatch(l)
	m.state.DeletePartialMatch(l)
	m.check.DeletePartialMatch(l)
}
