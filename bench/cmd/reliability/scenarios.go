package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vantage-gateway/vantage/bench/harness"
	"github.com/vantage-gateway/vantage/bench/reliability"
)

var ok = reliability.Verdict

// loadWhile runs a load of conns workers on url for d and, at the same time,
// fn; it returns the load's result once both are done.
func loadWhile(ctx context.Context, o reliability.LoadOptions, fn func(ctx context.Context)) reliability.LoadResult {
	var (
		res reliability.LoadResult
		wg  sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		res, _ = reliability.Load(ctx, o)
	}()
	fn(ctx)
	wg.Wait()
	return res
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// reload rewrites the config 100 times (a response header's value changes
// each time) and sends SIGHUP after each, under load; with invalid, every
// other write is a config that fails validation.
func (e *env) reload(ctx context.Context, invalid bool) error {
	name := "reloads under load"
	if invalid {
		name = "invalid reloads under load"
	}
	_, up, err := e.startUpstream(ctx, "", 64, 0)
	if err != nil {
		return err
	}
	cfg := func(gen int) string {
		return yaml([]string{up}, "", fmt.Sprintf("response_headers:\n  set: {X-Generation: \"%d\"}\n", gen), quiet)
	}
	g, err := e.startVantage(ctx, cfg(0), "/")
	if err != nil {
		return err
	}
	const reloads = 100
	last := 0
	res := loadWhile(ctx, reliability.LoadOptions{URL: g.url("/"), Conns: 16, Duration: 12 * time.Second}, func(ctx context.Context) {
		sleep(ctx, time.Second)
		for i := 1; i <= reloads && ctx.Err() == nil; i++ {
			c := cfg(i)
			if invalid && i%2 == 0 {
				c = strings.Replace(c, "path_prefix: /", "path_prefix: /\n      no_such_key: 1", 1)
			} else {
				last = i
			}
			if err := g.write(c); err != nil {
				return
			}
			_ = syscall.Kill(g.proc.PID(), syscall.SIGHUP)
			sleep(ctx, 80*time.Millisecond)
		}
	})
	sleep(ctx, 1500*time.Millisecond) // the file watcher's last poll
	resp, err := http.Get(g.url("/"))
	if err != nil {
		return err
	}
	resp.Body.Close()
	gen := resp.Header.Get("X-Generation")
	e.add(reliability.Row{Scenario: name, Measure: "failed requests", Value: reliability.Failed(res.Failed(), res.Requests), Expect: "0", Pass: ok(res.Failed() == 0)})
	e.add(reliability.Row{Scenario: name, Measure: "p99 during reloads", Value: reliability.Ms(res.Quantile(0.99))})
	e.add(reliability.Row{Scenario: name, Measure: "config serving after the last reload", Value: "generation " + gen, Expect: fmt.Sprintf("generation %d (the last valid one)", last), Pass: ok(gen == fmt.Sprint(last))})
	if invalid {
		st, _ := g.adminGet("/api/reload")
		failed := strings.Contains(st, `"success": false`) || strings.Contains(st, `"success":false`)
		e.add(reliability.Row{Scenario: name, Measure: "`/api/reload` reports the rejected config", Value: fmt.Sprint(failed), Expect: "true", Pass: ok(failed)})
	}
	return nil
}

// kill SIGKILLs one of three upstreams under load and restarts it on the
// same address three seconds later.
func (e *env) kill(ctx context.Context) error {
	var ups []string
	var procs = map[string]func(){}
	for range 3 {
		p, addr, err := e.startUpstream(ctx, "", 64, 0)
		if err != nil {
			return err
		}
		ups = append(ups, addr)
		procs[addr] = func() { _ = syscall.Kill(p.PID(), syscall.SIGKILL) }
	}
	svc := "outlier_detection:\n  consecutive_connect_failures: 1\n  base_ejection_time: 1s\n" +
		"health_check:\n  path: /\n  interval: 500ms\n  timeout: 250ms\n  healthy_threshold: 1\n  unhealthy_threshold: 1\n"
	route := "retry:\n  attempts: 3\n  on: [connect_error, reset]\n"
	g, err := e.startVantage(ctx, yaml(ups, svc, route, quiet), "/")
	if err != nil {
		return err
	}
	victim := ups[1]
	var ejectAfter, backAfter time.Duration = -1, -1
	res := loadWhile(ctx, reliability.LoadOptions{URL: g.url("/"), Conns: 16, Duration: 12 * time.Second}, func(ctx context.Context) {
		sleep(ctx, 3*time.Second)
		killed := time.Now()
		procs[victim]()
		ejectAfter = pollUntil(ctx, 5*time.Second, func() bool { a, err := g.hostAvailable("app", victim); return err == nil && !a })
		sleep(ctx, 3*time.Second-time.Since(killed))
		if _, _, err := e.startUpstream(ctx, victim, 64, 0); err != nil {
			return
		}
		restarted := time.Now()
		backAfter = pollUntil(ctx, 6*time.Second, func() bool { a, err := g.hostAvailable("app", victim); return err == nil && a })
		_ = restarted
	})
	e.add(reliability.Row{Scenario: "upstream killed and restarted", Measure: "failed requests", Value: reliability.Failed(res.Failed(), res.Requests), Expect: "0 (connect errors are retried on another host)", Pass: ok(res.Failed() == 0)})
	e.add(reliability.Row{Scenario: "upstream killed and restarted", Measure: "kill → host out of rotation", Value: durOrNever(ejectAfter), Expect: "< 1 s", Pass: ok(ejectAfter >= 0 && ejectAfter < time.Second)})
	e.add(reliability.Row{Scenario: "upstream killed and restarted", Measure: "restart → host back in rotation", Value: durOrNever(backAfter), Expect: "< 2 s (health check every 500 ms)", Pass: ok(backAfter >= 0 && backAfter < 2*time.Second)})
	return nil
}

// pollUntil checks cond every 20 ms and returns how long it took to hold,
// -1 if it did not within max.
func pollUntil(ctx context.Context, max time.Duration, cond func() bool) time.Duration {
	start := time.Now()
	for time.Since(start) < max && ctx.Err() == nil {
		if cond() {
			return time.Since(start)
		}
		sleep(ctx, 20*time.Millisecond)
	}
	return -1
}

func durOrNever(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return reliability.Ms(d)
}

// telemetry traces every request to an OTLP endpoint that works, refuses
// connections, accepts and never reads, or answers after 2 s, and compares
// the request path with the working case.
func (e *env) telemetry(ctx context.Context) error {
	_, up, err := e.startUpstream(ctx, "", 64, 0)
	if err != nil {
		return err
	}
	refused, err := freeAddr()
	if err != nil {
		return err
	}
	hole, err := blackHole(ctx)
	if err != nil {
		return err
	}
	slow, err := slowSink(ctx, 2*time.Second)
	if err != nil {
		return err
	}
	working := up
	cases := []struct{ name, endpoint string }{
		{"refused", refused}, {"black hole", hole}, {"answers after 2 s", slow},
	}
	// measure runs a fresh gateway exporting to endpoint and returns its
	// load result and CPU µs per request.
	measure := func(endpoint string) (reliability.LoadResult, float64, error) {
		rest := "access_log:\n  enabled: false\ntracing:\n  enabled: true\n  sampling:\n    ratio: 1\n  exporters:\n" +
			fmt.Sprintf("    - type: otlp_http\n      endpoint: \"http://%s\"\n", endpoint)
		g, err := e.startVantage(ctx, yaml([]string{up}, "", "", rest), "/")
		if err != nil {
			return reliability.LoadResult{}, 0, err
		}
		defer g.proc.Stop(5 * time.Second)
		_, _ = reliability.Load(ctx, reliability.LoadOptions{URL: g.url("/"), Conns: 16, Duration: time.Second})
		t0, _ := harness.TreeCPUTicks("/proc", g.proc.PID())
		res, _ := reliability.Load(ctx, reliability.LoadOptions{URL: g.url("/"), Conns: 16, Duration: 5 * time.Second})
		t1, _ := harness.TreeCPUTicks("/proc", g.proc.PID())
		cpu := 0.0
		if res.Requests > 0 {
			cpu = float64(t1-t0) / 100 * 1e6 / float64(res.Requests) // CLK_TCK is 100 on Linux
		}
		return res, cpu, nil
	}
	// Paired rounds: each failing case runs next to a working-sink run,
	// before it in even rounds and after it in odd ones, so the shared
	// machine's drift mostly cancels.
	const rounds = 3
	for _, c := range cases {
		var rps, p99, cpu []float64
		var failed, total int64
		for r := range rounds {
			order := []string{working, c.endpoint}
			if r%2 == 1 {
				order = []string{c.endpoint, working}
			}
			got := map[string]reliability.LoadResult{}
			cpus := map[string]float64{}
			for _, ep := range order {
				res, cu, err := measure(ep)
				if err != nil {
					return err
				}
				got[ep], cpus[ep] = res, cu
			}
			b, x := got[working], got[c.endpoint]
			failed += x.Failed() + b.Failed()
			total += x.Requests + b.Requests
			rps = append(rps, x.RPS()/b.RPS())
			p99 = append(p99, float64(x.Quantile(0.99))/float64(b.Quantile(0.99)))
			cpu = append(cpu, cpus[c.endpoint]/cpus[working])
		}
		sc := "telemetry backend: " + c.name + " (100% traced)"
		cr := harness.Median(cpu)
		e.add(reliability.Row{Scenario: sc, Measure: "failed requests", Value: reliability.Failed(failed, total), Expect: "0", Pass: ok(failed == 0)})
		e.add(reliability.Row{Scenario: sc, Measure: "CPU per request ÷ working sink (median of 3 pairs)", Value: fmt.Sprintf("%.2f", cr), Expect: "≤ 1.1", Pass: ok(cr <= 1.1)})
		e.add(reliability.Row{Scenario: sc, Measure: "req/s ÷ working sink", Value: fmt.Sprintf("%.2f", harness.Median(rps)), Expect: "≈ 1"})
		e.add(reliability.Row{Scenario: sc, Measure: "p99 ÷ working sink", Value: fmt.Sprintf("%.2f", harness.Median(p99)), Expect: "≈ 1"})
	}
	return nil
}

// blackHole accepts connections and never reads or answers, until ctx ends.
func blackHole(ctx context.Context) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	go func() {
		<-ctx.Done()
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	return ln.Addr().String(), nil
}

// slowSink answers every request after delay, until ctx ends.
func slowSink(ctx context.Context, delay time.Duration) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	return ln.Addr().String(), nil
}

