package tracestore

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/vantage-gateway/vantage/internal/memsize"
)

// The tag index: posting lists by attribute key and value ("t" key value),
// so that searches by tag (Jaeger's tags and tag=k:v, api_v3's attribute
// filter, Vantage's error_kind) read the traces that carry the value
// rather than every trace of a service.
//
// What is indexed: the attributes of spans, of their events and of their
// resources (the places Jaeger's tag rule looks), every value type,
// compared as text, once per trace.
//
// What is not:
//   - values longer than maxTagValueLen bytes as text (a search for such a
//     value scans);
//   - keys longer than maxTagKeyLen, the keys Jaeger derives from span
//     fields (error, span.kind, otel.status_code), and link and log
//     attributes (which searches do not read);
//   - high-cardinality keys: a key that has more than maxTagValuesPerKey
//     distinct values in the store at once (a URL path, a user id, a peer
//     port), or that needs a new list when the store holds maxTagLists tag
//     lists, is switched off for the store's life and its lists are freed;
//   - common values: a value held by more than half the stored traces
//     (once its list holds minCommonList) is dropped from the index and
//     remembered, since a search for it finds matches at once among any
//     candidates; a key with more than maxCommonValues of them is
//     switched off;
//   - keys first seen after maxTagKeys keys are tracked.
//
// A search for a key that is not indexed falls back to reading the
// candidates of the other indexes (service, operation, route, status,
// duration) and checking each span, as before. The index is exact for an
// indexed key: every span attribute with that key and a short value since
// the store started is in it, so a missing list means no trace matches.
//
// The lists and the tracked keys are counted in the byte budget like the
// other indexes (each posting in its trace's bytes, each list's key and
// header in the store's).
const (
	maxTagValueLen     = 64
	maxTagKeyLen       = 256
	maxTagValuesPerKey = 64
	maxTagLists        = 16384
	maxTagKeys         = 1024
	minCommonList      = 1024
	maxCommonValues    = 4
	tagKeyOverhead     = 64 // the map entry and the tagKey
)

// tagKey is the index state of one attribute key.
type tagKey struct {
	values int      // lists of this key alive
	off    bool     // high cardinality: not indexed any more
	common []string // values dropped as held by most traces
}

func (k *tagKey) isCommon(val []byte) bool {
	for _, c := range k.common {
		if c == string(val) {
			return true
		}
	}
	return false
}

// derivedTagKey reports whether Jaeger derives key from span fields
// (derivedTag), which the tag index does not answer.
func derivedTagKey(key string) bool {
	return key == "error" || key == "span.kind" || key == "otel.status_code"
}

// indexTags adds e to the tag lists of the attributes of a span (its
// blob), its events' attributes and (once per run of spans of one
// process) its resource's. am, when not nil, is the memo of the span's
// operation (attrMemo).
func (s *Store) indexTags(e *traceEntry, proc *process, blob []byte, am *attrMemo) {
	if proc.id != e.lastProc {
		e.lastProc = proc.id
		r := blobReader{b: unsafeBytes(proc.attrs), d: s.dict}
		if proc.interned {
			// The same attributes for every trace of the process.
			s.indexAttrsLike(e, &r, s.attrMemoIn(&proc.tags))
		} else {
			s.indexAttrs(e, &r)
		}
	}
	r := blobReader{b: blob, d: s.dict}
	for range 4 { // scope name and version, trace state, status message
		r.raw()
	}
	r.uvarint()
	r.uvarint()
	r.uvarint()
	if am != nil {
		s.indexAttrsLike(e, &r, am)
	} else {
		s.indexAttrs(e, &r)
	}
	n := r.uvarint()
	for i := uint64(0); i < n && !r.bad; i++ {
		r.varint()
		r.raw()
		s.indexAttrs(e, &r)
	}
}

// indexAttrs reads a list of attributes and indexes each.
func (s *Store) indexAttrs(e *traceEntry, r *blobReader) {
	n := r.uvarint()
	for i := uint64(0); i < n && !r.bad; i++ {
		s.indexAttr(e, r)
	}
}

// attrMemo is what the tag index did with the attributes of the last span
// of an operation (opMemoSlot), or of an interned process's resource, by
// position: their encoded bytes and, for each, the list the trace went in
// or that the value is not indexed. The spans of one operation mostly
// bring the same keys in the same order and most of the same values, so
// an attribute equal to the one in its place last time is indexed by a
// compare of its bytes, without the value memo (tagMemo), whose slots lie
// all over its table.
type attrMemo struct {
	raw  []byte    // the count and the attributes, as encoded in the span's blob
	ends []uint32  // where each attribute ends in raw
	acts []attrAct // what indexing each did
}

