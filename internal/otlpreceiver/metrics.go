package otlpreceiver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values of the receiver's metrics: a fixed set, never from input.
const (
	signalTraces = "traces"
	signalLogs   = "logs"

	transportHTTP = "http"
	transportGRPC = "grpc"

	outcomeSuccess          = "success"                // everything accepted
	outcomePartial          = "partial"                // some items rejected (partial success)
	outcomeMalformed        = "malformed"              // undecodable body: 400 / INVALID_ARGUMENT
	outcomeUnsupportedMedia = "unsupported_media_type" // 415: content type or encoding
	outcomeTooLarge         = "too_large"              // 413 / RESOURCE_EXHAUSTED (message size)
	outcomeOverloaded       = "overloaded"             // 429 or 503 / RESOURCE_EXHAUSTED, retryable
	outcomeUnauthorized     = "unauthorized"           // 401 / UNAUTHENTICATED
	outcomeMethodNotAllowed = "method_not_allowed"     // 405
	outcomeFailed           = "failed"                 // the consumer failed: 500 / INTERNAL
)

var (
	httpOutcomes = []string{outcomeSuccess, outcomePartial, outcomeMalformed, outcomeUnsupportedMedia, outcomeTooLarge,
		outcomeOverloaded, outcomeUnauthorized, outcomeMethodNotAllowed, outcomeFailed}
	// gRPC refuses oversized messages itself, before the receiver sees
	// them, so that outcome is not counted for it.
	grpcOutcomes = []string{outcomeSuccess, outcomePartial, outcomeMalformed, outcomeOverloaded, outcomeUnauthorized, outcomeFailed}
)

type metrics struct {
	requests *prometheus.CounterVec
	itemsVec *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_otlp_receiver_requests_total",
			Help: "OTLP export requests received, by signal (traces, logs), transport (http, grpc) and outcome.",
		}, []string{"signal", "transport", "outcome"}),
		itemsVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_otlp_receiver_items_total",
			Help: "Spans or log records received, by signal and outcome: accepted, rejected (invalid, over a limit or refused by the store), truncated (accepted with attributes or values cut; also counted as accepted).",
		}, []string{"signal", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.itemsVec} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("otlpreceiver: registering metrics: %w", err)
		}
	}
	for _, s := range []string{signalTraces, signalLogs} {
		for _, o := range httpOutcomes {
			m.requests.WithLabelValues(s, transportHTTP, o)
		}
		for _, o := range grpcOutcomes {
			m.requests.WithLabelValues(s, transportGRPC, o)
		}
		for _, o := range []string{"accepted", "rejected", "truncated"} {
			m.itemsVec.WithLabelValues(s, o)
		}
	}
	return m, nil
}

func (m *metrics) request(signal, transport, outcome string) {
	m.requests.WithLabelValues(signal, transport, outcome).Inc()
}

func (m *metrics) items(signal string, accepted, rejected, truncated int64) {
	if accepted > 0 {
		m.itemsVec.WithLabelValues(signal, "accepted").Add(float64(accepted))
	}
	if rejected > 0 {
		m.itemsVec.WithLabelValues(signal, "rejected").Add(float64(rejected))
	}
	if truncated > 0 {
		m.itemsVec.WithLabelValues(signal, "truncated").Add(float64(truncated))
	}
}
