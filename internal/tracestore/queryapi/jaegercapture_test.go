package queryapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/tracestore"
	"github.com/vantage-gateway/vantage/internal/tracestore/queryapi/conform"
)

// TestAgainstCapturedJaeger stores the spans that bench/cmd/jaegerdiff
// sent to a real Jaeger, asks the query APIs the same questions at the
// same time, and compares the answers with the ones that Jaeger gave
// (testdata/jaeger_capture.json, regenerated with
// go run ./bench/cmd/jaegerdiff -update ...). Only what package conform
// normalizes may differ.
func TestAgainstCapturedJaeger(t *testing.T) {
	b, err := os.ReadFile("testdata/jaeger_capture.json")
	if err != nil {
		t.Fatal(err)
	}
	var c conform.Capture
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Cases) < 40 || c.Now.IsZero() {
		t.Fatalf("capture has %d cases, time %v", len(c.Cases), c.Now)
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := protojson.Unmarshal(c.Request, &req); err != nil {
		t.Fatal(err)
	}
	fc := clock.NewFake(c.Now)
	s, err := tracestore.New(tracestore.Options{Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if rejected, err := s.OTLPConsumer().ConsumeTraces(ctx, &req); err != nil || rejected != 0 {
		t.Fatalf("storing the captured request: %d rejected, %v", rejected, err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	h := Jaeger(s, Options{Clock: fc})
	for _, cs := range c.Cases {
		if cs.Deliberate != "" {
			t.Logf("%s: not compared, different on purpose: %s", cs.Name, cs.Deliberate)
			continue
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, cs.Path, nil))
		if rec.Code != cs.Status {
			t.Errorf("%s (%s): status %d, Jaeger's %d: %s", cs.Name, cs.Path, rec.Code, cs.Status, rec.Body)
			continue
		}
		d, _, err := conform.Compare(cs.Path, cs.Body, rec.Body.Bytes(), 20)
		if err != nil {
			t.Fatalf("%s: %v", cs.Name, err)
		}
		if len(d) > 0 {
			t.Errorf("%s (%s) differs from Jaeger's answer:\n  %s", cs.Name, cs.Path, strings.Join(d, "\n  "))
		}
	}
}
