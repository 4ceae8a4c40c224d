package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/tracestore"
	"github.com/vantage-gateway/vantage/internal/tracestore/queryapi"
)

// The fixture is stored whole by the trace store, and every request is
// one the gateway's query API routes (not its "no such endpoint"), with
// a unique name.
func TestFixtureAndRequests(t *testing.T) {
	now := time.Now().UTC()
	base := now.Add(-10 * time.Minute).Truncate(time.Second)
	fc := clock.NewFake(now)
	s, err := tracestore.New(tracestore.Options{Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if rejected, err := s.OTLPConsumer().ConsumeTraces(ctx, fixture(base)); err != nil || rejected != 0 {
		t.Fatalf("%d rejected, %v", rejected, err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for id, n := range map[string]int{traceA: 9, traceB: 2, traceC: 1} {
		tid, _ := tracestore.ParseTraceID(id)
		tr, ok := s.GetTrace(tid, false)
		if !ok || len(tr.Spans) != n {
			t.Errorf("trace %s: stored %v", id, ok)
		}
	}
	h := queryapi.Jaeger(s, queryapi.Options{Clock: fc})
	names := map[string]bool{}
	for _, r := range requests(base) {
		if names[r.name] {
			t.Errorf("two requests named %q", r.name)
		}
		names[r.name] = true
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, r.path, nil))
		if strings.Contains(rec.Body.String(), "no such endpoint") {
			t.Errorf("%s: %s is not an endpoint", r.name, r.path)
		}
	}
	if len(names) < 40 {
		t.Errorf("%d requests", len(names))
	}
}

func TestConfigs(t *testing.T) {
	j := jaegerConfig("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3")
	for _, want := range []string{`endpoint: "127.0.0.1:1"`, `endpoint: "127.0.0.1:2"`, `endpoint: "127.0.0.1:3"`, "memory:", "level: none"} {
		if !strings.Contains(j, want) {
			t.Errorf("Jaeger config lacks %q:\n%s", want, j)
		}
	}
	if v := vantageConfig("127.0.0.1:4", "127.0.0.1:5", "http://127.0.0.1:6", "http://127.0.0.1:7"); !strings.Contains(v, `admin: {address: "127.0.0.1:5"}`) {
		t.Errorf("vantage config: %s", v)
	}
	ports, err := freePorts(3)
	if err != nil || len(ports) != 3 || ports[0] == ports[1] {
		t.Errorf("free ports: %v %v", ports, err)
	}
}
