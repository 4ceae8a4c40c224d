package reliability

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoadCountsEveryOutcome(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	res, err := Load(context.Background(), LoadOptions{URL: srv.URL, Conns: 4, Duration: 10 * time.Second, MaxRequests: 500})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 500 {
		t.Fatalf("requests = %d, want 500 (MaxRequests bounds the run)", res.Requests)
	}
	if res.Non2xx[503] != 50 || res.OK != 450 || res.Failed() != 50 || res.Errors != 0 {
		t.Fatalf("ok %d, non2xx %v, errors %d; want 450 ok and 50 503s", res.OK, res.Non2xx, res.Errors)
	}
	if res.Quantile(0.99) <= 0 {
		t.Fatal("no latency kept")
	}
}

func TestLoadCountsTransportErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every request is refused
	res, err := Load(context.Background(), LoadOptions{URL: "http://" + addr + "/", Conns: 2, Duration: 5 * time.Second, MaxRequests: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 20 || res.Refused != 20 {
		t.Fatalf("errors = %d, refused %d, want 20 and 20", res.Errors, res.Refused)
	}
}

func TestLoadURLForAndDurationBound(t *testing.T) {
	seen := map[string]bool{}
	ch := make(chan string, 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ch <- r.URL.Path }))
	defer srv.Close()
	res, err := Load(context.Background(), LoadOptions{
		URLFor: func(seq int64) string { return fmt.Sprintf("%s/p/%d", srv.URL, seq) },
		Conns:  2, Duration: 5 * time.Second, MaxRequests: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	close(ch)
	for p := range ch {
		seen[p] = true
	}
	if res.Requests != 100 || len(seen) != 100 {
		t.Fatalf("requests %d over %d distinct paths, want 100 and 100", res.Requests, len(seen))
	}
}

func TestQuantileNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := Quantile(ds, tt.q); got != tt.want {
			t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if Quantile(nil, 0.5) != 0 {
		t.Error("empty quantile not 0")
	}
}

func TestReservoirIsBounded(t *testing.T) {
	r := newReservoir(10)
	for i := range 1000 {
		r.add(time.Duration(i))
	}
	if len(r.items) != 10 || r.seen != 1000 {
		t.Fatalf("kept %d of %d", len(r.items), r.seen)
	}
}

func TestSlowlorisIsCutByHeaderTimeout(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ReadHeaderTimeout = 300 * time.Millisecond
	srv.Start()
	defer srv.Close()
	res := Slowloris(context.Background(), srv.Listener.Addr().String(), 5, 50*time.Millisecond, 5*time.Second)
	if len(res.Cut) != 5 || res.Open != 0 {
		t.Fatalf("cut %d, open %d; want all 5 cut", len(res.Cut), res.Open)
	}
}

func TestTrickleCountsConnectionsLeftOpen(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close() // no header timeout: nothing cuts the clients
	res := Slowloris(context.Background(), srv.Listener.Addr().String(), 3, 50*time.Millisecond, 400*time.Millisecond)
	if res.Open != 3 || len(res.Cut) != 0 {
		t.Fatalf("open %d, cut %d; want 3 open", res.Open, len(res.Cut))
	}
}

func TestSlowBodyCutReportsStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		buf := make([]byte, 64)
		for {
			if _, err := r.Body.Read(buf); err != nil {
				w.Header().Set("Connection", "close")
				w.WriteHeader(http.StatusRequestTimeout)
				return
			}
		}
	}))
	defer srv.Close()
	res := SlowBody(context.Background(), srv.Listener.Addr().String(), 2, 50*time.Millisecond, 5*time.Second)
	if len(res.Cut) != 2 || res.Statuses["HTTP/1.1 408 Request Timeout"] != 2 {
		t.Fatalf("cut %d, statuses %v; want 2 cut with 408", len(res.Cut), res.Statuses)
	}
}

func TestSlowReadersSeeWholeOrCutResponses(t *testing.T) {
	body := strings.Repeat("x", 16<<20) // more than the socket buffers absorb
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
	defer srv.Close()
	cut, n := SlowReaders(context.Background(), srv.Listener.Addr().String(), "/", 2, 100*time.Millisecond)
	if cut != 0 || n != 32<<20 {
		t.Fatalf("cut %d, bytes %d; want 0 cut and both bodies whole", cut, n)
	}
	srv2 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
	srv2.Config.WriteTimeout = 100 * time.Millisecond
	srv2.Start()
	defer srv2.Close()
	cut, _ = SlowReaders(context.Background(), srv2.Listener.Addr().String(), "/", 2, 500*time.Millisecond)
	if cut != 2 {
		t.Fatalf("cut %d with a write timeout, want 2", cut)
	}
}

func TestParseVmRSS(t *testing.T) {
	got, err := ParseVmRSS("Name:\tx\nVmRSS:\t   2048 kB\nThreads: 1\n")
	if err != nil || got != 2048*1024 {
		t.Fatalf("got %d, %v", got, err)
	}
	if _, err := ParseVmRSS("Name: x\n"); err == nil {
		t.Fatal("want an error without VmRSS")
	}
	if _, err := ParseVmRSS("VmRSS: 12 MB\n"); err == nil {
		t.Fatal("want an error for a unit other than kB")
	}
	if rss, err := RSS("/proc", os.Getpid()); err != nil || rss <= 0 {
		t.Fatalf("own RSS %d, %v", rss, err)
	}
}

func TestSlope(t *testing.T) {
	if s := Slope([]float64{0, 1, 2, 3}, []float64{1, 3, 5, 7}); s != 2 {
		t.Fatalf("slope %v, want 2", s)
	}
	if Slope([]float64{1}, []float64{1}) != 0 {
		t.Fatal("slope of one point not 0")
	}
}

func TestMarkdown(t *testing.T) {
	out := Markdown([]Row{
		{Scenario: "a", Measure: "m", Value: "1", Expect: "0", Pass: Verdict(false)},
		{Scenario: "b", Measure: "n", Value: "2"},
	})
	if !strings.Contains(out, "| a | m | 1 | 0 | **FAIL** |") || !strings.Contains(out, "| b | n | 2 |  |  |") {
		t.Fatalf("table:\n%s", out)
	}
}
