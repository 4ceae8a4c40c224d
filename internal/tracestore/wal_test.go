package tracestore

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// openPersistent opens a store on dir; the caller closes it.
func openPersistent(t *testing.T, dir string, o Options) *Store {
	t.Helper()
	o.DataDir = dir
	if o.SyncInterval == 0 {
		o.SyncInterval = time.Hour // the tests sync and compact by hand
	}
	s, _ := newTestStore(t, o)
	return s
}

// fillVaried writes traces 1..n with errors, retries, routes, several
// services, logs and every attribute type.
func fillVaried(s *Store, n uint64) {
	for i := uint64(1); i <= n; i++ {
		put(s, i, 1, spanOpts{route: fmt.Sprintf("/r%d", i%3), status: 200 + int(i%4)*100, err: i%7 == 0, retried: i%5 == 0,
			attrs: []KeyValue{Bool("b", true), Float("f", 1.5), {Key: "bin", Type: TypeBinary, Bytes: []byte{1, 2}}, String(fmt.Sprintf("k%d", i%40), "v")}})
		put(s, i, 2, spanOpts{service: fmt.Sprintf("db%d", i%2), parent: 1, name: "query"})
		b := s.NewBatch(Resource{ServiceName: "svc", Attributes: []KeyValue{String("host.name", "h")}})
		b.AddLog(&LogRecord{Time: t0, TraceID: tid(i), SpanID: sid(i*100 + 1), SeverityNumber: 9, SeverityText: "INFO", Body: fmt.Sprintf("line %d", i), Attributes: []KeyValue{Int("n", int64(i))}})
		s.Write(b)
	}
}

func dump(t *testing.T, s *Store, n uint64) string {
	t.Helper()
	var b strings.Builder
	for i := uint64(1); i <= n; i++ {
		tr, ok := s.GetTrace(tid(i), false)
		if !ok {
			fmt.Fprintf(&b, "%d: missing\n", i)
			continue
		}
		fmt.Fprintf(&b, "%d: %+v\n", i, *tr)
	}
	return b.String()
}

func TestPersistReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := openPersistent(t, dir, Options{})
	fillVaried(s, 300)
	want := dump(t, s, 300)
	wantStats := s.Stats()
	wantSearch := s.Search(Query{Service: "db1", Limit: 1000})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	r := openPersistent(t, dir, Options{})
	if got := dump(t, r, 300); got != want {
		t.Fatalf("after reopening:\n%s\nwant\n%s", firstDiff(got, want), "")
	}
	st := r.Stats()
	if st.Traces != wantStats.Traces || st.Spans != wantStats.Spans || st.Logs != wantStats.Logs || st.ClassTraces != wantStats.ClassTraces {
		t.Fatalf("stats %+v, want %+v", st, wantStats)
	}
	if got := r.Search(Query{Service: "db1", Limit: 1000}); len(got) != len(wantSearch) || len(got) == 0 {
		t.Fatalf("service search finds %d, want %d", len(got), len(wantSearch))
	}
	if got := testutil.ToFloat64(r.m.tornRecords); got != 0 {
		t.Fatalf("%v torn records after a clean close", got)
	}
	// More writes after reopening go to a new segment and survive too.
	put(r, 1000, 1, spanOpts{})
	r.Close()
	r2 := openPersistent(t, dir, Options{})
	if !has(r2, 1000) || !has(r2, 1) {
		t.Fatal("traces written after a reopen are lost")
	}
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return "got  " + g[i] + "\nwant " + w[i]
		}
	}
	return fmt.Sprintf("%d lines vs %d", len(g), len(w))
}

func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments: %v %v", segs, err)
	}
	return filepath.Join(dir, segName(segs[len(segs)-1]))
}

