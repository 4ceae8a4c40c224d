package alerts

import (
	"context"
	"os"
	"path/filepath"
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

// FuzzStateFile feeds arbitrary bytes to the state file reader: it must
// refuse them or restore what it read without panicking, and an
// evaluation must follow.
func FuzzStateFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"saved_at":"2026-03-01T12:00:00Z","alerts":[{"key":"E","series":"api","alert":{"rule":"E","labels":{},"state":"firing","active_at":"2026-03-01T12:00:00Z","fired_at":"2026-03-01T12:00:03Z","evaluated_at":"2026-03-01T12:00:10Z","value":0.5,"threshold":0.1,"op":">","requests":10,"window_ns":5000000000}}],"slos":[{"slo":"s","scope":"route","series":"api","hours":[{"start":1772366400,"requests":100,"bad":3}]}]}`))
	f.Add([]byte(`{"version":1,"alerts":[{"key":"E","series":"api","alert":{"state":"bogus"}}]}`))
	f.Add([]byte(`{"version":2}`))
	rs := compile(f, "  rules:\n    - {name: E, scope: route, target: api, metric: error_ratio, window: 5s, threshold: 0.1}\n  slos:\n    - {name: s, scope: route, target: api, objective: 0.99}\n")
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, StateFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := readState(dir)
		if err != nil || st == nil {
			return
		}
		e := NewEvaluator(rs)
		e.DataSince = t0
		e.keepSLO = true
		e.restore(st.Alerts)
		e.slo.load(st.SLOs)
		if _, _, err := e.Evaluate(context.Background(), newFakeSource(), t0.Add(time.Minute)); err != nil {
			t.Fatalf("evaluate after restore: %v", err)
		}
	})
}
