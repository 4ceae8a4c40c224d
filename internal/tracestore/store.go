// Package tracestore is the gateway's embedded trace store: a bounded,
// in-memory store of recent traces and of the log records that belong to
// them, so that the trace id a client received leads to the whole
// transaction without any other system installed.
//
// The store owns:
//   - a compact span model (a fixed struct per span plus its varint-encoded
//     rest in one byte buffer per trace, which follows the trace's entry
//     in the same block; attribute keys, span names and resources interned
//     store-wide), measured in bytes and free of pointers, so that the
//     garbage collector marks a trace without reading it (see traceEntry
//     and storedSpan);
//   - a byte budget, shared between retention classes (error, slow,
//     retried, pinned, ordinary). When the store is over budget, the class
//     most over its share loses its oldest trace, so ordinary successful
//     traces go first and errors, slow, retried and opened traces outlive
//     them. An optional age limit drops traces older than it;
//   - indexes by service, operation, route, status and duration, so a
//     search reads the smallest posting list that applies rather than every
//     trace;
//   - the service dependency map, counted as spans arrive (the caller and
//     callee services of every parent/child pair with different services);
//   - log records by trace id within the same budget;
//   - optionally (Options.DataDir), a segment log on disk that the store
//     is rebuilt from at New, so it survives a restart or a crash (wal.go).
//
// Writers hand batches to a bounded queue (Submit) drained by one
// goroutine, so a writer never waits for the store: when the queue is full
// the batch is dropped and counted. Readers get deep copies: nothing a
// reader holds aliases what the store keeps.
//
// All methods of Store are safe for concurrent use.
package tracestore

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/memsize"
)

// Defaults.
const (
	DefaultBudget           = 128 << 20
	DefaultQueueSize        = 1024
	DefaultMaxSpansPerTrace = 10000
	DefaultMaxLogsPerTrace  = 1000
	// MinBudget is the smallest budget New accepts.
	MinBudget = 1 << 20
)

// DefaultShares returns (a fresh copy of) the default share of the budget
// of each class, in percent.
func DefaultShares() map[Class]float64 {
	return map[Class]float64{
		ClassError:    30,
		ClassSlow:     20,
		ClassRetried:  15,
		ClassPinned:   10,
		ClassOrdinary: 25,
	}
}

// Options configure a Store. The zero value is usable.
type Options struct {
	// Budget is the most bytes the store holds (default 128 MiB, at least
	// MinBudget).
	Budget int64
	// Shares is each class's share of the budget, in any unit (they are
	// normalized); a missing class gets none of its own but may use room
	// others leave (default DefaultShares()).
	Shares map[Class]float64
	// SlowThreshold makes a trace slow when a server or root span lasts at
	// least this long (0: only the route's recent p99 decides).
	SlowThreshold time.Duration
	// MaxAge drops traces whose last span arrived longer ago (0: none).
	MaxAge time.Duration
	// Clock stamps arrivals and ages traces (default the real clock).
	Clock clock.Clock
	// Registerer receives the store's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// QueueSize bounds the batches waiting to be stored (default 1024).
	QueueSize int
	// MaxSpansPerTrace and MaxLogsPerTrace cap one trace (defaults 10000
	// and 1000); more are dropped and counted.
	MaxSpansPerTrace int
	MaxLogsPerTrace  int
	// DataDir, when set, makes the store persistent: batches are appended
	// to a segment log there and replayed at New (see wal.go). Empty: the
	// store is in memory only.
	DataDir string
	// SyncInterval is how often the log is fsynced (default 1 s); a crash
	// loses at most the batches stored since the last sync.
	SyncInterval time.Duration
	// SegmentSize starts a new segment file after this many bytes
	// (default 16 MiB, at most an eighth of the budget).
	SegmentSize int64

	// noTagIndex leaves the tag index out (benchmarks).
	noTagIndex bool
	// poisonArenas overwrites a stored batch's arena chunks before they
	// go back to the pool (tests: a string the store kept that aliases a
	// batch then reads as garbage).
	poisonArenas bool
}

// process is a resource the store's spans and logs belong to, in the
// store's process table (spans and logs hold its index there). Interned
// processes (at most maxProcs) stay for the store's life; one that is
// not leaves the table with the last span or log that refers to it.
type process struct {
	service  string
	attrs    string // attrsBlob
	id       uint32 // index in Store.procTab (0: not in it)
	interned bool
	refs     int       // the spans and logs stored of a process not interned
	tags     *attrMemo // the tag index's memo of its attributes (interned processes)
}

// The store's own forms of spans, logs, traces and posting lists hold no
// pointers to what they refer to, only indexes into the store's tables
// (traces, posting lists, processes, span names) and offsets into their
// trace's byte buffer. So the garbage collector marks a trace (its entry,
// with its first spans, logs and lists and its buffer, in one block)
// without reading it, and reads no posting list, however many the store
// holds: a collection costs a mark per trace, not a scan of the store.

// storedSpan is a span as the store keeps it: fixed fields, and its
// variable part (the name when it is not interned, then the blob) in its
// trace's buffer.
type storedSpan struct {
	spanID, parentID SpanID
	start, dur       int64  // unix ns, ns
	off              uint32 // where the span's bytes start in its trace's buf
	nameLen, blobLen uint32 // the name when not interned, then the blob, from off
	name             uint32 // the interned name's index in Store.nameTab (0: in buf)
	proc             uint32 // the process's index in Store.procTab
	httpStatus       int16
	kind             SpanKind
	status           StatusCode
	flags            uint8
	parentFound      bool // the parent was in the trace when the span arrived
}

// storedLog is a log record as the store keeps it; its severity text,
// body and attributes are in its trace's buffer, in that order from off.
type storedLog struct {
	spanID                    SpanID
	time                      int64
	severity                  int32
	proc                      uint32 // index in Store.procTab
	off                       uint32
	sevLen, bodyLen, attrsLen uint32
}

// traceEntry is one stored trace. It holds no pointers: it is the head
// of a block of bytes (newBlock) whose rest is the trace's buffer, so a
// stored trace is one object that the garbage collector marks without
// reading, instead of an object of pointers that it must scan and a
// buffer besides. With a store of a hundred thousand traces that is most
// of what a collection costs (TestStoredFormsHoldNoPointers keeps it so).
//
// What does not fit in the entry itself (more spans, logs, posting lists
// or log segments than it has room for, a buffer that outgrew its block,
// the span-id map of a large trace) is in its extension, Store.exts[slot];
// ext tells which.
type traceEntry struct {
	id    TraceID
	bytes int64
	// born is Store.seq when the entry was made: a posting of its slot
	// with a sequence number not above it belongs to an earlier trace.
	born             uint64
	arrived, updated int64 // clock ns
	minStart, maxEnd int64 // span times, ns
	orphans          int   // spans whose parent had not arrived
	slot             uint32
	tag              uint32 // its id's tag in Store.traces
	prev, next       uint32 // class list, oldest first (slots; 0: none)
	lastProc         uint32 // the process whose resource tags were indexed last
	// The buffer in the block: bufLen of its room bytes are used (the
	// spans' and logs' variable parts).
	bufLen, room uint32
	// How many of spans0, logs0, keys0 and segs0 are used (while they are
	// not in the extension).
	nSpans, nKeys uint16
	nLogs, nSegs  uint8
	ext           uint8 // extSpans | extLogs | ...: what is in the extension
	class         Class

	hasError, retried, slow, pinned bool
	dead                            bool

	// The first spans, logs, posting lists (ids in Store.lists) and log
	// segments are kept in the entry itself, so that a gateway's trace (a
	// server and a client span, its access-log record, a dozen lists) is
	// one object: fewer allocations, and fewer places in memory for the
	// writer to touch when it stores or evicts.
	spans0 [2]storedSpan
	logs0  [1]storedLog
	keys0  [entryKeys]uint32
	segs0  [2]uint32
}

