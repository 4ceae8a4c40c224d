// Command harness is Vantage's load harness. In one bounded run it starts a
// tiny upstream and, in front of it on loopback, Vantage (one process per
// config variant), a naive httputil proxy, nginx, haproxy and Caddy; then it
// drives each with wrk in interleaved, rotated rounds and reports medians of
// requests/s, p50, p99 and CPU microseconds per request as a Markdown table.
//
// Run it from the repository root:
//
//	go run ./bench/cmd/harness                  # full run, about 6 minutes
//	go run ./bench/cmd/harness -quick -targets vantage,httputil
//
// See bench/README.md for every flag and for how to read the table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vantage-gateway/vantage/bench/harness"
)

// allTargets is every target in its default order.
var allTargets = []string{"direct", "vantage", "httputil", "nginx", "haproxy", "caddy"}

// options are the command-line settings of one run.
type options struct {
	rounds   int
	duration time.Duration
	warmup   time.Duration
	// fill loads every target once before the first round, so that state
	// a target builds under load (a trace store that fills, a history)
	// is at its steady size from the first measured run (0: none).
	fill  time.Duration
	conns int
	// think is each wrk connection's pause after a response before its next
	// request (0: none, the proxy saturated).
	think        time.Duration
	threads      int
	body         int
	targets      []string
	variants     []string
	estate       []int
	estateSet    bool // -estate was given: nginx runs once per size too
	out          string
	quick        bool
	install      bool
	pin          bool
	wrkCPU       int
	proxyCPU     int
	upstreamCPU  int
	httputilIdle int
	readyTimeout time.Duration
	keepTmp      bool
	baseline     string
	// before is a second source tree of Vantage (an older commit): its
	// build runs every non-estate variant again as before/<variant>.
	before string
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("harness", flag.ContinueOnError)
	fs.IntVar(&o.rounds, "rounds", 5, "measured rounds; each round runs every target once, order rotated")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured wrk run (whole seconds)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "wrk warm-up before each measured run (whole seconds, 0 for none)")
	fs.DurationVar(&o.fill, "fill", 0, "load every target for this long (whole seconds) once before the first round, so that what fills under load (a trace store, a history) is full from the first measured run; 0 for none")
	fs.IntVar(&o.conns, "conns", 16, "wrk connections (-c)")
	fs.DurationVar(&o.think, "think", 0, "each wrk connection pauses this long (whole milliseconds) after a response before its next request, so the offered load is at most conns/think requests per second, below the proxy's saturation; 0 saturates it")
	fs.IntVar(&o.threads, "threads", 1, "wrk threads (-t)")
	fs.IntVar(&o.body, "body", 64, "upstream response body size in bytes")
	targets := fs.String("targets", strings.Join(allTargets, ","), "comma-separated targets: "+strings.Join(allTargets, ", "))
	variants := fs.String("vantage", "plain", "comma-separated Vantage variants, each a template bench/configs/<name>.yml")
	estate := fs.String("estate", "10", "comma-separated route counts of the estate variants (templates with {{ESTATE_...}} placeholders), each run as vantage/<variant>@<count>; when given, nginx also runs once per count as nginx@<count>, with that many prefix locations")
	fs.StringVar(&o.out, "out", "", "also write the Markdown report to this file")
	fs.BoolVar(&o.quick, "quick", false, "smoke test: 1 round of 3s with a 1s warm-up (explicit -rounds/-duration/-warmup win)")
	fs.BoolVar(&o.install, "install", true, "install missing tools with apt-get")
	fs.BoolVar(&o.pin, "pin", true, "pin processes to CPUs with taskset when available and nproc >= 2")
	fs.IntVar(&o.wrkCPU, "wrk-cpu", 0, "CPU for wrk when pinning")
	fs.IntVar(&o.proxyCPU, "proxy-cpu", 1, "CPU for the proxy under test when pinning")
	fs.IntVar(&o.upstreamCPU, "upstream-cpu", 0, "CPU for the upstream when pinning")
	fs.IntVar(&o.httputilIdle, "httputil-idle", 0, "MaxIdleConnsPerHost for the httputil proxy; 0 keeps http.DefaultTransport")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 15*time.Second, "how long a target may take to answer its first 200")
	fs.BoolVar(&o.keepTmp, "keep-tmp", false, "keep the temp directory (configs, logs) after the run")
	fs.StringVar(&o.baseline, "baseline", "", "paired mode: run this target (e.g. vantage/plain) right before every other target in each round and report each one's CPU ratio to it")
	fs.StringVar(&o.before, "before", "", "a second Vantage source tree (e.g. a git worktree of an older commit): its ./cmd/vantage also runs every variant, as before/<variant>, with the same templates")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["rounds"] {
			o.rounds = 1
		}
		if !set["duration"] {
			o.duration = 3 * time.Second
		}
		if !set["warmup"] {
			o.warmup = time.Second
		}
	}
	o.estateSet = set["estate"]
	o.targets = splitList(*targets)
	o.variants = splitList(*variants)
	var errs []error
	for _, f := range splitList(*estate) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 1000000 {
			errs = append(errs, fmt.Errorf("-estate: %q must be a route count between 1 and 1000000", f))
			continue
		}
		o.estate = append(o.estate, n)
	}
	if len(o.estate) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("-estate is empty"))
	}
	return o, errors.Join(append(errs, o.validate())...)
}

