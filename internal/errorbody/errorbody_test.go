package errorbody

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/vantage-gateway/vantage/internal/observe"
)

func TestWrite(t *testing.T) {
	rec := &observe.Record{Trace: observe.TraceContext{Valid: true, TraceID: [16]byte{0x4b, 0xf9, 15: 0x36}}}
	w := httptest.NewRecorder()
	Write(w, rec, 429, "rate_limited", `a "quoted" message`)
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("not JSON: %v: %s", err, w.Body)
	}
	if w.Code != 429 || body["error"] != "rate_limited" || body["status"] != 429.0 || body["message"] != `a "quoted" message` ||
		body["trace_id"] != "4bf90000000000000000000000000036" {
		t.Fatalf("got %d %v", w.Code, body)
	}
	if w.Header().Get("Content-Type") != "application/json" || w.Header().Get("Content-Length") != "124" && w.Header().Get("Content-Length") == "" {
		t.Fatalf("headers %v", w.Header())
	}
	w = httptest.NewRecorder()
	Write(w, nil, 404, "no_route", "")
	if w.Body.String() != "{\"error\":\"no_route\",\"status\":404}\n" {
		t.Fatalf("without trace or message: %q", w.Body)
	}
}
