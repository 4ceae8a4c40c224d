package tracestore

import (
	"bytes"
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/tracing/export"
)

// Sink puts the gateway's own telemetry into the store without encoding
// it to OTLP and back: the spans of every kept trace, as the tracing
// pipeline builds them (TakeSpans, a tracing.SpanSink), and the access-log
// records of traced requests (WantsLog and TakeLog, an accesslog.Tap).
//
// Both are called on the request goroutine: they copy what they need
// into the compact model and add it to one pending batch of the store,
// which is handed to the store's bounded queue (Store.Submit) once it
// holds pendMax spans and log records, or by the writer every 100 ms, or
// before a read (so a reader sees every request that has ended). So the
// request path takes a short lock and seldom wakes the writer, and never
// waits; when the queue is full the batch is dropped and counted. A Sink
// is safe for concurrent use.
type Sink struct {
	s   *Store
	res atomic.Pointer[sinkResource]
	// logRes is the resource of the access-log records.
	logRes sinkResource
	// slow makes the access-log record of a request at least this slow
	// worth keeping when the trace was not head-sampled (0: never).
	slow time.Duration
	// logAttrs are the attributes of every access-log record.
	logAttrs string
	// keys caches the dictionary references of the span attribute keys
	// (used under s.pendMu).
	keys keyCache
}

type sinkResource struct {
	res     *resource.Resource
	service string
	attrs   string
}

// NewSink returns a sink into s. res is the gateway's resource (tracing.
// Resource), which the access-log records carry; slowerThan is the late
// sampling's slow threshold, so that the log records of traces kept late
// for being slow are kept too (0: off).
func (s *Store) NewSink(res *resource.Resource, slowerThan time.Duration) *Sink {
	k := &Sink{s: s, slow: slowerThan}
	k.logRes = k.convertResource(res)
	k.logAttrs = attrsBlob(s.dict, []KeyValue{String("log.record.kind", "access")})
	return k
}

func (k *Sink) convertResource(res *resource.Resource) sinkResource {
	r := sinkResource{res: res, service: "vantage"}
	if res == nil {
		r.attrs = attrsBlob(k.s.dict, nil)
		return r
	}
	var kvs []KeyValue
	for _, kv := range res.Attributes() {
		if kv.Key == "service.name" {
			r.service = kv.Value.AsString()
			continue
		}
		kvs = append(kvs, fromOTel(kv))
	}
	r.attrs = attrsBlob(k.s.dict, kvs)
	return r
}

// resourceOf returns the converted res, converting it once per resource.
func (k *Sink) resourceOf(res *resource.Resource) *sinkResource {
	if r := k.res.Load(); r != nil && r.res == res {
		return r
	}
	r := k.convertResource(res)
	k.res.Store(&r)
	return &r
}

// fromOTel converts an OpenTelemetry attribute; slices become their JSON
// text, as Jaeger shows them.
func fromOTel(kv attribute.KeyValue) KeyValue {
	k := string(kv.Key)
	switch kv.Value.Type() {
	case attribute.BOOL:
		return Bool(k, kv.Value.AsBool())
	case attribute.INT64:
		return Int(k, kv.Value.AsInt64())
	case attribute.FLOAT64:
		return Float(k, kv.Value.AsFloat64())
	case attribute.STRING:
		return String(k, kv.Value.AsString())
	case attribute.BYTESLICE:
		return KeyValue{Key: k, Type: TypeBinary, Bytes: kv.Value.AsByteSlice()}
	}
	j, err := json.Marshal(kv.Value.AsInterface())
	if err != nil {
		return String(k, kv.Value.String())
	}
	return String(k, string(j))
}

func writeOTelAttrs(w *blobWriter, in *spanIn, kvs []attribute.KeyValue) {
	w.uvarint(uint64(len(kvs)))
	for _, kv := range kvs {
		k := string(kv.Key)
		switch kv.Value.Type() {
		case attribute.BOOL:
			w.attrBool(k, kv.Value.AsBool())
		case attribute.INT64:
			v := kv.Value.AsInt64()
			w.attrInt(k, v)
			if in != nil {
				in.noteInt(k, v)
			}
		case attribute.FLOAT64:
			w.attrFloat(k, kv.Value.AsFloat64())
		case attribute.STRING:
			v := kv.Value.AsString()
			w.attrString(k, v)
			if in != nil {
				in.noteString(k, v)
			}
		default:
			w.attr(fromOTel(kv))
		}
	}
}

