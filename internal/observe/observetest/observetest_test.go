package observetest

import (
	"context"
	"testing"

	"github.com/vantage-gateway/vantage/internal/observe"
)

func TestRecorder(t *testing.T) {
	var r Recorder
	r.Observe(observe.Event{Kind: observe.EventRetry, Ctx: context.Background(), Record: &observe.Record{}})
	r.Observe(observe.Event{Kind: observe.EventRouteMatched, Route: "a"})
	r.Observe(observe.Event{Kind: observe.EventRetry})
	if r.Count(observe.EventRetry) != 2 || len(r.Events()) != 3 || r.Of(observe.EventRouteMatched)[0].Route != "a" {
		t.Fatalf("events %+v", r.Events())
	}
	if ev := r.Events()[0]; ev.Ctx != nil || ev.Record != nil {
		t.Fatal("kept a request's context or record")
	}
	r.Reset()
	if len(r.Events()) != 0 {
		t.Fatal("reset kept events")
	}
}