func TestPersistTornTailIsDropped(t *testing.T) {
	for _, tc := range []struct {
		name string
		tear func(t *testing.T, path string)
	}{
		{"short", func(t *testing.T, path string) {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()-3); err != nil {
				t.Fatal(err)
			}
		}},
		{"bad-crc", func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			b[len(b)-2] ^= 0xff
			os.WriteFile(path, b, 0o644)
		}},
		{"garbage-after", func(t *testing.T, path string) {
			f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte{0x10, 0, 0, 0, 1, 2})
			f.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openPersistent(t, dir, Options{})
			for i := uint64(1); i <= 50; i++ {
				put(s, i, 1, spanOpts{})
			}
			s.Close()
			path := lastSegment(t, dir)
			tc.tear(t, path)
			tornAt, _ := os.Stat(path)

			r := openPersistent(t, dir, Options{})
			lost := 0
			for i := uint64(1); i <= 49; i++ {
				if !has(r, i) {
					lost++
				}
			}
			if lost != 0 {
				t.Fatalf("%d of the 49 intact traces lost", lost)
			}
			if tc.name != "garbage-after" && has(r, 50) {
				t.Fatal("the torn record was stored")
			}
			if tc.name == "garbage-after" && !has(r, 50) {
				t.Fatal("the last intact record was dropped")
			}
			if got := testutil.ToFloat64(r.m.tornRecords); got != 1 {
				t.Fatalf("torn records counted %v, want 1", got)
			}
			if fi, _ := os.Stat(path); fi.Size() >= tornAt.Size() {
				t.Fatalf("torn segment not truncated: %d bytes", fi.Size())
			}
			r.Close()
			// The truncated log opens cleanly the next time.
			r2 := openPersistent(t, dir, Options{})
			if got := testutil.ToFloat64(r2.m.tornRecords); got != 0 || !has(r2, 49) {
				t.Fatalf("second reopen: torn %v, trace 49 kept %v", got, has(r2, 49))
			}
		})
	}
}

func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		fi, _ := e.Info()
		n += fi.Size()
	}
	return n
}

func TestPersistEvictionRemovesSegments(t *testing.T) {
	dir := t.TempDir()
	s := openPersistent(t, dir, Options{Budget: MinBudget, SegmentSize: 64 << 10})
	pad := strings.Repeat("x", 1000)
	// ~6 MB of ordinary traces through a 1 MiB budget.
	const n = 6000
	for i := uint64(1); i <= n; i++ {
		put(s, i, 1, spanOpts{attrs: []KeyValue{String("pad", pad)}})
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	disk := dirBytes(t, dir)
	if disk > 2*MinBudget {
		t.Fatalf("disk holds %d bytes for a budget of %d", disk, MinBudget)
	}
	if disk != s.DiskBytes() {
		t.Fatalf("DiskBytes %d, directory %d", s.DiskBytes(), disk)
	}
	held := s.Stats().Traces
	s.Close()
	r := openPersistent(t, dir, Options{Budget: MinBudget, SegmentSize: 64 << 10})
	if !has(r, n) || has(r, 1) {
		t.Fatal("reopened store lost the newest trace or kept the oldest")
	}
	if got := r.Stats().Traces; got < held*9/10 {
		t.Fatalf("reopened store holds %d traces, the closed one %d", got, held)
	}
	if st := r.Stats(); st.Bytes > st.Budget {
		t.Fatalf("reopened store over budget: %d > %d", st.Bytes, st.Budget)
	}
}

func TestPersistCompactionKeepsLongLivedTraces(t *testing.T) {
	dir := t.TempDir()
	o := Options{Budget: MinBudget, SegmentSize: 64 << 10, Shares: map[Class]float64{ClassError: 50, ClassOrdinary: 50}}
	s := openPersistent(t, dir, o)
	pad := strings.Repeat("x", 1000)
	// One error trace in every early segment keeps it alive while the
	// ordinary traces around it are evicted.
	const n = 8000
	for i := uint64(1); i <= n; i++ {
		put(s, i, 1, spanOpts{err: i%100 == 0 && i < 6000, attrs: []KeyValue{String("pad", pad)}})
		if i%500 == 0 {
			s.persistTick()
		}
	}
	s.persistTick()
	if disk := dirBytes(t, dir); disk > 2*MinBudget+64<<10 {
		t.Fatalf("disk holds %d bytes for a budget of %d", disk, MinBudget)
	}
	if got := testutil.ToFloat64(s.m.compactions); got == 0 {
		t.Fatal("no compaction ran")
	}
	for i := uint64(100); i < 6000; i += 100 {
		if !has(s, i) {
			t.Fatalf("error trace %d evicted", i)
		}
	}
	s.Close()
	r := openPersistent(t, dir, o)
	for i := uint64(100); i < 6000; i += 100 {
		if !has(r, i) {
			t.Fatalf("error trace %d lost by compaction", i)
		}
	}
	if !has(r, n) {
		t.Fatal("newest trace lost")
	}
}

func TestPersistBadDataDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := New(Options{DataDir: f}); err == nil || !strings.Contains(err.Error(), "data directory") {
		t.Fatalf("a file as data directory: %v", err)
	}
}

func classOf(t *testing.T, s *Store, n uint64) Class {
	t.Helper()
	tr, ok := s.GetTrace(tid(n), false)
	if !ok {
		t.Fatalf("trace %d missing", n)
	}
	return tr.Class
}

