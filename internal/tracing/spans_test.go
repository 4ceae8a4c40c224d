package tracing

import (
	"testing"

	"github.com/vantage-gateway/vantage/internal/middleware"
)

func TestRedactQuery(t *testing.T) {
	cfg := parseTracing(t, "sensitive_query_params: [Session_Key]\n", "")
	tr := newTracing(t, cfg, Options{})
	cases := map[string]string{
		"":                                    "",
		"page=2&sort=asc":                     "page=2&sort=asc",
		"token=abc":                           "token=REDACTED",
		"a=1&TOKEN=abc&b=2":                   "a=1&TOKEN=REDACTED&b=2",
		"access%5Ftoken=x&y=1":                "access%5Ftoken=REDACTED&y=1",
		"session_key=s&api_key=k&x":           "session_key=REDACTED&api_key=REDACTED&x",
		"password":                            "password",
		"password=p;page=2&q=1":               "password=REDACTED&q=1",
		"jwt=e&access-token=a&x-api-key=k":    "jwt=REDACTED&access-token=REDACTED&x-api-key=REDACTED",
		"a=1&&sig=zz":                         "a=1&&sig=REDACTED",
		"X-Amz-Signature=abc&X-Amz-Date=2024": "X-Amz-Signature=REDACTED&X-Amz-Date=2024",
	}
	for in, want := range cases {
		if got := tr.redact.Query(in); got != want {
			t.Errorf("redact.Query(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { tr.redact.Query("page=2&sort=asc&q=shoes") }); n != 0 {
		t.Errorf("query without secrets allocates %v times", n)
	}
}

func TestSplitHostPort(t *testing.T) {
	for _, c := range []struct {
		in   string
		host string
		port int
	}{
		{"", "", 0},
		{"example.com", "example.com", 0},
		{"example.com:8080", "example.com", 8080},
		{"10.0.0.1:443", "10.0.0.1", 443},
		{"[::1]:8080", "::1", 8080},
		{"[::1]", "::1", 0},
		{"::1", "::1", 0},
		{"2001:db8::1", "2001:db8::1", 0},
		{"example.com:", "example.com", 0},
		{"example.com:http", "example.com", 0},
		{"example.com:99999", "example.com", 0},
	} {
		host, port := splitHostPort(c.in)
		if host != c.host || port != c.port {
			t.Errorf("splitHostPort(%q) = %q, %d; want %q, %d", c.in, host, port, c.host, c.port)
		}
	}
	if n := testing.AllocsPerRun(10, func() { splitHostPort("example.com") }); n != 0 {
		t.Errorf("splitHostPort allocates %v times without a port", n)
	}
}

// TestSpanNamesAreBuiltOnFirstUse: a route holds no span names until it
// traces a request; then each method's name is built once and reused.
func TestSpanNamesAreBuiltOnFirstUse(t *testing.T) {
	tr := newTracing(t, parseTracing(t, "", ""), Options{})
	m := tr.ForRoute(middleware.Route{Name: "items", Template: "/items/{id}"})
	if m == nil {
		t.Fatal("no tracing stage")
	}
	rt := &routeTracing{t: tr, name: "items", template: "/items/{id}"}
	for i := range rt.spanNames {
		if rt.spanNames[i].Load() != nil {
			t.Fatal("a span name exists before any request")
		}
	}
	for meth, want := range map[string]string{"GET": "GET /items/{id}", "DELETE": "DELETE /items/{id}", "PROPFIND": "HTTP /items/{id}", "get": "HTTP /items/{id}"} {
		if got := rt.spanName(meth); got != want {
			t.Errorf("%s: %q, want %q", meth, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { rt.spanName("GET"); rt.spanName("PATCH") }); n != 0 {
		t.Errorf("%v allocations once the names exist", n)
	}
	if got := (&routeTracing{}).spanName("GET"); got != "GET" {
		t.Errorf("no template: %q", got)
	}
}
