package harness

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestConnsTable(t *testing.T) {
	mk := func(target string, requests, conns int64, has bool) Sample {
		return Sample{Target: target, Wrk: WrkResult{Requests: requests}, UpstreamConns: conns, HasUpstreamConns: has}
	}
	samples := []Sample{
		mk("vantage/estate@10000", 1000, 900, true),
		mk("vantage/estate@10000", 1000, 700, true),
		mk("vantage/estate@10000", 1000, 800, true),
		mk("nginx", 1000, 0, true),
		mk("caddy", 1000, 5, false),
	}
	if got := samples[3].ConnsPerRequest(); got != 0 {
		t.Errorf("ConnsPerRequest = %v, want 0", got)
	}
	if got := samples[4].ConnsPerRequest(); !math.IsNaN(got) {
		t.Errorf("ConnsPerRequest without a count = %v, want NaN", got)
	}
	tab := ConnsTable(samples, []string{"nginx", "vantage/estate@10000", "caddy"})
	for _, want := range []string{
		"| nginx | 0.0000 | 0 |\n",
		"| vantage/estate@10000 | 0.8000 | 2400 |\n",
	} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	if strings.Contains(tab, "caddy") {
		t.Errorf("a target without counts got a row:\n%s", tab)
	}
	if ConnsTable(samples[4:], []string{"caddy"}) != "" {
		t.Error("a table without counts is not empty")
	}
}

func TestUpstreamConns(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != ConnsPath {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, 42)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	n, err := UpstreamConns(context.Background(), srv.Client(), addr)
	if err != nil || n != 42 {
		t.Fatalf("got %d, %v", n, err)
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "many")
	}))
	defer bad.Close()
	if _, err := UpstreamConns(context.Background(), bad.Client(), strings.TrimPrefix(bad.URL, "http://")); err == nil {
		t.Fatal("a count that is not a number was accepted")
	}
}
