package alerts

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/history"
)

// benchRules compiles 100 rules over every one of routes routes (metrics
// error ratio, request rate, latency and overhead quantiles; windows 10s,
// 30s and 1m).
func benchRules(b *testing.B, routes int) *Ruleset {
	var y strings.Builder
	y.WriteString("listeners: [{address: \"127.0.0.1:0\"}]\nservices: [{name: s, upstreams: [{url: \"http://127.0.0.1:9\"}]}]\nroutes:\n")
	for i := 0; i < routes; i++ {
		fmt.Fprintf(&y, "  - {name: r%d, match: {path_prefix: /r%d}, service: s}\n", i, i)
	}
	y.WriteString("alerts:\n  rules:\n")
	metrics := []string{"error_ratio", "request_rate", "latency", "overhead"}
	windows := []string{"10s", "30s", "1m"}
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&y, "    - {name: R%d, scope: route, metric: %s, window: %s, threshold: %d, min_requests: 5}\n", i, metrics[i%4], windows[i%3], 1000+i)
	}
	cfg, err := config.Parse("b.yml", []byte(y.String()), nil)
	if err != nil {
		b.Fatal(err)
	}
	rs, err := Compile(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

// genSource is a synthetic history in which every route serves 10
// requests every second (one a 5xx every 7 seconds), with latency and
// overhead histograms, up to its latest second. It computes points on
// demand, so it costs the same at any time and holds no memory.
type genSource struct {
	names  []string
	latest time.Time
	// busy: only one route in busy has traffic (1: every route).
	busy int
	idx  map[string]int
}

func (g *genSource) point(name string, sec int64) history.Point {
	p := history.Point{Time: time.Unix(sec, 0)}
	p.V[history.Requests] = 10
	p.V[history.Class2xx] = 10
	if (sec+int64(len(name)))%7 == 0 {
		p.V[history.Class2xx], p.V[history.Class5xx] = 9, 1
	}
	p.Latency.Counts = make([]uint64, 4)
	p.Latency.Offset = 200 + int(sec%5)
	p.Latency.Counts[0], p.Latency.Counts[3] = 8, 2
	p.Overhead.Counts = []uint64{10}
	p.Overhead.Offset = 100
	return p
}

func (g *genSource) Range(ctx context.Context, q history.Query) (history.Result, error) {
	if err := q.Validate(); err != nil {
		return history.Result{}, err
	}
	step := int64(max(q.Step, time.Second) / time.Second)
	from, to := q.From.Unix(), min(q.To.Unix(), g.latest.Unix())
	n := (q.To.Unix() - from + step - 1) / step
	res := history.Result{Scope: q.Scope, Name: q.Name, Step: time.Duration(step) * time.Second, Points: make([]history.Point, n)}
	for i := range res.Points {
		res.Points[i].Time = time.Unix(from+int64(i)*step, 0)
	}
	if g.busy > 1 && g.idx[q.Name]%g.busy != 0 {
		return res, nil
	}
	for s := from; s < to; s++ {
		p := g.point(q.Name, s)
		res.Points[(s-from)/step].Add(&p)
	}
	return res, nil
}

func (g *genSource) Names(ctx context.Context, scope history.Scope) ([]string, error) {
	if scope != history.ScopeRoute {
		return nil, nil
	}
	return g.names, nil
}

func (g *genSource) Latest(context.Context) (time.Time, error) { return g.latest, nil }

// BenchmarkEvaluate evaluates 100 rules, each over every one of 1,000
// routes (100,000 alert candidates) that all have traffic in every
// second (busy=1in1) or of which one in ten has (busy=1in10; the others
// are idle), once per simulated second (each iteration is the next second),
// reading every window whole (whole: the reference, what every tick cost
// before windows were kept incrementally) and incrementally, in the same
// run. ns/op is one tick's wall time; cpu-ns/op its CPU time (the
// process's, the machine being shared), and cpu-ns/rule-series-tick
// that divided by rules × series.
//
//	go test ./internal/alerts -run XXX -bench 'Evaluate$' -benchtime 20x -count 3 -benchmem
func BenchmarkEvaluate(b *testing.B) {
	const routes = 1000
	rs := benchRules(b, routes)
	for _, busy := range []int{1, 10} {
		for _, mode := range []string{"whole", "incremental"} {
			b.Run(fmt.Sprintf("busy=1in%d/mode=%s", busy, mode), func(b *testing.B) {
				benchEvaluate(b, rs, routes, busy, mode)
			})
		}
	}
}

func benchEvaluate(b *testing.B, rs *Ruleset, routes, busy int, mode string) {
	src := &genSource{latest: t0.Add(2 * time.Minute), busy: busy, idx: map[string]int{}}
	for i := 0; i < routes; i++ {
		src.names = append(src.names, fmt.Sprintf("r%d", i))
		src.idx[src.names[i]] = i
	}
	e := NewEvaluator(rs)
	if mode == "whole" {
		e = newFullEvaluator(rs)
	}
	ctx := context.Background()
	// The first tick reads every window whole in both modes; the
	// incremental one is measured after a minute, once every
	// window's edge minute has been read.
	warm := 1
	if mode == "incremental" {
		warm = 65
	}
	for i := 0; i < warm; i++ {
		src.latest = src.latest.Add(time.Second)
		if _, _, err := e.Evaluate(ctx, src, src.latest); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		src.latest = src.latest.Add(time.Second)
		if _, _, err := e.Evaluate(ctx, src, src.latest); err != nil {
			b.Fatal(err)
		}
	}
	used := cpuTime() - cpu
	b.ReportMetric(float64(used)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(used)/float64(b.N)/float64(100*routes), "cpu-ns/rule-series-tick")
}

// cpuTime returns the process's CPU time (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEvaluateHistory is BenchmarkEvaluate's busy case on the real
// History (1,000 routes, one request each per second, per-second chunks
// compressed once their minute is complete), whole and incremental in
// the same run. Recording and sealing each second is not timed; the CPU
// figure is the process's during the evaluations only.
//
//	go test ./internal/alerts -run XXX -bench EvaluateHistory -benchtime 20x -count 1
func BenchmarkEvaluateHistory(b *testing.B) {
	const routes = 1000
	rs := benchRules(b, routes)
	names := make([]string, routes)
	for i := range names {
		names[i] = fmt.Sprintf("r%d", i)
	}
	for _, mode := range []string{"whole", "incremental"} {
		b.Run("mode="+mode, func(b *testing.B) {
			lh := newLiveHistory(b, config.History{}, t0, names...)
			src := lh.h.Source()
			second := func(i int) {
				for j, n := range names {
					lat := time.Duration(5+(i+j)%40) * time.Millisecond
					status := 200
					if (i+j)%17 == 0 {
						status = 502
					}
					lh.serve(n, status, lat)
				}
				lh.second()
			}
			e := NewEvaluator(rs)
			if mode == "whole" {
				e = newFullEvaluator(rs)
			}
			ctx := context.Background()
			for i := 0; i < 70; i++ {
				second(i)
				if mode == "incremental" || i == 69 {
					if _, _, err := e.Evaluate(ctx, src, lh.h.Latest()); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ResetTimer()
			var used time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				second(70 + i)
				b.StartTimer()
				cpu := cpuTime()
				if _, _, err := e.Evaluate(ctx, src, lh.h.Latest()); err != nil {
					b.Fatal(err)
				}
				used += cpuTime() - cpu
			}
			b.ReportMetric(float64(used)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(used)/float64(b.N)/float64(100*routes), "cpu-ns/rule-series-tick")
		})
	}
}