// What of an entry is in its extension.
const (
	extSpans uint8 = 1 << iota
	extLogs
	extKeys
	extSegs
	extBuf
)

// entryExt is what of a trace does not fit in its entry.
type entryExt struct {
	spans []storedSpan
	logs  []storedLog
	keys  []uint32
	segs  []uint32 // the log segments holding its data (persistent stores)
	buf   []byte
	byID  map[SpanID]int32 // span index by id, in a trace of many spans
}

// entryHead is the size of an entry at the head of its block.
const entryHead = (unsafe.Sizeof(traceEntry{}) + 7) &^ 7

// newBlock returns a zeroed entry at the head of a block with room for at
// least reserve bytes of buffer. The block is a byte slice, which the
// allocator marks as holding no pointers, and is 8-byte aligned (every
// size class past 8 bytes is a multiple of 8).
func newBlock(reserve int) *traceEntry {
	size := memsize.Alloc(int64(entryHead) + int64(reserve))
	b := make([]byte, size)
	e := (*traceEntry)(unsafe.Pointer(unsafe.SliceData(b)))
	e.room = uint32(size - int64(entryHead))
	return e
}

// blockBytes is the memory of e's block.
func (e *traceEntry) blockBytes() int64 { return int64(entryHead) + int64(e.room) }

// roomBytes returns the buffer room of e's block.
func (e *traceEntry) roomBytes() []byte {
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(e), entryHead)), e.room)
}

// extOf returns e's extension, making it.
func (s *Store) extOf(e *traceEntry) *entryExt {
	x := s.exts[e.slot]
	if x == nil {
		x = new(entryExt)
		s.exts[e.slot] = x
		s.grow(e, extOverhead)
	}
	return x
}

// spansOf returns e's spans, in time of arrival.
func (s *Store) spansOf(e *traceEntry) []storedSpan {
	if e.ext&extSpans != 0 {
		return s.exts[e.slot].spans
	}
	return e.spans0[:e.nSpans]
}

// logsOf returns e's log records, in time order.
func (s *Store) logsOf(e *traceEntry) []storedLog {
	if e.ext&extLogs != 0 {
		return s.exts[e.slot].logs
	}
	return e.logs0[:e.nLogs]
}

// keysOf returns the ids of the posting lists e is in.
func (s *Store) keysOf(e *traceEntry) []uint32 {
	if e.ext&extKeys != 0 {
		return s.exts[e.slot].keys
	}
	return e.keys0[:e.nKeys]
}

// segsOf returns the log segments holding e's data.
func (s *Store) segsOf(e *traceEntry) []uint32 {
	if e.ext&extSegs != 0 {
		return s.exts[e.slot].segs
	}
	return e.segs0[:e.nSegs]
}

// bufOf returns e's buffer.
func (s *Store) bufOf(e *traceEntry) []byte {
	if e.ext&extBuf != 0 {
		return s.exts[e.slot].buf
	}
	return e.roomBytes()[:e.bufLen]
}

// appendSpan adds sp to e's spans.
func (s *Store) appendSpan(e *traceEntry, sp storedSpan) {
	if e.ext&extSpans == 0 {
		if int(e.nSpans) < len(e.spans0) {
			e.spans0[e.nSpans] = sp
			e.nSpans++
			return
		}
		x := s.extOf(e)
		x.spans = append(make([]storedSpan, 0, 4*len(e.spans0)), e.spans0[:]...)
		e.ext |= extSpans
		s.grow(e, noscanGrowth(0, cap(x.spans), spanOverhead))
	}
	x := s.exts[e.slot]
	oldCap := cap(x.spans)
	x.spans = append(x.spans, sp)
	if c := cap(x.spans); c != oldCap {
		// The slice's spare capacity is memory too.
		s.grow(e, noscanGrowth(oldCap, c, spanOverhead))
	}
}

// insertLogAt puts l at index i of e's logs.
func (s *Store) insertLogAt(e *traceEntry, i int, l storedLog) {
	if e.ext&extLogs == 0 {
		if int(e.nLogs) < len(e.logs0) {
			copy(e.logs0[i+1:e.nLogs+1], e.logs0[i:e.nLogs])
			e.logs0[i] = l
			e.nLogs++
			return
		}
		x := s.extOf(e)
		x.logs = append(make([]storedLog, 0, 4), e.logs0[:]...)
		e.ext |= extLogs
		s.grow(e, noscanGrowth(0, cap(x.logs), logOverhead))
	}
	x := s.exts[e.slot]
	oldCap := cap(x.logs)
	x.logs = slices.Insert(x.logs, i, l)
	s.grow(e, noscanGrowth(oldCap, cap(x.logs), logOverhead))
}

// appendKey adds the posting list id to e's lists.
func (s *Store) appendKey(e *traceEntry, id uint32) {
	if e.ext&extKeys == 0 {
		if int(e.nKeys) < len(e.keys0) {
			e.keys0[e.nKeys] = id
			e.nKeys++
			return
		}
		x := s.extOf(e)
		x.keys = append(make([]uint32, 0, 2*len(e.keys0)), e.keys0[:]...)
		e.ext |= extKeys
		s.grow(e, noscanGrowth(0, cap(x.keys), 4))
	}
	x := s.exts[e.slot]
	oldCap := cap(x.keys)
	x.keys = append(x.keys, id)
	if c := cap(x.keys); c != oldCap {
		s.grow(e, noscanGrowth(oldCap, c, 4))
	}
}

// setSegs replaces e's log segments with segs (segs may alias them).
func (s *Store) setSegs(e *traceEntry, segs []uint32) {
	if e.ext&extSegs == 0 && len(segs) <= len(e.segs0) {
		e.nSegs = uint8(copy(e.segs0[:], segs))
		return
	}
	x := s.extOf(e)
	if e.ext&extSegs == 0 {
		x.segs = make([]uint32, 0, 2*len(e.segs0))
		e.ext |= extSegs
		s.grow(e, noscanGrowth(0, cap(x.segs), 4))
	}
	oldCap := cap(x.segs)
	x.segs = append(x.segs[:0], segs...)
	s.grow(e, noscanGrowth(oldCap, cap(x.segs), 4))
}

// findSpan returns the index of span id in e's spans, or -1.
func (s *Store) findSpan(e *traceEntry, id SpanID) int {
	spans := e.spans0[:e.nSpans]
	if e.ext&extSpans != 0 {
		x := s.exts[e.slot]
		if x.byID != nil {
			if i, ok := x.byID[id]; ok {
				return int(i)
			}
			return -1
		}
		spans = x.spans
	}
	for i := range spans {
		if spans[i].spanID == id {
			return i
		}
	}
	return -1
}

// blob returns st's blob, in e's buffer.
func (s *Store) blob(e *traceEntry, st *storedSpan) []byte {
	o := st.off + st.nameLen
	return s.bufOf(e)[o : o+st.blobLen : o+st.blobLen]
}

