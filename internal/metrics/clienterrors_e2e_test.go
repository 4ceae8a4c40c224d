package metrics_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/metrics"
)

// counters returns every counter sample of m as "name,label=value,..." →
// value.
func counters(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			if mt.Counter == nil {
				continue
			}
			key := f.GetName()
			for _, l := range mt.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = mt.GetCounter().GetValue()
		}
	}
	return got
}

// TestClientErrorsThroughRealGateway: a malformed body and a body too slow
// reach the metrics as the client's errors — status 400 and 408, error
// kinds client_bad_request and client_timeout, the body timeout counted by
// its limit — and never as an upstream's 5xx.
func TestClientErrorsThroughRealGateway(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	defer up.Close()
	m, g := startGateway(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
services: [{name: s, upstreams: [{url: "`+up.URL+`"}]}]
routes:
  - {name: up, match: {path_prefix: /}, service: s, request_body: {idle_timeout: 200ms}}
metrics:
  host: {enabled: false}
`)
	srv := httptest.NewServer(g.Handler("public"))
	defer srv.Close()
	send := func(req string) int {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := send("POST /x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"); st != 400 {
		t.Fatalf("malformed: %d", st)
	}
	if st := send("POST /x HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\nab"); st != 408 {
		t.Fatalf("stalled: %d", st)
	}
	want := map[string]float64{
		"vantage_requests_total,class=4xx,code=400,method=POST,route=up,service=s":      1,
		"vantage_requests_total,class=4xx,code=408,method=POST,route=up,service=s":      1,
		"vantage_request_errors_total,error_kind=client_bad_request,route=up,service=s": 1,
		"vantage_request_errors_total,error_kind=client_timeout,route=up,service=s":     1,
		"vantage_request_body_timeouts_total,reason=idle,route=up":                      1,
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := counters(t, m)
		missing := ""
		for k, v := range want {
			if got[k] != v {
				missing += "\n  " + k
			}
		}
		for k, v := range got {
			if strings.HasPrefix(k, "vantage_requests_total") && strings.Contains(k, "class=5xx") && v > 0 {
				t.Fatalf("a client error counted as 5xx: %s", k)
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("missing or wrong:%s\ngot %v", missing, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
