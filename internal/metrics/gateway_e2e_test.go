package metrics_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/gateway"
	"github.com/vantage-gateway/vantage/internal/metrics"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// TestThroughRealGateway wires the metrics into the real gateway (entry
// handler, router, split, proxy with retries) in front of real upstreams
// and checks the counters against the requests sent.
func TestThroughRealGateway(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, "/missing") {
			w.WriteHeader(http.StatusNotFound)
		}
		io.WriteString(w, "ok")
	}))
	defer ok.Close()
	ln, err := net.Listen("tcp", "127.0.0.254:0") // no test server binds this IP
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()

	y := `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - {name: stable, upstreams: [{url: "` + ok.URL + `"}]}
  - {name: canary, upstreams: [{url: "` + ok.URL + `"}]}
  - {name: down, upstreams: [{url: "` + dead + `"}]}
routes:
  - name: shop
    match: {path_prefix: /shop/}
    split: {services: [{service: stable, weight: 80}, {service: canary, weight: 20}]}
  - name: down
    match: {path_prefix: /down/}
    service: down
    retry: {attempts: 2, on: [connect_error]}
metrics:
  host: {enabled: false}
`
	m, g := startGateway(t, y)
	srv := httptest.NewServer(g.Handler("public"))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}

	send := func(method, path string, n int) {
		for i := 0; i < n; i++ {
			req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader("abc"))
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	send("GET", "/shop/items", 40)
	send("POST", "/shop/missing", 5)
	send("GET", "/down/x", 3)
	send("GET", "/nowhere", 2)

	var fams []*dto.MetricFamily
	var get func(string, map[string]string) float64
	// The client may see a response before the chain has returned and
	// recorded it: wait (bounded) until every request is counted.
	waitCounted := func(n float64) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var err error
			if fams, err = m.Gatherer().Gather(); err != nil {
				t.Fatal(err)
			}
			if get("vantage_requests_total", nil) == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %v of %v requests counted", get("vantage_requests_total", nil), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	get = func(name string, match map[string]string) float64 {
		total := 0.0
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
		next:
			for _, mt := range f.GetMetric() {
				ls := map[string]string{}
				for _, l := range mt.GetLabel() {
					ls[l.GetName()] = l.GetValue()
				}
				for k, v := range match {
					if ls[k] != v {
						continue next
					}
				}
				switch {
				case mt.Counter != nil:
					total += mt.Counter.GetValue()
				case mt.Histogram != nil:
					total += float64(mt.Histogram.GetSampleCount())
				}
			}
		}
		return total
	}
	waitCounted(50)
	for _, c := range []struct {
		name  string
		match map[string]string
		want  float64
	}{
		{"vantage_requests_total", map[string]string{"route": "shop", "code": "200", "method": "GET"}, 40},
		{"vantage_requests_total", map[string]string{"route": "shop", "code": "404", "class": "4xx", "method": "POST"}, 5},
		{"vantage_requests_total", map[string]string{"route": "down", "code": "502", "service": "down"}, 3},
		{"vantage_requests_total", map[string]string{"route": "unmatched", "code": "404", "service": "none"}, 2},
		{"vantage_request_errors_total", map[string]string{"route": "down", "error_kind": "upstream_connect"}, 3},
		{"vantage_request_errors_total", map[string]string{"route": "unmatched", "error_kind": "no_route"}, 2},
		{"vantage_upstream_errors_total", map[string]string{"route": "down", "error_kind": "upstream_connect"}, 6},
		{"vantage_upstream_requests_total", map[string]string{"route": "down", "class": "none"}, 6},
		{"vantage_retries_total", map[string]string{"route": "down"}, 3},
		{"vantage_split_requests_total", map[string]string{"route": "shop"}, 45},
		{"vantage_request_duration_seconds", map[string]string{}, 50},
		{"vantage_request_body_bytes_total", map[string]string{"route": "shop"}, 45 * 3},
	} {
		if got := get(c.name, c.match); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.match, got, c.want)
		}
	}
	stable := get("vantage_split_requests_total", map[string]string{"route": "shop", "service": "stable"})
	canary := get("vantage_split_requests_total", map[string]string{"route": "shop", "service": "canary"})
	if stable+canary != 45 || canary == 0 || stable == 0 {
		t.Errorf("split stable %v canary %v", stable, canary)
	}
	if got := get("vantage_requests_total", map[string]string{"route": "shop", "service": "canary"}); got != canary {
		t.Errorf("canary requests %v != split choices %v", got, canary)
	}

	// A reload keeps the counters and counts itself.
	if err := g.Reload(g.Config(), observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	send("GET", "/shop/items", 1)
	waitCounted(51)
	if got := get("vantage_requests_total", map[string]string{"route": "shop", "code": "200", "method": "GET"}); got != 41 {
		t.Errorf("after reload: %v, want 41", got)
	}
	if got := get("vantage_config_reloads_total", map[string]string{"result": "success"}); got != 1 {
		t.Errorf("reloads = %v", got)
	}
}

