package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// State is a rollout's state.
type State string

// The states.
const (
	// Pending: not started (the split keeps the file's weights).
	Pending State = "pending"
	// Progressing: the canary holds its step's weight and the last
	// analysis passed.
	Progressing State = "progressing"
	// Holding: the last analysis held (too few requests, not yet
	// conclusive, a refused gate) or failed fewer than fail_intervals
	// times in a row.
	Holding State = "holding"
	// Paused: a person paused it; no analysis, the weights stay.
	Paused State = "paused"
	// RolledBack: all traffic to stable until resumed or restarted.
	RolledBack State = "rolled_back"
	// Promoted: the canary takes all traffic.
	Promoted State = "promoted"
	// Baking: a blue-green rollout has switched all traffic to the new
	// version and keeps checking it for its bake time; failing checks
	// switch back.
	Baking State = "baking"
)

var allStates = []State{Pending, Progressing, Holding, Paused, RolledBack, Promoted, Baking}

// WeightSetter changes a route's split weights. The gateway's SetSplit
// implements it; a fleet can wrap it so that only the replica holding a
// lease acts. Implementations must be safe for concurrent use.
type WeightSetter interface {
	SetSplit(route string, weights map[string]int, source observe.ChangeSource) ([]config.SplitService, error)
}

// Labeler, when the WeightSetter implements it, labels a route's split
// legs (the gateway's SetSplitLabels): the controller names the rollout,
// its state, step and weight on each of its two legs, so every request
// the split sends there carries them in its split_chosen span event.
type Labeler interface {
	SetSplitLabels(route string, labels map[string]string) error
}

// Lease says whether this process may act on a rollout. Without one
// (nil) it always may. A fleet puts a distributed lease behind it;
// replicas that do not hold it keep their state but neither analyse nor
// act.
type Lease interface {
	Held(rollout string) bool
}

// Options configure a Controller. Source and Setter are required.
type Options struct {
	Source history.Source
	Setter WeightSetter
	// Clock drives the analysis schedule (default the real clock).
	Clock clock.Clock
	// Logger receives one line per transition (default: discarded).
	Logger *slog.Logger
	// Observer receives an EventRolloutTransition per transition.
	Observer observe.Observer
	// Lease, when set, gates acting (see Lease).
	Lease Lease
	// Gates, when set, calls the configured webhooks (see Webhooks).
	Gates Gates
	// Metrics, when set, exports the rollouts' state.
	Metrics *Metrics
	// StateDir, when set, keeps each rollout's state in a file so that a
	// restart resumes at the same step.
	StateDir string
	// Tally, when set, is the per-request bookkeeping the gateway's end
	// stage feeds (see Tally); the controller keeps its rollouts in step
	// with the config and adds its counts to the analysis.
	Tally *Tally
	// Prober, when set with a Tally, sends the rollouts' synthetic probes
	// (the gateway's Probe).
	Prober Prober
}

// Prober sends one GET of path to a host of service and returns the
// status (0 when none came), how it failed and the time to the response
// headers. The gateway implements it.
type Prober interface {
	Probe(ctx context.Context, service, path string) (int, observe.ErrorKind, time.Duration)
}

// Gates confirms transitions and receives events. Webhooks implements it.
type Gates interface {
	// Confirm asks the gate kind ("before_start", "before_step",
	// "before_promotion") of r; a nil error confirms.
	Confirm(ctx context.Context, r *config.Rollout, kind string, st Status) error
	// Notify queues a transition for the event hook; it never blocks.
	Notify(r *config.Rollout, d Decision)
}

// Decision records one transition and its evidence.
type Decision struct {
	Time time.Time `json:"time"`
	From State     `json:"from"`
	To   State     `json:"to"`
	// Action is what was done: "start", "step", "hold", "rollback",
	// "promote", "pause", "resume", "abort", "restart", "gate_refused",
	// "reload", and for blue-green "switch" and "switch_back".
	Action string `json:"action"`
	// Step is the step index after the decision (-1 before the first) and
	// Weight the canary's weight.
	Step   int    `json:"step"`
	Weight int    `json:"weight"`
	Reason string `json:"reason"`
	// Analysis is the evidence, for decisions made on one.
	Analysis *Analysis `json:"analysis,omitempty"`
}

