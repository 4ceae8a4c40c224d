package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantage-gateway/vantage/internal/config"
)

// maxAttempts bounds the delivery attempts of one notification.
const maxAttempts = 4

// backoffBase is the first retry's delay; each retry doubles it.
const backoffBase = 250 * time.Millisecond

// deliveryMetrics are the dispatcher's counters, registered once by the
// Manager and shared by the dispatchers of successive configs.
type deliveryMetrics struct {
	notifications *prometheus.CounterVec // receiver, outcome
	queue         *prometheus.GaugeVec   // receiver
	latency       *prometheus.HistogramVec
}

func newDeliveryMetrics(reg prometheus.Registerer) *deliveryMetrics {
	m := &deliveryMetrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vantage_alert_notifications_total",
			Help: "Alert notifications by receiver and outcome: sent, failed (after retries), retried (an attempt failed) and dropped (queue full)."},
			[]string{"receiver", "outcome"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vantage_alert_queue_length",
			Help: "Notifications waiting for delivery, by receiver."}, []string{"receiver"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vantage_alert_delivery_duration_seconds",
			Help: "Time from a notification's creation to its successful delivery, retries included.", Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"receiver"}),
	}
	if reg != nil {
		reg.MustRegister(m.notifications, m.queue, m.latency)
	}
	return m
}

// batch is one notification: one request to a receiver.
type batch struct {
	created time.Time
	body    []byte
	alerts  []Alert // for the log receiver
}

// target is one receiver: its queue, worker and what it was last sent.
type target struct {
	cfg      config.AlertReceiver
	url      string
	queue    chan *batch
	client   *http.Client
	sent     map[uint64]State     // last state sent, by fingerprint
	sentAt   map[uint64]time.Time // last time sent (alertmanager resends)
	groupKey map[uint64]string
}

