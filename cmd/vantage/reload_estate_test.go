package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
)

// estateFile is a config of n services, each behind one template route
// /svc{i}/items/{id}, with the gateway's default telemetry but for the
// access log and the history (whose per-route stages cost time quadratic
// in the routes when a snapshot is built: minutes at 10,000 routes on a
// loaded machine). variant changes the config from one reload to the next: an
// extra route, and other transport settings for svc0.
func estateFile(n int, upstream string, variant int) []byte {
	var b bytes.Buffer
	b.WriteString("listeners: [{name: public, address: \"127.0.0.1:0\"}]\nadmin: {address: \"127.0.0.1:0\"}\naccess_log: {enabled: false}\nhistory: {enabled: false}\nshutdown_grace: 10s\nservices:\n")
	for i := range n {
		tr := ""
		if i == 0 && variant%2 == 1 {
			tr = ", transport: {idle_conn_timeout: 61s}"
		}
		fmt.Fprintf(&b, "  - {name: svc%d, upstreams: [{url: %q}]%s}\n", i, upstream, tr)
	}
	b.WriteString("routes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: svc%d, match: {path: \"/svc%d/items/{id}\"}, service: svc%d}\n", i, i, i)
	}
	fmt.Fprintf(&b, "  - {name: extra%d, match: {path: \"/extra%d\"}, service: svc1}\n", variant, variant)
	return b.Bytes()
}

// TestReloadUnderLoadAtTenThousandRoutes runs the real serve loop on a
// 10,000-route estate (2,000 under the race detector) and reloads the
// changed file through the admin API five times while bounded traffic is
// spread over every route: no request may fail, and every reload must
// take.
func TestReloadUnderLoadAtTenThousandRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("a 10,000-route estate under load")
	}
	n := 10000
	if raceEnabled {
		n = 2000
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	defer up.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "vantage.yml")
	if err := os.WriteFile(file, estateFile(n, up.URL, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan boundAddrs, 1)
	stop := make(chan struct{})
	done := make(chan int, 1)
	var logs bytes.Buffer
	go func() {
		done <- serve(cfg, serveOptions{file: file, stdout: io.Discard, stderr: &syncWriter{w: &logs},
			ready: func(a boundAddrs) { ready <- a }, stop: stop})
	}()
	var addrs boundAddrs
	select {
	case addrs = <-ready:
	case <-time.After(60 * time.Second):
		t.Fatal("never ready")
	}
	defer func() {
		close(stop)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not return")
		}
	}()
	base := "http://" + addrs.Listeners["public"]

	// Bounded load: 8 clients, each at most 3,000 requests and 120 s, and
	// they stop once the reloads are over and each has sent 50 more.
	const clients, perClient = 8, 3000
	var (
		ok, failed atomic.Int64
		reloaded   atomic.Bool
		firstFail  atomic.Value
		wg         sync.WaitGroup
	)
	deadline := time.Now().Add(120 * time.Second)
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 21))
			after := 0
			for i := 0; i < perClient && time.Now().Before(deadline) && after < 50; i++ {
				if reloaded.Load() {
					after++
				}
				path := fmt.Sprintf("/svc%d/items/%d", rng.IntN(n), rng.IntN(1000000))
				resp, err := client.Get(base + path)
				if err != nil {
					failed.Add(1)
					firstFail.CompareAndSwap(nil, err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != path {
					failed.Add(1)
					firstFail.CompareAndSwap(nil, fmt.Sprintf("GET %s: %d %q", path, resp.StatusCode, body))
					continue
				}
				ok.Add(1)
			}
		}()
	}

	// Five reloads of a changed file, while the load runs.
	for k := 1; k <= 5; k++ {
		time.Sleep(200 * time.Millisecond)
		if err := os.WriteFile(file, estateFile(n, up.URL, k), 0o644); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post("http://"+addrs.Admin+"/api/reload", "application/json", nil)
		if err != nil {
			t.Fatalf("reload %d: %v", k, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("reload %d: %d %s", k, resp.StatusCode, body)
		}
		// The new config serves: its extra route answers.
		extra := fmt.Sprintf("/extra%d", k)
		r, err := client.Get(base + extra)
		if err != nil {
			t.Fatalf("after reload %d: %v", k, err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 200 || string(b) != extra {
			t.Fatalf("after reload %d, %s: %d %q", k, extra, r.StatusCode, b)
		}
	}
	reloaded.Store(true)
	wg.Wait()
	t.Logf("%d routes, 5 reloads: %d requests ok, %d failed", n, ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during the reloads; first: %v", failed.Load(), ok.Load()+failed.Load(), firstFail.Load())
	}
	if ok.Load() < clients*50 {
		t.Fatalf("only %d requests ran", ok.Load())
	}
	if st := adminGet(t, addrs.Admin, "/api/reload"); !strings.Contains(st, `"success": true`) {
		t.Fatalf("reload status: %s", st)
	}
}
