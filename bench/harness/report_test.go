package harness

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{nan, 7, 1, nan, 4}, 4},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		if got := Median(in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] && !(math.IsNaN(in[i]) && math.IsNaN(tt.in[i])) {
				t.Errorf("Median modified its input: %v", in)
			}
		}
	}
	if got := Median(nil); !math.IsNaN(got) {
		t.Errorf("Median(nil) = %v, want NaN", got)
	}
	if got := Median([]float64{nan}); !math.IsNaN(got) {
		t.Errorf("Median(NaN) = %v, want NaN", got)
	}
}

func sample(target string, round int, rps float64, p99 time.Duration, requests int64, cpuSec float64) Sample {
	return Sample{Target: target, Round: round, CPUSeconds: cpuSec, Wrk: WrkResult{
		Requests: requests, RequestsPerSec: rps, P50: p99 / 4, P99: p99,
	}}
}

func TestSummarizeAndTable(t *testing.T) {
	ms := time.Millisecond
	samples := []Sample{
		// direct: upstream CPU 10 µs/req
		sample("direct", 0, 50000, 1*ms, 100000, 1.0),
		// httputil: 100, 120, 80 µs/req -> median 100
		sample("httputil", 0, 5000, 30*ms, 10000, 1.0),
		sample("httputil", 1, 6000, 20*ms, 10000, 1.2),
		sample("httputil", 2, 4000, 40*ms, 10000, 0.8),
		// nginx: 20 µs/req
		sample("nginx", 0, 20000, 5*ms, 50000, 1.0),
		// caddy: 50 µs/req, p99 10ms
		sample("caddy", 0, 10000, 10*ms, 20000, 1.0),
		// a sample without requests must not poison the median
		sample("caddy", 1, 0, 10*ms, 0, 1.0),
	}
	samples[len(samples)-1].Wrk.SocketErrors = 3
	sums := Summarize(samples, []string{"direct", "vantage/plain", "httputil", "nginx", "caddy"})
	if len(sums) != 4 {
		t.Fatalf("Summarize returned %d rows, want 4 (vantage/plain has no samples): %+v", len(sums), sums)
	}
	h := sums[1]
	if h.Target != "httputil" || h.Rounds != 3 || h.RequestsPerSec != 5000 || h.P99 != 30*ms ||
		math.Abs(h.CPUMicrosPerRequest-100) > 1e-9 {
		t.Errorf("httputil summary = %+v", h)
	}
	c := sums[3]
	if c.Errors != 3 || math.Abs(c.CPUMicrosPerRequest-50) > 1e-9 || c.RequestsPerSec != 5000 {
		t.Errorf("caddy summary = %+v", c)
	}

	table := MarkdownTable(sums)
	for _, want := range []string{
		"| target | req/s | p50 | p99 | CPU µs/req | CPU ÷ httputil | CPU ÷ caddy | CPU ÷ nginx | p99 ÷ caddy | errors |",
		"| direct (no proxy; CPU is the upstream's) | 50000 | 250 µs | 1.00 ms | 10.0 | – | – | – | – | 0 |",
		"| httputil | 5000 | 7.50 ms | 30.00 ms | 100.0 | 1.00 | 2.00 | 5.00 | 3.00 | 0 |",
		"| nginx | 20000 | 1.25 ms | 5.00 ms | 20.0 | 0.20 | 0.40 | 1.00 | 0.50 | 0 |",
		"| caddy | 5000 | 2.50 ms | 10.00 ms | 50.0 | 0.50 | 1.00 | 2.50 | 1.00 | 3 |",
	} {
		if !strings.Contains(table, want+"\n") {
			t.Errorf("table lacks row\n%s\ngot:\n%s", want, table)
		}
	}

	// Without the reference targets the ratio columns are dashes.
	only := MarkdownTable(Summarize(samples, []string{"nginx"}))
	if !strings.Contains(only, "| nginx | 20000 | 1.25 ms | 5.00 ms | 20.0 | – | – | 1.00 | – | 0 |") {
		t.Errorf("table without references:\n%s", only)
	}
}

func TestFormatLatency(t *testing.T) {
	for d, want := range map[time.Duration]string{
		294 * time.Microsecond:  "294 µs",
		999 * time.Microsecond:  "999 µs",
		time.Millisecond:        "1.00 ms",
		4410 * time.Microsecond: "4.41 ms",
		2 * time.Second:         "2000.00 ms",
	} {
		if got := FormatLatency(d); got != want {
			t.Errorf("FormatLatency(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestSummarizePairs(t *testing.T) {
	mk := func(target string, cpu float64, p99 time.Duration, base *Sample) Sample {
		return Sample{Target: target, Wrk: WrkResult{Requests: 1000, P99: p99}, CPUSeconds: cpu * 1000 / 1e6, Baseline: base}
	}
	ms := time.Millisecond
	b1, b2, b3 := mk("plain", 40, 2*ms, nil), mk("plain", 60, 2*ms, nil), mk("plain", 50, 4*ms, nil)
	samples := []Sample{
		b1, mk("tracing", 44, 3*ms, &b1), // 1.10, p99 1.5
		b2, mk("tracing", 63, 5*ms, &b2), // 1.05, p99 2.5
		b3, mk("tracing", 54, 4*ms, &b3), // 1.08, p99 1.0
		mk("unpaired", 99, ms, nil),
	}
	ps := SummarizePairs(samples, []string{"plain", "tracing", "unpaired"})
	if len(ps) != 1 || ps[0].Target != "tracing" || ps[0].Pairs != 3 {
		t.Fatalf("got %+v", ps)
	}
	p := ps[0]
	if math.Abs(p.Median-1.08) > 1e-9 || math.Abs(p.Min-1.05) > 1e-9 || math.Abs(p.Max-1.10) > 1e-9 {
		t.Fatalf("median/min/max = %v/%v/%v", p.Median, p.Min, p.Max)
	}
	tab := PairedTable("plain", ps)
	if p.P99Median != 1.5 || p.P99Min != 1.0 || p.P99Max != 2.5 {
		t.Fatalf("p99 median/min/max = %v/%v/%v", p.P99Median, p.P99Min, p.P99Max)
	}
	if !strings.Contains(tab, "| tracing | 3 | 1.080 | +8.0% | 1.050 | 1.100 | 1.500 | 1.000 | 2.500 |") {
		t.Fatalf("table:\n%s", tab)
	}
}
