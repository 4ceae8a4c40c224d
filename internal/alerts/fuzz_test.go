package alerts

import (
	"context"
	"testing"
	"time"
)

// FuzzCompile feeds arbitrary alerts sections through the config's
// strict decoding and validation; whatever validates must compile,
// evaluate and export without error or panic.
func FuzzCompile(f *testing.F) {
	f.Add("  rules:\n    - {name: E, scope: route, target: api, metric: error_ratio, threshold: 0.1, annotations: {s: \"{{ .Value }}\"}}\n")
	f.Add("  slos:\n    - {name: s, scope: service, target: users, objective: 0.99, latency: 100ms, alerts: [page, ticket]}\n")
	f.Add("  rules:\n    - {name: D, scope: service, metric: hosts_available, threshold: 1}\n  inhibit_rules:\n    - {source_matchers: {alertname: D}, target_matchers: {severity: warning}, equal: [service]}\n")
	f.Fuzz(func(t *testing.T, section string) {
		cfg, err := parse(section)
		if err != nil {
			return
		}
		rs, err := Compile(cfg)
		if err != nil {
			t.Fatalf("validated config does not compile: %v", err)
		}
		e := NewEvaluator(rs)
		src := newFakeSource()
		if _, _, err := e.Evaluate(context.Background(), src, t0.Add(time.Minute)); err != nil {
			t.Fatalf("evaluate: %v", err)
		}
		if _, _, err := Export(cfg, "r.yml"); err != nil {
			t.Fatalf("export: %v", err)
		}
	})
}
