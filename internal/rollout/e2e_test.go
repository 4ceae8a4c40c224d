package rollout_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/rollout"
)

// upstream answers 200 after delay, and 500 to every errEvery-th request
// (never when 0).
func upstream(t *testing.T, delay time.Duration, errEvery int64) *httptest.Server {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		if errEvery > 0 && n.Add(1)%errEvery == 0 {
			w.WriteHeader(500)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

type stack struct {
	details sync.Map // split_chosen details seen → count
	cfg     *config.Config
	tally   *rollout.Tally
	hist    *history.History
	g       *gateway.Gateway
	srv     *httptest.Server
	ctl     *rollout.Controller
	stop    context.CancelFunc
	done    chan struct{}
}

// start builds the real history, gateway and controller for a config
// whose route "shop" splits between stable and canary.
func start(t *testing.T, stableURL, canaryURL, rolloutYAML, stateDir string) *stack {
	t.Helper()
	return startRoute(t, stableURL, canaryURL, "", rolloutYAML, stateDir)
}

// startRoute is start with more of the route's config (routeYAML, a
// flow mapping's entries, e.g. "retry: {attempts: 2}").
func startRoute(t *testing.T, stableURL, canaryURL, routeYAML, rolloutYAML, stateDir string) *stack {
	t.Helper()
	return startFull(t, stableURL, canaryURL, "{services: [{service: stable, weight: 100}, {service: canary, weight: 0}]}", routeYAML, rolloutYAML, stateDir)
}

// startFull is startRoute with the route's split too.
func startFull(t *testing.T, stableURL, canaryURL, splitYAML, routeYAML, rolloutYAML, stateDir string) *stack {
	t.Helper()
	if routeYAML != "" {
		routeYAML = "\n    " + routeYAML
	}
	y := fmt.Sprintf(`
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: stable, upstreams: [{url: %q}]}
  - {name: canary, upstreams: [{url: %q}]}
routes:
  - name: shop
    match: {path_prefix: /}
    split: %s%s
rollouts:
  - {name: shop, route: shop, canary: canary, stable: stable, %s}
`, stableURL, canaryURL, splitYAML, routeYAML, rolloutYAML)
	return startYAML(t, y, stateDir)
}

// startYAML builds the stack of a whole config.
func startYAML(t *testing.T, y, stateDir string) *stack {
	t.Helper()
	cfg, err := config.Parse("e2e.yml", []byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{cfg: cfg, tally: &rollout.Tally{}, done: make(chan struct{})}
	s.hist, err = history.New(cfg.History, history.Options{NoMachine: true, KPIs: cfg.Metrics.KPIs})
	if err != nil {
		t.Fatal(err)
	}
	s.hist.Start()
	seen := observe.ObserverFunc(func(ev observe.Event) {
		if ev.Kind == observe.EventSplitChosen && ev.Detail != "" {
			s.details.LoadOrStore(ev.Detail, true)
		}
	})
	s.g, err = gateway.New(cfg, gateway.Options{Observer: observe.Join(s.hist, seen), Telemetry: middleware.Telemetry{History: s.hist, Readers: []observe.RecordReader{s.tally}}, Mirrors: s.tally})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(s.g.Handler("public"))
	s.ctl, err = rollout.New(cfg, rollout.Options{Source: s.hist.Source(), Setter: s.g, StateDir: stateDir, Tally: s.tally, Prober: s.g})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() { defer close(s.done); s.ctl.Run(ctx, 50*time.Millisecond) }()
	t.Cleanup(s.close)
	return s
}

func (s *stack) close() {
	s.stop()
	<-s.done
	s.srv.Close()
	s.g.Close()
	s.hist.Close()
}

func (s *stack) status() rollout.Status {
	st, _ := s.ctl.Get("shop")
	return st
}

// load sends GETs from workers until until() is true, max requests were
// sent, or limit passed, pausing pause between a worker's requests. It
// returns the requests sent and the 5xx (or failed) responses.
func load(s *stack, workers int, pause, limit time.Duration, max int64, until func() bool) (sent, failed int64) {
	return loadWith(s, nil, workers, pause, limit, max, until)
}

// loadWith is load with request headers.
func loadWith(s *stack, hdr http.Header, workers int, pause, limit time.Duration, max int64, until func() bool) (sent, failed int64) {
	var n, bad atomic.Int64
	deadline := time.Now().Add(limit)
	tr := &http.Transport{MaxIdleConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	var stop atomic.Bool
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && time.Now().Before(deadline) && n.Add(1) <= max {
				req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/item", nil)
				for k, v := range hdr {
					req.Header[k] = v
				}
				resp, err := c.Do(req)
				if err != nil || resp.StatusCode >= 500 {
					bad.Add(1)
				}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if until() {
					stop.Store(true)
				}
				if pause > 0 {
					time.Sleep(pause)
				}
			}
		}()
	}
	wg.Wait()
	return min(n.Load(), max), bad.Load()
}

func TestE2EHealthyCanaryIsPromoted(t *testing.T) {
	st, ca := upstream(t, 3*time.Millisecond, 0), upstream(t, 3*time.Millisecond, 0)
	s := start(t, st.URL, ca.URL, "steps: [20, 50, 100], interval: 1s, min_requests: 20", "")
	began := time.Now()
	sent, failed := load(s, 8, 0, 15*time.Second, 200000, func() bool { return s.status().State == rollout.Promoted })
	got := s.status()
	if got.State != rollout.Promoted {
		t.Fatalf("not promoted after %d requests in %s: %s %d%%; last %+v", sent, time.Since(began), got.State, got.Weight, got.LastAnalysis)
	}
	ws, _ := s.g.SplitWeights("shop")
	if ws[1].Service != "canary" || ws[1].Weight != 100 || ws[0].Weight != 0 {
		t.Fatalf("weights %+v", ws)
	}
	if failed != 0 {
		t.Fatalf("%d failed responses", failed)
	}
	// Requests the split sent carry the rollout's name, state, step and
	// leg in their split_chosen event (the tracing stage's span event).
	for _, want := range []string{
		"rollout=shop state=progressing step=1/3 weight=20 leg=canary",
		"rollout=shop state=progressing step=1/3 weight=80 leg=stable",
		"rollout=shop state=progressing step=2/3 weight=50 leg=canary",
	} {
		if _, ok := s.details.Load(want); !ok {
			var seen []string
			s.details.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
			t.Fatalf("no request carried %q; seen %q", want, seen)
		}
	}
	t.Logf("promoted after %s and %d requests; decisions: %d", time.Since(began).Round(time.Millisecond), sent, len(got.Decisions))
}

func TestE2ECanaryWith5PercentErrorsIsRolledBack(t *testing.T) {
	st, ca := upstream(t, 2*time.Millisecond, 0), upstream(t, 2*time.Millisecond, 20)
	s := start(t, st.URL, ca.URL, "steps: [50, 100], interval: 2s, min_requests: 50, fail_intervals: 1", "")
	began := time.Now()
	sent, failed := load(s, 8, 0, 15*time.Second, 200000, func() bool { return s.status().State == rollout.RolledBack })
	got := s.status()
	if got.State != rollout.RolledBack {
		t.Fatalf("not rolled back after %d requests: %s; last %+v", sent, got.State, got.LastAnalysis)
	}
	last := got.Decisions[len(got.Decisions)-1]
	if last.Analysis == nil || last.Analysis.Canary.Errors == 0 {
		t.Fatalf("rollback without evidence: %+v", last)
	}
	ws, _ := s.g.SplitWeights("shop")
	if ws[1].Weight != 0 || ws[0].Weight != 100 {
		t.Fatalf("weights %+v", ws)
	}
	t.Logf("rolled back %s after start, %s after the canary got traffic; %d requests, %d failed responses served before the rollback (%.2f%%); %s",
		time.Since(began).Round(time.Millisecond), last.Time.Sub(got.Decisions[0].Time).Round(time.Millisecond), sent, failed,
		100*float64(failed)/float64(sent), last.Reason)
}

func TestE2ELowTrafficHolds(t *testing.T) {
	st, ca := upstream(t, 0, 0), upstream(t, 0, 0)
	s := start(t, st.URL, ca.URL, "steps: [50, 100], interval: 1s, min_requests: 50", "")
	load(s, 1, 100*time.Millisecond, 3500*time.Millisecond, 35, func() bool { return false })
	got := s.status()
	if got.State != rollout.Holding || got.Weight != 50 || got.LastAnalysis == nil || got.LastAnalysis.Verdict != rollout.Hold {
		t.Fatalf("%s %d%% %+v", got.State, got.Weight, got.LastAnalysis)
	}
}

func TestE2ERestartResumesAtTheSameStep(t *testing.T) {
	dir := t.TempDir()
	st, ca := upstream(t, 2*time.Millisecond, 0), upstream(t, 2*time.Millisecond, 0)
	yaml := "steps: [50, 90, 100], interval: 1s, min_requests: 20, checks: {latency_factor: 0}"
	s := start(t, st.URL, ca.URL, yaml, dir)
	load(s, 8, 0, 10*time.Second, 100000, func() bool { return s.status().Step >= 1 })
	before := s.status()
	if before.Step < 1 {
		t.Fatalf("did not step: %+v", before)
	}
	s.close()
	// A new process: a new gateway (the file's weights: canary 0) and
	// controller over the same state directory.
	s2 := start(t, st.URL, ca.URL, yaml, dir)
	after := s2.status()
	ws, _ := s2.g.SplitWeights("shop")
	if after.Step != before.Step || after.Weight != before.Weight || ws[1].Weight != before.Weight {
		t.Fatalf("before %d (%d%%), after %d (%d%%), gateway %+v", before.Step, before.Weight, after.Step, after.Weight, ws)
	}
}

func TestE2ECanaryDownRollsBackWithinOneInterval(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	st := upstream(t, 2*time.Millisecond, 0)
	s := start(t, st.URL, dead, "steps: [10, 100], interval: 1s, min_requests: 5, fail_intervals: 1", "")
	sent, failed := load(s, 8, 0, 10*time.Second, 100000, func() bool { return s.status().State == rollout.RolledBack })
	got := s.status()
	if got.State != rollout.RolledBack {
		t.Fatalf("not rolled back: %+v", got.LastAnalysis)
	}
	rb := got.Decisions[len(got.Decisions)-1]
	// The first analysis judges the first whole interval after the start.
	if d := rb.Time.Sub(got.Decisions[0].Time); d > 2*time.Second+500*time.Millisecond {
		for _, d := range got.Decisions {
			t.Logf("%s %s %s", d.Time.Format(time.StampMilli), d.Action, d.Reason)
		}
		t.Fatalf("rollback took %s", d)
	}
	// After the rollback stable serves everything without errors.
	sent2, failed2 := load(s, 4, 0, 5*time.Second, 400, func() bool { return false })
	if failed2 != 0 {
		t.Fatalf("%d of %d failed after the rollback", failed2, sent2)
	}
	t.Logf("canary down: rolled back %s after start; %d of %d responses failed before (%s)", rb.Time.Sub(got.Decisions[0].Time).Round(time.Millisecond), failed, sent, rb.Reason)
}

func TestE2ECanaryDownRetriesToStable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	st := upstream(t, 2*time.Millisecond, 0)
	s := startRoute(t, st.URL, dead, "retry: {attempts: 2, on: [connect_error], backoff: 1ms, max_backoff: 2ms}",
		"steps: [10, 100], interval: 1s, min_requests: 5, fail_intervals: 1", "")
	sent, failed := load(s, 8, 0, 10*time.Second, 100000, func() bool { return s.status().State == rollout.RolledBack })
	got := s.status()
	if got.State != rollout.RolledBack {
		t.Fatalf("not rolled back: %+v", got.LastAnalysis)
	}
	if failed != 0 {
		t.Fatalf("%d of %d GETs failed: the canary's failures were not retried on the stable", failed, sent)
	}
	rb := got.Decisions[len(got.Decisions)-1]
	a := rb.Analysis
	if a == nil || a.Canary.Rescued == 0 || a.Canary.Errors < a.Canary.Rescued || a.Canary.Requests < a.Canary.Rescued {
		t.Fatalf("the canary's failures are not counted against it: %+v", a)
	}
	var kinds bool
	for _, c := range a.Checks {
		if c.Name == "error_ratio" && c.Verdict == rollout.Fail {
			kinds = true
		}
	}
	if !kinds {
		t.Fatalf("no failing error_ratio check: %+v", a.Checks)
	}
	// The first analysis judges the first whole interval after the start.
	took := rb.Time.Sub(got.Decisions[0].Time)
	if took > 2*time.Second+500*time.Millisecond {
		t.Fatalf("rollback took %s", took)
	}
	sent2, failed2 := load(s, 4, 0, 5*time.Second, 400, func() bool { return false })
	if failed2 != 0 {
		t.Fatalf("%d of %d failed after the rollback", failed2, sent2)
	}
	t.Logf("canary down, retries to stable: rolled back %s after start; %d of %d GETs failed before; the analysis counted %d canary requests, %d of them retried on the stable and %d 5xx (%s)",
		took.Round(time.Millisecond), failed, sent, a.Canary.Requests, a.Canary.Rescued, a.Canary.Errors, rb.Reason)
}

// TestE2ELowTrafficWithSyntheticLoadGetsAVerdict: the same low traffic as
// TestE2ELowTrafficHolds, with a synthetic probe: the probes fill both
// legs' samples, and the rollout is promoted instead of holding.
func TestE2ELowTrafficWithSyntheticLoadGetsAVerdict(t *testing.T) {
	var probes atomic.Int64
	probed := func() *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				probes.Add(1)
			}
			io.WriteString(w, "ok")
		}))
		t.Cleanup(s.Close)
		return s
	}
	st, ca := probed(), probed()
	s := start(t, st.URL, ca.URL, "steps: [50, 100], interval: 1s, min_requests: 30, checks: {latency_factor: 0}, synthetic: {path: /healthz, rate: 40}", "")
	load(s, 1, 100*time.Millisecond, 8*time.Second, 80, func() bool { return s.status().State == rollout.Promoted })
	got := s.status()
	if got.State != rollout.Promoted {
		t.Fatalf("%s %d%% %+v", got.State, got.Weight, got.LastAnalysis)
	}
	var syn uint64
	for _, d := range got.Decisions {
		if d.Analysis != nil {
			syn += d.Analysis.Canary.Synthetic
		}
	}
	if syn == 0 || probes.Load() == 0 {
		t.Fatalf("no synthetic requests in the evidence (%d probes sent)", probes.Load())
	}
	t.Logf("promoted at 10 requests/s with %d probes sent, %d counted on the canary's leg in the deciding analyses", probes.Load(), syn)
}