// Status is a rollout's state as the admin API shows it. The caller owns
// it.
type Status struct {
	Name   string `json:"name"`
	Route  string `json:"route"`
	Canary string `json:"canary"`
	Stable string `json:"stable"`
	// Mode is "canary" or "blue_green".
	Mode  string `json:"mode"`
	State State  `json:"state"`
	// SwitchedAt (blue-green) is when all traffic switched to the new
	// version, and BakeUntil when its bake time ends.
	SwitchedAt time.Time `json:"switched_at,omitzero"`
	BakeUntil  time.Time `json:"bake_until,omitzero"`
	// Step is the index into Steps (-1 before the first step) and Weight
	// the canary's weight in percent.
	Step   int   `json:"step"`
	Steps  []int `json:"steps"`
	Weight int   `json:"weight"`
	// Passes and Failures are the consecutive passing and failing
	// intervals at this step.
	Passes   int `json:"passes"`
	Failures int `json:"failures"`
	// NextAnalysis is when the next interval ends.
	NextAnalysis time.Time `json:"next_analysis,omitzero"`
	LastAnalysis *Analysis `json:"last_analysis,omitempty"`
	// Decisions are the most recent transitions, oldest first.
	Decisions []Decision `json:"decisions"`
	// Error is the last error reading history or setting weights.
	Error string `json:"error,omitempty"`
}

// Reader is what a dashboard reads of the rollouts.
type Reader interface {
	List() []Status
	Get(name string) (Status, bool)
}

// maxDecisions bounds each rollout's kept decisions.
const maxDecisions = 50

type rollout struct {
	cfg   config.Rollout
	split config.Split // the file's split when cfg was applied
	steps []int
	st    Status
	next  time.Time
	gen   uint64 // bumped by every transition (gate answers check it)
	busy  bool   // a gate call is in flight
	// probing is set while a batch of synthetic probes is in flight;
	// probed is when the last batch was due.
	probing bool
	probed  time.Time
}

// Controller runs the rollouts of one config. All methods are safe for
// concurrent use.
type Controller struct {
	o  Options
	mu sync.Mutex
	rs map[string]*rollout
}

// ErrNotFound is returned for an unknown rollout name.
var ErrNotFound = errors.New("no such rollout")

