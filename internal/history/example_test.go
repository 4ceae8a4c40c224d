package history_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/history"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Example shows a rollout-style judgement: the canary and stable legs of
// one split over the same 10 seconds, read through a Source as a pure
// function of the history at a given time.
func Example() {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(start)
	h, _ := history.New(config.History{}, history.Options{Clock: clk, NoMachine: true})
	defer h.Close()
	rc := &config.Route{Name: "shop", Split: &config.Split{Services: []config.SplitService{{Service: "stable", Weight: 90}, {Service: "canary", Weight: 10}}}}
	stage := h.ForRoute(middleware.Route{Name: "shop", Services: []string{"stable", "canary"}, Config: rc})

	// The gateway runs requests through the stage; here a handler stands
	// in for the proxy and fills the record.
	serve := func(service string, status int, latency time.Duration) {
		rec := observe.GetRecord()
		defer observe.PutRecord(rec)
		rec.Start, rec.End, rec.Service, rec.Status = clk.Now(), clk.Now().Add(latency), service, status
		r, _ := http.NewRequestWithContext(observe.NewContext(context.Background(), rec), "GET", "http://gateway/shop", nil)
		stage(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(nil, r)
	}
	h.Tick(clk.Now())
	for s := 0; s < 10; s++ {
		for i := 0; i < 9; i++ {
			serve("stable", 200, 20*time.Millisecond)
		}
		serve("canary", 200+300*(s%2), 30*time.Millisecond) // every other canary request fails
		clk.Advance(time.Second)
		h.Tick(clk.Now())
	}

	src := h.Source()
	end, _ := src.Latest(context.Background())
	canary, stable, err := history.Legs(context.Background(), src, "shop", "canary", "stable", end, 10*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("canary: %d requests, error ratio %.2f, p99 %v\n", canary.V[history.Requests], canary.ErrorRatio(), canary.Latency.Quantile(0.99).Round(time.Millisecond))
	fmt.Printf("stable: %d requests, error ratio %.2f, p99 %v\n", stable.V[history.Requests], stable.ErrorRatio(), stable.Latency.Quantile(0.99).Round(time.Millisecond))
	// Output:
	// canary: 10 requests, error ratio 0.50, p99 30ms
	// stable: 90 requests, error ratio 0.00, p99 20ms
}
