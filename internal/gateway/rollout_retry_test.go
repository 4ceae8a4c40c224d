package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// recordLog keeps what tests need of every finished Record.
type recordLog struct {
	mu   sync.Mutex
	recs []observe.Record
}

func (l *recordLog) ReadRecord(rec *observe.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := *rec
	c.Attempts = append([]observe.Attempt(nil), rec.Attempts...)
	c.Tracing = nil
	l.recs = append(l.recs, c)
}

func (l *recordLog) last() observe.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recs[len(l.recs)-1]
}

// TestRolloutCanaryRetriesOnStable: a retryable failure of a request the
// split sent to a rollout's canary is retried on the stable leg, within
// the route's retry policy; the Record keeps the canary's attempt.
func TestRolloutCanaryRetriesOnStable(t *testing.T) {
	stable := echoUpstream(t, "stable")
	var canaryHits sync.Map
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := canaryHits.LoadOrStore(r.Method, new(int))
		*n.(*int)++
		w.WriteHeader(503)
	}))
	t.Cleanup(canary.Close)
	yaml := `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: stable, upstreams: [{url: %q}]}
  - {name: canary, upstreams: [{url: %q}]}
routes:
  - name: shop
    match: {path_prefix: /}
    retry: {attempts: 2, on: ["503"], backoff: 1ms}
    split:
      services: [{service: stable, weight: 90}, {service: canary, weight: 10}]
      override: {header: X-Version, values: {v2: canary}}
rollouts:
  - {name: shop, route: shop, canary: canary, stable: stable, steps: [10, 100]%s}
`
	for _, tc := range []struct {
		name, extra, method string
		status              int
		services            string // of the attempts
	}{
		{"GET goes to stable", "", "GET", 200, "canary,stable"},
		{"POST is not retried", "", "POST", 503, "canary"},
		{"retry_to_stable false keeps retries on the canary", ", retry_to_stable: false", "GET", 503, "canary,canary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := &recordLog{}
			f := newFixture(t, parse(t, yaml, stable.URL, canary.URL, tc.extra), Options{Telemetry: middleware.Telemetry{Readers: []observe.RecordReader{recs}}})
			req, _ := http.NewRequest(tc.method, f.front.URL+"/item", strings.NewReader(""))
			req.Header.Set("X-Version", "v2")
			resp, err := f.front.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			rec := recs.last()
			var svcs []string
			for _, a := range rec.Attempts {
				svcs = append(svcs, a.Service)
			}
			if resp.StatusCode != tc.status || strings.Join(svcs, ",") != tc.services {
				t.Fatalf("status %d (%q), attempts %v; want %d, %s", resp.StatusCode, body, svcs, tc.status, tc.services)
			}
			if rec.Split.Service != "canary" {
				t.Fatalf("split choice %+v", rec.Split)
			}
			if want := rec.Attempts[len(rec.Attempts)-1].Service; rec.Service != want {
				t.Fatalf("record's service %q, last attempt's %q", rec.Service, want)
			}
			if tc.status == 200 && (rec.Attempts[0].Status != 503 || !strings.HasPrefix(string(body), "stable")) {
				t.Fatalf("first attempt %+v, body %q", rec.Attempts[0], body)
			}
		})
	}
}