// logParts returns l's severity text, body and attributes, in e's buffer.
func (s *Store) logParts(e *traceEntry, l *storedLog) (sev, body, attrs []byte) {
	buf := s.bufOf(e)
	o := l.off
	sev = buf[o : o+l.sevLen]
	o += l.sevLen
	body = buf[o : o+l.bodyLen]
	o += l.bodyLen
	return sev, body, buf[o : o+l.attrsLen]
}

func (e *traceEntry) computeClass() Class {
	switch {
	case e.pinned:
		return ClassPinned
	case e.hasError:
		return ClassError
	case e.slow:
		return ClassSlow
	case e.retried:
		return ClassRetried
	}
	return ClassOrdinary
}

// classList is a list of traces in the order they entered the class
// (slots in Store.ents; 0: none).
type classList struct {
	head, tail uint32
	bytes      int64
	n          int
}

func (s *Store) classPush(e *traceEntry) {
	l := &s.classes[e.class]
	e.prev, e.next = l.tail, 0
	if l.tail != 0 {
		s.ents[l.tail].e.next = e.slot
	} else {
		l.head = e.slot
	}
	l.tail = e.slot
	l.bytes += e.bytes
	l.n++
}

func (s *Store) classRemove(e *traceEntry) {
	l := &s.classes[e.class]
	if e.prev != 0 {
		s.ents[e.prev].e.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != 0 {
		s.ents[e.next].e.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = 0, 0
	l.bytes -= e.bytes
	l.n--
}

// postings is the list of traces under one index key, in arrival order.
// Evicted traces stay as tombstones until more than a third of the list
// is dead, then the list is compacted (compactList).
type postings struct {
	key  string
	list []posting
	dead int
	refs int     // the traces whose keys hold the list
	id   uint32  // index in Store.lists
	tag  *tagKey // the attribute key of a tag list
	off  bool    // a tag list switched off (and freed) as high cardinality
	gone bool    // no longer in the index (postingMemo skips it)
}

// posting is one trace in a posting list: its slot in Store.ents, and
// seq, which orders postings across lists (a store-wide counter) so that
// lists can be merged newest first, and tells a posting of the trace in
// the slot now from one of an earlier trace there (entryOf).
type posting struct {
	slot uint32
	seq  uint64
}

// Store is the trace store. See the package doc.
type Store struct {
	opts   Options
	budget int64
	quota  [numClasses]int64
	clock  clock.Clock
	dict   *dict

	mu        sync.RWMutex
	traces    traceTable  // slot in ents by trace id
	ents      []entSlot   // by slot (0 unused)
	exts      []*entryExt // by slot: the extensions of the entries that have one
	freeEnts  []uint32
	classes   [numClasses]classList
	used      int64
	spans     int64
	logs      int64
	idx       map[string]*postings
	lists     []*postings // by id (0 unused; nil: free)
	freeLists []uint32
	procs     map[string]*process
	procTab   []*process // by id (0 unused; nil: free)
	freeProcs []uint32
	names     map[string]uint32 // interned span names: index in nameTab
	nameTab   []string          // (0 unused)
	services  map[string]map[opKey]struct{}
	deps      *depMap
	p99       *p99Tracker
	keyBuf    []byte
	memo      postingMemo
	// The list of all traces, the error list, the lists of the status
	// classes and of the duration buckets, by number (nil: not looked up
	// yet; gone: to look up again).
	allList     *postings
	errList     *postings
	statusLists [10]*postings
	durLists    [65]*postings
	ops         opMemo
	tagMemo     tagMemo
	lastSweep   int64
	seq         uint64

	// Counts for the metrics, added to their counters once per batch
	// (flushCountsLocked) rather than with an atomic add per span.
	nSpansIn, nLogsIn uint64
	nEvicted          [2][numClasses]uint64

	// The tag index (tagindex.go).
	tagKeys     map[string]*tagKey
	tagByRef    []*tagKey // by dictionary reference - 1; nil: not known yet, or not indexed
	tagKeysFull bool
	tagLists    int
	noTagLookup bool // searches ignore the tag index (benchmarks)

	// last is the trace of the last span stored (nil: none): the next
	// span is likely of it.
	last *traceEntry

	// spare are entries of evicted traces, kept for new ones (newEntryAt).
	spare      []*traceEntry
	spareBytes int64

	// pend gathers the gateway's own spans and access-log records (Sink)
	// into one batch, so that the request path does not wake the writer
	// for every request (sink.go).
	pendMu sync.Mutex
	pend   *Batch
	// arenas are the chunks of the pending batches' arenas (*arenaBlock),
	// given back by Write once a batch is stored.
	arenas sync.Pool
	// pendBatches are pending batches the writer has stored, emptied for
	// the next (recycle).
	pendBatches sync.Pool

	queue    chan *Batch
	queued   atomic.Int64 // bytes of the batches in queue
	maxQueue int64        // bound on queued: an eighth of the budget
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	closed   atomic.Bool

	m *storeMetrics

	// walMu serializes the segment log (taken before mu); wal is nil
	// when the store is in memory only.
	walMu      sync.Mutex
	wal        *wal
	replayTime time.Duration
}

type opKey struct {
	name string
	kind SpanKind
}

// Bounds on the catalogues kept beside the traces (services and their
// operations, interned processes).
const (
	maxServices         = 1000
	maxOpsPerService    = 1000
	maxProcs            = 10000
	maxNames            = 100000
	maxPostingKeyLength = 512
)

// New builds a store and starts its writer goroutine; Close stops it.
func New(o Options) (*Store, error) {
	if o.Budget == 0 {
		o.Budget = DefaultBudget
	}
	if o.Budget < MinBudget {
		return nil, fmt.Errorf("tracestore: budget %d bytes is below the minimum %d", o.Budget, MinBudget)
	}
	if o.Shares == nil {
		o.Shares = DefaultShares()
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.MaxSpansPerTrace <= 0 {
		o.MaxSpansPerTrace = DefaultMaxSpansPerTrace
	}
	if o.MaxLogsPerTrace <= 0 {
		o.MaxLogsPerTrace = DefaultMaxLogsPerTrace
	}
	var total float64
	for c, v := range o.Shares {
		if c >= numClasses {
			return nil, fmt.Errorf("tracestore: share of unknown class %d", c)
		}
		if v < 0 {
			return nil, fmt.Errorf("tracestore: share of class %s is negative", c)
		}
		total += v
	}
	if total <= 0 {
		return nil, errors.New("tracestore: the class shares add up to zero")
	}
	s := &Store{
		opts:     o,
		budget:   o.Budget,
		clock:    o.Clock,
		dict:     newDict(),
		traces:   newTraceTable(),
		ents:     []entSlot{{}},
		exts:     []*entryExt{nil},
		lists:    []*postings{nil},
		procTab:  []*process{nil},
		nameTab:  []string{""},
		idx:      map[string]*postings{},
		tagKeys:  map[string]*tagKey{},
		procs:    map[string]*process{},
		names:    map[string]uint32{},
		services: map[string]map[opKey]struct{}{},
		deps:     newDepMap(),
		p99:      newP99Tracker(),
		queue:    make(chan *Batch, o.QueueSize),
		maxQueue: o.Budget / 8,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.tagMemo.seed = maphash.Comparable(maphash.MakeSeed(), 0)
	s.arenas.New = func() any { return new(arenaBlock) }
	s.pendBatches.New = newPendingBatch
	s.used = s.traces.bytes()
	for c, v := range o.Shares {
		s.quota[c] = int64(float64(o.Budget) * v / total)
	}
	m, err := newStoreMetrics(s, o.Registerer)
	if err != nil {
		return nil, err
	}
	s.m = m
	if o.DataDir != "" {
		if o.SyncInterval <= 0 {
			o.SyncInterval = DefaultSyncInterval
		}
		if o.SegmentSize <= 0 {
			o.SegmentSize = min(DefaultSegmentSize, o.Budget/8)
		}
		s.opts = o
		if err := s.openWAL(o.DataDir, o.SegmentSize); err != nil {
			return nil, err
		}
	}
	go s.run()
	return s, nil
}

// Budget returns the byte budget.
func (s *Store) Budget() int64 { return s.budget }

// Close stops the writer after storing what is queued. Batches submitted
// later are dropped and counted. It is safe to call more than once.
func (s *Store) Close() error {
	s.stopOnce.Do(func() {
		s.Submit(s.takePending())
		s.closed.Store(true)
		close(s.stop)
	})
	<-s.done
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if s.wal != nil && s.wal.f != nil {
		err := s.wal.close()
		s.wal.f = nil
		if err != nil {
			return fmt.Errorf("tracestore: closing the data directory: %w", err)
		}
	}
	return nil
}

// ReplayTime returns how long New took to read the data directory (0
// for a store in memory only).
func (s *Store) ReplayTime() time.Duration { return s.replayTime }

// DiskBytes returns the bytes of the data directory's segments (0 for a
// store in memory only).
func (s *Store) DiskBytes() int64 {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if s.wal == nil {
		return 0
	}
	return s.wal.diskBytes()
}

// Sync writes and fsyncs what the store has logged (a no-op in memory).
func (s *Store) Sync() error {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if s.wal == nil || s.wal.f == nil {
		return nil
	}
	if err := s.wal.sync(); err != nil {
		s.m.persistErrors.Inc()
		return fmt.Errorf("tracestore: syncing the data directory: %w", err)
	}
	return nil
}

// Submit queues b for storing and reports whether it was accepted. It
// never blocks: when the queue is full (QueueSize batches, or batches
// holding an eighth of the budget, so that what waits is bounded in bytes
// too) or the store is closed, b is dropped and its spans and logs are
// counted as dropped (reason queue_full). The store owns b after the call.
func (s *Store) Submit(b *Batch) bool {
	if b == nil || len(b.spans) == 0 && len(b.logs) == 0 {
		return true
	}
	if !s.closed.Load() {
		// One batch larger than the bound alone is let through.
		if n := s.queued.Add(b.bytes); n <= s.maxQueue || n == b.bytes {
			select {
			case s.queue <- b:
				return true
			default:
			}
		}
		s.queued.Add(-b.bytes)
	}
	s.m.spansDropped[dropQueueFull].Add(float64(len(b.spans)))
	s.m.logsDropped[dropQueueFull].Add(float64(len(b.logs)))
	return false
}

// QueueFull reports whether the next Submit would likely be refused,
// for writers that prefer to refuse before converting.
func (s *Store) QueueFull() bool {
	return len(s.queue) >= cap(s.queue) || s.queued.Load() >= s.maxQueue
}

// Flush waits until every batch submitted before the call is stored, or
// ctx ends.
func (s *Store) Flush(ctx context.Context) error {
	s.Submit(s.takePending())
	b := &Batch{flushed: make(chan struct{})}
	select {
	case s.queue <- b:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return nil
	}
	select {
	case <-b.flushed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return nil
	}
}

// run is the writer goroutine.
func (s *Store) run() {
	defer close(s.done)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	pendTick := time.NewTicker(100 * time.Millisecond)
	defer pendTick.Stop()
	var syncC <-chan time.Time
	if s.wal != nil {
		st := time.NewTicker(s.opts.SyncInterval)
		defer st.Stop()
		syncC = st.C
	}
	for {
		select {
		case b := <-s.queue:
			s.write(b)
		case <-pendTick.C:
			s.writePending()
		case <-syncC:
			s.persistTick()
		case <-tick.C:
			s.walMu.Lock()
			s.mu.Lock()
			s.expireLocked(s.clock.Now().UnixNano())
			s.flushCountsLocked()
			s.mu.Unlock()
			if s.wal != nil {
				s.wal.removeDead()
			}
			s.walMu.Unlock()
		case <-s.stop:
			for {
				select {
				case b := <-s.queue:
					s.write(b)
				default:
					return
				}
			}
		}
	}
}

func (s *Store) write(b *Batch) {
	if b.flushed != nil {
		close(b.flushed)
		return
	}
	n := b.bytes // b is emptied for reuse by Write
	s.Write(b)
	s.queued.Add(-n)
}

// Write stores b synchronously (tests and loaders; writers on a latency
// path use Submit). b must not be read afterwards: its arena goes back
// to the store's pool, and a Sink's pending batch is emptied for the next
// (recycle).
func (s *Store) Write(b *Batch) {
	defer s.recycle(b)
	defer b.releaseArena(s.opts.poisonArenas)
	now := s.clock.Now().UnixNano()
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if s.wal == nil || s.wal.f == nil {
		s.writeAt(b, now, 0)
		return
	}
	if err := s.logBatch(b, now); err != nil {
		s.m.persistErrors.Inc()
	}
	s.writeAt(b, now, s.wal.cur)
	s.wal.removeDead()
}

// persistTick fsyncs the log and, when the segments take more than twice
// the budget, compacts the oldest (writer goroutine).
func (s *Store) persistTick() {
	if err := s.Sync(); err != nil {
		return
	}
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if s.wal.f == nil {
		return
	}
	for i := 0; i < 4 && s.wal.diskBytes() > 2*s.budget; i++ {
		if err := s.compactOldest(); err != nil {
			s.m.persistErrors.Inc()
			return
		}
	}
}

// yieldEvery is how many spans the writer stores between yields, while
// fewer than yieldQueue batches wait.
const (
	yieldEvery = 16
	yieldQueue = 4
	// compactYield is how many postings the writer checks between
	// yields while it compacts a posting list.
	compactYield = 4096
)

// writeAt stores b as stored at time now, from log segment seg when the
// store is persistent (s.walMu held then).
func (s *Store) writeAt(b *Batch, now int64, seg uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	proc := s.internProcess(b.service, b.resAttrs)
	s.traces.touch(b.spans)
	logAt := 0 // where insertSpan looks for a new trace's log records
	for i := range b.spans {
		s.insertSpan(b.spans[i:], b.logs, &logAt, proc, now)
		if i%yieldEvery == yieldEvery-1 && len(s.queue) < yieldQueue {
			// Let the request goroutines run: on a gateway with one
			// core, a batch stored in one go holds it for as long as
			// the batch takes (readers wait on s.mu meanwhile, the
			// request path never does). A writer that is behind does
			// not yield, so that it catches up rather than drops.
			runtime.Gosched()
		}
	}
	for i := range b.logs {
		lp := proc
		if b.logs[i].proc != nil {
			lp = s.internProcess(b.logs[i].proc.service, b.logs[i].proc.attrs)
		}
		s.insertLog(&b.logs[i], lp, now)
	}
	if s.wal != nil {
		for i := range b.spans {
			if e := s.lookup(b.spans[i].traceID); e != nil {
				s.noteSegment(e, seg)
			}
		}
		for i := range b.logs {
			if e := s.lookup(b.logs[i].traceID); e != nil {
				s.noteSegment(e, seg)
			}
		}
	}
	if now-s.lastSweep >= int64(time.Second) {
		s.expireLocked(now)
	}
	for s.bytesLocked() > s.budget {
		if !s.evictOneLocked(evictBudget) {
			break
		}
	}
	s.flushCountsLocked()
}

// flushCountsLocked adds the spans and logs stored and the traces evicted
// since the last call to their counters.
func (s *Store) flushCountsLocked() {
	if s.nSpansIn > 0 {
		s.m.spansReceived.Add(float64(s.nSpansIn))
		s.nSpansIn = 0
	}
	if s.nLogsIn > 0 {
		s.m.logsReceived.Add(float64(s.nLogsIn))
		s.nLogsIn = 0
	}
	for r := range s.nEvicted {
		for c, n := range s.nEvicted[r] {
			if n > 0 {
				s.m.evictions[r][c].Add(float64(n))
				s.nEvicted[r][c] = 0
			}
		}
	}
}

func (s *Store) internProcess(service, attrs string) *process {
	key := service + "\x00" + attrs
	if p, ok := s.procs[key]; ok {
		return p
	}
	p := &process{service: service, attrs: attrs}
	if len(s.procs) < maxProcs {
		s.procs[key] = p
		p.interned = true
		s.addProc(p)
		// The key, and the process's own copies of service and attrs.
		s.used += procOverhead + strBytes(len(key)) + strBytes(len(service)) + strBytes(len(attrs))
	}
	return p
}

// addProc puts p in the process table.
func (s *Store) addProc(p *process) {
	if n := len(s.freeProcs); n > 0 {
		p.id = s.freeProcs[n-1]
		s.freeProcs = s.freeProcs[:n-1]
		s.procTab[p.id] = p
		return
	}
	p.id = uint32(len(s.procTab))
	s.procTab = append(s.procTab, p)
}

// procRef returns the index of p for a span or log being stored, adding
// p to the table when it is a process not interned.
func (s *Store) procRef(p *process) uint32 {
	if !p.interned {
		if p.id == 0 {
			s.addProc(p)
		}
		p.refs++
	}
	return p.id
}

// releaseProc is the end of a stored span or log of process id: a process
// not interned leaves the table with the last of them.
func (s *Store) releaseProc(id uint32) {
	p := s.procTab[id]
	if p == nil || p.interned {
		return
	}
	if p.refs--; p.refs == 0 {
		s.procTab[id] = nil
		s.freeProcs = append(s.freeProcs, id)
		p.id = 0
	}
}

// lookup returns the entry of trace id, or nil.
func (s *Store) lookup(id TraceID) *traceEntry {
	if slot, _, _ := s.traces.find(id, s.ents); slot != 0 {
		return s.ents[slot].e
	}
	return nil
}

// eachTrace calls f with every stored trace, in no order.
func (s *Store) eachTrace(f func(e *traceEntry)) {
	for _, sl := range s.ents {
		if sl.e != nil {
			f(sl.e)
		}
	}
}

// entSlot is a slot of the table of traces: the trace in it (nil: free)
// and its born, so that a posting is found live or dead (entryOf, the
// compaction of a list) by reading the table alone.
type entSlot struct {
	e    *traceEntry
	born uint64
}

// entryOf returns the trace a posting is of, or nil when that trace has
// left the store.
func (s *Store) entryOf(x posting) *traceEntry {
	if sl := &s.ents[x.slot]; x.seq > sl.born {
		return sl.e
	}
	return nil
}

// spanName returns st's name; one that is not interned is in e's buffer,
// and the string returned aliases it.
func (s *Store) spanName(e *traceEntry, st *storedSpan) string {
	if st.name != 0 {
		return s.nameTab[st.name]
	}
	return unsafeString(s.bufOf(e)[st.off : st.off+st.nameLen])
}

// entryKeys is how many posting lists a trace's entry holds in itself.
const entryKeys = 12

// newEntry adds an entry for trace id, which is not stored, with a
// buffer of reserve bytes.
func (s *Store) newEntry(id TraceID, now int64, reserve int) *traceEntry {
	_, at, tag := s.traces.find(id, s.ents)
	return s.newEntryAt(id, now, reserve, at, tag)
}

// newEntryAt is newEntry with the place and tag in s.traces that
// s.traces.find returned for id.
func (s *Store) newEntryAt(id TraceID, now int64, reserve, at int, tag uint32) *traceEntry {
	var e *traceEntry
	if n := len(s.spare); n > 0 {
		// An evicted trace's entry whose room fits the buffer, the
		// latest evicted first (its memory is the likeliest in the
		// cache). When none fits, the earliest kept is let go, so that
		// the spares follow the sizes of the traces that arrive.
		i := n - 1
		for ; i >= 0; i-- {
			if r := int(s.spare[i].room); r >= reserve && r <= 2*reserve+256 {
				break
			}
		}
		take := i >= 0
		if !take {
			i = 0
		}
		f := s.spare[i]
		s.spare[i] = s.spare[n-1]
		s.spare[n-1] = nil
		s.spare = s.spare[:n-1]
		b := f.blockBytes()
		s.spareBytes -= b
		s.used -= b
		if take {
			e = f
		}
	}
	if e == nil {
		e = newBlock(reserve)
	}
	room := e.room
	*e = traceEntry{id: id, tag: tag, arrived: now, updated: now, class: ClassOrdinary, born: s.seq, room: room}
	e.bytes = e.blockBytes() + slotOverhead
	if n := len(s.freeEnts); n > 0 {
		e.slot = s.freeEnts[n-1]
		s.freeEnts = s.freeEnts[:n-1]
	} else {
		e.slot = uint32(len(s.ents))
		s.ents = append(s.ents, entSlot{})
		s.exts = append(s.exts, nil)
	}
	s.ents[e.slot] = entSlot{e: e, born: e.born}
	s.used += s.traces.insert(at, tag, e.slot)
	s.classPush(e)
	s.used += e.bytes
	s.postCached(e, &s.allList, 'a', "", "")
	return e
}

// appendBuf appends the parts to e's buffer and returns where they start.
func (s *Store) appendBuf(e *traceEntry, parts ...[]byte) uint32 {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	off := int(e.bufLen)
	if e.ext&extBuf == 0 {
		if off+n <= int(e.room) {
			r := e.roomBytes()
			for _, p := range parts {
				off += copy(r[off:], p)
			}
			start := e.bufLen
			e.bufLen = uint32(off)
			return start
		}
		// The trace outgrew its block: its buffer moves to the
		// extension (the block's room stays counted with the block).
		x := s.extOf(e)
		c := int(memsize.Alloc(int64(max(2*int(e.room), off+n))))
		x.buf = append(make([]byte, 0, c), e.roomBytes()[:off]...)
		e.ext |= extBuf
		s.grow(e, int64(c))
	}
	x := s.exts[e.slot]
	oldCap := cap(x.buf)
	if off+n > oldCap {
		c := int(memsize.Alloc(int64(max(2*oldCap, off+n))))
		nb := make([]byte, off, c)
		copy(nb, x.buf)
		x.buf = nb
		s.grow(e, noscanGrowth(oldCap, c, 1))
	}
	for _, p := range parts {
		x.buf = append(x.buf, p...)
	}
	e.bufLen = uint32(len(x.buf))
	return uint32(off)
}

// grow adds n bytes to e and its class.
func (s *Store) grow(e *traceEntry, n int64) {
	e.bytes += n
	s.classes[e.class].bytes += n
	s.used += n
}

// logScan is how many log records of a batch logsSize compares.
const logScan = 16

// logsSize returns the bytes of the log records of trace id in logs, to
// be reserved beside its spans, starting at *at and moving *at past
// them. The gateway's batches hold each request's access-log record
// beside its spans, in the order of the requests, so the records of a
// trace that starts are mostly at *at: logsSize compares at most
// logScan of them (wrapping around), and a record it misses is stored
// all the same, in room made for it then.
func logsSize(logs []logIn, at *int, id TraceID) int {
	n, found := 0, false
	for k, j := 0, *at; k < min(len(logs), logScan); k, j = k+1, j+1 {
		if j >= len(logs) {
			j = 0
		}
		l := &logs[j]
		if l.traceID != id {
			if found {
				break
			}
			continue
		}
		n += len(l.rec.sevText) + len(l.rec.body) + len(l.rec.attrs)
		found, *at = true, j+1
	}
	return n
}

// insertSpan stores the first of spans (the rest of its batch: a trace
// begun by it gets a buffer for the spans of it that follow, and for the
// batch's logs of it).
func (s *Store) insertSpan(spans []spanIn, logs []logIn, logAt *int, proc *process, now int64) {
	in := &spans[0]
	e := s.last
	var at int
	var tag uint32
	if e == nil || e.dead || e.id != in.traceID {
		// The spans of a trace come together: the previous span's trace
		// is found without a lookup.
		var slot uint32
		tag = in.tag
		slot, at = s.traces.findTag(in.traceID, tag, s.ents)
		e = s.ents[slot].e // nil for slot 0
	}
	if e != nil && len(s.spansOf(e)) >= s.opts.MaxSpansPerTrace {
		s.m.spansDropped[dropTooManySpans].Inc()
		return
	}
	if e == nil {
		n := 0
		for i := range spans {
			if spans[i].traceID != in.traceID {
				break
			}
			n += len(spans[i].span.blob)
		}
		n += logsSize(logs, logAt, in.traceID)
		e = s.newEntryAt(in.traceID, now, n, at, tag)
	}
	s.last = e
	rec := &in.span
	op := s.ops.slot(proc, rec.name, rec.kind)
	hit := op.proc == proc && op.kind == rec.kind && op.raw == rec.name
	var nameID uint32
	if hit {
		nameID = op.nameID
	} else if id, ok := s.names[rec.name]; ok {
		nameID = id
	} else if len(s.names) < maxNames && len(rec.name) <= 256 {
		name := strings.Clone(rec.name)
		nameID = uint32(len(s.nameTab))
		s.nameTab = append(s.nameTab, name)
		s.names[name] = nameID
		s.used += strBytes(len(name)) + nameOverhead
	}
	name := rec.name
	if nameID != 0 {
		name = s.nameTab[nameID]
	}
	if s.findSpan(e, rec.spanID) >= 0 {
		s.m.spansDropped[dropDuplicate].Inc()
		return
	}
	e.updated = now
	s.nSpansIn++
	sp := storedSpan{
		spanID: rec.spanID, parentID: rec.parentID, start: rec.start, dur: rec.dur,
		name: nameID, proc: s.procRef(proc), httpStatus: rec.httpStatus,
		kind: rec.kind, status: rec.status, flags: rec.flags,
		blobLen: uint32(len(rec.blob)),
	}
	if nameID == 0 {
		sp.nameLen = uint32(len(name))
		sp.off = s.appendBuf(e, unsafeBytes(name), unsafeBytes(rec.blob))
	} else {
		sp.off = s.appendBuf(e, unsafeBytes(rec.blob))
	}

	// Dependencies: this span's parent, and spans that were waiting for
	// this one as their parent.
	if !sp.parentID.IsZero() {
		if pi := s.findSpan(e, sp.parentID); pi >= 0 {
			sp.parentFound = true
			s.deps.add(s.procTab[s.spansOf(e)[pi].proc].service, proc.service, sp.start, now)
		} else {
			e.orphans++
		}
	}
	if e.orphans > 0 {
		spans := s.spansOf(e)
		for i := range spans {
			c := &spans[i]
			if !c.parentFound && c.parentID == sp.spanID {
				c.parentFound = true
				e.orphans--
				s.deps.add(proc.service, s.procTab[c.proc].service, c.start, now)
			}
		}
	}

	s.appendSpan(e, sp)
	if n := len(s.spansOf(e)); n > 64 {
		x := s.exts[e.slot]
		if x.byID == nil {
			x.byID = make(map[SpanID]int32, n*2)
			for i := range x.spans {
				x.byID[x.spans[i].spanID] = int32(i)
			}
			s.grow(e, int64(n)*byIDEntry)
		} else {
			x.byID[sp.spanID] = int32(n - 1)
			s.grow(e, byIDEntry)
		}
	}
	s.spans++
	end := sp.start + sp.dur
	if e.minStart == 0 || sp.start < e.minStart {
		e.minStart = sp.start
	}
	if end > e.maxEnd {
		e.maxEnd = end
	}

	// Catalogue of services and operations.
	if !hit {
		ops := s.services[proc.service]
		if ops == nil && len(s.services) < maxServices {
			ops = map[opKey]struct{}{}
			s.services[proc.service] = ops
		}
		catalogued := false
		if ops != nil {
			k := opKey{name, sp.kind}
			if _, catalogued = ops[k]; !catalogued && len(ops) < maxOpsPerService {
				if nameID == 0 {
					k.name = strings.Clone(name)
				}
				ops[k], catalogued = struct{}{}, true
			}
		}
		// The operation is remembered once its name is interned and it
		// is in the catalogue: then a span of it needs neither again.
		if nameID != 0 && catalogued {
			am := op.attrs
			if am != nil {
				am.reset()
			}
			*op = opMemoSlot{proc: proc, kind: sp.kind, raw: name, nameID: nameID, attrs: am}
		}
	}

	// Indexes. The service's and the operation's lists are the
	// operation memo's, the status classes' and duration buckets' are
	// kept by number: only the route's is looked up.
	if hit {
		s.postCached(e, &op.sList, 's', proc.service, "")
		s.postCached(e, &op.oList, 'o', proc.service, name)
	} else {
		s.addPosting(e, 's', proc.service, "")
		s.addPosting(e, 'o', proc.service, name)
	}
	if in.route != "" {
		s.addPosting(e, 'r', in.route, "")
	}
	if sp.status == StatusError {
		s.postCached(e, &s.errList, 'e', "", "")
	}
	if sp.httpStatus > 0 && sp.httpStatus < 1000 {
		c := int(sp.httpStatus) / 100
		s.postCached(e, &s.statusLists[c], 'h', strconv.Itoa(c), "")
	}
	b := durBucket(sp.dur)
	s.postCached(e, &s.durLists[b], 'd', strconv.Itoa(b), "")
	if !s.opts.noTagIndex {
		var am *attrMemo
		if hit {
			am = s.attrMemoIn(&op.attrs)
		}
		s.indexTags(e, proc, unsafeBytes(rec.blob), am)
	}

	// Retention class.
	if sp.status == StatusError {
		e.hasError = true
	}
	if in.retried {
		e.retried = true
	}
	if sp.kind == KindServer || sp.parentID.IsZero() {
		d := time.Duration(sp.dur)
		if s.opts.SlowThreshold > 0 && d >= s.opts.SlowThreshold {
			e.slow = true
		}
		r := op.ring
		if !hit || r == nil {
			r = s.p99.ring(proc.service, name)
			if hit {
				op.ring = r
			}
		}
		if r != nil && r.observe(d) {
			e.slow = true
		}
	}
	s.reclassify(e)
}

func (s *Store) insertLog(in *logIn, proc *process, now int64) {
	e := s.lookup(in.traceID)
	if e != nil && len(s.logsOf(e)) >= s.opts.MaxLogsPerTrace {
		s.m.logsDropped[dropTooManySpans].Inc()
		return
	}
	if e == nil {
		e = s.newEntry(in.traceID, now, 0)
	}
	e.updated = now
	r := &in.rec
	l := storedLog{
		spanID: r.spanID, time: r.time, severity: r.severity, proc: s.procRef(proc),
		sevLen: uint32(len(r.sevText)), bodyLen: uint32(len(r.body)), attrsLen: uint32(len(r.attrs)),
	}
	l.off = s.appendBuf(e, unsafeBytes(r.sevText), unsafeBytes(r.body), unsafeBytes(r.attrs))
	// Keep logs in time order; they usually arrive in order.
	logs := s.logsOf(e)
	i := len(logs)
	for i > 0 && logs[i-1].time > l.time {
		i--
	}
	s.insertLogAt(e, i, l)
	s.logs++
	s.nLogsIn++
}

// durBucket is the duration index bucket: log2 of microseconds.
func durBucket(ns int64) int {
	us := ns / 1000
	if us <= 0 {
		return 0
	}
	return bits.Len64(uint64(us))
}

// addPosting puts e in the posting list named by kind and its parts,
// once: the key is the kind, then a and b as its kind has them (none for
// 'a' and 'e', both for 'o', a for the others), each after a 0 byte.
func (s *Store) addPosting(e *traceEntry, kind byte, a, b string) *postings {
	if p := s.memo.find(kind, a, b); p != nil {
		s.post(e, p)
		return p
	}
	k := append(s.keyBuf[:0], kind)
	if kind != 'a' && kind != 'e' {
		k = append(k, 0)
		k = append(k, a...)
	}
	if kind == 'o' {
		k = append(k, 0)
		k = append(k, b...)
	}
	s.keyBuf = k
	if len(k) > maxPostingKeyLength {
		return nil
	}
	p := s.idx[string(k)]
	if p == nil {
		p = s.newList(string(k), nil)
	}
	s.memo.put(kind, a, b, p)
	s.post(e, p)
	return p
}

// postCached is addPosting for a list kept in *cache, which is looked up
// (and kept) when it is nil or has left the index.
func (s *Store) postCached(e *traceEntry, cache **postings, kind byte, a, b string) {
	if p := *cache; p != nil && !p.gone {
		s.post(e, p)
		return
	}
	*cache = s.addPosting(e, kind, a, b)
}

// opMemo remembers the operations (process, span name, kind) spans
// arrive for, so that a span of a known operation finds its interned
// name, its place in the catalogue, its duration window and its
// attribute memo (attrMemo) without hashing its name into maps: a slot
// is chosen by the process, the kind and the length and first and last
// bytes of the name, and compared by content.
type opMemo struct {
	slots [64]opMemoSlot
}

type opMemoSlot struct {
	proc   *process
	kind   SpanKind
	raw    string    // the interned name (spans of the operation bring equal ones)
	nameID uint32    // its index in Store.nameTab
	ring   *p99Ring  // the operation's duration window (nil: not looked up yet, or none)
	attrs  *attrMemo // the tag index's memo of its spans' attributes (nil: none yet)
	// The service's and the operation's posting lists (nil: not looked
	// up yet; gone: to look up again).
	sList, oList *postings
}

func (m *opMemo) slot(proc *process, name string, kind SpanKind) *opMemoSlot {
	// The name's first and last 8 bytes and its length, not its address:
	// a span name built for each request (the gateway's client spans are
	// "GET service") then finds its operation's one slot, and that
	// slot's attribute memo.
	a, b := edgeWords(unsafeBytes(name))
	h := uint64(uintptr(unsafe.Pointer(proc))>>4)*0x9e3779b97f4a7c15 ^ a*0xc2b2ae3d27d4eb4f ^ (b+uint64(len(name)))*0x165667b19e3779f9 ^ uint64(kind)
	h ^= h >> 29
	return &m.slots[h%uint64(len(m.slots))]
}

// postingMemo finds the posting lists every span is added to (its
// service, operation, route, status class and duration bucket) without
// building their key and hashing it into the index: a slot is chosen by
// the kind and the addresses and lengths of the parts' bytes (a span's
// service and interned name are the same strings span after span) and
// compared by content. A list that has left the index (gone) is not
// returned.
type postingMemo struct {
	slots [128]postingMemoSlot
}

type postingMemoSlot struct {
	kind byte
	a, b string
	p    *postings
}

func (m *postingMemo) slot(kind byte, a, b string) *postingMemoSlot {
	h := uintptr(kind)*0x9e3779b9 ^ uintptr(len(a))<<7 ^ uintptr(len(b))<<13
	if a != "" {
		h ^= uintptr(unsafe.Pointer(unsafe.StringData(a))) >> 3
	}
	if b != "" {
		h ^= uintptr(unsafe.Pointer(unsafe.StringData(b))) >> 4
	}
	h ^= h >> 17
	return &m.slots[h%uintptr(len(m.slots))]
}

func (m *postingMemo) find(kind byte, a, b string) *postings {
	sl := m.slot(kind, a, b)
	if sl.p != nil && !sl.p.gone && sl.kind == kind && sl.a == a && sl.b == b {
		return sl.p
	}
	return nil
}

// put remembers p under its parts, as p's own copies of them (the key
// holds them), so that the memo keeps nothing else alive.
func (m *postingMemo) put(kind byte, a, b string, p *postings) {
	sl := m.slot(kind, a, b)
	sl.kind, sl.p = kind, p
	// p.key is kind [0 a [0 b]]; a and b are slices of it.
	sl.a, sl.b = "", ""
	if len(p.key) > 1 {
		sl.a = p.key[2 : 2+len(a)]
		if kind == 'o' {
			sl.b = p.key[3+len(a):]
		}
	}
}

// newList adds a posting list under key to the index.
func (s *Store) newList(key string, tag *tagKey) *postings {
	p := &postings{key: key, tag: tag}
	if n := len(s.freeLists); n > 0 {
		p.id = s.freeLists[n-1]
		s.freeLists = s.freeLists[:n-1]
		s.lists[p.id] = p
	} else {
		p.id = uint32(len(s.lists))
		s.lists = append(s.lists, p)
	}
	s.idx[key] = p
	s.used += indexListOverhead + strBytes(len(key))
	return p
}

// freeList gives p's id back once p has left the index and no trace
// holds it.
func (s *Store) freeList(p *postings) {
	if p.gone && p.refs == 0 && s.lists[p.id] == p {
		s.lists[p.id] = nil
		s.freeLists = append(s.freeLists, p.id)
	}
}

// post puts e in p, once.
func (s *Store) post(e *traceEntry, p *postings) {
	// A list is in sequence order and e's postings come after its birth:
	// e is in p only if p's last posting came after it, and it is when
	// that posting is e's (the usual case of a list shared by a trace's
	// spans); otherwise e's own lists tell.
	if n := len(p.list); n > 0 && p.list[n-1].seq > e.born {
		if p.list[n-1].slot == e.slot {
			return
		}
		for _, k := range s.keysOf(e) {
			if k == p.id {
				return
			}
		}
	}
	s.seq++
	// A posting list's memory is the store's (lists outlive traces); the
	// trace's list of its lists is the trace's.
	oldCap := cap(p.list)
	p.list = append(p.list, posting{slot: e.slot, seq: s.seq})
	s.used += noscanGrowth(oldCap, cap(p.list), postingSize)
	s.appendKey(e, p.id)
	p.refs++
}

func (s *Store) reclassify(e *traceEntry) {
	c := e.computeClass()
	if c == e.class {
		return
	}
	s.classRemove(e)
	e.class = c
	s.classPush(e)
}

type evictReason uint8

const (
	evictBudget evictReason = iota
	evictAge
)

// evictOneLocked drops the oldest trace of the class most over its
// quota; ties go to the less important class.
func (s *Store) evictOneLocked(reason evictReason) bool {
	best := Class(0)
	var bestOver int64
	found := false
	for c := ClassOrdinary; c < numClasses; c++ {
		l := &s.classes[c]
		if l.head == 0 {
			continue
		}
		over := l.bytes - s.quota[c]
		if !found || over > bestOver {
			best, bestOver, found = c, over, true
		}
	}
	if !found {
		return false
	}
	s.removeLocked(s.ents[s.classes[best].head].e, reason)
	return true
}

func (s *Store) removeLocked(e *traceEntry, reason evictReason) {
	spans, logs, keys := s.spansOf(e), s.logsOf(e), s.keysOf(e)
	if s.wal != nil {
		s.forgetSegments(e)
	}
	s.classRemove(e)
	s.used += s.traces.remove(e.tag, e.slot)
	// A free slot's born is above every posting's sequence number.
	s.ents[e.slot] = entSlot{born: math.MaxUint64}
	s.exts[e.slot] = nil
	s.freeEnts = append(s.freeEnts, e.slot)
	s.used -= e.bytes
	s.spans -= int64(len(spans))
	s.logs -= int64(len(logs))
	s.nEvicted[reason][e.class]++
	e.dead = true
	for i := range spans {
		s.releaseProc(spans[i].proc)
	}
	for i := range logs {
		s.releaseProc(logs[i].proc)
	}
	for _, id := range keys {
		p := s.lists[id]
		p.refs--
		if !p.off {
			p.dead++
			if 3*p.dead > len(p.list) {
				s.compactList(p)
				if len(p.list) == 0 && s.idx[p.key] == p {
					delete(s.idx, p.key)
					p.gone = true
					s.used -= indexListOverhead + strBytes(len(p.key))
					if p.tag != nil {
						p.tag.values--
						s.tagLists--
					}
				}
			}
		}
		s.freeList(p)
	}
	e.ext, e.nSpans, e.nLogs, e.nKeys, e.nSegs, e.bufLen = 0, 0, 0, 0, 0, 0
	if s.last == e {
		s.last = nil
	}
	// The entry is kept, with its block, for a trace to come when its
	// room is not large: a full store then stores a trace without
	// allocating, and hands the collector less to sweep.
	if b := e.blockBytes(); len(s.spare) < maxSpare && e.room <= maxSpareBuf && s.spareBytes+b <= s.budget/256 {
		s.spare = append(s.spare, e)
		s.spareBytes += b
		s.used += b
	}
}

// The entries of evicted traces kept for new ones: at most maxSpare, with
// room for buffers of at most maxSpareBuf bytes, holding at most a 256th
// of the budget (counted in it meanwhile).
const (
	maxSpare    = 128
	maxSpareBuf = 4 << 10
)

// compactList drops the dead postings of p. In the steady state of a
// full store a list loses its oldest traces as fast as it gains new ones,
// so the live postings move to the front of the same array, which has
// room for the half as many again that arrive before the next
// compaction: no new array, and none of the copies of every posting that
// growing one again would take. A list is given an array of that size
// when its own is too small or more than half as large again (a list
// that has shrunk, whose memory is given back); an empty one none.
func (s *Store) compactList(p *postings) {
	n := len(p.list) - p.dead
	want := n + n/2 + 16
	live := p.list[:0]
	if c := cap(p.list); n == 0 || c < want || c > want+want/2 {
		live = nil
		if n > 0 {
			live = make([]posting, 0, want)
		}
	}
	for i, x := range p.list {
		if s.entryOf(x) != nil {
			live = append(live, x)
		}
		if i%compactYield == compactYield-1 && len(s.queue) < yieldQueue {
			// The lists every trace is in (all, a service, a status
			// class) hold every trace of the store: let the request
			// goroutines run while one is compacted.
			runtime.Gosched()
		}
	}
	s.used += noscanGrowth(cap(p.list), cap(live), postingSize)
	p.list, p.dead = live, 0
}

// expireLocked drops traces older than MaxAge (by their last arrival),
// oldest first within each class. It walks every stored trace: the writer
// calls it at most once per second of clock time after a batch, and
// every 5 s without one.
func (s *Store) expireLocked(now int64) {
	if s.opts.MaxAge <= 0 {
		return
	}
	cutoff := now - int64(s.opts.MaxAge)
	for c := ClassOrdinary; c < numClasses; c++ {
		l := &s.classes[c]
		// Entries are in class-entry order, close to arrival order; an
		// entry updated recently may sit before an older one, so walk the
		// list rather than stopping at the first young entry.
		for slot := l.head; slot != 0; {
			e := s.ents[slot].e
			slot = e.next
			if e.updated < cutoff {
				s.removeLocked(e, evictAge)
			}
		}
	}
	s.lastSweep = now
}

// bytesLocked returns the memory the store holds: the traces, their
// indexes, the catalogues, the dependency map and the slow-operation
// windows (s.mu held).
func (s *Store) bytesLocked() int64 {
	return s.used + s.dict.n.Load() + s.deps.bytes + s.p99.bytes
}

// Stats are the store's current figures.
type Stats struct {
	Traces, Spans, Logs int64
	Bytes, Budget       int64
	ClassBytes          [numClasses]int64
	ClassTraces         [numClasses]int
}

// Stats returns the current figures.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{Traces: int64(s.traces.len()), Spans: s.spans, Logs: s.logs, Bytes: s.bytesLocked(), Budget: s.budget}
	for c := range s.classes {
		st.ClassBytes[c] = s.classes[c].bytes
		st.ClassTraces[c] = s.classes[c].n
	}
	return st
}

// Pin marks a stored trace as pinned (class pinned) and reports whether it
// was found.
func (s *Store) Pin(id TraceID) bool {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.lookup(id)
	if e == nil {
		return false
	}
	s.pinLocked(e)
	return true
}

// pinLocked moves e to the pinned class and, in a persistent store, logs
// the pin so that it survives a restart (s.walMu and s.mu held).
func (s *Store) pinLocked(e *traceEntry) {
	if e.pinned {
		return
	}
	e.pinned = true
	s.reclassify(e)
	if s.wal == nil || s.wal.f == nil {
		return
	}
	if err := s.logPin(e.id); err != nil {
		s.m.persistErrors.Inc()
		return
	}
	s.noteSegment(e, s.wal.cur)
}
