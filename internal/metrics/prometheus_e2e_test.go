package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPrometheusScrapesEndpoint starts a real Prometheus server (Debian's
// prometheus package) scraping a test gateway's /metrics every second and
// asks it, over its HTTP API, for series and exemplars it scraped.
func TestPrometheusScrapesEndpoint(t *testing.T) {
	bin := requireBinary(t, "prometheus")
	m := newTestMetrics(t, "", nil)
	s, _ := scenario(t, m)
	gw := httptest.NewServer(s)
	defer gw.Close()
	admin := httptest.NewServer(m.Handler())
	defer admin.Close()

	const trace = "5b8aa5a2d2c872e8321cf37308d69df2"
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	const n = 7
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest("GET", gw.URL+"/api/status/200", nil)
		req.Header.Set(hdrTrace, trace)
		req.Header.Set(hdrSampled, "1")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	s.waitFinished(t, n)

	dir := t.TempDir()
	port := freePort(t)
	target := strings.TrimPrefix(admin.URL, "http://")
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: vantage\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: [%q]\n", target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--enable-feature=exemplar-storage",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		// Stop it by its own PID, bounded.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", tail(string(b), 3000))
		}
	}()

	api := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	query := `sum(vantage_requests_total{route="api",code="200",class="2xx"})`
	var last string
	for {
		v, err := promQuery(api, query)
		if err == nil && v == n {
			break
		}
		last = fmt.Sprintf("value %v, err %v", v, err)
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not return %d for %s within 30s (last: %s)", n, query, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The histogram is queryable, and the exemplar made it into storage.
	if v, err := promQuery(api, `sum(vantage_request_duration_seconds_count{route="api"})`); err != nil || v != n {
		t.Errorf("duration count = %v (%v), want %d", v, err, n)
	}
	found := false
	for !found && time.Now().Before(deadline) {
		found = exemplarSeen(api, "vantage_request_duration_seconds_bucket", trace)
		if !found {
			time.Sleep(250 * time.Millisecond)
		}
	}
	if !found {
		t.Errorf("exemplar with trace_id %s not stored by prometheus", trace)
	}
	// Every dashboard and rule expression is valid PromQL for this server,
	// and the dashboard's latency query returns data.
	vars := strings.NewReplacer("$__rate_interval", "1m", "$job", ".*", "$route", ".*", "$service", ".*")
	for _, e := range append(dashboardExprs(t), ruleExprs(t)...) {
		if err := promValid(api, vars.Replace(e)); err != nil {
			t.Errorf("prometheus rejects %q: %v", e, err)
		}
	}
}

// promValid runs q and reports an error unless Prometheus accepts it.
func promValid(api, q string) error {
	resp, err := apiClient.Get(api + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return err
	}
	if body.Status != "success" {
		return fmt.Errorf("%s", body.Error)
	}
	return nil
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

var apiClient = &http.Client{Timeout: 2 * time.Second}

func promQuery(api, q string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", api+"/api/v1/query?query="+url.QueryEscape(q), nil)
	resp, err := apiClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	if body.Status != "success" || len(body.Data.Result) == 0 {
		return 0, fmt.Errorf("status %q, %d results", body.Status, len(body.Data.Result))
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

func exemplarSeen(api, metric, traceID string) bool {
	now := time.Now()
	q := url.Values{
		"query": {metric},
		"start": {strconv.FormatInt(now.Add(-10*time.Minute).Unix(), 10)},
		"end":   {strconv.FormatInt(now.Add(time.Minute).Unix(), 10)},
	}
	resp, err := apiClient.Get(api + "/api/v1/query_exemplars?" + q.Encode())
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(b), traceID)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
