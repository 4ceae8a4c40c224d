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
