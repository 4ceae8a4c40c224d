package otlpreceiver

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/vantage-gateway/vantage/internal/clock"
)

// DefaultMaxBodyBytes is Options.MaxBodyBytes' default: the largest request
// body, after decompression, the receiver reads.
const DefaultMaxBodyBytes = 4 << 20

// DefaultMaxInFlight is Options.MaxInFlight's default.
const DefaultMaxInFlight = 16

// Options configure a Receiver. Zero fields take their defaults.
type Options struct {
	// Traces takes accepted spans. Nil: trace exports are refused with 404
	// (HTTP) or UNIMPLEMENTED (gRPC).
	Traces TraceConsumer
	// Logs takes accepted log records. Nil: refused like Traces.
	Logs LogConsumer
	// Limits bound what one request may carry (DefaultLimits).
	Limits Limits
	// MaxBodyBytes is the largest request body, after decompression, that
	// is read; a larger one is answered 413 (HTTP) or RESOURCE_EXHAUSTED
	// (gRPC, as the message size limit). Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxInFlight is the most requests decoded and consumed at once, which
	// bounds the receiver's memory to about MaxInFlight times a few
	// MaxBodyBytes. Over it a request is answered 503 (HTTP) or
	// RESOURCE_EXHAUSTED (gRPC), both retryable. Default
	// DefaultMaxInFlight.
	MaxInFlight int
	// RetryAfter is what a retryable refusal tells the client to wait
	// (HTTP Retry-After, gRPC RetryInfo). Default 1s.
	RetryAfter time.Duration
	// BearerToken, when set, is required as "Authorization: Bearer <token>"
	// on every request (gRPC: the authorization metadata). It is compared
	// in constant time and never logged.
	BearerToken string
	// Registerer receives the receiver's metrics. Nil: a private registry.
	Registerer prometheus.Registerer
	// Logger is for the receiver's own problems; it never logs request
	// contents or credentials. Nil: discarded.
	Logger *slog.Logger
	// Clock bounds timestamps (Limits.MaxPast, MaxFuture). Nil: real time.
	Clock clock.Clock
}

// Receiver receives OTLP over HTTP (Handler) and gRPC (NewGRPCServer),
// validates it and hands it to the consumers. It is safe for concurrent
// use.
type Receiver struct {
	opts     Options
	lim      Limits
	token    []byte
	inFlight chan struct{}
	m        *metrics
	bufs     bufferPool
	// bodyTimeout is bodyReadTimeout; tests shorten it.
	bodyTimeout time.Duration
}

// New builds a Receiver. It fails only when the metrics cannot be
// registered.
func New(o Options) (*Receiver, error) {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	r := &Receiver{opts: o, lim: o.Limits.withDefaults(), inFlight: make(chan struct{}, o.MaxInFlight), m: m, bodyTimeout: bodyReadTimeout}
	if o.BearerToken != "" {
		r.token = []byte(o.BearerToken)
	}
	return r, nil
}

// authorized reports whether an Authorization value carries the token.
func (r *Receiver) authorized(authorization string) bool {
	if r.token == nil {
		return true
	}
	const prefix = "Bearer "
	if len(authorization) < len(prefix) || !equalFoldASCII(authorization[:len(prefix)], prefix) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(authorization[len(prefix):]), r.token) == 1
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i]|0x20, b[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// acquire takes an in-flight slot without waiting; release gives it back.
func (r *Receiver) acquire() bool {
	select {
	case r.inFlight <- struct{}{}:
		return true
	default:
		return false
	}
}

func (r *Receiver) release() { <-r.inFlight }

// result is the outcome of one export, whatever the transport.
type result struct {
	outcome  string // a requests_total outcome
	rejected int64
	message  string
	err      error // the consumer's error, for failed and overloaded
}

// exportTraces validates req in place, hands what is left to the consumer
// and counts the outcome.
func (r *Receiver) exportTraces(ctx context.Context, req *coltracepb.ExportTraceServiceRequest, hexIDs bool, transport string) result {
	v := validator{lim: r.lim, now: r.opts.Clock.Now(), hexIDs: hexIDs}
	vd := v.traces(req)
	return r.finish(ctx, signalTraces, transport, &vd, func(ctx context.Context) (int64, error) {
		return r.opts.Traces.ConsumeTraces(ctx, req)
	})
}

// exportLogs is exportTraces for logs.
func (r *Receiver) exportLogs(ctx context.Context, req *collogspb.ExportLogsServiceRequest, hexIDs bool, transport string) result {
	v := validator{lim: r.lim, now: r.opts.Clock.Now(), hexIDs: hexIDs}
	vd := v.logs(req)
	return r.finish(ctx, signalLogs, transport, &vd, func(ctx context.Context) (int64, error) {
		return r.opts.Logs.ConsumeLogs(ctx, req)
	})
}

func (r *Receiver) finish(ctx context.Context, signal, transport string, vd *verdict, consume func(context.Context) (int64, error)) result {
	var consumerRejected int64
	if vd.accepted > 0 {
		n, err := consume(ctx)
		if err != nil {
			outcome := outcomeFailed
			if errors.Is(err, ErrOverloaded) {
				outcome = outcomeOverloaded
			} else {
				r.opts.Logger.Warn("OTLP consumer failed", "signal", signal, "error", err)
			}
			r.m.request(signal, transport, outcome)
			// The client may retry: only what validation refused is final.
			r.m.items(signal, 0, vd.rejected, 0)
			return result{outcome: outcome, err: err}
		}
		consumerRejected = min(max(n, 0), vd.accepted)
		if consumerRejected > 0 {
			vd.reject(0, "%d %s refused by the store", consumerRejected, itemWord(signal))
			vd.rejected += consumerRejected
		}
	}
	res := result{outcome: outcomeSuccess, rejected: vd.rejected}
	if vd.rejected > 0 {
		res.outcome = outcomePartial
		res.message = fmt.Sprintf("%d %s rejected: %s", vd.rejected, itemWord(signal), vd.message())
	}
	r.m.request(signal, transport, res.outcome)
	r.m.items(signal, vd.accepted-consumerRejected, vd.rejected, vd.truncated)
	return res
}

func itemWord(signal string) string {
	if signal == signalLogs {
		return "log records"
	}
	return "spans"
}
