package tracestore

import (
	"sync"
	"unsafe"
)

// Batch is spans and log records of one resource on their way into the
// store (Store.Submit or Store.Write). Build it with NewBatch and the Add
// methods, or with the converters of the gateway's spans (Sink) and of
// OTLP requests (OTLPConsumer). A Batch is not safe for concurrent use;
// the store owns it once submitted.
type Batch struct {
	service  string
	resAttrs string
	dict     *dict
	spans    []spanIn
	logs     []logIn
	bytes    int64 // memory held, for the store's queue bound
	// arena holds the blobs of the gateway's spans and the bodies of its
	// access-log records (Sink), encoded in place one after another, in
	// chunks taken from the store's pool (Store.arenas) and given back
	// once the batch is stored (Store.Write).
	arena   []byte
	chunks  []*arenaBlock
	pool    *sync.Pool    // Store.arenas, where the chunks come from
	flushed chan struct{} // a Flush marker, not data
	// recycled marks the Sink's pending batches, which the writer empties
	// and reuses once stored (Store.recycle).
	recycled bool
}

type spanIn struct {
	traceID TraceID
	span    spanRec
	route   string
	retried bool
	tag     uint32 // the trace id's tag in the store's trace table (set by the writer)
}

type logIn struct {
	traceID TraceID
	rec     logRec
	proc    *process // nil: the batch's resource
}

// spanRec is a span as a Batch carries it: its fixed fields, its name and
// its blob (the rest, encoded by blobWriter). The store copies it into its
// own pointer-free form (storedSpan).
type spanRec struct {
	spanID, parentID SpanID
	start, dur       int64 // unix ns, ns
	name             string
	blob             string
	httpStatus       int16
	kind             SpanKind
	status           StatusCode
	flags            uint8
}

// logRec is a log record as a Batch carries it.
type logRec struct {
	spanID   SpanID
	time     int64
	severity int32
	sevText  string
	body     string
	attrs    string // attrsBlob
}

// Attribute keys the store reads to index and classify spans.
const (
	keyHTTPStatus  = "http.response.status_code"
	keyHTTPRoute   = "http.route"
	keyResendCount = "http.request.resend_count"
	keyRetries     = "vantage.retries"
	keyErrorKind   = "vantage.error.kind"
	eventRetry     = "retry"
)

// NewBatch starts a batch of res's spans and logs for s.
func (s *Store) NewBatch(res Resource) *Batch {
	return &Batch{service: res.ServiceName, resAttrs: attrsBlob(s.dict, res.Attributes), dict: s.dict}
}

// Len returns the number of spans and log records in b.
func (b *Batch) Len() (spans, logs int) { return len(b.spans), len(b.logs) }

// noteAttr reads the attributes that index and classify a span.
func (in *spanIn) noteInt(key string, v int64) {
	switch key {
	case keyHTTPStatus:
		if v > 0 && v < 1000 {
			in.span.httpStatus = int16(v)
		}
	case keyResendCount, keyRetries:
		if v > 0 {
			in.retried = true
		}
	}
}

func (in *spanIn) noteString(key, v string) {
	if key == keyHTTPRoute && len(v) <= 256 {
		in.route = v
	}
}

// AddSpan adds a copy of sp (its Resource is ignored: the batch's is
// used). Spans with an invalid trace or span id are refused (false).
func (b *Batch) AddSpan(sp *Span) bool {
	if sp.TraceID.IsZero() || sp.SpanID.IsZero() {
		return false
	}
	in := spanIn{traceID: sp.TraceID}
	in.span = spanRec{
		spanID: sp.SpanID, parentID: sp.ParentSpanID,
		start: sp.Start.UnixNano(), dur: max(0, int64(sp.End.Sub(sp.Start))),
		name: sp.Name, kind: sp.Kind, status: sp.StatusCode, flags: uint8(sp.Flags),
	}
	w := blobWriter{d: b.dict}
	w.header(sp.Scope, sp.TraceState, sp.StatusMessage, sp.DroppedAttributes, sp.DroppedEvents, sp.DroppedLinks)
	w.uvarint(uint64(len(sp.Attributes)))
	for _, kv := range sp.Attributes {
		w.attr(kv)
		switch kv.Type {
		case TypeInt64:
			in.noteInt(kv.Key, kv.Int)
		case TypeString:
			in.noteString(kv.Key, kv.Str)
		}
	}
	w.uvarint(uint64(len(sp.Events)))
	for _, ev := range sp.Events {
		w.varint(int64(ev.Time.Sub(sp.Start)))
		w.str(ev.Name)
		w.attrs(ev.Attributes)
		if ev.Name == eventRetry {
			in.retried = true
		}
	}
	w.uvarint(uint64(len(sp.Links)))
	for _, l := range sp.Links {
		w.b = append(w.b, l.TraceID[:]...)
		w.b = append(w.b, l.SpanID[:]...)
		w.str(l.TraceState)
		w.attrs(l.Attributes)
	}
	in.span.blob = string(w.b)
	in.span.name = string([]byte(sp.Name))
	b.addSpanIn(&in)
	return true
}

