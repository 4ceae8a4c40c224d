package demo

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTrafficSendsTheMix(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]int{}
	var badUA []string
	got := make(chan struct{}, 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := r.Method + " " + r.URL.Path
		switch {
		case strings.HasPrefix(r.URL.Path, "/products/"):
			key = r.Method + " /products/{id}"
		case strings.HasPrefix(r.URL.Path, "/api/catalog/products/"):
			key = r.Method + " /api/catalog/products/{id}"
		case strings.HasPrefix(r.URL.Path, "/api/orders/"):
			key = r.Method + " /api/orders/{id}"
		}
		mu.Lock()
		seen[key]++
		if r.UserAgent() != UserAgent {
			badUA = append(badUA, r.UserAgent())
		}
		mu.Unlock()
		switch {
		case r.Method == "POST" && !strings.Contains(string(body), `"product_id"`):
			w.WriteHeader(http.StatusBadRequest)
		case r.Method == "POST":
			w.WriteHeader(http.StatusTooManyRequests)
		case strings.HasPrefix(r.URL.Path, "/api/orders/"):
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		select {
		case got <- struct{}{}:
		default:
		}
	}))
	defer srv.Close()

	tr, err := NewTraffic(TrafficOptions{Target: srv.URL + "/", Rate: MaxRate, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	for tr.Stats().Requests < 300 {
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatalf("only %d requests answered", tr.Stats().Requests)
		}
	}
	cancel()
	<-done

	mu.Lock()
	defer mu.Unlock()
	if len(badUA) > 0 {
		t.Errorf("requests without the demo User-Agent: %v", badUA[:1])
	}
	for _, k := range []string{"GET /", "GET /products/{id}", "GET /api/catalog/products", "GET /api/catalog/products/{id}", "POST /api/orders", "GET /api/orders/{id}"} {
		if seen[k] == 0 {
			t.Errorf("no %s in the mix: %v", k, seen)
		}
	}
	st := tr.Stats()
	total := 0
	for _, n := range seen {
		total += n
	}
	// Requests the server answered as Run was canceled are not counted.
	if st.Requests > uint64(total) || st.Status[2]+st.Status[4]+st.Status[5] != st.Requests || st.Errors != 0 {
		t.Errorf("stats %+v, server saw %d", st, total)
	}
	if st.Status[4] == 0 || st.Status[4] > uint64(seen["POST /api/orders"]) ||
		st.Status[5] == 0 || st.Status[5] > uint64(seen["GET /api/orders/{id}"]) {
		t.Errorf("stats %+v do not match the answers %v", st, seen)
	}
}

func TestTrafficStopsWithPendingRequests(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	tr, err := NewTraffic(TrafficOptions{Target: srv.URL, Rate: 100, MaxInFlight: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	deadline := time.Now().Add(3 * time.Second)
	for tr.Stats().Skipped == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no tick was skipped with 3 requests hanging")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if st := tr.Stats(); st.Requests != 0 || st.Errors != 0 {
		t.Errorf("canceled requests were counted: %+v", st)
	}
}

func TestTrafficOptions(t *testing.T) {
	tests := []struct {
		name string
		o    TrafficOptions
		want string
	}{
		{"no scheme", TrafficOptions{Target: "127.0.0.1:8080"}, "http(s) URL"},
		{"negative rate", TrafficOptions{Target: "http://x", Rate: -1}, "rate"},
		{"too fast", TrafficOptions{Target: "http://x", Rate: MaxRate + 1}, "rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewTraffic(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	tr, err := NewTraffic(TrafficOptions{Target: "http://x"})
	if err != nil || tr.o.Rate != 5 || tr.o.MaxInFlight != defaultMaxInFlight {
		t.Errorf("defaults: %+v, %v", tr.o, err)
	}
}

func TestTrafficStatsString(t *testing.T) {
	a := TrafficStats{Requests: 50, Status: [6]uint64{0, 0, 45, 0, 2, 3}, Errors: 1}
	b := TrafficStats{Requests: 10, Status: [6]uint64{0, 0, 10, 0, 0, 0}}
	if got, want := a.Sub(b).String(), "40 requests  2xx 35  4xx 2  5xx 3  no answer 1"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := (TrafficStats{}).String(); got != "0 requests  2xx 0" {
		t.Errorf("zero: %q", got)
	}
}
