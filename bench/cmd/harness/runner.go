package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vantage-gateway/vantage/bench/harness"
)

// target is one thing wrk is pointed at.
type target struct {
	name string
	url  string
	// script is a wrk Lua script (-s) choosing each request's path, or "".
	script string
	// proc is the process whose CPU is measured: the proxy, or the upstream
	// for the direct target.
	proc *harness.Proc
}

// skipped is a target left out of the run, with the reason.
type skipped struct{ name, reason string }

// runner holds one run's state; cleanup undoes everything run did.
type runner struct {
	opts    options
	command string

	root     string // repository root
	tmp      string
	tools    map[string]string
	taskset  string
	pinned   bool
	pinNote  string
	clkTck   float64
	upAddr   string          // the bench upstream's host:port
	upClient *http.Client    // reads its connection count, on one kept-alive connection
	procs    []*harness.Proc // every started process, in start order
	ports    map[int]bool
	targets  []target
	skipped  []skipped
	samples  []harness.Sample
	versions []string
	// dashboards are the live dashboards held open against variants
	// named <template>+dashN, by target name.
	dashboards map[string]*harness.Dashboards
}

func (r *runner) run(ctx context.Context) error {
	o := r.opts
	root, err := repoRoot()
	if err != nil {
		return err
	}
	r.root = root
	r.ports = map[int]bool{}

	needed := []string{"wrk"}
	for _, t := range []string{"nginx", "haproxy", "caddy"} {
		if slices.Contains(o.targets, t) {
			needed = append(needed, t)
		}
	}
	if r.tools, err = ensureTools(ctx, needed, o.install); err != nil {
		return err
	}
	for _, t := range needed {
		if v := toolVersion(ctx, t, r.tools[t]); v != "" {
			r.versions = append(r.versions, v)
		}
	}
	r.setupPinning()
	r.clkTck = clockTicks(ctx)

	if r.tmp, err = os.MkdirTemp("", "vantage-bench-"); err != nil {
		return fmt.Errorf("creating temp dir: %w", err)
	}
	if o.keepTmp {
		logf("temp dir (kept): %s", r.tmp)
	}

	bin := filepath.Join(r.tmp, "bin")
	if err := r.build(ctx, "./bench/cmd/upstream", filepath.Join(bin, "upstream")); err != nil {
		return err
	}
	upAddr := r.addr()
	r.upAddr = upAddr
	r.upClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 10 * time.Minute}}
	up, err := r.start(ctx, "upstream", []string{filepath.Join(bin, "upstream"), "-addr", upAddr, "-size", strconv.Itoa(o.body)}, nil, r.cpu(o.upstreamCPU))
	if err != nil {
		return err
	}
	if err := harness.WaitReady(ctx, up, "http://"+upAddr+"/", o.body, o.readyTimeout); err != nil {
		return fmt.Errorf("upstream not ready: %w\n%s", err, up.LogTail(20))
	}

	for _, t := range o.targets {
		var err error
		switch t {
		case "direct":
			r.targets = append(r.targets, target{name: harness.Direct, url: "http://" + upAddr + "/", proc: up})
		case "vantage":
			err = r.startVantage(ctx, bin, upAddr)
		case "httputil":
			err = r.startHTTPUtil(ctx, bin, upAddr)
		case "nginx":
			if !o.estateSet {
				err = r.startThirdParty(ctx, t, upAddr, 0)
				break
			}
			for _, n := range o.estate {
				if err = r.startThirdParty(ctx, t, upAddr, n); err != nil {
					break
				}
			}
		case "haproxy", "caddy":
			err = r.startThirdParty(ctx, t, upAddr, 0)
		}
		if err != nil {
			return err
		}
	}
	if len(r.targets) == 0 {
		return errors.New("no target could be started:\n" + r.skippedText())
	}
	return r.measure(ctx)
}

// repoRoot finds the module root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/vantage-gateway/vantage\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the harness from inside the Vantage repository (no go.mod of github.com/vantage-gateway/vantage above the working directory)")
		}
		dir = parent
	}
}