type attrAct struct {
	k     *tagKey
	p     *postings // nil: not indexed (which stays so)
	valAt int       // where the value starts in p.key
}

// maxAttrMemo bounds the attributes an attrMemo holds, in bytes and in
// number; a span with more is indexed through the value memo alone.
const (
	maxAttrMemo      = 2048
	maxAttrMemoAttrs = 64
)

// attrMemoOverhead is an attrMemo without its arrays.
var attrMemoOverhead = memsize.AllocPtr(int64(unsafe.Sizeof(attrMemo{})))

// attrMemoIn returns the memo in *m, making it (and counting it) when
// there is none yet.
func (s *Store) attrMemoIn(m **attrMemo) *attrMemo {
	if *m == nil {
		*m = new(attrMemo)
		s.used += attrMemoOverhead
	}
	return *m
}

// reset empties am (its arrays are kept).
func (am *attrMemo) reset() {
	am.raw, am.ends, am.acts = am.raw[:0], am.ends[:0], am.acts[:0]
}

// bytes is the memory am's arrays hold.
func (am *attrMemo) bytes() int64 {
	return memsize.Alloc(int64(cap(am.raw))) + memsize.Alloc(int64(cap(am.ends))*4) + memsize.AllocPtr(int64(cap(am.acts))*int64(unsafe.Sizeof(attrAct{})))
}

// indexAttrsLike is indexAttrs for a span's own attributes, comparing
// each with the one in its place in am, and leaves am holding them.
func (s *Store) indexAttrsLike(e *traceEntry, r *blobReader, am *attrMemo) {
	sec := r.b
	n := int(r.uvarint())
	if n > maxAttrMemoAttrs {
		am.reset()
		for i := 0; i < n && !r.bad; i++ {
			s.indexAttr(e, r)
		}
		return
	}
	// The attributes start where the count ends, in sec and in am.raw
	// alike (am.raw starts with its count).
	base := len(sec) - len(r.b)
	same := len(am.raw) >= base && string(am.raw[:base]) == string(sec[:base])
	if cap(am.ends) < n || cap(am.acts) < n {
		before := am.bytes()
		am.ends = slices.Grow(am.ends, n-len(am.ends))
		am.acts = slices.Grow(am.acts, n-len(am.acts))
		s.used += am.bytes() - before
	}
	am.ends, am.acts = am.ends[:n], am.acts[:n]
	changed := !same
	prev := uint32(base) // where the attribute in this place began last time
	for i := 0; i < n && !r.bad; i++ {
		if same {
			was := am.raw[prev:am.ends[i]]
			prev = am.ends[i]
			if a := &am.acts[i]; len(r.b) >= len(was) && string(r.b[:len(was)]) == string(was) && (a.p == nil || !a.p.gone) {
				r.b = r.b[len(was):]
				if a.p != nil {
					s.postTag(e, a.k, a.p, a.valAt)
				}
				am.ends[i] = uint32(len(sec) - len(r.b))
				continue
			}
		}
		k, p, valAt := s.indexAttr(e, r)
		am.acts[i] = attrAct{k, p, valAt}
		am.ends[i] = uint32(len(sec) - len(r.b))
		changed = true
	}
	end := len(sec) - len(r.b)
	if r.bad || end > maxAttrMemo {
		am.reset()
		return
	}
	if changed {
		// Keep these attributes' bytes for the next span.
		c := cap(am.raw)
		am.raw = append(am.raw[:0], sec[:end]...)
		if cap(am.raw) != c {
			s.used += memsize.Alloc(int64(cap(am.raw))) - memsize.Alloc(int64(c))
		}
	}
}

