package alerts

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/history"
)

// TestLinksUseTheBoundAdminAddress: with the admin on port 0 (the demo's
// case) and no external_url, exemplar links take the address the admin
// listener was bound to, before and after a reload; an external_url
// still wins.
func TestLinksUseTheBoundAdminAddress(t *testing.T) {
	const rule = `  rules:
    - {name: ApiErrors, scope: route, target: api, metric: error_ratio, window: 5s, threshold: 0.1}
`
	src := newFakeSource()
	for s := 0; s < 20; s++ {
		src.add(history.ScopeRoute, "api", t0.Add(time.Duration(s)*time.Second), 10, 5)
	}
	cfg, err := parse(rule)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Admin.Address = "127.0.0.1:0"
	m, err := New(cfg, Options{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.SetAdminAddr("127.0.0.1:43117")
	firstURL := func(at int) string {
		t.Helper()
		m.TickAt(context.Background(), t0.Add(time.Duration(at)*time.Second))
		a := alertOf(m, "ApiErrors")
		if a == nil || len(a.Exemplars) == 0 {
			t.Fatalf("second %d: alert %+v has no exemplars", at, a)
		}
		return a.Exemplars[0].URL
	}
	if u := firstURL(10); !strings.HasPrefix(u, "http://127.0.0.1:43117/traces/") {
		t.Fatalf("exemplar URL %q does not use the bound address", u)
	}
	if err := m.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if u := firstURL(11); !strings.HasPrefix(u, "http://127.0.0.1:43117/traces/") {
		t.Fatalf("after a reload, exemplar URL %q does not use the bound address", u)
	}
	cfg2, err := parse("  external_url: https://gw.example.com/admin/\n" + rule)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Update(cfg2); err != nil {
		t.Fatal(err)
	}
	if u := firstURL(12); !strings.HasPrefix(u, "https://gw.example.com/admin/traces/") {
		t.Fatalf("with external_url, exemplar URL %q", u)
	}
}