// Dispatcher delivers notifications off the evaluation path: Offer, called
// after each evaluation, decides what each receiver must be told and
// queues it without blocking; one worker per receiver sends, with a
// timeout per attempt, bounded retries with backoff, and drops the
// oldest notification when its queue is full. Offer must be called from
// one goroutine; Close stops the workers.
type Dispatcher struct {
	targets  []*target
	log      *slog.Logger
	m        *deliveryMetrics
	resend   time.Duration
	external string
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// NewDispatcher starts a worker per receiver of rs.
func newDispatcher(rs *Ruleset, log *slog.Logger, m *deliveryMetrics) *Dispatcher {
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{log: log, m: m, resend: rs.resend, external: rs.external, ctx: ctx, cancel: cancel}
	for _, rc := range rs.cfg.Receivers {
		t := &target{cfg: rc, queue: make(chan *batch, max(rc.QueueSize, 1)), sent: map[uint64]State{},
			sentAt: map[uint64]time.Time{}, groupKey: map[uint64]string{}}
		t.url = rc.URL
		if rc.Type == config.ReceiverAlertmanager {
			t.url = strings.TrimSuffix(rc.URL, "/") + "/api/v2/alerts"
		}
		t.client = &http.Client{Timeout: rc.Timeout.D(), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		d.targets = append(d.targets, t)
		d.wg.Add(1)
		go d.work(t)
	}
	return d
}

// Close stops the workers; notifications still queued are dropped.
func (d *Dispatcher) Close() {
	d.cancel()
	d.wg.Wait()
}

// amAlert is an alert in Alertmanager's v2 API.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// whAlert is an alert in Alertmanager's webhook JSON.
type whAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// whMessage is Alertmanager's webhook payload (version 4).
type whMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []whAlert         `json:"alerts"`
}

// deliverable reports whether a is told to receivers: firing and not
// inhibited, or resolved.
func deliverable(a *Alert) bool {
	return (a.State == StateFiring && !a.Inhibited) || a.State == StateResolved
}

// Offer queues what each receiver must be told about alerts (the
// evaluation's result at now). It never blocks.
func (d *Dispatcher) Offer(alerts []Alert, now time.Time) {
	for _, t := range d.targets {
		switch t.cfg.Type {
		case config.ReceiverAlertmanager:
			d.offerAM(t, alerts, now)
		default:
			d.offerGroups(t, alerts, now)
		}
	}
}

func (d *Dispatcher) generatorURL() string {
	if d.external == "" {
		return ""
	}
	return d.external + "/api/alerts"
}

func (d *Dispatcher) offerAM(t *target, alerts []Alert, now time.Time) {
	var out []amAlert
	live := make(map[uint64]bool, len(alerts))
	for i := range alerts {
		a := &alerts[i]
		live[a.fp] = true
		if !deliverable(a) {
			continue
		}
		prev, seen := t.sent[a.fp]
		switch {
		case a.State == StateFiring && (!seen || prev != StateFiring || now.Sub(t.sentAt[a.fp]) >= d.resend):
			out = append(out, amAlert{Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.FiredAt,
				EndsAt: now.Add(4 * d.resend), GeneratorURL: d.generatorURL()})
		case a.State == StateResolved && seen && prev == StateFiring:
			out = append(out, amAlert{Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.FiredAt,
				EndsAt: a.ResolvedAt, GeneratorURL: d.generatorURL()})
		default:
			continue
		}
		t.sent[a.fp], t.sentAt[a.fp] = a.State, now
	}
	for fp := range t.sent {
		if !live[fp] {
			delete(t.sent, fp)
			delete(t.sentAt, fp)
		}
	}
	if len(out) == 0 {
		return
	}
	body, err := json.Marshal(out)
	if err != nil {
		d.log.Error("encoding alerts", "receiver", t.cfg.Name, "error", err)
		return
	}
	d.enqueue(t, &batch{created: now, body: body})
}

// offerGroups sends a group's notification (webhook JSON, or log lines)
// when any of its alerts changed state since the last one.
func (d *Dispatcher) offerGroups(t *target, alerts []Alert, now time.Time) {
	groups := map[string][]*Alert{}
	var keys []string
	live := make(map[uint64]bool, len(alerts))
	for i := range alerts {
		a := &alerts[i]
		live[a.fp] = true
		if !deliverable(a) {
			continue
		}
		if a.State == StateResolved {
			if _, seen := t.sent[a.fp]; !seen {
				continue // resolved before it was ever sent
			}
		}
		k := groupKey(t.cfg.GroupBy, a.Labels)
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], a)
	}
	for fp := range t.sent {
		if !live[fp] {
			delete(t.sent, fp)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := groups[k]
		changed := false
		for _, a := range g {
			if t.sent[a.fp] != a.State {
				changed = true
			}
		}
		if !changed {
			continue
		}
		for _, a := range g {
			t.sent[a.fp] = a.State
		}
		if t.cfg.Type == config.ReceiverLog {
			cp := make([]Alert, len(g))
			for i, a := range g {
				cp[i] = *a
			}
			d.enqueue(t, &batch{created: now, alerts: cp})
			continue
		}
		body, err := json.Marshal(d.webhook(t, k, g))
		if err != nil {
			d.log.Error("encoding alerts", "receiver", t.cfg.Name, "error", err)
			continue
		}
		d.enqueue(t, &batch{created: now, body: body})
	}
}

func (d *Dispatcher) webhook(t *target, key string, g []*Alert) whMessage {
	msg := whMessage{Version: "4", GroupKey: key, Status: "resolved", Receiver: t.cfg.Name,
		GroupLabels: map[string]string{}, ExternalURL: d.external}
	for _, l := range t.cfg.GroupBy {
		if v, ok := g[0].Labels[l]; ok {
			msg.GroupLabels[l] = v
		}
	}
	msg.CommonLabels = cloneMap(g[0].Labels)
	msg.CommonAnnotations = cloneMap(g[0].Annotations)
	for _, a := range g {
		w := whAlert{Status: "firing", Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.FiredAt,
			GeneratorURL: d.generatorURL(), Fingerprint: a.Fingerprint()}
		if a.State == StateResolved {
			w.Status, w.EndsAt = "resolved", a.ResolvedAt
		} else {
			msg.Status = "firing"
		}
		msg.Alerts = append(msg.Alerts, w)
		intersect(msg.CommonLabels, a.Labels)
		intersect(msg.CommonAnnotations, a.Annotations)
	}
	return msg
}

