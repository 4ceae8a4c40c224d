package tracestore

import (
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vantage-gateway/vantage/internal/memsize"
)

// The compact span model. A stored span is a small fixed struct (ids,
// times, name, kind, status, a pointer to its interned process) plus one
// string holding everything else in a varint encoding: scope, trace state,
// status message, dropped counts, attributes, events and links. Attribute
// keys are written as a reference into a store-wide dictionary (most keys
// repeat in every span), or inline once the dictionary is full. Readers
// decode a fresh copy, so what they get never aliases the store.
//
// blob := scopeName scopeVersion traceState statusMsg
//         uvarint(droppedAttrs) uvarint(droppedEvents) uvarint(droppedLinks)
//         attrs uvarint(nEvents) event* uvarint(nLinks) link*
// attrs := uvarint(n) attr*
// attr  := uvarint(keyRef) [str if keyRef == 0] type value
// event := varint(time - span start, ns) str(name) attrs
// link  := traceID(16) spanID(8) str(traceState) attrs
// str   := uvarint(len) bytes

// maxDictKeys bounds the attribute key dictionary.
const maxDictKeys = 4096

// maxValueLen caps a stored string or binary value; longer ones are cut.
const maxValueLen = 64 << 10

// dict interns attribute keys. Lookups take no lock; adding takes one.
// Entries are never removed, so ids stay valid for the store's life.
type dict struct {
	ids  sync.Map // string → uint32 id (0-based)
	mu   sync.Mutex
	keys atomic.Pointer[[]string]
	n    atomic.Int64 // bytes held (for the budget)
}

func newDict() *dict {
	d := &dict{}
	ks := make([]string, 0, 64)
	d.keys.Store(&ks)
	return d
}

