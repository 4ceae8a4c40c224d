package observe

import (
	"context"
	"sync"
)

type recordKey struct{}

// NewContext returns a context carrying rec.
func NewContext(ctx context.Context, rec *Record) context.Context {
	return context.WithValue(ctx, recordKey{}, rec)
}

// FromContext returns the request's Record, or nil outside a request the
// gateway is handling.
func FromContext(ctx context.Context) *Record {
	rec, _ := ctx.Value(recordKey{}).(*Record)
	return rec
}

type traceKey struct{}

// ContextWithTrace returns ctx carrying tc on its own, without a Record: for
// work that outlives the request but belongs to its trace (a mirrored copy
// sent after the response), so that its outgoing requests still continue
// the request's trace with the request's span as parent.
func ContextWithTrace(ctx context.Context, tc TraceContext) context.Context {
	return context.WithValue(ctx, traceKey{}, tc)
}

// TraceFromContext returns the trace context ContextWithTrace put in ctx.
func TraceFromContext(ctx context.Context) (TraceContext, bool) {
	tc, ok := ctx.Value(traceKey{}).(TraceContext)
	return tc, ok && tc.Valid
}

var recordPool = sync.Pool{New: func() any { r := new(Record); r.Reset(); return r }}

// GetRecord takes a reset Record from the pool.
func GetRecord() *Record {
	return recordPool.Get().(*Record)
}

// PutRecord resets rec and returns it to the pool. The caller must be its
// last user.
func PutRecord(rec *Record) {
	rec.Reset()
	recordPool.Put(rec)
}