// slowloris opens 200 connections that never finish their headers beside
// normal traffic, with the default listener timeouts.
func (e *env) slowloris(ctx context.Context) error {
	_, up, err := e.startUpstream(ctx, "", 64, 0)
	if err != nil {
		return err
	}
	g, err := e.startVantage(ctx, yaml([]string{up}, "", "", quiet), "/")
	if err != nil {
		return err
	}
	before, _ := reliability.Load(ctx, reliability.LoadOptions{URL: g.url("/"), Conns: 4, Duration: 4 * time.Second})
	var tr reliability.TrickleResult
	res := loadWhile(ctx, reliability.LoadOptions{URL: g.url("/"), Conns: 4, Duration: 14 * time.Second}, func(ctx context.Context) {
		tr = reliability.Slowloris(ctx, g.listen, 200, time.Second, 30*time.Second)
	})
	sc := "slowloris (200 connections, 1 header byte/s)"
	e.add(reliability.Row{Scenario: sc, Measure: "connections cut", Value: fmt.Sprintf("%d of 200", len(tr.Cut)), Expect: "200", Pass: ok(len(tr.Cut) == 200)})
	e.add(reliability.Row{Scenario: sc, Measure: "cut after (median / max)", Value: reliability.Ms(reliability.Quantile(tr.Cut, 0.5)) + " / " + reliability.Ms(reliability.Quantile(tr.Cut, 1)), Expect: "≈ timeouts.read_header (10 s)", Pass: ok(len(tr.Cut) > 0 && reliability.Quantile(tr.Cut, 1) < 12*time.Second)})
	e.add(reliability.Row{Scenario: sc, Measure: "normal traffic failed", Value: reliability.Failed(res.Failed(), res.Requests), Expect: "0", Pass: ok(res.Failed() == 0)})
	e.add(reliability.Row{Scenario: sc, Measure: "normal traffic p99 during ÷ before", Value: fmt.Sprintf("%s ÷ %s", reliability.Ms(res.Quantile(0.99)), reliability.Ms(before.Quantile(0.99))), Expect: "close to 1"})
	return nil
}