func (r *runner) setupPinning() {
	o := r.opts
	n := runtime.NumCPU()
	ts, ok := lookTool("taskset")
	switch {
	case !o.pin:
		r.pinNote = "not used (-pin=false)"
	case !ok:
		r.pinNote = "not used (no taskset)"
	case n < 2:
		r.pinNote = fmt.Sprintf("not used (nproc %d < 2)", n)
	case o.wrkCPU >= n || o.proxyCPU >= n || o.upstreamCPU >= n || o.wrkCPU < 0 || o.proxyCPU < 0 || o.upstreamCPU < 0:
		r.pinNote = fmt.Sprintf("not used (a -*-cpu flag is outside 0..%d)", n-1)
	default:
		r.pinned, r.taskset = true, ts
		r.pinNote = fmt.Sprintf("taskset: wrk on CPU %d, the target under test on CPU %d, the upstream on CPU %d (so Go targets run with GOMAXPROCS 1)",
			o.wrkCPU, o.proxyCPU, o.upstreamCPU)
	}
	logf("pinning: %s", r.pinNote)
}

// cpu returns c when pinning, else -1 (no pinning).
func (r *runner) cpu(c int) int {
	if r.pinned {
		return c
	}
	return -1
}

func clockTicks(ctx context.Context) float64 {
	out, err := output(ctx, "", "getconf", "CLK_TCK")
	if v, perr := strconv.Atoi(out); err == nil && perr == nil && v > 0 {
		return float64(v)
	}
	logf("getconf CLK_TCK failed; assuming 100")
	return 100
}

// addr returns a free loopback host:port not handed out before in this run.
func (r *runner) addr() string {
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(fmt.Sprintf("no free loopback port: %v", err))
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !r.ports[port] {
			r.ports[port] = true
			return "127.0.0.1:" + strconv.Itoa(port)
		}
	}
}

func (r *runner) build(ctx context.Context, pkg, out string) error {
	return r.buildIn(ctx, r.root, pkg, out)
}

// buildIn builds pkg of the source tree dir into out.
func (r *runner) buildIn(ctx context.Context, dir, pkg, out string) error {
	logf("building %s in %s", pkg, dir)
	// A link on a busy 2-core machine can take longer than output's 10 s.
	o, err := outputWithin(ctx, 5*time.Minute, dir, "go", "build", "-o", out, pkg)
	if err != nil {
		return fmt.Errorf("go build %s: %w: %s", pkg, err, strings.ReplaceAll(o, "\n", " | "))
	}
	return nil
}

func (r *runner) start(ctx context.Context, name string, argv, env []string, cpu int) (*harness.Proc, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	dir := filepath.Join(r.tmp, "logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p, err := harness.Start(harness.StartOptions{
		Name:    name,
		Argv:    argv,
		Env:     env,
		LogPath: filepath.Join(dir, strings.ReplaceAll(name, "/", "-")+".log"),
		CPU:     cpu,
		Taskset: r.taskset,
	})
	if err != nil {
		return nil, err
	}
	r.procs = append(r.procs, p)
	logf("started %s (pid %d)", name, p.PID())
	return p, nil
}

// addTarget waits for a started proxy to answer and records it.
func (r *runner) addTarget(ctx context.Context, name string, p *harness.Proc, listen, script string) error {
	url := "http://" + listen + "/"
	if err := harness.WaitReady(ctx, p, url, r.opts.body, r.opts.readyTimeout); err != nil {
		return fmt.Errorf("%s is not ready: %w\nlast lines of its log:\n%s", name, err, p.LogTail(20))
	}
	r.targets = append(r.targets, target{name: name, url: url, script: script, proc: p})
	return nil
}

func (r *runner) startVantage(ctx context.Context, bin, upAddr string) error {
	if err := r.startBuild(ctx, r.root, filepath.Join(bin, "vantage"), upAddr, "vantage", r.opts.estate); err != nil {
		return err
	}
	if r.opts.before != "" {
		// The -before build runs every variant (estates at their first
		// size) from the same templates, so that a before/after
		// comparison is one interleaved run.
		return r.startBuild(ctx, r.opts.before, filepath.Join(bin, "vantage-before"), upAddr, "before", r.opts.estate[:1])
	}
	return nil
}

// startBuild builds ./cmd/vantage of the source tree dir into exe and
// starts every variant with it as <prefix>/<variant>, an estate variant
// once per size of estates.
func (r *runner) startBuild(ctx context.Context, dir, exe, upAddr, prefix string, estates []int) error {
	if err := r.buildIn(ctx, dir, "./cmd/vantage", exe); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, v := range r.opts.variants {
			r.skip(prefix+"/"+v, "the binary does not build: "+err.Error())
		}
		return nil
	}
	for _, v := range r.opts.variants {
		base, _, err := harness.ParseVariant(v)
		if err != nil {
			r.skip(prefix+"/"+v, err.Error())
			continue
		}
		tmpl, err := os.ReadFile(filepath.Join(r.root, "bench", "configs", base+".yml"))
		if err != nil {
			r.skip(prefix+"/"+v, fmt.Sprintf("no template: %v", err))
			continue
		}
		if !strings.Contains(string(tmpl), "{{ESTATE_") {
			if err := r.startVantageVariant(ctx, exe, upAddr, v, prefix+"/"+v, string(tmpl), 0); err != nil {
				return err
			}
			continue
		}
		for _, n := range estates {
			name := prefix + "/" + v + "@" + strconv.Itoa(n)
			if err := r.startVantageVariant(ctx, exe, upAddr, v, name, string(tmpl), n); err != nil {
				return err
			}
		}
	}
	return nil
}

