package upstream

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// logLines collects an slog JSON log, one decoded record per line.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// at returns the records whose msg is msg, at any level.
func (l *logLines) of(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(l.buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// TestHealthAndEjectionsAreLoggedAtInfo: every change of an upstream's
// availability — active health either way, an ejection, a restoration — is
// one INFO line of the operational log naming the service, the upstream
// and why, as docs/logging.md lists them.
func TestHealthAndEjectionsAreLoggedAtInfo(t *testing.T) {
	var logs logLines
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	clk := clock.NewFake(t0)

	// Passive: two hosts, ejected after one 5xx for 10s.
	p, err := NewPool(withOutlier(service("pay", "http://a:1", "http://b:1"), 1, 1, 10*time.Second, time.Minute), nil, nil, clk, logger)
	if err != nil {
		t.Fatal(err)
	}
	h := p.Hosts()[0]
	attempt(h, observe.ErrNone, 503)
	clk.Advance(11 * time.Second)
	if !h.Available() {
		t.Fatal("host still ejected after its ejection")
	}
	ej := logs.of(t, "upstream ejected")
	if len(ej) != 1 || ej[0]["level"] != "INFO" || ej[0]["service"] != "pay" || ej[0]["upstream"] != "a:1" ||
		ej[0]["reason"] != "consecutive_5xx" || ej[0]["for"] != "10s" {
		t.Fatalf("ejection lines %v", ej)
	}
	rs := logs.of(t, "upstream restored")
	if len(rs) != 1 || rs[0]["level"] != "INFO" || rs[0]["upstream"] != "a:1" || rs[0]["reason"] != "ejection expired" {
		t.Fatalf("restoration lines %v", rs)
	}

	// Active: unhealthy after one failed probe, healthy after one good one.
	var code atomic.Int64
	srv := statusServer(t, &code)
	hp, err := NewPool(withHealth(service("users", srv.URL), time.Hour, time.Second, 1, 1), nil, nil, clk, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hp.Stop)
	code.Store(503)
	probeOnce(hp, 0)
	code.Store(200)
	probeOnce(hp, 0)
	hc := logs.of(t, "upstream health changed")
	if len(hc) != 2 {
		t.Fatalf("health lines %v", hc)
	}
	if r := hc[0]; r["level"] != "INFO" || r["service"] != "users" || r["from"] != "healthy" || r["to"] != "unhealthy" || r["reason"] != "status 503" {
		t.Fatalf("first health line %v", r)
	}
	if r := hc[1]; r["level"] != "INFO" || r["from"] != "unhealthy" || r["to"] != "healthy" || r["reason"] != "status 200" {
		t.Fatalf("second health line %v", r)
	}
}