// slowBody sends 50 POSTs whose bodies arrive one byte a second, with the
// default timeouts.
func (e *env) slowBody(ctx context.Context) error {
	_, up, err := e.startUpstream(ctx, "", 64, 0)
	if err != nil {
		return err
	}
	g, err := e.startVantage(ctx, yaml([]string{up}, "", "", quiet), "/")
	if err != nil {
		return err
	}
	var tr reliability.TrickleResult
	res := loadWhile(ctx, reliability.LoadOptions{URL: g.url("/"), Conns: 4, Duration: 10 * time.Second}, func(ctx context.Context) {
		tr = reliability.SlowBody(ctx, g.listen, 50, time.Second, 90*time.Second)
	})
	sc := "slow request bodies (50 POSTs, 1 byte/s)"
	var statuses []string
	for s, n := range tr.Statuses {
		statuses = append(statuses, fmt.Sprintf("%d × %q", n, s))
	}
	e.add(reliability.Row{Scenario: sc, Measure: "connections cut", Value: fmt.Sprintf("%d of 50 (open at 90 s: %d)", len(tr.Cut), tr.Open), Expect: "50", Pass: ok(len(tr.Cut) == 50)})
	e.add(reliability.Row{Scenario: sc, Measure: "cut after (median / max)", Value: reliability.Ms(reliability.Quantile(tr.Cut, 0.5)) + " / " + reliability.Ms(reliability.Quantile(tr.Cut, 1)), Expect: "the body timeouts, well under 45 s", Pass: ok(len(tr.Cut) > 0 && reliability.Quantile(tr.Cut, 1) < 45*time.Second)})
	e.add(reliability.Row{Scenario: sc, Measure: "answers", Value: strings.Join(statuses, ", "), Expect: "408"})
	e.add(reliability.Row{Scenario: sc, Measure: "normal traffic failed", Value: reliability.Failed(res.Failed(), res.Requests), Expect: "0", Pass: ok(res.Failed() == 0)})
	return nil
}