// startVantageVariant renders variant v's template (for an estate of n
// routes when n > 0, with a wrk script spreading requests over them),
// starts Vantage with it and adds it as target name. A variant that does
// not render, start or answer is skipped; only a canceled run or a failing
// file system is an error.
func (r *runner) startVantageVariant(ctx context.Context, exe, upAddr, v, name, tmpl string, n int) error {
	dir := filepath.Join(r.tmp, strings.NewReplacer("/", "-", "@", "-").Replace(name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	listen := r.addr()
	vars := map[string]string{}
	script := ""
	if n > 0 {
		vars = harness.EstateVars(n, upAddr)
		script = filepath.Join(dir, "estate.lua")
		if err := os.WriteFile(script, []byte(harness.EstateScript(n)), 0o644); err != nil {
			return err
		}
	}
	vars["LISTEN"], vars["ADMIN"], vars["UPSTREAM"] = listen, r.addr(), upAddr
	vars["LOGFILE"] = filepath.Join(dir, "access.log")
	cfg, err := harness.Render(tmpl, vars)
	if err != nil {
		r.skip(name, fmt.Sprintf("bench/configs/%s.yml: %v", v, err))
		return nil
	}
	path := filepath.Join(dir, "vantage.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return err
	}
	p, err := r.start(ctx, name, []string{exe, "run", "--config", path}, nil, r.cpu(r.opts.proxyCPU))
	if err != nil {
		r.skip(name, err.Error())
		return nil
	}
	if err := r.addTarget(ctx, name, p, listen, script); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.Stop(3 * time.Second)
		r.skip(name, strings.ReplaceAll(err.Error(), "\n", " | "))
		return nil
	}
	if _, n, _ := harness.ParseVariant(v); n > 0 {
		// The dashboards stream for the variant's whole life: warm-ups and
		// measured runs alike.
		d, err := harness.OpenDashboards(ctx, vars["ADMIN"], n, 10*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.targets = r.targets[:len(r.targets)-1]
			p.Stop(3 * time.Second)
			r.skip(name, err.Error())
			return nil
		}
		if r.dashboards == nil {
			r.dashboards = map[string]*harness.Dashboards{}
		}
		r.dashboards[name] = d
		logf("%s: %d live dashboards streaming from http://%s/api/dashboard/stream", name, n, vars["ADMIN"])
	}
	return nil
}

func (r *runner) skip(name, reason string) {
	logf("skipping %s: %s", name, reason)
	r.skipped = append(r.skipped, skipped{name, reason})
}

func (r *runner) skippedText() string {
	var b strings.Builder
	for _, s := range r.skipped {
		fmt.Fprintf(&b, "- %s: %s\n", s.name, s.reason)
	}
	return b.String()
}

func (r *runner) startHTTPUtil(ctx context.Context, bin, upAddr string) error {
	exe := filepath.Join(bin, "httputilproxy")
	if err := r.build(ctx, "./bench/cmd/httputilproxy", exe); err != nil {
		return err
	}
	listen := r.addr()
	p, err := r.start(ctx, "httputil", []string{exe, "-listen", listen, "-upstream", upAddr,
		"-max-idle-per-host", strconv.Itoa(r.opts.httputilIdle)}, nil, r.cpu(r.opts.proxyCPU))
	if err != nil {
		return err
	}
	return r.addTarget(ctx, "httputil", p, listen, "")
}

// startThirdParty renders a config for nginx, haproxy or caddy into a
// private temp dir and runs the server in the foreground from there, so no
// system service, pid file or state directory is touched. With estate > 0
// (nginx only) it runs as nginx@<estate> with that many prefix locations
// and the estate's wrk script.
func (r *runner) startThirdParty(ctx context.Context, name, upAddr string, estate int) error {
	target, script := name, ""
	if estate > 0 {
		target = name + "@" + strconv.Itoa(estate)
	}
	dir := filepath.Join(r.tmp, strings.ReplaceAll(target, "@", "-"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if estate > 0 {
		script = filepath.Join(dir, "estate.lua")
		if err := os.WriteFile(script, []byte(harness.EstateScript(estate)), 0o644); err != nil {
			return err
		}
	}
	listen := r.addr()
	v := harness.ProxyVars{Listen: listen, Upstream: upAddr, Dir: dir, Estate: estate}
	exe := r.tools[name]
	var (
		cfg, file string
		argv, env []string
		err       error
	)
	switch name {
	case "nginx":
		file = filepath.Join(dir, "nginx.conf")
		cfg, err = harness.NginxConfig(v)
		argv = []string{exe, "-p", dir + "/", "-e", filepath.Join(dir, "error.log"), "-c", file}
	case "haproxy":
		file = filepath.Join(dir, "haproxy.cfg")
		cfg, err = harness.HAProxyConfig(v)
		argv = []string{exe, "-db", "-f", file}
	case "caddy":
		file = filepath.Join(dir, "Caddyfile")
		cfg, err = harness.Caddyfile(v)
		argv = []string{exe, "run", "--adapter", "caddyfile", "--config", file}
		env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
			"XDG_DATA_HOME="+filepath.Join(dir, "data"))
	}
	if err != nil {
		return fmt.Errorf("%s config: %w", name, err)
	}
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		return err
	}
	p, err := r.start(ctx, target, argv, env, r.cpu(r.opts.proxyCPU))
	if err != nil {
		return err
	}
	return r.addTarget(ctx, target, p, listen, script)
}

// measure runs the rounds: every target once per round, the order rotated
// by one each round, a warm-up before each measured wrk run. In paired mode
// (-baseline) each other target runs right after the baseline (right
// before it in odd rounds), and keeps a pointer to that baseline sample.
func (r *runner) measure(ctx context.Context) error {
	o := r.opts
	n := len(r.targets)
	var base *target
	var others []target
	for i := range r.targets {
		if r.targets[i].name == o.baseline {
			base = &r.targets[i]
		} else {
			others = append(others, r.targets[i])
		}
	}
	runs := n
	if base != nil {
		runs = 2 * len(others)
	}
	per := o.warmup + o.duration + time.Second
	logf("measuring %d targets x %d rounds, about %s", n, o.rounds, (per*time.Duration(runs*o.rounds) + o.fill*time.Duration(n)).Round(time.Second))
	if o.fill > 0 {
		for _, t := range r.targets {
			logf("filling %s: %s of load before the first round", t.name, o.fill)
			if _, err := r.wrk(ctx, t, o.fill); err != nil {
				return fmt.Errorf("fill of %s: %w", t.name, err)
			}
		}
	}
	for round := range o.rounds {
		if base == nil {
			for i := range n {
				if _, err := r.measureOne(ctx, r.targets[(i+round)%n], round, nil); err != nil {
					return err
				}
			}
			continue
		}
		for i := range others {
			t := others[(i+round)%len(others)]
			if round%2 == 0 {
				b, err := r.measureOne(ctx, *base, round, nil)
				if err != nil {
					return err
				}
				if _, err := r.measureOne(ctx, t, round, b); err != nil {
					return err
				}
				continue
			}
			// Odd rounds run the baseline second, so that a bias of the
			// first or second run of a pair cancels over the rounds.
			s, err := r.measureOne(ctx, t, round, nil)
			if err != nil {
				return err
			}
			b, err := r.measureOne(ctx, *base, round, nil)
			if err != nil {
				return err
			}
			r.samples[len(r.samples)-2].Baseline = b
			logf("round %d/%d %s is %.3f of %s", round+1, o.rounds, t.name, s.CPUMicrosPerRequest()/b.CPUMicrosPerRequest(), b.Target)
		}
	}
	return r.report(ctx)
}

// measureOne warms t up, measures it and appends the sample, which it
// returns (a copy, so later appends cannot move it).
func (r *runner) measureOne(ctx context.Context, t target, round int, baseline *harness.Sample) (*harness.Sample, error) {
	o := r.opts
	if o.warmup > 0 {
		if _, err := r.wrk(ctx, t, o.warmup); err != nil {
			return nil, fmt.Errorf("warm-up of %s: %w", t.name, err)
		}
	}
	s, err := r.sample(ctx, t, round)
	if err != nil {
		return nil, err
	}
	s.Baseline = baseline
	r.samples = append(r.samples, s)
	ratio := ""
	if baseline != nil {
		ratio = fmt.Sprintf("  (%.3f of %s)", s.CPUMicrosPerRequest()/baseline.CPUMicrosPerRequest(), baseline.Target)
	}
	logf("round %d/%d %-16s %8.0f req/s  p50 %-9s p99 %-9s %6.1f CPU µs/req  errors %d%s",
		round+1, o.rounds, t.name, s.Wrk.RequestsPerSec, harness.FormatLatency(s.Wrk.P50),
		harness.FormatLatency(s.Wrk.P99), s.CPUMicrosPerRequest(), s.Wrk.Errors(), ratio)
	return &s, nil
}

func (r *runner) sample(ctx context.Context, t target, round int) (harness.Sample, error) {
	pid := t.proc.PID()
	connsBefore, connsErr := harness.UpstreamConns(ctx, r.upClient, r.upAddr)
	before, err := harness.TreeCPUTicks("/proc", pid)
	if err != nil {
		return harness.Sample{}, fmt.Errorf("%s: %w", t.name, err)
	}
	out, err := r.wrk(ctx, t, r.opts.duration)
	if err != nil {
		return harness.Sample{}, fmt.Errorf("measuring %s: %w", t.name, err)
	}
	after, err := harness.TreeCPUTicks("/proc", pid)
	if err != nil {
		return harness.Sample{}, fmt.Errorf("%s after its run: %w\n%s", t.name, err, t.proc.LogTail(20))
	}
	if done, err := t.proc.Exited(); done {
		return harness.Sample{}, fmt.Errorf("%s exited during its run: %v\n%s", t.name, err, t.proc.LogTail(20))
	}
	res, err := harness.ParseWrk(out)
	if err != nil {
		return harness.Sample{}, fmt.Errorf("%s: %w\nwrk said:\n%s", t.name, err, out)
	}
	s := harness.Sample{
		Target:     t.name,
		Round:      round,
		Wrk:        res,
		CPUSeconds: float64(after-before) / r.clkTck,
	}
	if connsErr == nil {
		if connsAfter, err := harness.UpstreamConns(ctx, r.upClient, r.upAddr); err == nil {
			s.UpstreamConns, s.HasUpstreamConns = connsAfter-connsBefore, true
		}
	}
	return s, nil
}

// wrk runs wrk against t (its url, and its script if any) for d and
// returns its output. It is bounded by d plus a margin and by ctx.
func (r *runner) wrk(ctx context.Context, t target, d time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	argv := []string{r.tools["wrk"], "-t" + strconv.Itoa(r.opts.threads), "-c" + strconv.Itoa(r.opts.conns),
		"-d" + strconv.Itoa(int(d/time.Second)) + "s", "--latency"}
	script, err := r.wrkScript(t)
	if err != nil {
		return "", err
	}
	if script != "" {
		argv = append(argv, "-s", script)
	}
	argv = append(argv, t.url)
	if r.pinned {
		argv = append([]string{r.taskset, "-c", strconv.Itoa(r.opts.wrkCPU)}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("wrk: %w: %s%s", err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// wrkScript returns the wrk script for t: its own, with the think time's
// delay() added when -think is set.
func (r *runner) wrkScript(t target) (string, error) {
	if r.opts.think <= 0 {
		return t.script, nil
	}
	var own []byte
	if t.script != "" {
		b, err := os.ReadFile(t.script)
		if err != nil {
			return "", err
		}
		own = b
	}
	path := filepath.Join(r.tmp, "think-"+strings.ReplaceAll(t.name, "/", "-")+".lua")
	body := fmt.Sprintf("%s\nfunction delay() return %d end\n", own, r.opts.think/time.Millisecond)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// cleanup stops every started process by its PID, newest first, and removes
// the temp dir. It is safe to call after a partial run.
func (r *runner) cleanup() {
	for name, d := range r.dashboards {
		d.Close()
		msg := fmt.Sprintf("%s: the dashboards received %d events", name, d.Events())
		if err := d.Err(); err != nil {
			msg += fmt.Sprintf("; a stream failed during the run: %v", err)
		}
		logf("%s", msg)
	}
	r.dashboards = nil
	for i := len(r.procs) - 1; i >= 0; i-- {
		r.procs[i].Stop(3 * time.Second)
	}
	r.procs = nil
	if r.upClient != nil {
		r.upClient.CloseIdleConnections()
	}
	if r.tmp != "" && !r.opts.keepTmp {
		if err := os.RemoveAll(r.tmp); err != nil {
			logf("removing temp dir: %v", err)
		}
		r.tmp = ""
	}
}