// indexAttr reads one attribute and indexes it. It returns the key's
// state, the list e went in (nil: the value is not indexed, which stays
// so) and where the value starts in the list's key.
func (s *Store) indexAttr(e *traceEntry, r *blobReader) (*tagKey, *postings, int) {
	var num [64]byte
	var key string
	ref := r.uvarint()
	var slot *tagMemoSlot
	if ref == 0 {
		key = unsafeString(r.raw())
	} else if ref <= uint64(len(s.tagByRef)) && s.tagByRef[ref-1] != nil && s.tagByRef[ref-1].off {
		// A key switched off (a peer port, a path): its value is
		// skipped, not decoded.
		r.skipValue()
		return s.tagByRef[ref-1], nil, 0
	} else {
		// The same key and value as a recent span: the memo knows
		// its list, or that it is not indexed.
		v0 := r.b
		r.skipValue()
		raw := v0[:len(v0)-len(r.b)]
		if r.bad {
			return nil, nil, 0
		}
		if slot = s.tagMemo.slot(ref, raw); slot != nil {
			if slot.ref == ref && slot.raw == string(raw) && (slot.p == nil || !slot.p.gone) {
				valAt := 0
				if slot.p != nil {
					valAt = len(slot.p.key) - slot.valLen
					s.postTag(e, slot.k, slot.p, valAt)
				}
				return slot.k, slot.p, valAt
			}
			s.used += strBytes(len(raw)) - strBytes(len(slot.raw))
			*slot = tagMemoSlot{ref: ref, raw: string(raw)}
		}
		r.b = v0
		key = s.dict.key(ref)
	}
	var val []byte
	switch ValueType(r.byte1()) {
	case TypeBool:
		if r.byte1() == 1 {
			val = append(num[:0], "true"...)
		} else {
			val = append(num[:0], "false"...)
		}
	case TypeInt64:
		val = strconv.AppendInt(num[:0], r.varint(), 10)
	case TypeFloat64:
		if len(r.b) < 8 {
			r.bad = true
			return nil, nil, 0
		}
		// KeyValue.AsString is the text searches compare with.
		f := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
		val = append(num[:0], KeyValue{Type: TypeFloat64, Float: f}.AsString()...)
		r.b = r.b[8:]
	case TypeBinary:
		v := r.raw()
		if 2*len(v) > maxTagValueLen {
			return nil, nil, 0
		}
		val = hex.AppendEncode(num[:0], v)
	default:
		val = r.raw()
	}
	if r.bad {
		return nil, nil, 0
	}
	k, p := s.indexTag(e, key, ref, val)
	if slot != nil {
		slot.k, slot.p, slot.valLen = k, p, len(val)
	}
	if p == nil {
		return k, nil, 0
	}
	return k, p, len(p.key) - len(val)
}

// indexTag adds e to the list of key=val, within the index's bounds; ref
// is the key's dictionary reference (0: none). It returns the key's state
// and the list e went in, or a nil list when the value is not indexed
// (which stays so: keys switched off and common values never come back).
func (s *Store) indexTag(e *traceEntry, key string, ref uint64, val []byte) (*tagKey, *postings) {
	if len(val) > maxTagValueLen {
		return nil, nil
	}
	// Most keys come with a dictionary reference: their state is found
	// by it, without hashing the key.
	var k *tagKey
	if ref > 0 && ref <= uint64(len(s.tagByRef)) {
		k = s.tagByRef[ref-1]
	}
	if k == nil {
		if len(key) > maxTagKeyLen || derivedTagKey(key) {
			return nil, nil
		}
		if k = s.tagKeys[key]; k == nil {
			if len(s.tagKeys) >= maxTagKeys {
				s.tagKeysFull = true
				return nil, nil
			}
			k = &tagKey{}
			s.tagKeys[strings.Clone(key)] = k
			s.used += strBytes(len(key)) + tagKeyOverhead
		}
		if ref > 0 && ref <= maxDictKeys {
			if n := int(ref); n > len(s.tagByRef) {
				if n > cap(s.tagByRef) {
					c := min(max(n, 2*cap(s.tagByRef)), maxDictKeys)
					s.used += sliceGrowth(cap(s.tagByRef), c, 8)
					s.tagByRef = slices.Grow(s.tagByRef, c-len(s.tagByRef))
				}
				s.tagByRef = s.tagByRef[:n]
			}
			s.tagByRef[ref-1] = k
		}
	}
	if k.off || k.isCommon(val) {
		return k, nil
	}
	b := append(s.keyBuf[:0], "t\x00"...)
	b = append(b, key...)
	b = append(b, 0)
	b = append(b, val...)
	s.keyBuf = b
	p := s.idx[string(b)]
	if p == nil {
		if k.values >= maxTagValuesPerKey || s.tagLists >= maxTagLists {
			s.tagKeyOff(k)
			return k, nil
		}
		p = s.newList(string(b), k)
		k.values++
		s.tagLists++
	}
	if !s.postTag(e, k, p, len(p.key)-len(val)) {
		return k, nil
	}
	return k, p
}

// postTag puts e in p, the list of one value of k (p.key[valAt:] is the
// value), and reports whether p is still indexed after it.
func (s *Store) postTag(e *traceEntry, k *tagKey, p *postings, valAt int) bool {
	s.post(e, p)
	// A value most traces have narrows nothing: a search for it finds its
	// matches at once among any candidates. Its list is dropped (and the
	// value remembered), which keeps the index's cost to the values that
	// are worth it.
	if live := len(p.list) - p.dead; live >= minCommonList && 2*live > s.traces.len() {
		if len(k.common) >= maxCommonValues {
			s.tagKeyOff(k)
			return false
		}
		k.common = append(k.common, strings.Clone(p.key[valAt:]))
		s.used += strBytes(len(p.key)-valAt) + 16
		s.dropTagList(p)
		return false
	}
	return true
}