// TestStateGaugesBeforeAnyTraffic: as soon as a config serves, every host
// has its health and ejection gauges and every breaker its state gauges,
// before any request or change.
func TestStateGaugesBeforeAnyTraffic(t *testing.T) {
	y := `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - name: pay
    upstreams: [{url: "http://127.0.0.1:1"}, {url: "http://127.0.0.1:2"}]
    circuit_breaker: {consecutive_failures: 5}
routes: [{name: pay, match: {path_prefix: /}, service: pay}]
metrics:
  host: {enabled: false}
`
	m, g := startGateway(t, y)
	got := gauges(t, m)
	for key, want := range map[string]float64{
		"vantage_upstream_healthy,service=pay,upstream=127.0.0.1:1":            1,
		"vantage_upstream_healthy,service=pay,upstream=127.0.0.1:2":            1,
		"vantage_upstream_ejected,service=pay,upstream=127.0.0.1:1":            0,
		"vantage_circuit_breaker_state,service=pay,state=closed,upstream=none": 1,
		"vantage_circuit_breaker_state,service=pay,state=open,upstream=none":   0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}

	// A reload that removes a host and the breaker drops their gauges.
	cfg, err := config.Parse("gw.yml", []byte(strings.Replace(strings.Replace(y, `, {url: "http://127.0.0.1:2"}`, "", 1),
		"    circuit_breaker: {consecutive_failures: 5}\n", "", 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(cfg, observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	got = gauges(t, m)
	if _, ok := got["vantage_upstream_healthy,service=pay,upstream=127.0.0.1:1"]; !ok {
		t.Error("the kept host lost its health gauge")
	}
	for key := range got {
		if strings.Contains(key, "127.0.0.1:2") || strings.HasPrefix(key, "vantage_circuit_breaker_state,") {
			t.Errorf("%s still reported after the reload removed it", key)
		}
	}
}

// A request of the old config still running when a reload removes its
// host can report the host's state again when it ends (here, a passive
// ejection). Once the old config's requests are done, the removed host's
// gauges are gone for good.
func TestRemovedHostGaugesStayGone(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer slow.Close()
	defer close(release)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	slowAddr := strings.TrimPrefix(slow.URL, "http://")
	y := `
listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - name: pay
    load_balancing: {policy: round_robin}
    upstreams: [{url: "` + slow.URL + `"}, {url: "` + ok.URL + `"}]
    outlier_detection: {consecutive_5xx: 1}
routes: [{name: pay, match: {path_prefix: /}, service: pay}]
metrics:
  host: {enabled: false}
`
	m, g := startGateway(t, y)
	srv := httptest.NewServer(g.Handler("public"))
	defer srv.Close()
	c := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()

	// Round robin: one of two requests reaches the slow host and waits.
	done := make(chan error, 2)
	for range 2 {
		go func() {
			resp, err := c.Get(srv.URL + "/")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			done <- err
		}()
	}
	<-arrived
	if err := <-done; err != nil { // the other one
		t.Fatal(err)
	}
	cfg, err := config.Parse("gw.yml", []byte(strings.Replace(y, `{url: "`+slow.URL+`"}, `, "", 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(cfg, observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	release <- struct{}{} // the slow host answers 500: a passive ejection
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	present := func() []string {
		var keys []string
		for key := range gauges(t, m) {
			if strings.Contains(key, slowAddr) {
				keys = append(keys, key)
			}
		}
		return keys
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(present()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// The ejection may be reported just after the client got its answer:
	// give it room to show before the last look.
	time.Sleep(200 * time.Millisecond)
	if keys := present(); len(keys) > 0 {
		t.Errorf("gauges of the removed host are back: %v", keys)
	}
}

// gauges returns every gauge sample of m as "name,label=value,..." → value.
func gauges(t *testing.T, m *metrics.Metrics) map[string]float64 {
	t.Helper()
	fams, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetType() != dto.MetricType_GAUGE {
			continue
		}
		for _, mt := range f.GetMetric() {
			key := f.GetName()
			for _, l := range mt.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = mt.GetGauge().GetValue()
		}
	}
	return got
}

// startGateway builds the gateway of config y with metrics wired in as
// cmd/vantage does; both are closed when the test ends.
func startGateway(t *testing.T, y string) (*metrics.Metrics, *gateway.Gateway) {
	t.Helper()
	cfg, err := config.Parse("gw.yml", []byte(y), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := metrics.New(cfg.Metrics, metrics.Options{Version: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	g, err := gateway.New(cfg, gateway.Options{Observer: m, Telemetry: middleware.Telemetry{Metrics: m}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return m, g
}
