package attribute

import (
	"bytes"
	"context"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

const mod = "example.com/gw"

// builder makes CPU profiles by hand: a stack is a list of locations, leaf
// first, each a list of function names, innermost (inlined) first.
type builder struct {
	p     *profile.Profile
	funcs map[string]*profile.Function
}

func newBuilder() *builder {
	return &builder{
		p: &profile.Profile{SampleType: []*profile.ValueType{
			{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"},
		}},
		funcs: map[string]*profile.Function{},
	}
}

func (b *builder) sample(n int64, stack ...[]string) {
	var locs []*profile.Location
	for _, frames := range stack {
		loc := &profile.Location{ID: uint64(len(b.p.Location) + 1)}
		for _, name := range frames {
			f := b.funcs[name]
			if f == nil {
				f = &profile.Function{ID: uint64(len(b.funcs) + 1), Name: name}
				b.funcs[name] = f
				b.p.Function = append(b.p.Function, f)
			}
			loc.Line = append(loc.Line, profile.Line{Function: f})
		}
		b.p.Location = append(b.p.Location, loc)
		locs = append(locs, loc)
	}
	b.p.Sample = append(b.p.Sample, &profile.Sample{Location: locs, Value: []int64{n, n * 10_000_000}})
}

func TestSplitChargesInnermostProjectFrame(t *testing.T) {
	b := newBuilder()
	// The proxy's own work under the tracing middleware: the proxy's.
	b.sample(50, []string{"syscall.write"}, []string{mod + "/internal/proxy.(*Route).ServeHTTP"},
		[]string{mod + "/internal/tracing.(*routeTracing).serve"}, []string{"net/http.(*conn).serve"})
	// An allocation in the middleware's own code: tracing's.
	b.sample(3, []string{"runtime.mallocgc"}, []string{mod + "/internal/tracing/propagation.HeaderValue"},
		[]string{mod + "/internal/tracing.(*routeTracing).serve"}, []string{"net/http.(*conn).serve"})
	// An inlined frame counts as its own function: the innermost line of
	// the location is the sampling package's, inlined into tracing.
	b.sample(2, []string{mod + "/internal/tracing/sampling.Head.Decide", mod + "/internal/tracing.(*routeTracing).serve"},
		[]string{"net/http.(*conn).serve"})
	// No project frame: charged to the stack's outermost frame.
	b.sample(5, []string{"runtime.scanobject"}, []string{"runtime.gcDrain"}, []string{"runtime.gcBgMarkWorker"})
	b.sample(10, []string{"syscall.read"}, []string{"net/http.(*conn).serve"})

	rep, err := Split(Options{Module: mod}, b.p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		"internal/proxy":                  50,
		"internal/tracing":                5,
		"outside: runtime.gcBgMarkWorker": 5,
		"outside: net/http.(*conn).serve": 10,
	}
	if len(rep.Groups) != len(want) {
		t.Fatalf("groups = %+v, want %v", rep.Groups, want)
	}
	for name, n := range want {
		g, ok := rep.Find(name)
		if !ok || g.Samples != n || g.CPU != n*10_000_000 {
			t.Errorf("%s = %+v (found %v), want %d samples", name, g, ok, n)
		}
	}
	if rep.Samples != 70 || rep.Groups[0].Name != "internal/proxy" {
		t.Errorf("samples = %d, first group %q", rep.Samples, rep.Groups[0].Name)
	}
	g, _ := rep.Find("internal/tracing")
	if share, se := rep.Share(g); share != 5.0/70 || se <= 0 || se > 0.05 {
		t.Errorf("tracing share = %v ± %v", share, se)
	}

	// Depth 3 keeps subpackages apart.
	rep, err = Split(Options{Module: mod, Depth: 3}, b.p)
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int64{"internal/tracing": 0, "internal/tracing/propagation": 3, "internal/tracing/sampling": 2} {
		if g, _ := rep.Find(name); g.Samples != n {
			t.Errorf("depth 3: %s = %d samples, want %d", name, g.Samples, n)
		}
	}
}

func TestSplitPoolsProfilesAndRejectsOthers(t *testing.T) {
	a, b := newBuilder(), newBuilder()
	a.sample(4, []string{mod + "/internal/router.(*Table).Match"})
	b.sample(6, []string{mod + "/internal/router.(*Table).Match"})
	rep, err := Split(Options{Module: mod}, a.p, b.p)
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := rep.Find("internal/router"); g.Samples != 10 || rep.Profiles != 2 {
		t.Errorf("pooled = %+v over %d profiles", g, rep.Profiles)
	}

	heap := &profile.Profile{SampleType: []*profile.ValueType{{Type: "alloc_space", Unit: "bytes"}}}
	if _, err := Split(Options{Module: mod}, heap); err == nil || !strings.Contains(err.Error(), "not a CPU profile") {
		t.Errorf("heap profile: err = %v", err)
	}
	if _, err := Split(Options{}, a.p); err == nil {
		t.Error("no module: no error")
	}
}

func TestWrite(t *testing.T) {
	b := newBuilder()
	b.sample(90, []string{mod + "/internal/proxy.serve"})
	b.sample(9, []string{mod + "/internal/tracing.serve"})
	b.sample(1, []string{mod + "/internal/observe.Get"})
	rep, err := Split(Options{Module: mod}, b.p)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := rep.Write(&out, 1000, 0.095); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{
		"1 profile(s), 100 samples, 1.00 s of CPU, 1000 requests: 1000.00 µs/request",
		"| internal/proxy | 90 | 90.00% | 3.00% | 900.000 |",
		"| (the rest, each under 9.5%) | 10 | 10.00% | 3.00% | 100.000 |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
}

// TestSplitRealProfile profiles this test's own busy loop with
// runtime/pprof and checks that the samples are charged to this package,
// as a real profile's stacks (with inlining) are laid out.
func TestSplitRealProfile(t *testing.T) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Skipf("CPU profiling unavailable: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	spin(ctx)
	pprof.StopCPUProfile()
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Split(Options{Module: "github.com/vantage-gateway/vantage", Depth: 2}, p)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Samples < 10 {
		t.Skipf("only %d samples in 0.5 s: the machine is too busy to check", rep.Samples)
	}
	g, _ := rep.Find("bench/attribute")
	if share, _ := rep.Share(g); share < 0.5 {
		t.Errorf("the busy loop's share = %.2f, want most of the profile; groups %+v", share, rep.Groups)
	}
}

var sink uint64

// spin burns CPU until ctx ends, checking it every 100k iterations.
func spin(ctx context.Context) {
	x := uint64(1)
	for ctx.Err() == nil {
		for range 100_000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	sink = x
}
