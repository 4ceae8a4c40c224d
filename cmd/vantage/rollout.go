package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/rollout"
)

// rollouts is the running rollout controller (nil when the history is
// off, in which case config validation refuses rollouts).
type rollouts struct {
	ctl    *rollout.Controller
	hooks  *rollout.Webhooks
	cancel context.CancelFunc
	done   chan struct{}
}

func startRollouts(cfg *config.Config, g *gateway.Gateway, tel *telemetry, tally *rollout.Tally, logger *slog.Logger) (*rollouts, error) {
	if tel.history == nil || !tel.history.Enabled() {
		return &rollouts{}, nil
	}
	m, err := rollout.NewMetrics(tel.registerer)
	if err != nil {
		return nil, err
	}
	hooks := rollout.NewWebhooks(nil, logger)
	ctl, err := rollout.New(cfg, rollout.Options{
		Source: tel.history.Source(), Setter: g, Logger: logger, Observer: tel.observer,
		Gates: hooks, Metrics: m, StateDir: cfg.Rollout.StateDir, Tally: tally, Prober: g,
	})
	if err != nil {
		hooks.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &rollouts{ctl: ctl, hooks: hooks, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		ctl.Run(ctx, 100*time.Millisecond)
	}()
	return r, nil
}

func (r *rollouts) update(cfg *config.Config) {
	if r.ctl != nil {
		r.ctl.Update(cfg)
	}
}

func (r *rollouts) mount(extra map[string]http.Handler) map[string]http.Handler {
	if r.ctl == nil {
		return extra
	}
	if extra == nil {
		extra = map[string]http.Handler{}
	}
	h := r.ctl.Handler()
	for _, p := range rollout.Routes() {
		extra[p] = h
	}
	return extra
}

func (r *rollouts) stop() {
	if r.ctl == nil {
		return
	}
	r.cancel()
	<-r.done
	r.hooks.Close()
}

// cmdRollout is "vantage rollout list|status|pause|resume|promote|abort|restart [NAME] --admin URL".
func cmdRollout(args []string, stdout, stderr io.Writer) int {
	usage := "usage: vantage rollout list|status|pause|resume|promote|abort|restart [NAME] [--admin URL]"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("rollout "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	adminURL := fs.String("admin", "http://127.0.0.1:9901", "the admin API's base URL")
	// Flags may come before or after the name.
	var name string
	rest := args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	base := strings.TrimRight(*adminURL, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	client := &http.Client{Timeout: 10 * time.Second}
	var req *http.Request
	var err error
	switch verb {
	case "list":
		req, err = http.NewRequest(http.MethodGet, base+"/api/rollouts", nil)
	case "status":
		if name == "" {
			fmt.Fprintln(stderr, usage)
			return 2
		}
		req, err = http.NewRequest(http.MethodGet, base+"/api/rollouts/"+name, nil)
	case "pause", "resume", "promote", "abort", "restart":
		if name == "" {
			fmt.Fprintln(stderr, usage)
			return 2
		}
		req, err = http.NewRequest(http.MethodPost, base+"/api/rollouts/"+name+"/"+verb, nil)
	default:
		fmt.Fprintf(stderr, "vantage rollout: unknown command %q\n%s\n", verb, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "vantage rollout: %v\n", err)
		return 2
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "vantage rollout: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "vantage rollout %s: HTTP %d: %s", verb, resp.StatusCode, body)
		return 1
	}
	switch verb {
	case "list":
		var l struct{ Rollouts []rollout.Status }
		if err := json.Unmarshal(body, &l); err != nil {
			fmt.Fprintf(stderr, "vantage rollout: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%-20s %-16s %-12s %-6s %-7s %s\n", "NAME", "ROUTE", "STATE", "STEP", "WEIGHT", "LAST DECISION")
		for _, s := range l.Rollouts {
			last := ""
			if n := len(s.Decisions); n > 0 {
				d := s.Decisions[n-1]
				last = d.Action + ": " + d.Reason
			}
			fmt.Fprintf(stdout, "%-20s %-16s %-12s %-6s %-7s %s\n", s.Name, s.Route, s.State,
				fmt.Sprintf("%d/%d", s.Step+1, len(s.Steps)), fmt.Sprintf("%d%%", s.Weight), last)
		}
	default:
		var s rollout.Status
		if err := json.Unmarshal(body, &s); err != nil {
			fmt.Fprintf(stderr, "vantage rollout: %v\n", err)
			return 1
		}
		printStatus(stdout, &s)
	}
	return 0
}

func printStatus(w io.Writer, s *rollout.Status) {
	fmt.Fprintf(w, "rollout %s (route %s: canary %s, stable %s)\n", s.Name, s.Route, s.Canary, s.Stable)
	fmt.Fprintf(w, "  state %s, step %d/%d %v, canary weight %d%%, passes %d, failures %d\n",
		s.State, s.Step+1, len(s.Steps), s.Steps, s.Weight, s.Passes, s.Failures)
	if a := s.LastAnalysis; a != nil {
		fmt.Fprintf(w, "  last analysis [%s, %s): %s — %s\n", a.From.Format(time.TimeOnly), a.To.Format(time.TimeOnly), a.Verdict, a.Reason)
		fmt.Fprintf(w, "    requests: canary %d, stable %d (min %d each)\n", a.Canary.Requests, a.Stable.Requests, a.MinRequests)
		for _, c := range a.Checks {
			fmt.Fprintf(w, "    %-28s %-5s canary %-10.4g stable %-10.4g threshold %-10.4g %s\n", c.Name, c.Verdict, c.Canary, c.Stable, c.Threshold, c.Reason)
		}
	}
	for _, d := range s.Decisions {
		fmt.Fprintf(w, "  %s %-12s %s → %s, %d%%: %s\n", d.Time.Format(time.TimeOnly), d.Action, d.From, d.To, d.Weight, d.Reason)
		if d.Analysis != nil && len(d.Analysis.Exemplars) > 0 {
			fmt.Fprintf(w, "      failing canary traces: %s\n", strings.Join(d.Analysis.Exemplars, " "))
		}
	}
	if s.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", s.Error)
	}
}
