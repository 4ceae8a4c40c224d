package tracestore

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Persistence: with Options.DataDir set, every batch the writer goroutine
// stores is first appended to a segment log in the store's own compact
// encoding, and the log is replayed into the store at New (indexes,
// classes and the dependency map are rebuilt by the same code that built
// them). The request path is untouched: only the writer goroutine writes.
//
// A segment is a file "seg-<n>.log" of records:
//
//	u32 length | u32 CRC-32C of the payload | payload
//
// A payload is a kind byte and its fields: 'K' adds attribute keys to the
// store-wide dictionary (in the order they were added, so references in
// later records resolve the same), 'B' is one Batch and the time it was
// stored, 'P' pins a trace stored before it (a person opened or archived
// it), so that a pinned trace keeps its class after a restart. Writes are buffered and fsynced every SyncInterval (default 1 s)
// and at Close, so a crash loses at most the batches of the last interval.
// At open, a record that is short or fails its CRC ends its segment: the
// rest of that segment is truncated and counted, and earlier records are
// kept. A new segment starts every SegmentSize bytes; a segment is deleted
// once every trace that has data in it has been evicted, and when the
// segments take more than twice the budget, the traces still held by the
// oldest segment are written again at the head of the log and that
// segment is deleted, so the disk stays within about twice the budget.

// Persistence defaults.
const (
	DefaultSyncInterval = time.Second
	DefaultSegmentSize  = 16 << 20
	maxRecord           = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// wal is the segment log. Only the writer goroutine (and New, before it
// starts) uses it.
type wal struct {
	dir       string
	segSize   int64
	cur       uint32 // current segment number
	f         *os.File
	w         *bufio.Writer
	size      int64 // bytes in the current segment
	sizes     map[uint32]int64
	live      map[uint32]int // traces with data in each segment
	dictKeys  int            // dictionary keys already logged
	dirty     bool
	buf       []byte
	dead      []uint32 // segments to delete once the lock is released
	syncErrs  int
	lastError error
}

func segName(n uint32) string { return fmt.Sprintf("seg-%010d.log", n) }

func listSegments(dir string) ([]uint32, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []uint32
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "seg-") || !strings.HasSuffix(name, ".log") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, "seg-"), ".log"), 10, 32)
		if err != nil {
			continue
		}
		segs = append(segs, uint32(n))
	}
	slices.Sort(segs)
	return segs, nil
}

// openWAL replays dir into s and starts a new segment.
func (s *Store) openWAL(dir string, segSize int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tracestore: data directory: %w", err)
	}
	w := &wal{dir: dir, segSize: segSize, sizes: map[uint32]int64{}, live: map[uint32]int{}}
	s.wal = w
	segs, err := listSegments(dir)
	if err != nil {
		return fmt.Errorf("tracestore: data directory: %w", err)
	}
	start := time.Now()
	for _, n := range segs {
		if err := s.replaySegment(n); err != nil {
			return err
		}
		w.cur = n
	}
	s.replayTime = time.Since(start)
	if len(segs) > 0 {
		w.cur++
	}
	if err := w.rotate(w.cur); err != nil {
		return err
	}
	// Segments whose traces were all evicted while replaying.
	w.dead = w.dead[:0]
	for _, n := range segs {
		if w.live[n] == 0 {
			w.dead = append(w.dead, n)
		}
	}
	w.removeDead()
	return nil
}

// replaySegment reads segment n into s, truncating a torn tail.
func (s *Store) replaySegment(n uint32) error {
	path := filepath.Join(s.wal.dir, segName(n))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("tracestore: segment: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var off int64
	var hdr [8]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			s.tornRecord(f, path, off)
			break
		}
		l := binary.LittleEndian.Uint32(hdr[:4])
		if l == 0 || l > maxRecord {
			s.tornRecord(f, path, off)
			break
		}
		payload = slices.Grow(payload[:0], int(l))[:l]
		if _, err := io.ReadFull(r, payload); err != nil || crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
			s.tornRecord(f, path, off)
			break
		}
		if err := s.applyRecord(payload, n); err != nil {
			s.tornRecord(f, path, off)
			break
		}
		off += 8 + int64(l)
	}
	s.wal.sizes[n] = off
	return nil
}

