package router

import (
	"net/http/httptest"
	"testing"

	"github.com/vantage-gateway/vantage/internal/config"
)

func mustCompile(t testing.TB, yaml string) *Table {
	t.Helper()
	cfg, err := config.Parse("routes.yml", []byte(yaml), nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	var names []string
	for _, l := range cfg.Listeners {
		names = append(names, l.Name)
	}
	tbl, err := Compile(cfg.Routes, names)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

const tableYAML = `
listeners:
  - {name: public, address: "127.0.0.1:1"}
  - {name: internal, address: "127.0.0.1:2"}
services:
  - {name: s, upstreams: [{url: "http://127.0.0.1:3"}]}
routes:
  - {name: catch-all, match: {}, service: s}
  - {name: api-prefix, match: {path_prefix: /api}, service: s}
  - {name: api-slash, match: {path_prefix: /api/v2/}, service: s}
  - {name: user, match: {path: "/api/users/{id}"}, service: s}
  - {name: user-me, match: {path: "/api/users/me"}, service: s}
  - {name: user-posts, match: {path: "/api/users/{id}/posts"}, service: s}
  - {name: files, match: {path: "/files/{rest...}"}, service: s}
  - {name: post-only, match: {path: /submit, methods: [POST]}, service: s}
  - {name: wild, match: {hosts: ["*.example.com"], path_prefix: /}, service: s}
  - {name: exact-host, match: {hosts: ["shop.example.com"], path_prefix: /}, service: s}
  - {name: header, match: {path_prefix: /h, headers: [{name: x-version, value: "2"}]}, service: s}
  - {name: header-re, match: {path_prefix: /h, headers: [{name: x-version, regex: "3|4"}]}, service: s}
  - {name: query, match: {path_prefix: /q, query: [{name: beta}]}, service: s}
  - {name: internal-only, listeners: [internal], match: {path_prefix: /admin}, service: s}
  - {name: low, match: {path: /prio}, service: s}
  - {name: high, priority: 10, match: {path_prefix: /prio}, service: s}
`

func TestMatch(t *testing.T) {
	tbl := mustCompile(t, tableYAML)
	cases := []struct {
		listener, method, target, host string
		header                         map[string]string
		want                           string
		template                       string
	}{
		{"public", "GET", "/", "", nil, "catch-all", "/"},
		{"public", "GET", "/api", "", nil, "api-prefix", "/api"},
		{"public", "GET", "/api/x", "", nil, "api-prefix", "/api"},
		{"public", "GET", "/apix", "", nil, "catch-all", "/"},
		{"public", "GET", "/api/v2/x", "", nil, "api-slash", "/api/v2/"},
		{"public", "GET", "/api/users/42", "", nil, "user", "/api/users/{id}"},
		{"public", "GET", "/api/users/me", "", nil, "user-me", "/api/users/me"},
		{"public", "GET", "/api/users/42/posts", "", nil, "user-posts", "/api/users/{id}/posts"},
		{"public", "GET", "/api/users/42/", "", nil, "api-prefix", "/api"},
		{"public", "GET", "/api/users/", "", nil, "api-prefix", "/api"},
		{"public", "GET", "/files", "", nil, "files", "/files/{rest...}"},
		{"public", "GET", "/files/a/b/c", "", nil, "files", "/files/{rest...}"},
		{"public", "POST", "/submit", "", nil, "post-only", "/submit"},
		{"public", "GET", "/submit", "", nil, "catch-all", "/"},
		{"public", "GET", "/x", "a.example.com", nil, "wild", "/"},
		{"public", "GET", "/x", "A.Example.COM:8080", nil, "wild", "/"},
		{"public", "GET", "/x", "example.com", nil, "catch-all", "/"},
		{"public", "GET", "/api/users/1", "shop.example.com", nil, "exact-host", "/"},
		{"public", "GET", "/h", "", map[string]string{"X-Version": "2"}, "header", "/h"},
		{"public", "GET", "/h", "", map[string]string{"X-Version": "4"}, "header-re", "/h"},
		{"public", "GET", "/h", "", map[string]string{"X-Version": "44"}, "catch-all", "/"},
		{"public", "GET", "/q?beta=1", "", nil, "query", "/q"},
		{"public", "GET", "/q", "", nil, "catch-all", "/"},
		{"public", "GET", "/admin", "", nil, "catch-all", "/"},
		{"internal", "GET", "/admin", "", nil, "internal-only", "/admin"},
		{"public", "GET", "/prio", "", nil, "high", "/prio"},
		{"nosuch", "GET", "/", "", nil, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.listener+" "+tc.method+" "+tc.host+tc.target, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			if tc.host != "" {
				r.Host = tc.host
			}
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			got := tbl.Match(tc.listener, r)
			name, tmpl := "", ""
			if got != nil {
				name, tmpl = got.Name, got.Template
			}
			if name != tc.want || tmpl != tc.template {
				t.Fatalf("matched %q (%q), want %q (%q)", name, tmpl, tc.want, tc.template)
			}
		})
	}
}

func TestOrderBreaksTiesByFilePosition(t *testing.T) {
	tbl := mustCompile(t, `
listeners: [{address: "127.0.0.1:1"}]
services: [{name: s, upstreams: [{url: "http://127.0.0.1:3"}]}]
routes:
  - {name: first, match: {path_prefix: /a}, service: s}
  - {name: second, match: {path_prefix: /a}, service: s}
`)
	if got := tbl.Match("listener-0", httptest.NewRequest("GET", "/a", nil)); got == nil || got.Name != "first" {
		t.Fatalf("got %v, want first", got)
	}
}

// TestMatchDoesNotAllocate: matching allocates nothing, for an upper-case
// Host header and under query conditions too.
func TestMatchDoesNotAllocate(t *testing.T) {
	tbl := mustCompile(t, tableYAML)
	for _, tc := range []struct{ target, host string }{
		{"/api/users/42/posts", ""},
		{"/files/a/b", ""},
		{"/q?beta=1&x=2", ""},
		{"/q?alpha=1", ""},
		{"/x", "A.Example.COM:8080"},
		{"/x", "SHOP.example.com."},
		{"/nowhere/at/all", "unknown.host"},
	} {
		r := httptest.NewRequest("GET", tc.target, nil)
		if tc.host != "" {
			r.Host = tc.host
		}
		if n := testing.AllocsPerRun(100, func() { tbl.Match("public", r) }); n != 0 {
			t.Errorf("Match(%s %s) allocates %v times", tc.host, tc.target, n)
		}
	}
}

// BenchmarkMatchTable matches against the small table of TestMatch.
func BenchmarkMatchTable(b *testing.B) {
	tbl := mustCompile(b, tableYAML)
	for _, target := range []string{"/api/users/42/posts", "/files/a/b", "/q?beta=1", "/"} {
		r := httptest.NewRequest("GET", target, nil)
		b.Run(target, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if tbl.Match("public", r) == nil {
					b.Fatal("no match")
				}
			}
		})
	}
}
