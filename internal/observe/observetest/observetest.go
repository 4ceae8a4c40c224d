// Package observetest is a test kit for the decision-event stream, like
// tracetest is for spans: a Recorder keeps every event an observer would
// receive, so tests can assert on what the gateway decided.
package observetest

import (
	"sync"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// Recorder is an observe.Observer that keeps every event. It drops each
// event's Ctx and Record, which belong to a request that may have ended.
// Its methods are safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	events []observe.Event
}

var _ observe.Observer = (*Recorder)(nil)

// Observe implements observe.Observer.
func (r *Recorder) Observe(ev observe.Event) {
	ev.Ctx, ev.Record = nil, nil
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

// Events returns a copy of every event so far, in order.
func (r *Recorder) Events() []observe.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]observe.Event(nil), r.events...)
}

// Of returns the events of one kind, in order.
func (r *Recorder) Of(kind observe.EventKind) []observe.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []observe.Event
	for _, ev := range r.events {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// Count returns how many events of kind arrived.
func (r *Recorder) Count(kind observe.EventKind) int { return len(r.Of(kind)) }

// Reset forgets every event.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}
