package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vantage-gateway/vantage/bench/harness"
)

// report prints the Markdown report to stdout and, with -out, to a file.
func (r *runner) report(ctx context.Context) error {
	o := r.opts
	names := make([]string, len(r.targets))
	for i, t := range r.targets {
		names[i] = t.name
	}
	sums := harness.Summarize(r.samples, names)

	var b strings.Builder
	b.WriteString("## Load harness results\n\n")
	fmt.Fprintf(&b, "- Command: `%s`\n", r.command)
	fmt.Fprintf(&b, "- Date: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "- Machine: nproc %s, %s\n", nproc(ctx), cpuModel())
	fmt.Fprintf(&b, "- Go: %s\n", goVersion(ctx, r.root))
	fmt.Fprintf(&b, "- Tools: %s\n", strings.Join(r.versions, "; "))
	fmt.Fprintf(&b, "- Load: `wrk -t%d -c%d -d%ds --latency`, %s warm-up before each run, %d round(s), target order rotated each round, upstream body %d B, loopback only\n",
		o.threads, o.conns, int(o.duration/time.Second), o.warmup, o.rounds, o.body)
	if o.fill > 0 {
		fmt.Fprintf(&b, "- Fill: every target was loaded for %s before the first round\n", o.fill)
	}
	if o.think > 0 {
		fmt.Fprintf(&b, "- Think time: each connection waits %s after a response (wrk `delay()`), so at most %.0f requests/s are offered: CPU per request is measured below saturation\n",
			o.think, float64(o.conns)*float64(time.Second)/float64(o.think))
	}
	fmt.Fprintf(&b, "- Pinning: %s\n", r.pinNote)
	fmt.Fprintf(&b, "- CPU µs/req: utime+stime of the target's process tree from /proc/<pid>/stat (CLK_TCK %.0f) over the measured run, divided by the requests wrk completed; all figures are medians over rounds\n", r.clkTck)
	if o.httputilIdle > 0 && hasTarget(names, harness.RefHTTPUtil) {
		fmt.Fprintf(&b, "- httputil: MaxIdleConnsPerHost %d (not the default 2)\n", o.httputilIdle)
	}
	if len(r.skipped) > 0 {
		b.WriteString("- Skipped:\n")
		for _, s := range r.skipped {
			fmt.Fprintf(&b, "  - %s: %s\n", s.name, s.reason)
		}
	}
	b.WriteString("\n")
	b.WriteString(harness.MarkdownTable(sums))
	if conns := harness.ConnsTable(r.samples, names); conns != "" {
		b.WriteString("\nConnections the upstream accepted during the measured runs (the direct row counts wrk's own):\n\n")
		b.WriteString(conns)
	}
	if o.baseline != "" {
		fmt.Fprintf(&b, "\nPaired with %s (it ran next to each run of the others, before it in even rounds and after it in odd ones, so both runs of a pair share the machine's state):\n\n", o.baseline)
		b.WriteString(harness.PairedTable(o.baseline, harness.SummarizePairs(r.samples, names)))
	}
	if o.rounds > 1 {
		b.WriteString("\nPer round:\n\n")
		b.WriteString("| round | target | req/s | p50 | p99 | CPU µs/req | errors |\n|---:|---|---:|---:|---:|---:|---:|\n")
		for _, s := range r.samples {
			fmt.Fprintf(&b, "| %d | %s | %.0f | %s | %s | %.1f | %d |\n", s.Round+1, s.Target, s.Wrk.RequestsPerSec,
				harness.FormatLatency(s.Wrk.P50), harness.FormatLatency(s.Wrk.P99), s.CPUMicrosPerRequest(), s.Wrk.Errors())
		}
	}
	fmt.Print(b.String())
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("writing -out: %w", err)
		}
		logf("report written to %s", o.out)
	}
	return nil
}

func hasTarget(names []string, n string) bool { return slices.Contains(names, n) }

func nproc(ctx context.Context) string {
	if out, err := output(ctx, "", "nproc"); err == nil {
		if _, err := strconv.Atoi(out); err == nil {
			return out
		}
	}
	return strconv.Itoa(runtime.NumCPU())
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "CPU model unknown"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "CPU model unknown"
}

func goVersion(ctx context.Context, root string) string {
	if out, err := output(ctx, root, "go", "version"); err == nil {
		return strings.TrimPrefix(out, "go version ")
	}
	return runtime.Version()
}