func (o options) validate() error {
	var errs []error
	if o.rounds < 1 || o.rounds > 100 {
		errs = append(errs, fmt.Errorf("-rounds must be 1..100, got %d", o.rounds))
	}
	if o.duration < time.Second || o.duration > 10*time.Minute || o.duration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("-duration must be whole seconds between 1s and 10m, got %s", o.duration))
	}
	if o.warmup < 0 || o.warmup > time.Minute || o.warmup%time.Second != 0 {
		errs = append(errs, fmt.Errorf("-warmup must be whole seconds between 0 and 1m, got %s", o.warmup))
	}
	if o.fill < 0 || o.fill > 10*time.Minute || o.fill%time.Second != 0 {
		errs = append(errs, fmt.Errorf("-fill must be whole seconds between 0 and 10m, got %s", o.fill))
	}
	if o.think < 0 || o.think%time.Millisecond != 0 {
		errs = append(errs, fmt.Errorf("-think (%s) must be whole milliseconds, >= 0", o.think))
	}
	if o.conns < 1 || o.threads < 1 || o.conns < o.threads {
		errs = append(errs, fmt.Errorf("-conns (%d) and -threads (%d) must be >= 1 with conns >= threads", o.conns, o.threads))
	}
	if o.body < 0 || o.body > 1<<20 {
		errs = append(errs, fmt.Errorf("-body must be 0..1MiB, got %d", o.body))
	}
	if len(o.targets) == 0 {
		errs = append(errs, errors.New("-targets is empty"))
	}
	for _, t := range o.targets {
		if !slices.Contains(allTargets, t) {
			errs = append(errs, fmt.Errorf("-targets: unknown target %q (known: %s)", t, strings.Join(allTargets, ", ")))
		}
	}
	if slices.Contains(o.targets, "vantage") && len(o.variants) == 0 {
		errs = append(errs, errors.New("-vantage is empty but the vantage target is selected"))
	}
	if name, size, ok := strings.Cut(o.baseline, "@"); ok && name == "nginx" && !strings.Contains(size, "/") {
		if n, _ := strconv.Atoi(size); !o.estateSet || !slices.Contains(o.estate, n) || !slices.Contains(o.targets, "nginx") {
			errs = append(errs, fmt.Errorf("-baseline %q is not one of the targets measured", o.baseline))
		}
	} else if o.baseline != "" && !slices.Contains(o.targets, o.baseline) {
		base, variant, _ := strings.Cut(o.baseline, "/")
		variant, size, sized := strings.Cut(variant, "@")
		n, _ := strconv.Atoi(size)
		known := base == "vantage" || base == "before" && o.before != ""
		if !known || !slices.Contains(o.targets, "vantage") || !slices.Contains(o.variants, variant) ||
			(sized && !slices.Contains(o.estate, n)) {
			errs = append(errs, fmt.Errorf("-baseline %q is not one of the targets measured", o.baseline))
		}
	}
	if o.before != "" && !slices.Contains(o.targets, "vantage") {
		errs = append(errs, errors.New("-before needs the vantage target"))
	}
	for _, v := range o.variants {
		if strings.ContainsAny(v, `/\.@`) || v == "" {
			errs = append(errs, fmt.Errorf("-vantage: variant %q must be a plain name", v))
		} else if _, _, err := harness.ParseVariant(v); err != nil {
			errs = append(errs, fmt.Errorf("-vantage: %w", err))
		}
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func main() {
	opts, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C ends the harness at once; children die with it (Pdeathsig)
	}()
	r := &runner{opts: opts, command: commandLine(os.Args)}
	err = r.run(ctx)
	r.cleanup()
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "harness: interrupted; processes stopped and temp files removed")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "harness:", err)
		os.Exit(1)
	}
}

// commandLine reconstructs the command as the user typed it, without the
// temporary binary path `go run` uses.
func commandLine(args []string) string {
	prog := args[0]
	if strings.Contains(prog, "go-build") {
		prog = "go run ./bench/cmd/harness"
	} else {
		prog = "harness"
		if i := strings.LastIndexByte(args[0], '/'); i >= 0 {
			prog = args[0][i+1:]
		}
	}
	parts := []string{prog}
	for _, a := range args[1:] {
		if strings.ContainsAny(a, " \t'\"$`\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
