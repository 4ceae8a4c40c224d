package config

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// estateYAML is a config of n services, each behind one template route, as
// a large ingress has (the bench harness's estate).
func estateYAML(n int) []byte {
	var b strings.Builder
	b.WriteString("listeners: [{name: public, address: \"127.0.0.1:8080\"}]\nservices:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: svc%d, upstreams: [{url: \"http://127.0.0.1:9000\"}]}\n", i)
	}
	b.WriteString("routes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: svc%d, match: {path: \"/svc%d/items/{id}\"}, service: svc%d}\n", i, i, i)
	}
	return []byte(b.String())
}

// BenchmarkParseEstate is the load of a config with many routes and
// services, as on every reload. cpu-ms/op is the process's CPU time (user
// and system, the garbage collector's included) per load, which a loaded
// machine inflates less than the wall time.
func BenchmarkParseEstate(b *testing.B) {
	for _, n := range []int{10, 10000} {
		data := estateYAML(n)
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			start := cpuTime()
			for b.Loop() {
				if _, err := Parse("estate.yml", data, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime returns the CPU time (user + system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