// slowReaders asks for 16 MiB responses on 50 connections that do not read
// them for 15 s, beside normal traffic.
func (e *env) slowReaders(ctx context.Context) error {
	_, up, err := e.startUpstream(ctx, "", 64, 0)
	if err != nil {
		return err
	}
	_, big, err := e.startUpstream(ctx, "", 16<<20, 0)
	if err != nil {
		return err
	}
	cfg := yaml([]string{up}, "", "", quiet)
	cfg = strings.Replace(cfg, "routes:\n", fmt.Sprintf("  - name: big\n    upstreams:\n      - url: \"http://%s\"\nroutes:\n  - name: big\n    match:\n      path: /big\n    service: big\n", big), 1)
	g, err := e.startVantage(ctx, cfg, "/")
	if err != nil {
		return err
	}
	before, _ := reliability.Load(ctx, reliability.LoadOptions{URL: g.url("/"), Conns: 4, Duration: 4 * time.Second})
	rssBefore := g.rss()
	var cut int
	var rssDuring int64
	res := loadWhile(ctx, reliability.LoadOptions{URL: g.url("/"), Conns: 4, Duration: 12 * time.Second}, func(ctx context.Context) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); cut, _ = reliability.SlowReaders(ctx, g.listen, "/big", 50, 15*time.Second) }()
		sleep(ctx, 10*time.Second)
		rssDuring = g.rss()
		wg.Wait()
	})
	sc := "slow readers (50 × 16 MiB responses unread for 15 s)"
	e.add(reliability.Row{Scenario: sc, Measure: "gateway RSS before → during", Value: reliability.MB(rssBefore) + " → " + reliability.MB(rssDuring), Expect: "bounded by socket and copy buffers, not by response size", Pass: ok(rssDuring-rssBefore < 100<<20)})
	e.add(reliability.Row{Scenario: sc, Measure: "slow readers cut", Value: fmt.Sprintf("%d of 50", cut), Expect: "0 with timeouts.write 0 (the default, for streaming)"})
	e.add(reliability.Row{Scenario: sc, Measure: "normal traffic failed", Value: reliability.Failed(res.Failed(), res.Requests), Expect: "0", Pass: ok(res.Failed() == 0)})
	e.add(reliability.Row{Scenario: sc, Measure: "normal traffic p99 during ÷ before", Value: fmt.Sprintf("%s ÷ %s", reliability.Ms(res.Quantile(0.99)), reliability.Ms(before.Quantile(0.99))), Expect: "close to 1"})
	return nil
}