// TakeSpans stores copies of the spans of one kept trace (a tracing.
// SpanSink). It never blocks.
func (k *Sink) TakeSpans(res *resource.Resource, scope instrumentation.Scope, spans []export.SpanData) {
	if k.s.QueueFull() {
		k.s.m.spansDropped[dropQueueFull].Add(float64(len(spans)))
		return
	}
	r := k.resourceOf(res)
	w := blobWriter{d: k.s.dict, c: &k.keys}
	s := k.s
	s.pendMu.Lock()
	b, full := s.pendingFor(r.service, r.attrs)
	for i := range spans {
		b.addSpanData(&w, scope, &spans[i])
	}
	full2 := s.pendingDone()
	s.pendMu.Unlock()
	s.Submit(full)
	s.Submit(full2)
}

// addSpanData adds a copy of d, encoded in b's arena with w.
func (b *Batch) addSpanData(w *blobWriter, scope instrumentation.Scope, d *export.SpanData) {
	in := spanIn{traceID: TraceID(d.SpanContext.TraceID())}
	if in.traceID.IsZero() || !d.SpanContext.SpanID().IsValid() {
		return
	}
	// Durations and event offsets from wall-clock times, as an OTLP
	// exporter sends them (Sub would use the monotonic readings, which
	// drift from them by microseconds).
	in.span = spanRec{
		spanID: SpanID(d.SpanContext.SpanID()),
		start:  d.Start.UnixNano(),
		dur:    max(0, d.End.UnixNano()-d.Start.UnixNano()),
		name:   d.Name,
		kind:   SpanKind(d.Kind),
		flags:  uint8(d.SpanContext.TraceFlags()),
	}
	if d.Parent.SpanID().IsValid() {
		in.span.parentID = SpanID(d.Parent.SpanID())
	}
	switch d.Status.Code {
	case codes.Error:
		in.span.status = StatusError
	case codes.Ok:
		in.span.status = StatusOK
	}
	w.b = b.arenaTail()
	w.header(Scope{Name: scope.Name, Version: scope.Version}, d.SpanContext.TraceState().String(), d.Status.Description,
		uint32(d.DroppedAttributes), uint32(d.DroppedEvents), uint32(d.DroppedLinks))
	writeOTelAttrs(w, &in, d.Attributes)
	w.uvarint(uint64(len(d.Events)))
	for _, ev := range d.Events {
		w.varint(ev.Time.UnixNano() - d.Start.UnixNano())
		w.str(ev.Name)
		writeOTelAttrs(w, nil, ev.Attributes)
		if ev.Name == eventRetry {
			in.retried = true
		}
	}
	w.uvarint(uint64(len(d.Links)))
	for _, l := range d.Links {
		tid, sid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
		w.b = append(w.b, tid[:]...)
		w.b = append(w.b, sid[:]...)
		w.str(l.SpanContext.TraceState().String())
		writeOTelAttrs(w, nil, l.Attributes)
	}
	in.span.blob = b.keepBlob(w.b)
	b.addSpanIn(&in)
}

// SpanExporter returns an OpenTelemetry SDK span exporter into the store,
// for programs that embed the gateway or run instrumented services in
// the same process (the demo shop). ExportSpans never blocks: when the
// store's queue is full the spans are dropped and counted, not retried.
func (s *Store) SpanExporter() sdktrace.SpanExporter {
	return &spanExporter{k: s.NewSink(nil, 0)}
}

type spanExporter struct{ k *Sink }

// ExportSpans implements sdktrace.SpanExporter.
func (e *spanExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	s := e.k.s
	w := blobWriter{d: s.dict}
	var b *Batch
	var last *resource.Resource
	flush := func() {
		if b != nil {
			s.Submit(b)
		}
	}
	for _, sp := range spans {
		if res := sp.Resource(); b == nil || res != last {
			flush()
			r := e.k.resourceOf(res)
			b = &Batch{service: r.service, resAttrs: r.attrs, dict: s.dict, pool: &s.arenas}
			last = res
		}
		d := export.SpanData{
			SpanContext: sp.SpanContext(), Parent: sp.Parent(), Name: sp.Name(), Kind: sp.SpanKind(),
			Start: sp.StartTime(), End: sp.EndTime(), Attributes: sp.Attributes(), DroppedAttributes: sp.DroppedAttributes(),
			Events: sp.Events(), DroppedEvents: sp.DroppedEvents(), Links: sp.Links(), DroppedLinks: sp.DroppedLinks(),
			Status: sp.Status(),
		}
		b.addSpanData(&w, sp.InstrumentationScope(), &d)
	}
	flush()
	return nil
}

// Shutdown implements sdktrace.SpanExporter; the store outlives it.
func (e *spanExporter) Shutdown(context.Context) error { return nil }

