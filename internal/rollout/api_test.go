package rollout

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHandler(t *testing.T) {
	h := newHarness(t, "", "")
	h.c.Tick(context.Background(), h.clk.Now())
	srv := httptest.NewServer(h.c.Handler())
	defer srv.Close()
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/api/rollouts", 200},
		{"GET", "/api/rollouts/web", 200},
		{"GET", "/api/rollouts/nope", 404},
		{"POST", "/api/rollouts/web/pause", 200},
		{"POST", "/api/rollouts/web/pause", 409},
		{"POST", "/api/rollouts/web/explode", 400},
		{"POST", "/api/rollouts/nope/pause", 404},
		{"POST", "/api/rollouts/web/abort", 200},
		{"GET", "/api/rollouts/web/abort", 405},
	} {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
		}
	}
	resp, err := srv.Client().Get(srv.URL + "/api/rollouts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l struct{ Rollouts []Status }
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil || len(l.Rollouts) != 1 || l.Rollouts[0].State != RolledBack || len(l.Rollouts[0].Decisions) != 3 {
		t.Fatalf("%v %+v", err, l)
	}
}
