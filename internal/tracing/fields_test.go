package tracing

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	vtransport "github.com/vantage-gateway/vantage/internal/transport"
)

// Vantage's own transport takes the trace fields in wire form.
var _ FieldsRoundTripper = (*vtransport.Transport)(nil)

// fieldsRecorder is a FieldsRoundTripper that notes what reached it.
type fieldsRecorder struct {
	base  http.RoundTripper
	takes bool
	mu    sync.Mutex
	wire  []string // fields passed in wire form
	plain []string // traceparent headers passed in req.Header
}

func (f *fieldsRecorder) TakesFields(*http.Request) bool { return f.takes }

func (f *fieldsRecorder) RoundTripFields(req *http.Request, fields []byte) (*http.Response, error) {
	f.mu.Lock()
	f.wire = append(f.wire, string(fields))
	f.mu.Unlock()
	return f.base.RoundTrip(req)
}

func (f *fieldsRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.plain = append(f.plain, req.Header.Get("Traceparent"))
	f.mu.Unlock()
	return f.base.RoundTrip(req)
}

// TestFastPathIsTheFieldsInterface: the transport wrapper hands the trace
// context in wire form to any FieldsRoundTripper that takes the request,
// and through req.Header to one that does not; nothing depends on the
// concrete transport type.
func TestFastPathIsTheFieldsInterface(t *testing.T) {
	for _, takes := range []bool{true, false} {
		cfg := parseTracing(t, "", "")
		tr := newTracing(t, cfg, Options{})
		up := newUpstream(t)
		base := &http.Transport{}
		t.Cleanup(base.CloseIdleConnections)
		rec := &fieldsRecorder{base: base, takes: takes}
		gw := startGatewayWith(t, tr, cfg, "public", mustURL(t, up.srv.URL), 1, rec)
		resp := gw.get(t, "/items/1", nil)
		resp.Body.Close()
		rec.mu.Lock()
		wire, plain := rec.wire, rec.plain
		rec.mu.Unlock()
		if takes {
			if len(wire) != 1 || !strings.HasPrefix(wire[0], "Traceparent: 00-") || !strings.HasSuffix(wire[0], "\r\n") || len(plain) != 0 {
				t.Errorf("takes fields: wire %q, header %q", wire, plain)
			}
		} else if len(wire) != 0 || len(plain) != 1 || !strings.HasPrefix(plain[0], "00-") {
			t.Errorf("does not take fields: wire %q, header %q", wire, plain)
		}
	}
}