// ref returns the key's reference (id+1), adding the key when there is
// room, or 0 when the key must be written inline.
func (d *dict) ref(k string) uint64 {
	if v, ok := d.ids.Load(k); ok {
		return uint64(v.(uint32)) + 1
	}
	if len(k) > 256 {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if v, ok := d.ids.Load(k); ok {
		return uint64(v.(uint32)) + 1
	}
	ks := *d.keys.Load()
	if len(ks) >= maxDictKeys {
		return 0
	}
	k = string([]byte(k)) // own the bytes: k may alias a request buffer
	id := uint32(len(ks))
	ks = append(ks, k)
	d.keys.Store(&ks)
	d.ids.Store(k, id)
	d.n.Add(strBytes(len(k)) + memsize.MapEntry(16, 4) + 16)
	return uint64(id) + 1
}

func (d *dict) key(ref uint64) string {
	ks := *d.keys.Load()
	if ref == 0 || ref > uint64(len(ks)) {
		return ""
	}
	return ks[ref-1]
}

// blobWriter builds a span's blob.
type blobWriter struct {
	b []byte
	d *dict
	c *keyCache // nil: every key is looked up in d
}

// keyCache remembers the dictionary references of the attribute keys a
// writer sees again and again: the gateway's spans carry the same key
// strings on every request. A slot is found from the address and length
// of the key's bytes, so that a hit costs one compare of the key instead
// of hashing it into the dictionary's concurrent map (which cost the
// gateway's sink about two fifths of its time in process). A slot holds the
// dictionary's own copy of the key, so the cache never keeps a caller's
// buffer alive, and it is compared by content, so a reused address cannot
// return another key's reference. Not safe for concurrent use (the
// Sink's is used under the store's pendMu).
type keyCache struct {
	slots [256]keyCacheSlot
}

type keyCacheSlot struct {
	key string
	ref uint64
}

func (c *keyCache) ref(d *dict, k string) uint64 {
	if len(k) == 0 {
		return d.ref(k)
	}
	h := uint64(uintptr(unsafe.Pointer(unsafe.StringData(k))))*0x9e3779b97f4a7c15 ^ uint64(len(k))*0xc2b2ae3d27d4eb4f
	// Two places a key may be in, so that two keys that share one do not
	// evict each other on every span.
	s1, s2 := &c.slots[h>>56], &c.slots[h>>48&0xff]
	if s1.ref != 0 && s1.key == k {
		return s1.ref
	}
	if s2.ref != 0 && s2.key == k {
		return s2.ref
	}
	sl := s1
	if s1.ref != 0 && (s2.ref == 0 || h&1 == 0) {
		sl = s2
	}
	r := d.ref(k)
	if r != 0 {
		sl.key, sl.ref = d.key(r), r
	}
	return r
}

func (w *blobWriter) uvarint(v uint64) {
	if v < 0x80 {
		w.b = append(w.b, byte(v))
		return
	}
	w.b = binary.AppendUvarint(w.b, v)
}
func (w *blobWriter) varint(v int64) { w.b = binary.AppendVarint(w.b, v) }

func (w *blobWriter) str(s string) {
	if len(s) > maxValueLen {
		s = s[:maxValueLen]
	}
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *blobWriter) key(k string) {
	var r uint64
	if w.c != nil {
		r = w.c.ref(w.d, k)
	} else {
		r = w.d.ref(k)
	}
	w.uvarint(r)
	if r == 0 {
		w.str(k)
	}
}

func (w *blobWriter) attrString(k, v string) {
	w.key(k)
	w.b = append(w.b, byte(TypeString))
	w.str(v)
}

func (w *blobWriter) attrBool(k string, v bool) {
	w.key(k)
	w.b = append(w.b, byte(TypeBool))
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

func (w *blobWriter) attrInt(k string, v int64) {
	w.key(k)
	w.b = append(w.b, byte(TypeInt64))
	w.varint(v)
}

func (w *blobWriter) attrFloat(k string, v float64) {
	w.key(k)
	w.b = append(w.b, byte(TypeFloat64))
	w.b = binary.LittleEndian.AppendUint64(w.b, math.Float64bits(v))
}

func (w *blobWriter) attrBytes(k string, v []byte) {
	w.key(k)
	w.b = append(w.b, byte(TypeBinary))
	if len(v) > maxValueLen {
		v = v[:maxValueLen]
	}
	w.uvarint(uint64(len(v)))
	w.b = append(w.b, v...)
}

func (w *blobWriter) attr(kv KeyValue) {
	switch kv.Type {
	case TypeBool:
		w.attrBool(kv.Key, kv.Bool)
	case TypeInt64:
		w.attrInt(kv.Key, kv.Int)
	case TypeFloat64:
		w.attrFloat(kv.Key, kv.Float)
	case TypeBinary:
		w.attrBytes(kv.Key, kv.Bytes)
	default:
		w.attrString(kv.Key, kv.Str)
	}
}

func (w *blobWriter) attrs(kvs []KeyValue) {
	w.uvarint(uint64(len(kvs)))
	for _, kv := range kvs {
		w.attr(kv)
	}
}

// header writes the fields before the attributes.
func (w *blobWriter) header(scope Scope, traceState, statusMsg string, dAttrs, dEvents, dLinks uint32) {
	w.str(scope.Name)
	w.str(scope.Version)
	w.str(traceState)
	w.str(statusMsg)
	w.uvarint(uint64(dAttrs))
	w.uvarint(uint64(dEvents))
	w.uvarint(uint64(dLinks))
}

// blobReader decodes a blob. A malformed blob (never written by
// blobWriter) decodes as far as it is well formed.
type blobReader struct {
	b   []byte
	d   *dict
	bad bool
}

func (r *blobReader) uvarint() uint64 {
	// Most are one byte: lengths, counts, key references.
	if len(r.b) > 0 && r.b[0] < 0x80 {
		v := r.b[0]
		r.b = r.b[1:]
		return uint64(v)
	}
	return r.uvarintLong()
}

func (r *blobReader) uvarintLong() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *blobReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *blobReader) raw() []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *blobReader) str() string { return string(r.raw()) }

