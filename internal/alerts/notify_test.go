package alerts

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vantage-gateway/vantage/internal/history"
)

// receiver records the bodies it is sent; it fails the first failN.
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	calls  atomic.Int32
	failN  int32
	srv    *httptest.Server
}

func newReceiver(t *testing.T, failN int32) *receiver {
	r := &receiver{failN: failN}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := r.calls.Add(1)
		b, _ := io.ReadAll(req.Body)
		if n <= r.failN {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDeliveryAlertmanagerAndWebhook(t *testing.T) {
	am := newReceiver(t, 1) // fails once: retried
	wh := newReceiver(t, 0)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer hang.Close()
	cfg := `  resend_interval: 2s
  rules:
    - {name: E, scope: route, target: api, metric: error_ratio, window: 2s, threshold: 0.1}
  receivers:
    - {name: am, type: alertmanager, url: "` + am.srv.URL + `"}
    - {name: wh, type: webhook, url: "` + wh.srv.URL + `/hook", group_by: [alertname, route]}
    - {name: slow, type: webhook, url: "` + hang.URL + `", timeout: 100ms, queue_size: 1}
`
	reg := prometheus.NewPedanticRegistry()
	c, err := parse(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src := newFakeSource()
	m, err := New(c, Options{Source: src, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	src.add(history.ScopeRoute, "api", t0, 10, 5)
	ctx := context.Background()
	start := time.Now()
	for s := 1; s <= 6; s++ { // fires at 1, resolves at 3; ticks never wait on the hanging receiver
		m.TickAt(ctx, t0.Add(time.Duration(s)*time.Second))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("6 evaluations took %s with a hanging receiver", d)
	}
	waitFor(t, "alertmanager: firing and resolved", func() bool { return len(am.got()) >= 2 })
	var fired, resolved []amAlert
	_ = json.Unmarshal(am.got()[0], &fired)
	_ = json.Unmarshal(am.got()[1], &resolved)
	if len(fired) != 1 || fired[0].Labels["alertname"] != "E" || !fired[0].EndsAt.After(t0.Add(time.Second)) ||
		fired[0].Annotations["exemplar_trace_ids"] == "" || fired[0].GeneratorURL != "http://127.0.0.1:9901/api/alerts" {
		t.Fatalf("firing %+v", fired)
	}
	if len(resolved) != 1 || !resolved[0].EndsAt.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("resolved %+v", resolved)
	}
	waitFor(t, "webhook: firing and resolved", func() bool { return len(wh.got()) >= 2 })
	var msg whMessage
	_ = json.Unmarshal(wh.got()[0], &msg)
	if msg.Version != "4" || msg.Status != "firing" || msg.Receiver != "wh" || msg.GroupKey != `{}:{alertname="E",route="api"}` ||
		msg.GroupLabels["route"] != "api" || msg.CommonLabels["alertname"] != "E" || len(msg.Alerts) != 1 || msg.Alerts[0].Status != "firing" {
		t.Fatalf("webhook %s", wh.got()[0])
	}
	_ = json.Unmarshal(wh.got()[1], &msg)
	if msg.Status != "resolved" || msg.Alerts[0].Status != "resolved" {
		t.Fatalf("webhook resolve %s", wh.got()[1])
	}
	waitFor(t, "retry and failure counted", func() bool {
		return value(m.dm.notifications.WithLabelValues("am", "retried")) >= 1 &&
			value(m.dm.notifications.WithLabelValues("slow", "failed"))+value(m.dm.notifications.WithLabelValues("slow", "dropped")) >= 1
	})
	if n := value(m.dm.notifications.WithLabelValues("am", "sent")); n != 2 {
		t.Fatalf("am sent %v", n)
	}
}

func TestResendWhileFiring(t *testing.T) {
	am := newReceiver(t, 0)
	c, err := parse(`  resend_interval: 2s
  rules:
    - {name: E, scope: route, target: api, metric: error_ratio, window: 30s, threshold: 0.1}
  receivers:
    - {name: am, type: alertmanager, url: "` + am.srv.URL + `"}
`)
	if err != nil {
		t.Fatal(err)
	}
	src := newFakeSource()
	m, err := New(c, Options{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	src.add(history.ScopeRoute, "api", t0, 10, 5)
	for s := 1; s <= 6; s++ {
		m.TickAt(context.Background(), t0.Add(time.Duration(s)*time.Second))
	}
	// Sent at 1, 3 and 5.
	waitFor(t, "three sends", func() bool { return len(am.got()) >= 3 })
	time.Sleep(50 * time.Millisecond)
	if n := len(am.got()); n != 3 {
		t.Fatalf("%d sends, want 3", n)
	}
}

func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