// AddLog adds a copy of l (its Service is ignored: the batch's resource
// is used). Records without a valid trace id are refused (false): the
// store keeps logs by trace.
func (b *Batch) AddLog(l *LogRecord) bool {
	if l.TraceID.IsZero() {
		return false
	}
	b.addLogIn(&logIn{traceID: l.TraceID, rec: logRec{
		spanID: l.SpanID, time: l.Time.UnixNano(), severity: l.SeverityNumber,
		sevText: string([]byte(l.SeverityText)), body: truncateString(l.Body),
		attrs: attrsBlob(b.dict, l.Attributes),
	}})
	return true
}

// addSpanIn appends a converted span and counts its bytes.
func (b *Batch) addSpanIn(in *spanIn) {
	b.spans = append(b.spans, *in)
	b.bytes += spanInSize + strBytes(len(in.span.blob)) + strBytes(len(in.span.name))
}

// Arena chunks: a new one is started when less than arenaMinRoom is left.
const (
	arenaChunk   = 16 << 10
	arenaMinRoom = 1 << 10
)

// arenaBlock is one chunk of a batch's arena.
type arenaBlock [arenaChunk]byte

// arenaTail returns the free end of b's arena, to encode a blob in. A
// new chunk comes from b.pool (Store.arenas): the chunks of the batches
// the writer has stored, which are likely still in the cache, where a new
// allocation would be memory the collector freed anywhere in the heap.
func (b *Batch) arenaTail() []byte {
	if cap(b.arena)-len(b.arena) < arenaMinRoom {
		c := b.pool.Get().(*arenaBlock)
		b.chunks = append(b.chunks, c)
		b.arena = c[:0:arenaChunk]
	}
	return b.arena[len(b.arena):len(b.arena)]
}

// releaseArena gives b's arena chunks back to their pool once the store
// holds copies of everything b had in them (the end of Store.Write): the
// strings of b's spans and logs that alias them must not be read after.
// poison overwrites the chunks first, so that a test finds any string the
// store kept that still aliases a chunk.
func (b *Batch) releaseArena(poison bool) {
	for i, c := range b.chunks {
		if poison {
			for j := range c {
				c[j] = 0xa5
			}
		}
		b.pool.Put(c)
		b.chunks[i] = nil
	}
	b.chunks, b.arena = b.chunks[:0], nil
}

// keepBlob returns blob, encoded in the tail arenaTail returned, as a
// string, and takes it out of the free end when it was encoded there (a
// blob that outgrew the tail is in an array of its own). The arena's
// bytes are never written again, so the string stays valid.
func (b *Batch) keepBlob(blob []byte) string {
	if len(blob) > 0 && unsafe.SliceData(blob) == unsafe.SliceData(b.arena[len(b.arena):]) {
		b.arena = b.arena[:len(b.arena)+len(blob)]
	}
	return unsafeString(blob)
}

// addLogIn appends a converted log record and counts its bytes.
func (b *Batch) addLogIn(l *logIn) {
	b.logs = append(b.logs, *l)
	b.bytes += logInSize + strBytes(len(l.rec.body)) + strBytes(len(l.rec.attrs)) + strBytes(len(l.rec.sevText))
}

func truncateString(s string) string {
	if len(s) > maxValueLen {
		s = s[:maxValueLen]
	}
	return string([]byte(s))
}
