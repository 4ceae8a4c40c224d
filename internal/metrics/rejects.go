package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// ListenerRejects counts the requests listeners refuse before routing —
// refused by net/http's parser, by the framing check or by a listener's
// limits — as vantage_listener_rejected_requests_total{listener, reason}.
// Every listener × reason series exists from the start at zero, so rate()
// sees the first burst. Labels come from config names and the listener's
// closed set of reasons only. It is safe for concurrent use.
type ListenerRejects struct {
	c *prometheus.CounterVec
}

// NewListenerRejects registers the counter on reg with a zero series for
// each listener and reason.
func NewListenerRejects(reg prometheus.Registerer, listeners, reasons []string) (*ListenerRejects, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "vantage",
		Name:      "listener_rejected_requests_total",
		Help:      "Requests refused before routing (by the HTTP parser, the framing check or the listener's limits), by reason.",
	}, []string{"listener", "reason"})
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("registering vantage_listener_rejected_requests_total: %w", err)
	}
	for _, l := range listeners {
		for _, r := range reasons {
			c.WithLabelValues(l, r)
		}
	}
	return &ListenerRejects{c: c}, nil
}

// Rejected counts one refused request.
func (l *ListenerRejects) Rejected(listener, reason string) {
	l.c.WithLabelValues(listener, reason).Inc()
}
