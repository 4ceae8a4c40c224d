package alerts

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/history"
)

// BenchmarkEvaluate evaluates 100 rules, each over every one of 1,000
// routes (100,000 alert candidates), on a synthetic source holding a
// minute of per-second data per route. ns/op is one tick; ns/rule-tick
// divides it by the rules.
func BenchmarkEvaluate(b *testing.B) {
	var y strings.Builder
	y.WriteString("listeners: [{address: \"127.0.0.1:0\"}]\nservices: [{name: s, upstreams: [{url: \"http://127.0.0.1:9\"}]}]\nroutes:\n")
	for i := 0; i < 1000; i++ {
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
	src := newFakeSource()
	for i := 0; i < 1000; i++ {
		for s := 0; s < 60; s++ {
			p := src.add(history.ScopeRoute, fmt.Sprintf("r%d", i), t0.Add(time.Duration(s)*time.Second), 10, 0)
			p.Latency.Observe(20 * time.Millisecond)
			p.Overhead.Observe(100 * time.Microsecond)
		}
	}
	e := NewEvaluator(rs)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := e.Evaluate(ctx, src, t0.Add(60*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/rule-tick")
}
