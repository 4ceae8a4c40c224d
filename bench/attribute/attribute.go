// Package attribute splits a CPU profile of the gateway among the project's
// packages: each sample is charged to the innermost frame of its stack that
// belongs to the project (inlined frames included), at package level. Work
// done in the standard library or the runtime on a package's behalf (a
// map insert, an allocation, hex encoding) is therefore charged to that
// package, while the handlers and transports it calls are charged to
// themselves. A tracing middleware that wraps the proxy is charged only for
// its own work before and after calling the proxy.
//
// The split answers "how much of the gateway's CPU does feature X's own
// code take" from one profile of one build, without the run-to-run noise of
// comparing two runs' totals (bench/harness's paired mode). It is a lower
// bound of what X costs: work X causes elsewhere is charged elsewhere, such
// as net/http writing one more response header after the handler returns,
// the garbage collector's share of X's allocations, or caches X evicts.
package attribute

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// Options say how samples are grouped.
type Options struct {
	// Module is the import path prefix of the project's packages, such as
	// "github.com/vantage-gateway/vantage".
	Module string
	// Depth is how many path elements below Module name a group:
	// with 2, ".../internal/tracing/propagation" counts as
	// "internal/tracing". 0 means 2.
	Depth int
}

// Group is the CPU charged to one package (or to one outside root).
type Group struct {
	// Name is a package path relative to the module (internal/tracing),
	// or "outside: <function>" for samples with no project frame, named
	// by the outermost frame of their stack (runtime.gcBgMarkWorker,
	// net/http.(*conn).serve, ...).
	Name    string
	Samples int64
	CPU     int64 // nanoseconds of CPU
}

// Report is the split of one or more profiles.
type Report struct {
	Groups   []Group // most CPU first
	Samples  int64
	CPU      int64 // nanoseconds of CPU over all samples
	Profiles int
}

// Share is g's fraction of the report's CPU, and its standard error as a
// sampling proportion (binomial over the samples).
func (r Report) Share(g Group) (share, stderr float64) {
	if r.Samples == 0 {
		return 0, 0
	}
	p := float64(g.Samples) / float64(r.Samples)
	return float64(g.CPU) / float64(r.CPU), math.Sqrt(p * (1 - p) / float64(r.Samples))
}

// Find returns the group named name.
func (r Report) Find(name string) (Group, bool) {
	for _, g := range r.Groups {
		if g.Name == name {
			return g, true
		}
	}
	return Group{}, false
}

// Split charges every sample of the CPU profiles to a group. The profiles
// must be CPU profiles (a sample type "cpu" in nanoseconds, as
// runtime/pprof writes); their samples are pooled.
func Split(opts Options, profiles ...*profile.Profile) (Report, error) {
	if opts.Module == "" {
		return Report{}, fmt.Errorf("attribute: no module path")
	}
	depth := opts.Depth
	if depth <= 0 {
		depth = 2
	}
	prefix := strings.TrimSuffix(opts.Module, "/") + "/"
	byName := map[string]*Group{}
	var rep Report
	for i, p := range profiles {
		idx, count := -1, -1
		for j, st := range p.SampleType {
			switch {
			case st.Type == "cpu" && st.Unit == "nanoseconds":
				idx = j
			case st.Type == "samples" && st.Unit == "count":
				count = j
			}
		}
		if idx < 0 {
			return Report{}, fmt.Errorf("attribute: profile %d is not a CPU profile (no cpu/nanoseconds sample type)", i+1)
		}
		rep.Profiles++
		for _, s := range p.Sample {
			name := groupOf(s.Location, prefix, depth)
			g := byName[name]
			if g == nil {
				g = &Group{Name: name}
				byName[name] = g
			}
			n := int64(1)
			if count >= 0 {
				n = s.Value[count]
			}
			g.Samples += n
			g.CPU += s.Value[idx]
			rep.Samples += n
			rep.CPU += s.Value[idx]
		}
	}
	for _, g := range byName {
		rep.Groups = append(rep.Groups, *g)
	}
	slices.SortFunc(rep.Groups, func(a, b Group) int {
		return cmp.Or(cmp.Compare(b.CPU, a.CPU), strings.Compare(a.Name, b.Name))
	})
	return rep, nil
}

// groupOf names the group of a stack, given leaf first (as pprof stores
// it, each location's lines innermost first).
func groupOf(stack []*profile.Location, prefix string, depth int) string {
	outer := ""
	for _, loc := range stack {
		for _, ln := range loc.Line {
			if ln.Function == nil {
				continue
			}
			name := ln.Function.Name
			if strings.HasPrefix(name, prefix) {
				return packageGroup(name[len(prefix):], depth)
			}
			outer = name
		}
	}
	if outer == "" {
		outer = "unknown"
	}
	return "outside: " + outer
}

// packageGroup trims a function name below the module to its first depth
// package path elements: "internal/tracing/propagation.putTraceparent" →
// "internal/tracing".
func packageGroup(fn string, depth int) string {
	// The package path ends at the first "." after the last "/".
	slash := strings.LastIndexByte(fn, '/')
	pkg := fn
	if dot := strings.IndexByte(fn[slash+1:], '.'); dot >= 0 {
		pkg = fn[:slash+1+dot]
	}
	parts := strings.Split(pkg, "/")
	if len(parts) > depth {
		parts = parts[:depth]
	}
	return strings.Join(parts, "/")
}

// Write prints the report as a Markdown table: every group with at least
// minShare of the CPU (the rest summed in one row), with its share, the share's
// standard error and, when requests > 0, its CPU microseconds per request.
func (r Report) Write(w io.Writer, requests int64, minShare float64) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d profile(s), %d samples, %.2f s of CPU", r.Profiles, r.Samples, float64(r.CPU)/1e9)
	if requests > 0 {
		fmt.Fprintf(&b, ", %d requests: %.2f µs/request", requests, float64(r.CPU)/1e3/float64(requests))
	}
	b.WriteString("\n\n| group | samples | share | ± (1 SE) |")
	if requests > 0 {
		b.WriteString(" µs/request |")
	}
	b.WriteString("\n|---|---:|---:|---:|")
	if requests > 0 {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	var rest Group
	row := func(g Group) {
		share, se := r.Share(g)
		fmt.Fprintf(&b, "| %s | %d | %.2f%% | %.2f%% |", g.Name, g.Samples, 100*share, 100*se)
		if requests > 0 {
			fmt.Fprintf(&b, " %.3f |", float64(g.CPU)/1e3/float64(requests))
		}
		b.WriteString("\n")
	}
	for _, g := range r.Groups {
		if share, _ := r.Share(g); share < minShare {
			rest.Samples += g.Samples
			rest.CPU += g.CPU
			continue
		}
		row(g)
	}
	if rest.Samples > 0 {
		rest.Name = fmt.Sprintf("(the rest, each under %.1f%%)", 100*minShare)
		row(rest)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
