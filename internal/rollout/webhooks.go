package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
)

// Webhooks calls a rollout's gate URLs and delivers its transitions to
// the event URL. Events go through a bounded queue delivered by one
// goroutine; when it is full they are dropped and counted. Errors never
// carry the URL (it may hold a token).
type Webhooks struct {
	client  *http.Client
	log     *slog.Logger
	queue   chan event
	dropped atomic.Uint64
	done    chan struct{}
	once    sync.Once
}

type event struct {
	url     string
	timeout time.Duration
	body    []byte
}

// QueueSize bounds the event hook's queue.
const QueueSize = 256

// NewWebhooks starts the event delivery goroutine; Close stops it. A nil
// client uses one with no proxy and the calls' own timeouts.
func NewWebhooks(client *http.Client, log *slog.Logger) *Webhooks {
	if client == nil {
		client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2}}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Webhooks{client: client, log: log, queue: make(chan event, QueueSize), done: make(chan struct{})}
	go w.deliver()
	return w
}

// Dropped is the number of events dropped because the queue was full.
func (w *Webhooks) Dropped() uint64 { return w.dropped.Load() }

// Close stops delivery; queued events are dropped. Safe to call twice.
func (w *Webhooks) Close() { w.once.Do(func() { close(w.done) }) }

// GateRequest is the JSON body a gate receives.
type GateRequest struct {
	Rollout string `json:"rollout"`
	Gate    string `json:"gate"`
	// NextWeight is the canary weight the transition would set.
	NextWeight int    `json:"next_weight"`
	Status     Status `json:"status"`
}

// EventBody is the JSON body the event hook receives.
type EventBody struct {
	Rollout  string   `json:"rollout"`
	Route    string   `json:"route"`
	Decision Decision `json:"decision"`
}

// Confirm implements Gates: a 2xx answer confirms; any other answer, an
// error or no answer within the rollout's webhook timeout refuses.
func (w *Webhooks) Confirm(ctx context.Context, r *config.Rollout, kind string, st Status) error {
	var url string
	switch kind {
	case "before_start":
		url = r.Webhooks.BeforeStart
	case "before_step":
		url = r.Webhooks.BeforeStep
	case "before_promotion":
		url = r.Webhooks.BeforePromotion
	}
	if url == "" {
		return nil
	}
	next := 0
	if st.Step+1 < len(st.Steps) {
		next = st.Steps[st.Step+1]
	}
	body, err := json.Marshal(GateRequest{Rollout: r.Name, Gate: kind, NextWeight: next, Status: st})
	if err != nil {
		return err
	}
	timeout := r.Webhooks.Timeout.D()
	status, err := w.post(ctx, url, timeout, body)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("gate %s timed out after %s (a timeout counts as a refusal)", kind, timeout)
	case err != nil:
		return fmt.Errorf("gate %s unreachable (counts as a refusal): %w", kind, err)
	case status < 200 || status > 299:
		return fmt.Errorf("gate %s refused with HTTP %d", kind, status)
	}
	return nil
}

// Notify implements Gates: it queues d for r's event URL, never blocking.
func (w *Webhooks) Notify(r *config.Rollout, d Decision) {
	if r.Webhooks.Events == "" {
		return
	}
	body, err := json.Marshal(EventBody{Rollout: r.Name, Route: r.Route, Decision: d})
	if err != nil {
		return
	}
	select {
	case w.queue <- event{url: r.Webhooks.Events, timeout: r.Webhooks.Timeout.D(), body: body}:
	default:
		w.dropped.Add(1)
	}
}

func (w *Webhooks) deliver() {
	for {
		select {
		case <-w.done:
			return
		case ev := <-w.queue:
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-w.done:
					cancel()
				case <-ctx.Done():
				}
			}()
			status, err := w.post(ctx, ev.url, ev.timeout, ev.body)
			cancel()
			if err != nil || status < 200 || status > 299 {
				w.log.Warn("rollout event hook failed", "status", status, "error", err)
			}
		}
	}
}

// post sends body and returns the status; its errors never name the URL.
func (w *Webhooks) post(ctx context.Context, url string, timeout time.Duration, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("bad webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap() // drop the *url.Error wrapper, which names the URL
		}
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

var _ Gates = (*Webhooks)(nil)