// WantsLog reports whether the access-log record of rec belongs in the
// store: the request was traced and its trace is (or will likely be)
// kept: head-sampled, failed, retried or slow.
func (k *Sink) WantsLog(rec *observe.Record) bool {
	if !rec.Trace.Valid {
		return false
	}
	return rec.Trace.Sampled || rec.Status >= 500 || rec.ErrorKind != observe.ErrNone || rec.Aborted ||
		len(rec.Attempts) > 1 || k.slow > 0 && rec.Total() >= k.slow
}

// TakeLog stores a copy of line, the access-log record of rec, under the
// request's trace id. It never blocks.
func (k *Sink) TakeLog(rec *observe.Record, line []byte) {
	if k.s.QueueFull() {
		k.s.m.logsDropped[dropQueueFull].Inc()
		return
	}
	sev, text := int32(9), "INFO"
	switch {
	case rec.Status >= 500 || rec.ErrorKind != observe.ErrNone && rec.ErrorKind != observe.ErrClientCanceled:
		sev, text = 17, "ERROR"
	case rec.Status >= 400:
		sev, text = 13, "WARN"
	}
	l := logIn{traceID: TraceID(rec.Trace.TraceID), rec: logRec{
		spanID: SpanID(rec.Trace.SpanID), time: rec.Start.UnixNano(),
		severity: sev, sevText: text, attrs: k.logAttrs,
	}}
	body := bytes.TrimRight(line, "\n")
	body = body[:min(len(body), maxValueLen)]
	s := k.s
	s.pendMu.Lock()
	b, full := s.pendingFor(k.logRes.service, k.logRes.attrs)
	// The line is copied into the batch's arena, like the spans' blobs.
	l.rec.body = b.keepBlob(append(b.arenaTail(), body...))
	b.addLogIn(&l)
	full2 := s.pendingDone()
	s.pendMu.Unlock()
	s.Submit(full)
	s.Submit(full2)
}

// pendMax is how many spans and log records the gateway's pending batch
// gathers before it is handed to the writer. The writer stores a batch in
// one pass over the store's hot structures (the trace table, the class
// lists, the posting lists' tails, the tag memos), which the requests
// between two batches push out of the core's caches: in a gateway at a
// fixed rate, batches of 256 items instead of 64 took the writer's share
// of the gateway's CPU from 4.6–5.0% to 3.1–3.8% (docs/performance.md,
// "Larger pending batches"). A batch still waits at most 100 ms (the
// writer's pending tick) and is stored before any query reads the store.
const pendMax = 256

// pendingFor returns the pending batch of the resource (service, attrs),
// starting one, and the previous pending batch when it was of another
// resource, to be submitted (s.pendMu held).
func (s *Store) pendingFor(service, attrs string) (b, full *Batch) {
	if p := s.pend; p != nil {
		if p.service == service && p.resAttrs == attrs {
			return p, nil
		}
		full = p
	}
	b = s.pendBatches.Get().(*Batch)
	b.service, b.resAttrs, b.dict, b.pool = service, attrs, s.dict, &s.arenas
	s.pend = b
	return b, full
}

// newPendingBatch makes a pending batch (Store.pendBatches' New).
func newPendingBatch() any {
	return &Batch{spans: make([]spanIn, 0, pendMax), recycled: true}
}

// recycle empties a pending batch Write has stored and keeps it for
// the next one, so that the request path does not allocate (and the
// collector scan) pendMax spans' worth of batch for every pendMax items. Other
// batches, and pending batches grown far past pendMax by a large trace,
// are left to the collector.
func (s *Store) recycle(b *Batch) {
	if !b.recycled || cap(b.spans) > 4*pendMax || cap(b.logs) > 4*pendMax {
		return
	}
	// Zeroed, so that nothing read from a stored batch survives into
	// the next, and the pool holds no strings.
	clear(b.spans)
	clear(b.logs)
	*b = Batch{spans: b.spans[:0], logs: b.logs[:0], chunks: b.chunks[:0], recycled: true}
	s.pendBatches.Put(b)
}

// pendingDone returns the pending batch, to be submitted, once it holds
// pendMax items (s.pendMu held).
func (s *Store) pendingDone() *Batch {
	if p := s.pend; p != nil && len(p.spans)+len(p.logs) >= pendMax {
		s.pend = nil
		return p
	}
	return nil
}

// takePending returns the pending batch of the gateway's spans and logs,
// or nil.
func (s *Store) takePending() *Batch {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	b := s.pend
	s.pend = nil
	return b
}

// writePending stores the pending batch now, so that a reader sees the
// spans of requests that have ended.
func (s *Store) writePending() {
	if b := s.takePending(); b != nil {
		s.Write(b)
	}
}