func intersect(common, m map[string]string) {
	for k, v := range common {
		if m[k] != v {
			delete(common, k)
		}
	}
}

// groupKey formats a group as Alertmanager does: {}:{label="value",...}.
func groupKey(by []string, labels map[string]string) string {
	var b strings.Builder
	b.WriteString("{}:{")
	for i, l := range by {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l, labels[l])
	}
	b.WriteByte('}')
	return b.String()
}

// enqueue adds b to t's queue, dropping the oldest notification when the
// queue is full.
func (d *Dispatcher) enqueue(t *target, b *batch) {
	for {
		select {
		case t.queue <- b:
			d.m.queue.WithLabelValues(t.cfg.Name).Set(float64(len(t.queue)))
			return
		default:
		}
		select {
		case <-t.queue:
			d.m.notifications.WithLabelValues(t.cfg.Name, "dropped").Inc()
		default:
		}
	}
}

func (d *Dispatcher) work(t *target) {
	defer d.wg.Done()
	for {
		select {
		case <-d.ctx.Done():
			return
		case b := <-t.queue:
			d.m.queue.WithLabelValues(t.cfg.Name).Set(float64(len(t.queue)))
			d.deliver(t, b)
		}
	}
}

func (d *Dispatcher) deliver(t *target, b *batch) {
	name := t.cfg.Name
	if t.cfg.Type == config.ReceiverLog {
		for i := range b.alerts {
			a := &b.alerts[i]
			attrs := []any{"receiver", name, "alertname", a.Rule, "status", a.State.String(), "labels", labelText(a.Labels),
				"value", a.Value, "threshold", a.Op + " " + fmt.Sprint(a.Threshold)}
			if len(a.Exemplars) > 0 {
				attrs = append(attrs, "trace", a.Exemplars[0].URL)
			}
			d.log.Info("alert notification", attrs...)
		}
		d.m.notifications.WithLabelValues(name, "sent").Inc()
		return
	}
	var err error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			d.m.notifications.WithLabelValues(name, "retried").Inc()
			select {
			case <-d.ctx.Done():
				return
			case <-time.After(backoffBase << (attempt - 1)):
			}
		}
		if err = d.post(t, b.body); err == nil {
			d.m.notifications.WithLabelValues(name, "sent").Inc()
			d.m.latency.WithLabelValues(name).Observe(time.Since(b.created).Seconds())
			return
		}
		if pe, ok := err.(*permanentError); ok {
			err = pe.err
			break
		}
	}
	d.m.notifications.WithLabelValues(name, "failed").Inc()
	d.log.Warn("alert notification failed", "receiver", name, "error", err)
}

// permanentError is a delivery error not worth retrying (a 4xx).
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func (d *Dispatcher) post(t *target, body []byte) error {
	ctx, cancel := context.WithTimeout(d.ctx, t.cfg.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return &permanentError{fmt.Errorf("receiver %s: %w", t.cfg.Name, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vantage-alerts")
	resp, err := t.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may carry a token in its query: never shown
		}
		return fmt.Errorf("receiver %s: %w", t.cfg.Name, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout:
		return &permanentError{fmt.Errorf("receiver %s answered %s", t.cfg.Name, resp.Status)}
	}
	return fmt.Errorf("receiver %s answered %s", t.cfg.Name, resp.Status)
}

// labelText formats labels as {k="v",...}, sorted.
func labelText(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, l[k])
	}
	b.WriteByte('}')
	return b.String()
}
