// Command stalls reads a Go execution trace (runtime/trace, or the admin
// listener's /debug/pprof/trace) of a gateway under load and says what held
// its processor: for each kind of goroutine (named by the function it
// started in) the time it ran, how many of its run slices were long, the
// longest, and how long it waited as runnable before running. On a
// gateway pinned to one core with GOMAXPROCS 1, a request waits for
// whatever runs before it, so long slices of telemetry goroutines show up
// in the request latency's tail. It also sums the garbage collector's
// stop-the-world pauses.
//
//	KIND=trace CONNS=5 bench/profile.sh observed 3
//	go run ./bench/cmd/stalls observed.trace
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// kind is what the report says of one kind of goroutine.
type kind struct {
	name             string
	goroutines       int
	run              time.Duration
	slices, over100  int
	over500, over1ms int
	longest          time.Duration
	waits            []time.Duration
}

type gstate struct {
	k            *kind
	runningSince trace.Time
	runnableAt   trace.Time
}

type slice struct {
	kind  string
	d     time.Duration
	where string
}

func main() {
	top := flag.Int("top", 12, "how many of the longest run slices to list")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: stalls [-top N] TRACE")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *top, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "stalls:", err)
		os.Exit(1)
	}
}

func run(path string, top int, out io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := trace.NewReader(f)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	kinds := map[string]*kind{}
	gs := map[trace.GoID]*gstate{}
	var longest []slice
	var first, last trace.Time
	var stw time.Duration
	var stwN, gcN int
	stwStart := map[string]trace.Time{}
	kindOf := func(name string) *kind {
		k := kinds[name]
		if k == nil {
			k = &kind{name: name}
			kinds[name] = k
		}
		return k
	}
	state := func(id trace.GoID, st trace.Stack) *gstate {
		g := gs[id]
		if g == nil {
			g = &gstate{k: kindOf(entry(st))}
			g.k.goroutines++
			gs[id] = g
		} else if g.k.name == "?" {
			if n := entry(st); n != "?" {
				g.k.goroutines--
				g.k = kindOf(n)
				g.k.goroutines++
			}
		}
		return g
	}
	for {
		ev, err := r.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		t := ev.Time()
		if first == 0 {
			first = t
		}
		last = t
		switch ev.Kind() {
		case trace.EventRangeBegin, trace.EventRangeEnd:
			name := ev.Range().Name
			if !strings.HasPrefix(name, "stop-the-world") {
				if ev.Kind() == trace.EventRangeBegin && strings.HasPrefix(name, "GC concurrent mark") {
					gcN++
				}
				continue
			}
			if ev.Kind() == trace.EventRangeBegin {
				stwStart[name] = t
			} else if s, ok := stwStart[name]; ok {
				stw += time.Duration(t - s)
				stwN++
				delete(stwStart, name)
			}
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			id := st.Resource.Goroutine()
			from, to := st.Goroutine()
			g := state(id, st.Stack)
			if from == trace.GoRunning && g.runningSince != 0 {
				d := time.Duration(t - g.runningSince)
				k := g.k
				k.run += d
				k.slices++
				if d > 100*time.Microsecond {
					k.over100++
				}
				if d > 500*time.Microsecond {
					k.over500++
				}
				if d > time.Millisecond {
					k.over1ms++
				}
				k.longest = max(k.longest, d)
				longest = append(longest, slice{kind: k.name, d: d, where: leaf(ev.Stack())})
				if len(longest) > 4*top {
					slices.SortFunc(longest, func(a, b slice) int { return cmp.Compare(b.d, a.d) })
					longest = longest[:top]
				}
				g.runningSince = 0
			}
			switch to {
			case trace.GoRunning:
				g.runningSince = t
				if from == trace.GoRunnable && g.runnableAt != 0 {
					g.k.waits = append(g.k.waits, time.Duration(t-g.runnableAt))
				}
				g.runnableAt = 0
			case trace.GoRunnable:
				g.runnableAt = t
			}
		}
	}
	span := time.Duration(last - first)
	fmt.Fprintf(out, "trace of %s; %d GC cycles, %d stop-the-world pauses, %s in all\n\n", span.Round(time.Millisecond), gcN, stwN, stw.Round(time.Microsecond))
	ks := make([]*kind, 0, len(kinds))
	for _, k := range kinds {
		if k.slices > 0 {
			ks = append(ks, k)
		}
	}
	slices.SortFunc(ks, func(a, b *kind) int { return cmp.Compare(b.run, a.run) })
	fmt.Fprintln(out, "| goroutines (entry function) | n | running | share | slices | >100µs | >500µs | >1ms | longest | runnable wait p50 / p99 / max |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, k := range ks {
		slices.Sort(k.waits)
		fmt.Fprintf(out, "| %s | %d | %s | %.1f%% | %d | %d | %d | %d | %s | %s / %s / %s |\n", k.name, k.goroutines,
			k.run.Round(time.Millisecond), 100*float64(k.run)/float64(span), k.slices, k.over100, k.over500, k.over1ms,
			k.longest.Round(time.Microsecond), q(k.waits, 0.5), q(k.waits, 0.99), q(k.waits, 1))
	}
	slices.SortFunc(longest, func(a, b slice) int { return cmp.Compare(b.d, a.d) })
	fmt.Fprintf(out, "\nlongest run slices:\n\n")
	for i, s := range longest {
		if i == top {
			break
		}
		fmt.Fprintf(out, "- %s %s, ended in %s\n", s.d.Round(time.Microsecond), s.kind, s.where)
	}
	return nil
}

// q returns the p quantile of sorted ds, "-" when empty.
func q(ds []time.Duration, p float64) string {
	if len(ds) == 0 {
		return "-"
	}
	i := min(len(ds)-1, int(p*float64(len(ds))))
	return ds[i].Round(time.Microsecond).String()
}

// entry returns the outermost function of st, the one its goroutine
// started in, or "?".
func entry(st trace.Stack) string {
	name := "?"
	for f := range st.Frames() {
		name = f.Func
	}
	return name
}

// leaf returns the innermost non-runtime function of st.
func leaf(st trace.Stack) string {
	var first string
	for f := range st.Frames() {
		if first == "" {
			first = f.Func
		}
		if !strings.HasPrefix(f.Func, "runtime.") && !strings.HasPrefix(f.Func, "internal/") {
			return f.Func
		}
	}
	if first == "" {
		return "?"
	}
	return first
}
