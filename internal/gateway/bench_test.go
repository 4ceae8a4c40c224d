package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
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
