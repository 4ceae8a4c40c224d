// Package logging builds the gateway's operational logger: a log/slog
// logger, JSON or text, at the configured level, whose records carry the
// trace and span ids of the request they belong to.
//
// A log call belongs to a request when it is given the request's context
// (logger.InfoContext(ctx, ...), or the ctx of Handle): the ids come from
// the context's observe.Record when tracing filled it, otherwise from an
// OpenTelemetry span in the context. Calls without such a context carry no
// ids.
package logging

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"os"

	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// The attribute keys of the ids, the same as in the access log.
const (
	TraceIDKey = "trace_id"
	SpanIDKey  = "span_id"
)

// New returns the operational logger described by cfg (defaults applied):
// a slog.JSONHandler or slog.TextHandler writing to w (os.Stderr when nil)
// at cfg.Level, wrapped by WithTrace. The logger is safe for concurrent
// use; writes to w are serialised by the handler.
func New(cfg config.Log, w io.Writer) *slog.Logger {
	return slog.New(WithTrace(NewHandler(cfg, w)))
}

// NewHandler returns the handler New wraps: JSON or text per cfg.Format,
// filtering below cfg.Level, with source locations when cfg.AddSource.
func NewHandler(cfg config.Log, w io.Writer) slog.Handler {
	if w == nil {
		w = os.Stderr
	}
	opts := &slog.HandlerOptions{Level: ParseLevel(cfg.Level), AddSource: cfg.AddSource}
	if cfg.Format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// ParseLevel maps debug, info, warn and error to their slog levels; any
// other value is info.
func ParseLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// WithTrace wraps h so that each record handled with a request's context
// gets trace_id and span_id attributes (lower-case hex), at the top level
// even under WithGroup. Records without a trace in their context pass
// through unchanged and at no extra cost.
func WithTrace(h slog.Handler) slog.Handler {
	return &traceHandler{base: h, cur: h}
}

// traceHandler remembers the WithAttrs/WithGroup calls made on it since
// base, so that ids can be added outside any group.
type traceHandler struct {
	base   slog.Handler // the handler given to WithTrace
	cur    slog.Handler // base with ops applied
	ops    []op
	groups int // WithGroup calls in ops
}

// op is one WithAttrs (attrs) or WithGroup (group) call.
type op struct {
	group string
	attrs []slog.Attr
}

// Enabled implements slog.Handler.
func (h *traceHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.cur.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	traceID, spanID, ok := idsFrom(ctx)
	if !ok {
		return h.cur.Handle(ctx, r)
	}
	ids := []slog.Attr{slog.String(TraceIDKey, traceID), slog.String(SpanIDKey, spanID)}
	if h.groups == 0 {
		r.AddAttrs(ids...)
		return h.cur.Handle(ctx, r)
	}
	// Under a group, record attributes would land inside it: rebuild the
	// handler with the ids ahead of the groups. Rare, and only for logs
	// that belong to a request.
	nh := h.base.WithAttrs(ids)
	for _, o := range h.ops {
		if o.attrs != nil {
			nh = nh.WithAttrs(o.attrs)
		} else {
			nh = nh.WithGroup(o.group)
		}
	}
	return nh.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.with(op{attrs: attrs}, h.cur.WithAttrs(attrs), 0)
}

// WithGroup implements slog.Handler.
func (h *traceHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(op{group: name}, h.cur.WithGroup(name), 1)
}

func (h *traceHandler) with(o op, cur slog.Handler, groups int) *traceHandler {
	ops := make([]op, len(h.ops), len(h.ops)+1)
	copy(ops, h.ops)
	return &traceHandler{base: h.base, cur: cur, ops: append(ops, o), groups: h.groups + groups}
}

// idsFrom returns the hex trace and span ids of ctx's request.
func idsFrom(ctx context.Context) (traceID, spanID string, ok bool) {
	if ctx == nil {
		return "", "", false
	}
	if rec := observe.FromContext(ctx); rec != nil && rec.Trace.Valid {
		return hex.EncodeToString(rec.Trace.TraceID[:]), hex.EncodeToString(rec.Trace.SpanID[:]), true
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String(), sc.SpanID().String(), true
	}
	return "", "", false
}
