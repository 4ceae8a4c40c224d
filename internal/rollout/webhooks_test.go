package rollout

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
)

func TestWebhookGates(t *testing.T) {
	release := make(chan struct{})
	events := make(chan EventBody, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			var g GateRequest
			if err := json.NewDecoder(r.Body).Decode(&g); err != nil || g.Rollout != "web" || g.Gate == "" {
				w.WriteHeader(400)
			}
		case "/no":
			w.WriteHeader(409)
		case "/slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case "/events":
			var e EventBody
			_ = json.NewDecoder(r.Body).Decode(&e)
			events <- e
		}
		io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	defer close(release)
	w := NewWebhooks(srv.Client(), nil)
	defer w.Close()
	r := &config.Rollout{Name: "web", Webhooks: config.RolloutWebhooks{
		BeforeStart: srv.URL + "/ok", BeforeStep: srv.URL + "/no?token=secret", BeforePromotion: srv.URL + "/slow",
		Events: srv.URL + "/events", Timeout: config.Duration(200 * time.Millisecond)}}
	st := Status{Name: "web", Step: -1, Steps: []int{10, 100}}
	if err := w.Confirm(context.Background(), r, "before_start", st); err != nil {
		t.Fatalf("confirming gate: %v", err)
	}
	err := w.Confirm(context.Background(), r, "before_step", st)
	if err == nil || !strings.Contains(err.Error(), "refused with HTTP 409") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("refusing gate: %v", err)
	}
	err = w.Confirm(context.Background(), r, "before_promotion", st)
	if err == nil || !strings.Contains(err.Error(), "timed out after 200ms (a timeout counts as a refusal)") {
		t.Fatalf("slow gate: %v", err)
	}
	w.Notify(r, Decision{Action: "step", Weight: 10, Reason: "why"})
	select {
	case e := <-events:
		if e.Rollout != "web" || e.Decision.Action != "step" || e.Decision.Weight != 10 {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
}

func TestEventQueueIsBounded(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	w := NewWebhooks(srv.Client(), nil)
	defer w.Close()
	r := &config.Rollout{Name: "web", Webhooks: config.RolloutWebhooks{Events: srv.URL, Timeout: config.Duration(time.Minute)}}
	for range QueueSize + 50 {
		w.Notify(r, Decision{Action: "hold"})
	}
	if d := w.Dropped(); d < 49 || d > 50 {
		t.Fatalf("dropped %d, want 49 or 50 (one may be in delivery)", d)
	}
}