// fixed fills dst from the next len(dst) bytes.
func (r *blobReader) fixed(dst []byte) {
	if len(r.b) < len(dst) {
		r.bad = true
		r.b = nil
		return
	}
	copy(dst, r.b[:len(dst)])
	r.b = r.b[len(dst):]
}

// skipValue reads past one attribute value (its type and value).
func (r *blobReader) skipValue() {
	switch ValueType(r.byte1()) {
	case TypeBool:
		r.byte1()
	case TypeInt64:
		r.varint()
	case TypeFloat64:
		if len(r.b) < 8 {
			r.bad, r.b = true, nil
			return
		}
		r.b = r.b[8:]
	default:
		r.raw()
	}
}

func (r *blobReader) byte1() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *blobReader) attr() KeyValue {
	var kv KeyValue
	if ref := r.uvarint(); ref == 0 {
		kv.Key = r.str()
	} else {
		kv.Key = r.d.key(ref)
	}
	kv.Type = ValueType(r.byte1())
	switch kv.Type {
	case TypeBool:
		kv.Bool = r.byte1() == 1
	case TypeInt64:
		kv.Int = r.varint()
	case TypeFloat64:
		if len(r.b) < 8 {
			r.bad, r.b = true, nil
			break
		}
		kv.Float = math.Float64frombits(binary.LittleEndian.Uint64(r.b))
		r.b = r.b[8:]
	case TypeBinary:
		kv.Bytes = append([]byte(nil), r.raw()...)
	default:
		kv.Type = TypeString
		kv.Str = r.str()
	}
	return kv
}

func (r *blobReader) attrs() []KeyValue {
	n := r.uvarint()
	if n == 0 || n > uint64(len(r.b)) {
		return nil
	}
	out := make([]KeyValue, 0, n)
	for i := uint64(0); i < n && !r.bad; i++ {
		out = append(out, r.attr())
	}
	return out
}

// decodeSpanBlob fills the blob's fields of sp (whose Start is set).
func decodeSpanBlob(sp *Span, blob string, d *dict) {
	r := blobReader{b: []byte(blob), d: d}
	sp.Scope.Name = r.str()
	sp.Scope.Version = r.str()
	sp.TraceState = r.str()
	sp.StatusMessage = r.str()
	sp.DroppedAttributes = uint32(r.uvarint())
	sp.DroppedEvents = uint32(r.uvarint())
	sp.DroppedLinks = uint32(r.uvarint())
	sp.Attributes = r.attrs()
	if n := r.uvarint(); n > 0 && n <= uint64(len(r.b)) {
		sp.Events = make([]Event, 0, n)
		for i := uint64(0); i < n && !r.bad; i++ {
			var ev Event
			ev.Time = sp.Start.Add(time.Duration(r.varint()))
			ev.Name = r.str()
			ev.Attributes = r.attrs()
			sp.Events = append(sp.Events, ev)
		}
	}
	if n := r.uvarint(); n > 0 && n <= uint64(len(r.b)) {
		sp.Links = make([]Link, 0, n)
		for i := uint64(0); i < n && !r.bad && len(r.b) >= 24; i++ {
			var l Link
			copy(l.TraceID[:], r.b[:16])
			copy(l.SpanID[:], r.b[16:24])
			r.b = r.b[24:]
			l.TraceState = r.str()
			l.Attributes = r.attrs()
			sp.Links = append(sp.Links, l)
		}
	}
}

// attrsBlob encodes a list of attributes alone (resources, log records).
func attrsBlob(d *dict, kvs []KeyValue) string {
	w := blobWriter{d: d}
	w.attrs(kvs)
	return string(w.b)
}

func decodeAttrsBlob(blob string, d *dict) []KeyValue {
	r := blobReader{b: []byte(blob), d: d}
	return r.attrs()
}