// tornRecord truncates a segment at off: the record there is incomplete
// or corrupt, and so is everything after it.
func (s *Store) tornRecord(f *os.File, path string, off int64) {
	s.m.tornRecords.Inc()
	if err := f.Truncate(off); err == nil {
		_ = f.Sync()
	}
}

// applyRecord stores one record read from segment seg.
func (s *Store) applyRecord(p []byte, seg uint32) error {
	r := blobReader{b: p[1:]}
	switch p[0] {
	case 'K':
		n := r.uvarint()
		for i := uint64(0); i < n && !r.bad; i++ {
			k := r.str()
			if !r.bad {
				s.dict.ref(k)
			}
		}
		s.wal.dictKeys = len(*s.dict.keys.Load())
	case 'B':
		b, at := decodeBatch(&r, s.dict)
		if r.bad {
			return errors.New("bad batch record")
		}
		s.writeAt(b, at, seg)
	case 'P':
		var id TraceID
		r.fixed(id[:])
		if r.bad {
			return errors.New("bad pin record")
		}
		s.mu.Lock()
		if e := s.lookup(id); e != nil {
			e.pinned = true
			s.reclassify(e)
			s.noteSegment(e, seg)
		}
		s.mu.Unlock()
	default:
		return fmt.Errorf("unknown record kind %q", p[0])
	}
	if r.bad {
		return errors.New("bad record")
	}
	return nil
}

