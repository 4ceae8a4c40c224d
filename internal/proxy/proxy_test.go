package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// TestProxyTimeoutCauses: the causes the proxy gives an attempt's context
// are timeouts to the one classifier, with or without a client context.
func TestProxyTimeoutCauses(t *testing.T) {
	for _, err := range []error{errRouteTimeout, errTryTimeout, fmt.Errorf("context canceled: %w", errRouteTimeout)} {
		if got := observe.Classify(err, context.Background()); got != observe.ErrUpstreamTimeout {
			t.Errorf("Classify(%v) = %q, want upstream_timeout", err, got)
		}
	}
}

func TestStatusFor(t *testing.T) {
	for kind, status := range map[observe.ErrorKind]int{
		observe.ErrNoRoute: 404, observe.ErrUpstreamConnect: 502, observe.ErrUpstreamTimeout: 504,
		observe.ErrNoHealthyUpstream: 503, observe.ErrBreakerOpen: 503, observe.ErrRateLimited: 429,
		observe.ErrClientBadRequest: 400, observe.ErrClientTimeout: 408, observe.ErrClientCanceled: 499,
	} {
		if got := StatusFor(kind); got != status {
			t.Errorf("StatusFor(%s) = %d, want %d", kind, got, status)
		}
	}
}

func TestRewritePath(t *testing.T) {
	cases := []struct{ path, raw, strip, add, want, wantRaw string }{
		{"/api/users", "", "/api", "", "/users", ""},
		{"/api", "", "/api", "", "/", ""},
		{"/apix", "", "/api", "", "/apix", ""},
		{"/api/a%2Fb", "/api/a%2Fb", "/api", "/v1", "/v1/a%2Fb", "/v1/a%2Fb"},
		{"/users", "", "", "/v2", "/v2/users", ""},
	}
	for _, tc := range cases {
		u := &url.URL{Path: tc.path, RawPath: tc.raw}
		rewritePath(u, tc.strip, tc.add)
		if u.Path != tc.want || u.RawPath != tc.wantRaw {
			t.Errorf("rewrite(%q, -%q +%q) = %q %q, want %q %q", tc.path, tc.strip, tc.add, u.Path, u.RawPath, tc.want, tc.wantRaw)
		}
	}
}

func TestCloneRequestHeaderDropsHopByHop(t *testing.T) {
	h := http.Header{
		"Connection":   {"keep-alive, X-Secret-Hop"},
		"X-Secret-Hop": {"1"},
		"Keep-Alive":   {"timeout=5"},
		"Te":           {"trailers"},
		"Upgrade":      {"websocket"},
		"Accept":       {"a", "b"},
	}
	out := cloneRequestHeader(h)
	if len(out) != 1 || len(out["Accept"]) != 2 {
		t.Fatalf("clone kept %v", out)
	}
	out["Accept"][0] = "changed"
	if h["Accept"][0] != "a" {
		t.Fatal("clone shares value slices with the original")
	}
	if upgradeType(http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}) != "websocket" {
		t.Fatal("upgrade not detected")
	}
}

func TestRetryPolicy(t *testing.T) {
	p := newRetryPolicy(&config.Retry{Attempts: 3, On: []string{"connect_error", "timeout", "503", "429"}}, nil)
	checks := []struct {
		name string
		got  bool
		want bool
	}{
		{"connect error, POST, body untouched", p.retryOnError(observe.ErrUpstreamConnect, "POST", true), true},
		{"connect error, body partly sent", p.retryOnError(observe.ErrUpstreamConnect, "GET", false), false},
		{"timeout, GET", p.retryOnError(observe.ErrUpstreamTimeout, "GET", true), true},
		{"timeout, POST", p.retryOnError(observe.ErrUpstreamTimeout, "POST", true), false},
		{"reset not listed", p.retryOnError(observe.ErrUpstreamReset, "GET", true), false},
		{"503 GET", p.retryOnStatus(503, "GET"), true},
		{"429 PUT", p.retryOnStatus(429, "PUT"), true},
		{"503 PATCH", p.retryOnStatus(503, "PATCH"), false},
		{"502 not listed", p.retryOnStatus(502, "GET"), false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}

// BenchmarkCloneRequestHeader copies a browser-sized request header and
// adds what the gateway adds (X-Forwarded-*, a traceparent): the copy has
// room for them, so the map does not grow.
func BenchmarkCloneRequestHeader(b *testing.B) {
	h := http.Header{}
	for i := range 12 {
		h.Set("X-Header-"+strconv.Itoa(i), "value")
	}
	b.ReportAllocs()
	for b.Loop() {
		out := cloneRequestHeader(h)
		out["X-Forwarded-For"] = []string{"192.0.2.1"}
		out["X-Forwarded-Proto"] = []string{"http"}
		out["X-Forwarded-Host"] = []string{"example.com"}
		out["Traceparent"] = []string{"00-"}
	}
}
