package demo

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"
)

func TestOTLPFromEnv(t *testing.T) {
	env := func(kv map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
	}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"unset", nil, ""},
		{"blank", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, ""},
		{"generic", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "http://collector:4318"},
		{"traces wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/v1/traces"}, "http://b:4318/v1/traces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, got := OTLPFromEnv(env(tt.env))
			if got != tt.want || (f == nil) != (tt.want == "") {
				t.Errorf("endpoint %q (factory set: %v), want %q", got, f != nil, tt.want)
			}
		})
	}
}

// TestServicesExportOTLP runs the shop against a stand-in collector and
// checks that every traced service sends its spans there over OTLP/HTTP.
func TestServicesExportOTLP(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" && r.Header.Get("Content-Type") == "application/x-protobuf" {
			mu.Lock()
			bodies = append(bodies, b)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")

	newExp, endpoint := OTLPFromEnv(os.LookupEnv)
	if endpoint != collector.URL {
		t.Fatalf("endpoint %q", endpoint)
	}
	shop, err := Start(context.Background(), Options{Seed: 3, NewExporter: newExp})
	if err != nil {
		t.Fatal(err)
	}
	doUntil(t, 200, "GET", shop.Upstreams()[Storefront][0]+"/products/4", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shop.Close(ctx); err != nil { // flushes the batches
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	all := bytes.Join(bodies, nil)
	for _, svc := range []string{Storefront, Catalog, Inventory} {
		if !bytes.Contains(all, []byte(svc)) {
			t.Errorf("no spans of %s reached the collector (%d exports)", svc, len(bodies))
		}
	}
}