// cardinality sends 200,000 requests to distinct paths with metrics on and
// counts the series /metrics exposes.
func (e *env) cardinality(ctx context.Context) error {
	_, up, err := e.startUpstream(ctx, "", 64, 0)
	if err != nil {
		return err
	}
	g, err := e.startVantage(ctx, yaml([]string{up}, "", "", quiet+"metrics:\n  enabled: true\n"), "/")
	if err != nil {
		return err
	}
	_, _ = reliability.Load(ctx, reliability.LoadOptions{URL: g.url("/"), Conns: 4, Duration: time.Second, MaxRequests: 1000})
	linesBefore, err := g.metricLines("vantage_")
	if err != nil {
		return err
	}
	rssBefore := g.rss()
	res, _ := reliability.Load(ctx, reliability.LoadOptions{
		URLFor: func(n int64) string { return g.url(fmt.Sprintf("/flood/%d?q=%d", n, n)) },
		Conns:  16, Duration: 90 * time.Second, MaxRequests: 200_000,
	})
	linesAfter, err := g.metricLines("vantage_")
	if err != nil {
		return err
	}
	sc := "high-cardinality flood (200,000 distinct paths)"
	e.add(reliability.Row{Scenario: sc, Measure: "requests sent", Value: fmt.Sprintf("%d (failed %d)", res.Requests, res.Failed())})
	e.add(reliability.Row{Scenario: sc, Measure: "`vantage_*` lines in /metrics before → after", Value: fmt.Sprintf("%d → %d", linesBefore, linesAfter), Expect: "unchanged by paths (labels are route names)", Pass: ok(linesAfter < linesBefore*2)})
	e.add(reliability.Row{Scenario: sc, Measure: "gateway RSS before → after", Value: reliability.MB(rssBefore) + " → " + reliability.MB(g.rss())})
	return nil
}