// tagMemo remembers, for recent attribute values (by key reference and
// encoded value), the tag list they go in or that they are not indexed,
// so that the gateway's spans, whose attributes mostly repeat, are
// indexed without formatting each value and hashing its key. A slot is
// chosen by a hash of the reference and the value's bytes and compared
// by content; a list that has left the index (gone) is looked up again.
// Its copies of the values are counted in the budget.
type tagMemo struct {
	seed  uint64
	slots [1 << tagMemoBits]tagMemoSlot
}

type tagMemoSlot struct {
	ref    uint64
	raw    string // the encoded value: type byte and value
	k      *tagKey
	p      *postings // nil: not indexed
	valLen int       // the value's length as text (p.key ends with it)
}

const tagMemoBits = 9

// maxTagMemoValue is the longest encoded value the memo keeps.
const maxTagMemoValue = maxTagValueLen + 8

func (m *tagMemo) slot(ref uint64, raw []byte) *tagMemoSlot {
	if len(raw) > maxTagMemoValue {
		return nil
	}
	// The first and last 8 bytes and the length choose the slot (the
	// compare is of the whole value), which costs the same for every
	// value, unlike a hash of all of it.
	a, b := edgeWords(raw)
	h := (a^m.seed)*0x9e3779b97f4a7c15 ^ (b+uint64(len(raw)))*0xc2b2ae3d27d4eb4f ^ ref*0x165667b19e3779f9
	h ^= h >> 32
	// Two places a value may be in (the high bits, which mix every input
	// bit), so that two values that share one do not evict each other on
	// every span.
	s1, s2 := &m.slots[h>>(64-tagMemoBits)], &m.slots[h>>(64-2*tagMemoBits)&(1<<tagMemoBits-1)]
	switch {
	case s1.ref == ref && s1.raw == string(raw):
		return s1
	case s2.ref == ref && s2.raw == string(raw):
		return s2
	case s1.ref == 0:
		return s1
	case s2.ref == 0 || h&1 == 0:
		return s2
	}
	return s1
}

// edgeWords returns the first and the last 8 bytes of b as words (b
// shorter than 8: its bytes in the first, 0 in the last), which the memos
// hash with the length instead of all of b.
func edgeWords(b []byte) (first, last uint64) {
	if len(b) >= 8 {
		return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[len(b)-8:])
	}
	for i, c := range b {
		first |= uint64(c) << (8 * i)
	}
	return first, 0
}

// dropTagList removes a tag list from the index and frees its postings
// (the traces keep its id until they go).
func (s *Store) dropTagList(p *postings) {
	if s.idx[p.key] == p {
		delete(s.idx, p.key)
	}
	p.gone = true
	s.used -= indexListOverhead + strBytes(len(p.key)) - noscanGrowth(cap(p.list), 0, postingSize)
	s.tagLists--
	p.tag.values--
	p.list, p.dead, p.off = nil, 0, true
	s.freeList(p)
}

// tagKeyOff switches the tag index off for k and frees its lists (the
// traces keep each list's id until they go).
func (s *Store) tagKeyOff(k *tagKey) {
	k.off = true
	for _, p := range s.idx {
		if p.tag == k {
			s.dropTagList(p)
		}
	}
	for _, c := range k.common {
		s.used -= strBytes(len(c)) + 16
	}
	k.values, k.common = 0, nil
}

// tagList returns the tag list that answers key=val and whether the index
// can answer it at all; (nil, true) means no stored trace has the value.
func (s *Store) tagList(key, val string) (*postings, bool) {
	if s.noTagLookup || len(val) > maxTagValueLen || len(key) > maxTagKeyLen || derivedTagKey(key) {
		return nil, false
	}
	k := s.tagKeys[key]
	switch {
	case k == nil && s.tagKeysFull:
		return nil, false // maybe a key that came after the cap
	case k != nil && (k.off || k.isCommon(unsafeBytes(val))):
		return nil, false
	}
	return s.idx["t\x00"+key+"\x00"+val], true
}

// TagIndexStats are the tag index's figures.
type TagIndexStats struct {
	// Keys are the attribute keys tracked, Off those switched off as high
	// cardinality; Lists the key=value lists held.
	Keys, Off, Lists int
}

// TagIndexStats returns the tag index's figures.
func (s *Store) TagIndexStats() TagIndexStats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := TagIndexStats{Keys: len(s.tagKeys), Lists: s.tagLists}
	for _, k := range s.tagKeys {
		if k.off {
			st.Off++
		}
	}
	return st
}

func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
