// Command reliability runs the gateway through the load cases that an
// attacker or an unlucky operator would put it through, and prints a
// Markdown table of what it measured beside what each case expects:
// reloads under load (valid and invalid), an upstream killed and restarted,
// telemetry backends down, black-holed and slow, slowloris, slow request
// bodies and slow readers, a flood of distinct paths, SIGTERM under load,
// and a soak with the gateway's memory sampled.
//
//	go run ./bench/cmd/reliability                       # every case, 30-minute soak (about 35 minutes)
//	go run ./bench/cmd/reliability -soak 2m              # a shorter soak
//	go run ./bench/cmd/reliability -scenarios reload,kill
//
// Everything runs on 127.0.0.1 in processes it starts and stops by PID; every
// load is bounded in count and time. It is too long for the test suite.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vantage-gateway/vantage/bench/reliability"
)

var allScenarios = []string{"reload", "reload-invalid", "kill", "telemetry", "slowloris", "slow-body", "slow-readers", "cardinality", "sigterm", "soak"}

func main() {
	scen := flag.String("scenarios", strings.Join(allScenarios, ","), "comma-separated cases to run, in this order: "+strings.Join(allScenarios, ", "))
	soak := flag.Duration("soak", 30*time.Minute, "length of the soak case")
	soakRate := flag.Float64("soak-rate", 1000, "requests per second during the soak")
	out := flag.String("out", "", "also write the report to this file")
	keep := flag.Bool("keep-tmp", false, "keep the temp dir (configs and logs)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, strings.Split(*scen, ","), *soak, *soakRate, *out, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, scenarios []string, soak time.Duration, soakRate float64, out string, keep bool) error {
	known := map[string]bool{}
	for _, s := range allScenarios {
		known[s] = true
	}
	for _, s := range scenarios {
		if !known[s] {
			return fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(allScenarios, ", "))
		}
	}
	tmp, err := os.MkdirTemp("", "vantage-reliability-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintln(os.Stderr, "keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	e := &env{tmp: tmp}
	defer e.stopAll()
	fmt.Fprintln(os.Stderr, "building vantage and the upstream...")
	if e.vantage, err = build(tmp, "vantage", "./cmd/vantage"); err != nil {
		return err
	}
	if e.upstream, err = build(tmp, "upstream", "./bench/cmd/upstream"); err != nil {
		return err
	}
	start := time.Now()
	for _, s := range scenarios {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "== %s\n", s)
		var err error
		switch s {
		case "reload":
			err = e.reload(ctx, false)
		case "reload-invalid":
			err = e.reload(ctx, true)
		case "kill":
			err = e.kill(ctx)
		case "telemetry":
			err = e.telemetry(ctx)
		case "slowloris":
			err = e.slowloris(ctx)
		case "slow-body":
			err = e.slowBody(ctx)
		case "slow-readers":
			err = e.slowReaders(ctx)
		case "cardinality":
			err = e.cardinality(ctx)
		case "sigterm":
			err = e.sigterm(ctx)
		case "soak":
			err = e.soak(ctx, soak, soakRate)
		}
		e.stopAll()
		if err != nil {
			e.add(reliability.Row{Scenario: s, Measure: "run", Value: "error: " + err.Error(), Pass: reliability.Verdict(false)})
		}
	}
	report := fmt.Sprintf("# Reliability run\n\n- command: `go run ./bench/cmd/reliability %s`\n- date: %s\n- machine: %d CPUs, %s, %s\n- took: %s\n\n%s",
		strings.Join(os.Args[1:], " "), time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), cpuModel(), runtime.Version(),
		time.Since(start).Round(time.Second), reliability.Markdown(e.rows))
	fmt.Print(report)
	if out != "" {
		return os.WriteFile(out, []byte(report), 0o644)
	}
	return nil
}

func build(tmp, name, pkg string) (string, error) {
	bin := filepath.Join(tmp, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building %s: %w", pkg, err)
	}
	return bin, nil
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