// sigterm sends SIGTERM to a gateway serving 32 connections whose requests
// each take 200 ms at the upstream.
func (e *env) sigterm(ctx context.Context) error {
	_, up, err := e.startUpstream(ctx, "", 64, 200*time.Millisecond)
	if err != nil {
		return err
	}
	g, err := e.startVantage(ctx, yaml([]string{up}, "", "", quiet+"shutdown_grace: 5s\n"), "/")
	if err != nil {
		return err
	}
	var drain time.Duration = -1
	res := loadWhile(ctx, reliability.LoadOptions{URL: g.url("/"), Conns: 32, Duration: 6 * time.Second}, func(ctx context.Context) {
		sleep(ctx, 2*time.Second)
		t0 := time.Now()
		_ = syscall.Kill(g.proc.PID(), syscall.SIGTERM)
		drain = pollUntil(ctx, 10*time.Second, func() bool { done, _ := g.proc.Exited(); return done })
		_ = t0
	})
	lost := res.Failed() - res.Refused
	sc := "SIGTERM under load (32 connections, 200 ms requests)"
	e.add(reliability.Row{Scenario: sc, Measure: "requests in flight lost", Value: reliability.Failed(lost, res.Requests-res.Refused), Expect: "0 (in-flight requests finish; later ones are refused)", Pass: ok(lost == 0)})
	e.add(reliability.Row{Scenario: sc, Measure: "SIGTERM → process exit", Value: durOrNever(drain), Expect: "≈ one request (200 ms), < shutdown_grace", Pass: ok(drain >= 0 && drain < 5*time.Second)})
	return nil
}

// soak runs every signal on at a fixed rate for d and samples the gateway's
// RSS every 10 s.
func (e *env) soak(ctx context.Context, d time.Duration, rate float64) error {
	if d <= 0 {
		return nil
	}
	_, up, err := e.startUpstream(ctx, "", 64, 0)
	if err != nil {
		return err
	}
	rest := fmt.Sprintf("access_log:\n  enabled: true\n  format: json\n  output: file\n  file:\n    path: %q\n", e.tmp+"/soak-access.log") +
		"metrics:\n  enabled: true\ntracing:\n  enabled: true\n  sampling:\n    ratio: 0.01\n  exporters:\n" +
		fmt.Sprintf("    - type: otlp_http\n      endpoint: \"http://%s\"\n", up)
	g, err := e.startVantage(ctx, yaml([]string{up}, "", "", rest), "/")
	if err != nil {
		return err
	}
	var xs, ys []float64
	var maxRSS int64
	start := time.Now()
	res := loadWhile(ctx, reliability.LoadOptions{URL: g.url("/"), Conns: 8, Duration: d, Rate: rate, MaxRequests: int64(rate*d.Seconds()) + 1}, func(ctx context.Context) {
		for ctx.Err() == nil && time.Since(start) < d {
			sleep(ctx, 10*time.Second)
			r := g.rss()
			maxRSS = max(maxRSS, r)
			xs = append(xs, time.Since(start).Hours())
			ys = append(ys, float64(r)/(1<<20))
		}
	})
	sc := fmt.Sprintf("soak (%s at %.0f req/s, every signal on)", d, rate)
	e.add(reliability.Row{Scenario: sc, Measure: "failed requests", Value: reliability.Failed(res.Failed(), res.Requests), Expect: "0", Pass: ok(res.Failed() == 0)})
	if len(ys) < 2 {
		return nil
	}
	half := len(xs) / 2
	slope := reliability.Slope(xs[half:], ys[half:])
	e.add(reliability.Row{Scenario: sc, Measure: "RSS first sample / max / last", Value: fmt.Sprintf("%.1f / %.1f / %.1f MiB", ys[0], float64(maxRSS)/(1<<20), ys[len(ys)-1])})
	e.add(reliability.Row{Scenario: sc, Measure: "RSS slope over the second half", Value: fmt.Sprintf("%+.1f MiB/h", slope), Expect: "≈ 0 (no growth with traffic)", Pass: ok(slope < 5)})
	return nil
}