// TestPersistPinsSurviveReopen: a trace pinned (Pin, as archiving does)
// or opened (GetTrace with open) keeps the pinned class after a reopen,
// after compaction writes it again, and after a second reopen; traces
// that were not pinned keep their own class.
func TestPersistPinsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	o := Options{Budget: MinBudget, SegmentSize: 64 << 10, Shares: map[Class]float64{ClassPinned: 50, ClassOrdinary: 50}}
	s := openPersistent(t, dir, o)
	for n := uint64(1); n <= 10; n++ {
		put(s, n, 1, spanOpts{err: n == 4})
	}
	if !s.Pin(tid(3)) {
		t.Fatal("Pin(3) found nothing")
	}
	if _, ok := s.GetTrace(tid(5), true); !ok {
		t.Fatal("trace 5 missing")
	}
	s.Pin(tid(4)) // an error trace, pinned
	s.Close()

	r := openPersistent(t, dir, o)
	for n, want := range map[uint64]Class{3: ClassPinned, 4: ClassPinned, 5: ClassPinned, 1: ClassOrdinary, 6: ClassOrdinary} {
		if got := classOf(t, r, n); got != want {
			t.Errorf("after reopening, trace %d is %s, want %s", n, got, want)
		}
	}
	if got := r.Stats().ClassTraces[ClassPinned]; got != 3 {
		t.Errorf("%d pinned traces after reopening, want 3", got)
	}
	// Enough ordinary traces to evict the early ones and compact the
	// segments the pinned traces hold.
	pad := strings.Repeat("x", 1000)
	for n := uint64(100); n < 5000; n++ {
		put(r, n, 1, spanOpts{attrs: []KeyValue{String("pad", pad)}})
		if n%500 == 0 {
			r.persistTick()
		}
	}
	r.persistTick()
	// The segment that holds the pins is the oldest: compact it, so that
	// the pinned traces are written again at the head of the log.
	r.walMu.Lock()
	err := r.compactOldest()
	r.walMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(r.m.compactions); got == 0 {
		t.Fatal("no compaction ran")
	}
	if has(r, 1) {
		t.Fatal("the ordinary trace 1 should have been evicted")
	}
	r.Close()
	r2 := openPersistent(t, dir, o)
	for _, n := range []uint64{3, 4, 5} {
		if got := classOf(t, r2, n); got != ClassPinned {
			t.Errorf("after compaction and a reopen, trace %d is %s, want pinned", n, got)
		}
	}
}

// TestEntrySegmentsOutgrowTheEntry notes more log segments on a trace
// than its entry holds, so that they move to its extension, and checks
// the list and the segments' counts through a removal (as compaction
// does) and the trace's eviction.
func TestEntrySegmentsOutgrowTheEntry(t *testing.T) {
	s := openPersistent(t, t.TempDir(), Options{})
	put(s, 1, 1, spanOpts{})
	s.walMu.Lock()
	defer s.walMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.lookup(tid(1))
	if e == nil {
		t.Fatal("trace not stored")
	}
	base := slices.Clone(s.segsOf(e))
	want := slices.Clone(base)
	for seg := uint32(1000); seg < 1005; seg++ {
		s.noteSegment(e, seg)
		s.noteSegment(e, seg) // noted twice, counted once
		want = append(want, seg)
	}
	if got := s.segsOf(e); !slices.Equal(got, want) || e.ext&extSegs == 0 {
		t.Fatalf("segments %v (in the extension: %v), want %v", got, e.ext&extSegs != 0, want)
	}
	for seg := uint32(1000); seg < 1005; seg++ {
		if s.wal.live[seg] != 1 {
			t.Fatalf("segment %d counts %d traces, want 1", seg, s.wal.live[seg])
		}
	}
	segs := s.segsOf(e)
	i := slices.Index(segs, 1002)
	s.setSegs(e, slices.Delete(segs, i, i+1))
	want = slices.DeleteFunc(want, func(x uint32) bool { return x == 1002 })
	if got := s.segsOf(e); !slices.Equal(got, want) {
		t.Fatalf("after removing 1002: %v, want %v", got, want)
	}
	s.removeLocked(e, evictBudget)
	for _, seg := range []uint32{1000, 1001, 1003, 1004} {
		if s.wal.live[seg] != 0 || !slices.Contains(s.wal.dead, seg) {
			t.Errorf("segment %d counts %d traces after the eviction, dead %v", seg, s.wal.live[seg], s.wal.dead)
		}
	}
}