// rotate closes the current segment and starts segment n.
func (w *wal) rotate(n uint32) error {
	if w.f != nil {
		if err := w.sync(); err != nil {
			return err
		}
		_ = w.f.Close()
		if w.live[w.cur] == 0 {
			w.dead = append(w.dead, w.cur)
		}
	}
	f, err := os.OpenFile(filepath.Join(w.dir, segName(n)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("tracestore: segment: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("tracestore: segment: %w", err)
	}
	w.f, w.cur, w.size = f, n, fi.Size()
	w.sizes[n] = w.size
	if w.w == nil {
		w.w = bufio.NewWriterSize(f, 256<<10)
	} else {
		w.w.Reset(f)
	}
	// A fresh segment must be readable alone from the start: it begins
	// with the whole dictionary.
	w.dictKeys = 0
	return syncDir(w.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("tracestore: data directory: %w", err)
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}

// append writes one record (kind + body already in w.buf[8:]).
func (w *wal) appendRecord() error {
	p := w.buf[8:]
	binary.LittleEndian.PutUint32(w.buf[:4], uint32(len(p)))
	binary.LittleEndian.PutUint32(w.buf[4:8], crc32.Checksum(p, crcTable))
	if _, err := w.w.Write(w.buf); err != nil {
		return err
	}
	w.size += int64(len(w.buf))
	w.sizes[w.cur] = w.size
	w.dirty = true
	return nil
}

// logBatch appends b (stored at time at) and any dictionary keys it may
// reference, starting a new segment first when the current one is full.
func (s *Store) logBatch(b *Batch, at int64) error {
	w := s.wal
	if w.size >= w.segSize {
		if err := w.rotate(w.cur + 1); err != nil {
			return err
		}
	}
	keys := *s.dict.keys.Load()
	if len(keys) > w.dictKeys {
		w.buf = append(w.buf[:0], make([]byte, 8)...)
		w.buf = append(w.buf, 'K')
		w.buf = binary.AppendUvarint(w.buf, uint64(len(keys)-w.dictKeys))
		for _, k := range keys[w.dictKeys:] {
			w.buf = appendStr(w.buf, k)
		}
		if err := w.appendRecord(); err != nil {
			return err
		}
		w.dictKeys = len(keys)
	}
	w.buf = append(w.buf[:0], make([]byte, 8)...)
	w.buf = append(w.buf, 'B')
	w.buf = encodeBatch(w.buf, b, at)
	if len(w.buf) > maxRecord {
		return fmt.Errorf("batch of %d bytes is too large to log", len(w.buf))
	}
	return w.appendRecord()
}

// logPin appends a pin record for trace id.
func (s *Store) logPin(id TraceID) error {
	w := s.wal
	if w.size >= w.segSize {
		if err := w.rotate(w.cur + 1); err != nil {
			return err
		}
	}
	w.buf = append(w.buf[:0], make([]byte, 8)...)
	w.buf = append(w.buf, 'P')
	w.buf = append(w.buf, id[:]...)
	return w.appendRecord()
}

// sync flushes and fsyncs the current segment.
func (w *wal) sync() error {
	if !w.dirty {
		return nil
	}
	if err := w.w.Flush(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	w.dirty = false
	return nil
}

func (w *wal) removeDead() {
	for _, n := range w.dead {
		if n == w.cur || w.live[n] > 0 {
			continue
		}
		if err := os.Remove(filepath.Join(w.dir, segName(n))); err == nil || errors.Is(err, os.ErrNotExist) {
			delete(w.sizes, n)
			delete(w.live, n)
		}
	}
	w.dead = w.dead[:0]
}

func (w *wal) diskBytes() int64 {
	var n int64
	for _, v := range w.sizes {
		n += v
	}
	return n
}

func (w *wal) close() error {
	err := w.sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// noteSegment records that e has data in segment seg (called with s.mu held).
func (s *Store) noteSegment(e *traceEntry, seg uint32) {
	segs := s.segsOf(e)
	if slices.Contains(segs, seg) {
		return
	}
	// setSegs takes segs aliasing e's own: appended in place while there
	// is room (in the entry or the extension), copied when not.
	s.setSegs(e, append(segs, seg))
	s.wal.live[seg]++
}

// forgetSegments drops e's claims on its segments (s.mu held).
func (s *Store) forgetSegments(e *traceEntry) {
	for _, seg := range s.segsOf(e) {
		s.wal.live[seg]--
		if s.wal.live[seg] <= 0 {
			s.wal.dead = append(s.wal.dead, seg)
		}
	}
	s.setSegs(e, nil)
}

// compactOldest writes again the traces still held by the oldest segment
// and deletes it (writer goroutine).
func (s *Store) compactOldest() error {
	w := s.wal
	var oldest uint32
	found := false
	for n := range w.sizes {
		if n != w.cur && (!found || n < oldest) {
			oldest, found = n, true
		}
	}
	if !found {
		return nil
	}
	s.mu.Lock()
	var held []*traceEntry
	s.eachTrace(func(e *traceEntry) {
		if slices.Contains(s.segsOf(e), oldest) {
			held = append(held, e)
		}
	})
	at := s.clock.Now().UnixNano()
	var err error
	for _, e := range held {
		for _, b := range s.entryBatches(e) {
			if err = s.logBatch(b, at); err != nil {
				break
			}
		}
		if err == nil && e.pinned {
			err = s.logPin(e.id)
		}
		if err != nil {
			break
		}
		s.noteSegment(e, w.cur)
	}
	if err == nil {
		for _, e := range held {
			segs := s.segsOf(e)
			i := slices.Index(segs, oldest)
			s.setSegs(e, slices.Delete(segs, i, i+1))
		}
		delete(w.live, oldest)
		w.dead = append(w.dead, oldest)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := w.sync(); err != nil {
		return err
	}
	w.removeDead()
	s.m.compactions.Inc()
	return nil
}

// entryBatches rebuilds the batches that stored e's spans and logs, one
// per process (s.mu held).
func (s *Store) entryBatches(e *traceEntry) []*Batch {
	byProc := map[uint32]*Batch{}
	var out []*Batch
	get := func(id uint32) *Batch {
		b := byProc[id]
		if b == nil {
			p := s.procTab[id]
			b = &Batch{service: p.service, resAttrs: p.attrs, dict: s.dict}
			byProc[id] = b
			out = append(out, b)
		}
		return b
	}
	spans := s.spansOf(e)
	for i := range spans {
		sp := &spans[i]
		blob := s.blob(e, sp)
		in := spanIn{traceID: e.id, span: spanRec{
			spanID: sp.spanID, parentID: sp.parentID, start: sp.start, dur: sp.dur,
			name: s.spanName(e, sp), blob: unsafeString(blob), httpStatus: sp.httpStatus,
			kind: sp.kind, status: sp.status, flags: sp.flags,
		}}
		var full Span
		full.Start = time.Unix(0, sp.start)
		decodeSpanBlob(&full, unsafeString(blob), s.dict)
		for _, kv := range full.Attributes {
			switch kv.Type {
			case TypeInt64:
				in.noteInt(kv.Key, kv.Int)
			case TypeString:
				in.noteString(kv.Key, kv.Str)
			}
		}
		for _, ev := range full.Events {
			if ev.Name == eventRetry {
				in.retried = true
			}
		}
		b := get(sp.proc)
		b.spans = append(b.spans, in)
	}
	logs := s.logsOf(e)
	for i := range logs {
		l := &logs[i]
		sev, body, attrs := s.logParts(e, l)
		in := logIn{traceID: e.id, rec: logRec{
			spanID: l.spanID, time: l.time, severity: l.severity,
			sevText: unsafeString(sev), body: unsafeString(body), attrs: unsafeString(attrs),
		}}
		b := get(l.proc)
		b.logs = append(b.logs, in)
	}
	return out
}

// Record encoding.

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func encodeBatch(b []byte, in *Batch, at int64) []byte {
	b = binary.AppendVarint(b, at)
	b = appendStr(b, in.service)
	b = appendStr(b, in.resAttrs)
	b = binary.AppendUvarint(b, uint64(len(in.spans)))
	for i := range in.spans {
		sp := &in.spans[i]
		b = append(b, sp.traceID[:]...)
		b = append(b, sp.span.spanID[:]...)
		b = append(b, sp.span.parentID[:]...)
		b = binary.AppendVarint(b, sp.span.start)
		b = binary.AppendVarint(b, sp.span.dur)
		b = appendStr(b, sp.span.name)
		b = appendStr(b, sp.span.blob)
		b = binary.AppendVarint(b, int64(sp.span.httpStatus))
		var flags byte
		if sp.retried {
			flags = 1
		}
		b = append(b, byte(sp.span.kind), byte(sp.span.status), sp.span.flags, flags)
		b = appendStr(b, sp.route)
	}
	b = binary.AppendUvarint(b, uint64(len(in.logs)))
	for i := range in.logs {
		l := &in.logs[i]
		b = append(b, l.traceID[:]...)
		b = append(b, l.rec.spanID[:]...)
		b = binary.AppendVarint(b, l.rec.time)
		b = binary.AppendVarint(b, int64(l.rec.severity))
		b = appendStr(b, l.rec.sevText)
		b = appendStr(b, l.rec.body)
		b = appendStr(b, l.rec.attrs)
		if l.proc != nil {
			b = append(b, 1)
			b = appendStr(b, l.proc.service)
			b = appendStr(b, l.proc.attrs)
		} else {
			b = append(b, 0)
		}
	}
	return b
}

func decodeBatch(r *blobReader, d *dict) (*Batch, int64) {
	at := r.varint()
	b := &Batch{service: r.str(), resAttrs: r.str(), dict: d}
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad = true
		return b, at
	}
	b.spans = make([]spanIn, 0, n)
	for i := uint64(0); i < n && !r.bad; i++ {
		var sp spanIn
		r.fixed(sp.traceID[:])
		r.fixed(sp.span.spanID[:])
		r.fixed(sp.span.parentID[:])
		sp.span.start = r.varint()
		sp.span.dur = r.varint()
		sp.span.name = r.str()
		sp.span.blob = r.str()
		sp.span.httpStatus = int16(r.varint())
		var fl [4]byte
		r.fixed(fl[:])
		sp.span.kind, sp.span.status, sp.span.flags, sp.retried = SpanKind(fl[0]), StatusCode(fl[1]), fl[2], fl[3]&1 != 0
		sp.route = r.str()
		b.spans = append(b.spans, sp)
	}
	n = r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad = true
		return b, at
	}
	b.logs = make([]logIn, 0, n)
	for i := uint64(0); i < n && !r.bad; i++ {
		var l logIn
		r.fixed(l.traceID[:])
		r.fixed(l.rec.spanID[:])
		l.rec.time = r.varint()
		l.rec.severity = int32(r.varint())
		l.rec.sevText = r.str()
		l.rec.body = r.str()
		l.rec.attrs = r.str()
		var has [1]byte
		r.fixed(has[:])
		if has[0] == 1 {
			l.proc = &process{service: r.str(), attrs: r.str()}
		}
		b.logs = append(b.logs, l)
	}
	return b, at
}