// New builds a controller for cfg's rollouts, resuming saved state from
// o.StateDir when there is any.
func New(cfg *config.Config, o Options) (*Controller, error) {
	if o.Source == nil || o.Setter == nil {
		return nil, errors.New("rollout: Source and Setter are required")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Observer == nil {
		o.Observer = observe.Nop{}
	}
	c := &Controller{o: o, rs: map[string]*rollout{}}
	c.Update(cfg)
	return c, nil
}

func splitOf(cfg *config.Config, route string) config.Split {
	for i := range cfg.Routes {
		if cfg.Routes[i].Name == route && cfg.Routes[i].Split != nil {
			return *cfg.Routes[i].Split
		}
	}
	return config.Split{}
}

// Update applies a new config (after a reload): a rollout keeps its state
// by name when its route, legs and steps are unchanged and the file's
// split of the route is unchanged; it then re-applies its weights (the
// reload has put the file's back). Otherwise it starts over as pending
// (a promoted or rolled back rollout stays so) and the file's weights
// stand. Rollouts no longer in the file are dropped.
func (c *Controller) Update(cfg *config.Config) {
	now := c.o.Clock.Now()
	c.o.Tally.Update(cfg)
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.rs
	c.rs = make(map[string]*rollout, len(cfg.Rollouts))
	for i := range cfg.Rollouts {
		rc := cfg.Rollouts[i]
		r := &rollout{cfg: rc, split: splitOf(cfg, rc.Route), steps: rc.StepWeights()}
		r.st = Status{Name: rc.Name, Route: rc.Route, Canary: rc.Canary, Stable: rc.Stable, Mode: rc.Mode, State: Pending, Step: -1, Steps: r.steps}
		if rc.Paused {
			r.st.State = Paused
		}
		prev := old[rc.Name]
		if prev == nil {
			if saved, ok := c.load(rc.Name); ok && sameShape(&saved, r) {
				prev = &rollout{cfg: rc, split: r.split, steps: r.steps, st: saved}
			}
		}
		switch {
		case prev == nil:
		case !sameShape(&prev.st, r):
		case !reflect.DeepEqual(prev.split, r.split) && old[rc.Name] != nil:
			// The file's split changed: a new release starts over.
			if prev.st.State == Promoted || prev.st.State == RolledBack {
				r.st = prev.st
			}
			c.record(r, now, r.st.State, "reload", "the route's split changed in the file; its weights stand", nil)
		default:
			r.st = prev.st
			r.st.Steps = r.steps
			r.st.Mode = rc.Mode
			r.next = prev.next
			r.gen = prev.gen
			if r.st.State != Pending {
				if err := c.applyWeight(r, r.st.Weight); err != nil {
					r.st.Error = err.Error()
				}
				if r.next.IsZero() && (r.st.State == Progressing || r.st.State == Holding || r.st.State == Baking) {
					r.next = nextBoundary(now, rc.Interval.D())
				}
			}
		}
		c.rs[rc.Name] = r
		c.o.Metrics.set(r)
		c.label(r)
	}
	for name := range old {
		if c.rs[name] == nil {
			c.o.Metrics.drop(name)
		}
	}
}

// sameShape reports whether saved state fits r's config.
func sameShape(st *Status, r *rollout) bool {
	return st.Route == r.cfg.Route && (st.Mode == r.cfg.Mode || st.Mode == "" && !r.cfg.BlueGreen()) && st.Canary == r.cfg.Canary && st.Stable == r.cfg.Stable &&
		reflect.DeepEqual(st.Steps, r.steps)
}

// nextBoundary returns the end of the first whole interval starting at or
// after now's next second (intervals start on whole seconds, the
// history's resolution).
func nextBoundary(now time.Time, d time.Duration) time.Time {
	start := now.Truncate(time.Second)
	if !start.Equal(now) {
		start = start.Add(time.Second)
	}
	return start.Add(d)
}

// Tick runs every rollout whose interval has ended by now and whose data
// the history holds. The controller's Run calls it; tests call it at
// fixed times.
func (c *Controller) Tick(ctx context.Context, now time.Time) {
	c.mu.Lock()
	names := make([]string, 0, len(c.rs))
	for n := range c.rs {
		names = append(names, n)
	}
	c.mu.Unlock()
	sort.Strings(names)
	for _, n := range names {
		c.tickOne(ctx, n, now)
		c.probe(ctx, n, now)
	}
}

// probe sends the synthetic load of rollout name, if it has one and its
// last analysis had too few requests: rate probes a second to each leg,
// in one batch per whole second at most, from a goroutine of its own (one
// batch in flight per rollout), each probe bounded by the webhook
// timeout.
func (c *Controller) probe(ctx context.Context, name string, now time.Time) {
	if c.o.Prober == nil || c.o.Tally == nil {
		return
	}
	c.mu.Lock()
	r := c.rs[name]
	if r == nil || r.cfg.Synthetic == nil || r.probing || (r.st.State != Progressing && r.st.State != Holding) ||
		(r.cfg.BlueGreen() && r.cfg.TestTraffic == config.TestTrafficMirror) {
		c.mu.Unlock()
		return
	}
	a := r.st.LastAnalysis
	// Quiet: the users' requests alone (the probes' left out) were too few.
	m := uint64(r.cfg.MinRequests)
	quiet := a == nil || a.Canary.Requests-min(a.Canary.Requests, a.Canary.Synthetic) < m || a.Stable.Requests-min(a.Stable.Requests, a.Stable.Synthetic) < m
	if !quiet || now.Sub(r.probed) < time.Second {
		c.mu.Unlock()
		return
	}
	r.probing, r.probed = true, now
	rc := r.cfg
	c.mu.Unlock()
	go func() {
		defer func() {
			c.mu.Lock()
			r.probing = false
			c.mu.Unlock()
		}()
		for range rc.Synthetic.Rate {
			for _, leg := range []string{rc.Canary, rc.Stable} {
				pctx, cancel := context.WithTimeout(ctx, rc.Webhooks.Timeout.D())
				status, kind, d := c.o.Prober.Probe(pctx, leg, rc.Synthetic.Path)
				cancel()
				c.o.Tally.Synthetic(rc.Name, leg == rc.Canary, status, kind, d)
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
}

func (c *Controller) tickOne(ctx context.Context, name string, now time.Time) {
	if c.o.Lease != nil && !c.o.Lease.Held(name) {
		return
	}
	c.mu.Lock()
	r := c.rs[name]
	if r == nil || r.busy {
		c.mu.Unlock()
		return
	}
	switch r.st.State {
	case Pending:
		wait := !r.next.IsZero() && now.Before(r.next) // after a refused gate
		c.mu.Unlock()
		if wait {
			return
		}
		c.advance(ctx, name, r, now, "start")
		return
	case Progressing, Holding, Baking:
	default:
		c.mu.Unlock()
		return
	}
	if r.next.IsZero() {
		r.next = nextBoundary(now, r.cfg.Interval.D())
		r.st.NextAnalysis = r.next
	}
	end := r.next
	rc := r.cfg
	baking, switched := r.st.State == Baking, r.st.SwitchedAt
	c.mu.Unlock()
	if now.Before(end) {
		return
	}
	latest, err := c.o.Source.Latest(ctx)
	if err != nil || latest.Before(end) {
		return // the interval's last second is not sealed yet
	}
	var a Analysis
	if baking {
		a, err = AnalyzeBake(ctx, c.o.Source, c.o.Tally, &rc, end, switched)
	} else {
		a, err = AnalyzeWith(ctx, c.o.Source, c.o.Tally, &rc, end)
	}
	if err != nil {
		if errors.Is(err, history.ErrNotFound) {
			// A leg without any traffic yet has no series: too few requests.
			a = Judge(&rc, &history.Point{}, &history.Point{})
			a.From, a.To = end.Add(-rc.Interval.D()), end
		} else {
			c.mu.Lock()
			r.st.Error = err.Error()
			c.mu.Unlock()
			return
		}
	}
	c.o.Metrics.checks(&rc, &a)

	c.mu.Lock()
	if c.rs[name] != r || (r.st.State != Progressing && r.st.State != Holding && r.st.State != Baking) || !r.next.Equal(end) {
		c.mu.Unlock()
		return
	}
	r.st.Error = ""
	r.st.LastAnalysis = &a
	r.next = end.Add(rc.Interval.D())
	r.st.NextAnalysis = r.next
	if r.st.State == Baking {
		c.bake(r, now, end, &a)
		c.mu.Unlock()
		return
	}
	switch a.Verdict {
	case Pass:
		r.st.Passes++
		r.st.Failures = 0
		if r.st.Passes < rc.PassIntervals {
			c.record(r, now, Progressing, "pass", fmt.Sprintf("%d of %d passing intervals", r.st.Passes, rc.PassIntervals), &a)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.advance(ctx, name, r, now, "step")
		return
	case Fail:
		r.st.Failures++
		r.st.Passes = 0
		if r.st.Failures >= rc.FailIntervals {
			c.rollback(r, now, "rollback", fmt.Sprintf("%d failing intervals: %s", r.st.Failures, a.Reason), &a)
		} else {
			c.record(r, now, Holding, "fail", fmt.Sprintf("%d of %d failing intervals: %s", r.st.Failures, rc.FailIntervals, a.Reason), &a)
		}
	default:
		c.record(r, now, Holding, "hold", a.Reason, &a)
	}
	c.mu.Unlock()
}

// bake judges one interval of a blue-green rollout's bake time: failing
// fail_intervals times in a row switches back; a pass once the bake time
// is over promotes. c.mu is held.
func (c *Controller) bake(r *rollout, now, end time.Time, a *Analysis) {
	rc := &r.cfg
	switch a.Verdict {
	case Fail:
		r.st.Failures++
		r.st.Passes = 0
		if r.st.Failures >= rc.FailIntervals {
			c.rollback(r, now, "switch_back", fmt.Sprintf("%d failing intervals in the bake time: %s", r.st.Failures, a.Reason), a)
			return
		}
		c.record(r, now, Baking, "fail", fmt.Sprintf("%d of %d failing intervals: %s", r.st.Failures, rc.FailIntervals, a.Reason), a)
		return
	case Pass:
		r.st.Passes++
		r.st.Failures = 0
		if !end.Before(r.st.BakeUntil) {
			r.next = time.Time{}
			r.st.NextAnalysis = time.Time{}
			c.record(r, now, Promoted, "promote", fmt.Sprintf("baked for %s: the new version keeps all traffic", rc.BakeTime), a)
			return
		}
		c.record(r, now, Baking, "pass", fmt.Sprintf("baking until %s", r.st.BakeUntil.Format(time.RFC3339)), a)
	default:
		reason := a.Reason
		if !end.Before(r.st.BakeUntil) {
			reason = "the bake time is over but the last interval was not conclusive: " + reason
		}
		c.record(r, now, Baking, "hold", reason, a)
	}
}

// advance moves r to its next step (or starts it), asking the gate first
// without holding the lock.
func (c *Controller) advance(ctx context.Context, name string, r *rollout, now time.Time, why string) {
	c.mu.Lock()
	next := r.st.Step + 1
	if next >= len(r.steps) {
		c.mu.Unlock()
		return
	}
	kind := "before_step"
	testPhase := r.cfg.BlueGreen() && why == "start" // a blue-green start only begins the test traffic's analysis
	switch {
	case testPhase:
		kind = "before_start"
	case next == len(r.steps)-1:
		kind = "before_promotion"
	case r.st.Step < 0:
		kind = "before_start"
	}
	gen := r.gen
	st := c.statusLocked(r)
	r.busy = true
	c.mu.Unlock()

	var gateErr error
	if c.o.Gates != nil {
		gateErr = c.o.Gates.Confirm(ctx, &r.cfg, kind, st)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	r.busy = false
	if c.rs[name] != r || r.gen != gen {
		return // a person acted meanwhile
	}
	if gateErr != nil {
		to := r.st.State
		if to != Pending {
			to = Holding
		}
		r.next = nextBoundary(now, r.cfg.Interval.D())
		r.st.NextAnalysis = r.next
		r.st.Passes = 0
		c.record(r, now, to, "gate_refused", fmt.Sprintf("%s: %v", kind, gateErr), r.st.LastAnalysis)
		return
	}
	if testPhase {
		if err := c.applyWeight(r, 0); err != nil {
			r.st.Error = err.Error()
			return
		}
		r.st.Weight, r.st.Passes, r.st.Failures = 0, 0, 0
		r.next = nextBoundary(now, r.cfg.Interval.D())
		r.st.NextAnalysis = r.next
		c.record(r, now, Progressing, "start", fmt.Sprintf("blue-green: judging the %s test traffic to %s against %s", r.cfg.TestTraffic, r.cfg.Canary, r.cfg.Stable), nil)
		return
	}
	w := r.steps[next]
	if err := c.applyWeight(r, w); err != nil {
		r.st.Error = err.Error()
		return
	}
	r.st.Step, r.st.Weight, r.st.Passes, r.st.Failures = next, w, 0, 0
	r.next = nextBoundary(now, r.cfg.Interval.D())
	r.st.NextAnalysis = r.next
	if r.cfg.BlueGreen() {
		r.st.SwitchedAt = now
		r.st.BakeUntil = r.next.Add(r.cfg.BakeTime.D() - r.cfg.Interval.D())
		c.record(r, now, Baking, "switch", fmt.Sprintf("all traffic to %s; baking for %s (%s)", r.cfg.Canary, r.cfg.BakeTime, why), r.st.LastAnalysis)
		return
	}
	if next == len(r.steps)-1 {
		r.st.NextAnalysis = time.Time{}
		c.record(r, now, Promoted, "promote", fmt.Sprintf("the canary takes %d%% (%s)", w, why), r.st.LastAnalysis)
		return
	}
	action := "step"
	if why == "start" {
		action = "start"
	}
	c.record(r, now, Progressing, action, fmt.Sprintf("canary weight %d%% (step %d of %d)", w, next+1, len(r.steps)), r.st.LastAnalysis)
}

// rollback sends all traffic to stable. c.mu is held.
func (c *Controller) rollback(r *rollout, now time.Time, action, reason string, a *Analysis) {
	if err := c.applyWeight(r, 0); err != nil {
		r.st.Error = err.Error()
	}
	r.st.Weight = 0
	r.next = time.Time{}
	r.st.NextAnalysis = time.Time{}
	c.record(r, now, RolledBack, action, reason, a)
}

// applyWeight sets the canary to w percent and the stable to 100-w.
func (c *Controller) applyWeight(r *rollout, w int) error {
	_, err := c.o.Setter.SetSplit(r.cfg.Route, map[string]int{r.cfg.Canary: w, r.cfg.Stable: 100 - w}, observe.SourceRollout)
	if err != nil {
		return fmt.Errorf("rollout %q: setting weights of route %q: %w", r.cfg.Name, r.cfg.Route, err)
	}
	return nil
}

// record appends a transition, logs it, reports it, exports it and saves
// the state. c.mu is held.
func (c *Controller) record(r *rollout, now time.Time, to State, action, reason string, a *Analysis) {
	d := Decision{Time: now, From: r.st.State, To: to, Action: action, Step: r.st.Step, Weight: r.st.Weight, Reason: reason, Analysis: a}
	r.st.State = to
	r.gen++
	if len(r.st.Decisions) >= maxDecisions {
		r.st.Decisions = append(r.st.Decisions[:0], r.st.Decisions[1:]...)
	}
	r.st.Decisions = append(r.st.Decisions, d)
	attrs := []any{"rollout", r.cfg.Name, "route", r.cfg.Route, "action", action, "from", string(d.From), "to", string(to),
		"step", d.Step, "weight", d.Weight, "reason", reason}
	if a != nil {
		attrs = append(attrs, "verdict", string(a.Verdict), "canary_requests", a.Canary.Requests, "stable_requests", a.Stable.Requests)
		for _, ch := range a.Checks {
			attrs = append(attrs, slog.Group(ch.Name, "canary", ch.Canary, "stable", ch.Stable, "threshold", ch.Threshold, "verdict", string(ch.Verdict)))
		}
		if len(a.Exemplars) > 0 {
			attrs = append(attrs, "exemplars", a.Exemplars)
		}
	}
	c.o.Logger.Info("rollout decision", attrs...)
	c.o.Observer.Observe(observe.Event{Kind: observe.EventRolloutTransition, Time: now, Route: r.cfg.Route, Service: r.cfg.Canary,
		Detail: fmt.Sprintf("%s: %s %s → %s, canary %d%%: %s", r.cfg.Name, action, d.From, to, d.Weight, reason)})
	if c.o.Gates != nil {
		c.o.Gates.Notify(&r.cfg, d)
	}
	c.o.Metrics.set(r)
	c.label(r)
	c.save(r)
}

// label names r's state on its split's legs (see Labeler). c.mu is held.
func (c *Controller) label(r *rollout) {
	l, ok := c.o.Setter.(Labeler)
	if !ok {
		return
	}
	if r.st.State == Pending {
		_ = l.SetSplitLabels(r.cfg.Route, nil) // the file's weights: nothing to say yet
		return
	}
	step := fmt.Sprintf("rollout=%s state=%s step=%d/%d", r.cfg.Name, r.st.State, r.st.Step+1, len(r.steps))
	err := l.SetSplitLabels(r.cfg.Route, map[string]string{
		r.cfg.Canary: fmt.Sprintf("%s weight=%d leg=canary", step, r.st.Weight),
		r.cfg.Stable: fmt.Sprintf("%s weight=%d leg=stable", step, 100-r.st.Weight),
	})
	if err != nil {
		r.st.Error = err.Error()
	}
}

func (c *Controller) statusLocked(r *rollout) Status {
	st := r.st
	st.Steps = append([]int(nil), r.steps...)
	st.Decisions = append([]Decision(nil), r.st.Decisions...)
	return st
}

// List returns every rollout's status, by name.
func (c *Controller) List() []Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Status, 0, len(c.rs))
	for _, r := range c.rs {
		out = append(out, c.statusLocked(r))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Get returns one rollout's status.
func (c *Controller) Get(name string) (Status, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.rs[name]
	if r == nil {
		return Status{}, false
	}
	return c.statusLocked(r), true
}

// ErrConflict is returned for an action the rollout's state does not
// allow (e.g. pausing a promoted rollout).
var ErrConflict = errors.New("not allowed in this state")

// Act applies a person's action: "pause", "resume", "promote", "abort" or
// "restart". Promote and abort act at once, without gates.
func (c *Controller) Act(name, action string) (Status, error) {
	now := c.o.Clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.rs[name]
	if r == nil {
		return Status{}, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	s := r.st.State
	switch action {
	case "pause":
		if s == Promoted || s == RolledBack || s == Paused || s == Baking {
			return c.statusLocked(r), fmt.Errorf("%w: cannot pause a %s rollout", ErrConflict, s)
		}
		r.next = time.Time{}
		r.st.NextAnalysis = time.Time{}
		c.record(r, now, Paused, "pause", "paused through the admin API", nil)
	case "resume":
		if s != Paused && s != RolledBack && s != Holding {
			return c.statusLocked(r), fmt.Errorf("%w: only a paused, holding or rolled back rollout resumes, this one is %s", ErrConflict, s)
		}
		to := Progressing
		if r.cfg.BlueGreen() && s != Holding {
			// Back to the test traffic, all traffic on the stable.
			if err := c.applyWeight(r, 0); err != nil {
				return c.statusLocked(r), err
			}
			r.st.Step, r.st.Weight = -1, 0
			r.st.SwitchedAt, r.st.BakeUntil = time.Time{}, time.Time{}
		} else if r.st.Step < 0 {
			to = Pending
		} else if err := c.applyWeight(r, r.steps[r.st.Step]); err != nil {
			return c.statusLocked(r), err
		} else {
			r.st.Weight = r.steps[r.st.Step]
		}
		r.st.Passes, r.st.Failures = 0, 0
		r.next = nextBoundary(now, r.cfg.Interval.D())
		r.st.NextAnalysis = r.next
		c.record(r, now, to, "resume", fmt.Sprintf("resumed at step %d (%d%%)", r.st.Step+1, r.st.Weight), nil)
	case "promote":
		if s == Promoted {
			return c.statusLocked(r), fmt.Errorf("%w: already promoted", ErrConflict)
		}
		if err := c.applyWeight(r, 100); err != nil {
			return c.statusLocked(r), err
		}
		r.st.Step, r.st.Weight = len(r.steps)-1, 100
		r.next = time.Time{}
		r.st.NextAnalysis = time.Time{}
		c.record(r, now, Promoted, "promote", "promoted through the admin API", nil)
	case "abort":
		if s == RolledBack {
			return c.statusLocked(r), fmt.Errorf("%w: already rolled back", ErrConflict)
		}
		c.rollback(r, now, "abort", "aborted through the admin API", nil)
	case "restart":
		if err := c.applyWeight(r, 0); err != nil {
			return c.statusLocked(r), err
		}
		r.st.Step, r.st.Weight, r.st.Passes, r.st.Failures = -1, 0, 0, 0
		r.st.SwitchedAt, r.st.BakeUntil = time.Time{}, time.Time{}
		r.next = time.Time{}
		r.st.NextAnalysis = time.Time{}
		r.st.LastAnalysis = nil
		c.record(r, now, Pending, "restart", "restarted through the admin API: all traffic to stable, starting from the first step", nil)
	default:
		return Status{}, fmt.Errorf("unknown action %q (pause, resume, promote, abort, restart)", action)
	}
	return c.statusLocked(r), nil
}

// Run ticks every tick (250ms when zero) until ctx is done.
func (c *Controller) Run(ctx context.Context, tick time.Duration) {
	if tick <= 0 {
		tick = 250 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Tick(ctx, c.o.Clock.Now())
		}
	}
}

func stateValue(s State) float64 {
	for i, x := range allStates {
		if x == s {
			return float64(i)
		}
	}
	return math.NaN()
}

var _ Reader = (*Controller)(nil)
