package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkChain is the whole request path (entry, route match, proxy,
// transport) to a trivial upstream on loopback, with no telemetry. The
// upstream's own cost is in the figure too: compare runs, not absolutes.
func BenchmarkChain(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	cfg, err := parseBench(up.URL)
	if err != nil {
		b.Fatal(err)
	}
	g, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	h := g.Handler("public")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest("GET", "/items/42", nil)
		req.RemoteAddr = "127.0.0.1:5555"
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}

// BenchmarkChainPost is the request path of a POST with a 1 KiB body,
// from a real client through a real front server (whose connections take
// the request-body read deadlines) to an upstream that reads the body:
// sized (written synchronously) and chunked (streamed by the transport).
func BenchmarkChainPost(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	cfg, err := parseBench(up.URL)
	if err != nil {
		b.Fatal(err)
	}
	g, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	front := httptest.NewServer(g.Handler("public"))
	defer front.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	body := strings.Repeat("x", 1024)
	for _, chunked := range []bool{false, true} {
		name := "sized"
		if chunked {
			name = "chunked"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var rd io.Reader = strings.NewReader(body)
				if chunked {
					rd = io.MultiReader(rd) // unknown length: sent chunked
				}
				resp, err := client.Post(front.URL+"/items/42", "text/plain", rd)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
