package tracestore

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vantage-gateway/vantage/internal/clock"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestStore(t *testing.T, o Options) (*Store, *clock.Fake) {
	t.Helper()
	fc := clock.NewFake(t0)
	if o.Clock == nil {
		o.Clock = fc
	}
	// Every test overwrites the gateway batches' arenas once they are
	// stored, so that a string the store kept aliasing one reads wrong.
	o.poisonArenas = true
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, fc
}

func tid(n uint64) TraceID {
	var id TraceID
	binary.BigEndian.PutUint64(id[8:], n)
	id[0] = 0xab
	return id
}

func sid(n uint64) SpanID {
	var id SpanID
	binary.BigEndian.PutUint64(id[:], n)
	return id
}

// spanOpts shape a test span.
type spanOpts struct {
	service, name string
	parent        uint64
	dur           time.Duration
	err           bool
	status        int
	retried       bool
	route         string
	attrs         []KeyValue
	start         time.Time
}

// put writes one span of trace n (span id n*100+k) synchronously.
func put(s *Store, n, k uint64, o spanOpts) {
	if o.service == "" {
		o.service = "svc"
	}
	if o.name == "" {
		o.name = "GET /x"
	}
	if o.dur == 0 {
		o.dur = 10 * time.Millisecond
	}
	if o.start.IsZero() {
		o.start = t0
	}
	sp := Span{
		TraceID: tid(n), SpanID: sid(n*100 + k), Name: o.name, Kind: KindServer,
		Start: o.start, End: o.start.Add(o.dur), Attributes: o.attrs,
	}
	if o.parent != 0 {
		sp.ParentSpanID = sid(n*100 + o.parent)
		sp.Kind = KindClient
	}
	if o.err {
		sp.StatusCode = StatusError
	}
	if o.status != 0 {
		sp.Attributes = append(sp.Attributes, Int(keyHTTPStatus, int64(o.status)))
	}
	if o.route != "" {
		sp.Attributes = append(sp.Attributes, String(keyHTTPRoute, o.route))
	}
	if o.retried {
		sp.Events = append(sp.Events, Event{Time: o.start.Add(time.Millisecond), Name: "retry", Attributes: []KeyValue{String("vantage.reason", "status_503")}})
	}
	b := s.NewBatch(Resource{ServiceName: o.service})
	b.AddSpan(&sp)
	s.Write(b)
}

func has(s *Store, n uint64) bool {
	_, ok := s.GetTrace(tid(n), false)
	return ok
}

func TestBudgetEvictsOldestOrdinaryFirst(t *testing.T) {
	s, _ := newTestStore(t, Options{Budget: MinBudget})
	// An error trace first, then many ordinary ones: the error trace
	// survives while the oldest ordinary ones go.
	put(s, 1, 1, spanOpts{err: true, status: 500})
	pad := strings.Repeat("x", 1000)
	for n := uint64(2); n < 3000; n++ {
		put(s, n, 1, spanOpts{attrs: []KeyValue{String("pad", pad)}})
	}
	st := s.Stats()
	if st.Bytes > st.Budget {
		t.Fatalf("bytes %d over budget %d", st.Bytes, st.Budget)
	}
	if !has(s, 1) {
		t.Fatal("error trace evicted before ordinary ones")
	}
	if has(s, 2) {
		t.Fatal("oldest ordinary trace still stored")
	}
	if !has(s, 2999) {
		t.Fatal("newest ordinary trace not stored")
	}
	// Ordinary traces may use the room the other classes leave.
	if st.ClassBytes[ClassOrdinary] < st.Budget/2 {
		t.Fatalf("ordinary holds %d of %d: unused shares are not lent", st.ClassBytes[ClassOrdinary], st.Budget)
	}
	if got := testutil.ToFloat64(s.m.evictions[evictBudget][ClassOrdinary]); got == 0 {
		t.Fatal("ordinary evictions not counted")
	}
	if got := testutil.ToFloat64(s.m.evictions[evictBudget][ClassError]); got != 0 {
		t.Fatalf("error evictions = %v", got)
	}
}

func TestClassSharesBoundEachClass(t *testing.T) {
	// Equal shares of error and ordinary; fill with errors only, then add
	// ordinary traces: errors beyond their share go before ordinary ones
	// under their share.
	s, _ := newTestStore(t, Options{Budget: MinBudget, Shares: map[Class]float64{ClassError: 1, ClassOrdinary: 1}})
	pad := strings.Repeat("y", 1000)
	n := uint64(1)
	for ; n < 2000; n++ {
		put(s, n, 1, spanOpts{err: true, attrs: []KeyValue{String("pad", pad)}})
	}
	// (What the classes do not hold is the indexes': posting lists keep
	// room for about half as many postings again as they hold.)
	if st := s.Stats(); st.ClassBytes[ClassError] < st.Budget*85/100 {
		t.Fatalf("alone, errors should fill the budget: %d of %d", st.ClassBytes[ClassError], st.Budget)
	}
	firstOrdinary := n
	for ; n < 4000; n++ {
		put(s, n, 1, spanOpts{attrs: []KeyValue{String("pad", pad)}})
	}
	st := s.Stats()
	// The indexes' lists and the catalogues are the store's, in no class:
	// the classes split what is left.
	half := (st.ClassBytes[ClassError] + st.ClassBytes[ClassOrdinary]) / 2
	if half < st.Budget*4/10 {
		t.Fatalf("the classes hold %d of %d bytes", 2*half, st.Budget)
	}
	for _, c := range []Class{ClassError, ClassOrdinary} {
		if d := st.ClassBytes[c] - half; d > half/10 || d < -half/10 {
			t.Errorf("class %s holds %d bytes, want about %d", c, st.ClassBytes[c], half)
		}
	}
	if has(s, 1) {
		t.Error("oldest error trace kept although errors are over their share")
	}
	if !has(s, n-1) || !has(s, firstOrdinary-1) {
		t.Error("recent traces of a class within its share were evicted")
	}
}

func TestRetentionClasses(t *testing.T) {
	s, _ := newTestStore(t, Options{SlowThreshold: time.Second})
	put(s, 1, 1, spanOpts{})
	put(s, 2, 1, spanOpts{err: true})
	put(s, 3, 1, spanOpts{dur: 2 * time.Second})
	put(s, 4, 1, spanOpts{retried: true})
	put(s, 5, 1, spanOpts{attrs: []KeyValue{Int(keyResendCount, 1)}, parent: 9})
	put(s, 6, 1, spanOpts{})
	if !s.Pin(tid(6)) {
		t.Fatal("pin: not found")
	}
	want := map[uint64]Class{1: ClassOrdinary, 2: ClassError, 3: ClassSlow, 4: ClassRetried, 5: ClassRetried, 6: ClassPinned}
	for n, c := range want {
		tr, ok := s.GetTrace(tid(n), false)
		if !ok {
			t.Fatalf("trace %d missing", n)
		}
		if tr.Class != c {
			t.Errorf("trace %d: class %s, want %s", n, tr.Class, c)
		}
	}
	// Opening a trace pins it.
	tr, _ := s.GetTrace(tid(1), true)
	if tr.Class != ClassPinned {
		t.Errorf("opened trace: class %s", tr.Class)
	}
	// A later error span upgrades a trace.
	put(s, 4, 2, spanOpts{err: true, parent: 1})
	if tr, _ := s.GetTrace(tid(4), false); tr.Class != ClassError {
		t.Errorf("trace with a later error span: class %s", tr.Class)
	}
}

func TestSlowByRouteP99(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	for n := uint64(1); n <= 200; n++ {
		put(s, n, 1, spanOpts{dur: time.Duration(10+n%7) * time.Millisecond})
	}
	put(s, 1000, 1, spanOpts{dur: 80 * time.Millisecond})
	if tr, _ := s.GetTrace(tid(1000), false); tr.Class != ClassSlow {
		t.Fatalf("a span far above its operation's p99: class %s", tr.Class)
	}
	if tr, _ := s.GetTrace(tid(199), false); tr.Class != ClassOrdinary {
		t.Fatalf("a usual span: class %s", tr.Class)
	}
}

// TestP99RingMatchesSort checks the window's p99 against the sorted
// window it is defined by, over windows filling and wrapping, with ties.
func TestP99RingMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 50 {
		var r p99Ring
		var all []time.Duration
		for i := range 1000 {
			d := time.Duration(rng.IntN(1 + run*run))
			if run%5 == 0 && i%97 == 0 {
				d = time.Duration(1e9 + rng.IntN(3)) // spikes and ties at the top
			}
			r.observe(d)
			all = append(all, d)
			if r.tick != 0 || r.n < p99MinSamples {
				continue
			}
			w := slices.Clone(all[max(0, len(all)-p99Window):])
			slices.Sort(w)
			if want := w[(len(w)*99+99)/100-1]; r.p99 != want {
				t.Fatalf("run %d, sample %d: p99 %v, sorted window gives %v", run, i, r.p99, want)
			}
		}
	}
}

func TestMaxAge(t *testing.T) {
	s, fc := newTestStore(t, Options{MaxAge: time.Minute})
	put(s, 1, 1, spanOpts{err: true})
	fc.Advance(30 * time.Second)
	put(s, 2, 1, spanOpts{})
	fc.Advance(31 * time.Second)
	put(s, 3, 1, spanOpts{})
	if has(s, 1) {
		t.Error("trace older than max_age still stored")
	}
	if !has(s, 2) || !has(s, 3) {
		t.Error("young traces evicted")
	}
	if got := testutil.ToFloat64(s.m.evictions[evictAge][ClassError]); got != 1 {
		t.Errorf("age evictions of class error = %v", got)
	}
	// The periodic sweep, without new spans.
	fc.Advance(2 * time.Minute)
	s.mu.Lock()
	s.expireLocked(fc.Now().UnixNano())
	s.mu.Unlock()
	if st := s.Stats(); st.Traces != 0 {
		t.Errorf("%d traces left after max_age", st.Traces)
	}
}

// TestMaxAgeSweepsOncePerSecond checks that the writer walks the stored
// traces for MaxAge at most once per second of clock time, not after
// every batch.
func TestMaxAgeSweepsOncePerSecond(t *testing.T) {
	s, fc := newTestStore(t, Options{MaxAge: time.Minute})
	put(s, 1, 1, spanOpts{}) // swept at t0
	fc.Advance(500 * time.Millisecond)
	put(s, 2, 1, spanOpts{}) // not swept: half a second after the last
	fc.Advance(59700 * time.Millisecond)
	put(s, 3, 1, spanOpts{}) // swept at t0+60.2s: trace 1 is older than a minute
	if has(s, 1) || !has(s, 2) {
		t.Fatalf("after the sweep at 60.2 s: trace 1 stored %v, trace 2 stored %v", has(s, 1), has(s, 2))
	}
	fc.Advance(400 * time.Millisecond)
	put(s, 4, 1, spanOpts{}) // 0.4 s after the last sweep: none, though trace 2 is 60.1 s old
	if !has(s, 2) {
		t.Fatal("a batch 0.4 s after the last sweep swept again")
	}
	fc.Advance(700 * time.Millisecond)
	put(s, 5, 1, spanOpts{}) // 1.1 s after the last sweep
	if has(s, 2) || !has(s, 5) {
		t.Fatalf("after the sweep at 61.3 s: trace 2 stored %v, trace 5 stored %v", has(s, 2), has(s, 5))
	}
}

func TestIndexesAndSearch(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	// trace 1: gateway server span + client span, upstream shop's span.
	put(s, 1, 1, spanOpts{service: "vantage", name: "GET /cart", route: "/cart", status: 200, dur: 30 * time.Millisecond})
	put(s, 1, 2, spanOpts{service: "vantage", name: "GET shop", parent: 1, status: 200})
	put(s, 1, 3, spanOpts{service: "shop", name: "cart.load", parent: 2, attrs: []KeyValue{String("user", "ann")}})
	// trace 2: a 503 with an error kind.
	put(s, 2, 1, spanOpts{service: "vantage", name: "GET /pay", route: "/pay", status: 503, err: true,
		attrs: []KeyValue{String(keyErrorKind, "upstream_timeout")}, dur: 2 * time.Second})
	// trace 3: another service entirely.
	put(s, 3, 1, spanOpts{service: "billing", name: "charge", start: t0.Add(time.Hour)})

	ids := func(q Query) []uint64 {
		var out []uint64
		for _, sum := range s.Search(q) {
			out = append(out, binary.BigEndian.Uint64(sum.TraceID[8:]))
		}
		return out
	}
	cases := []struct {
		name string
		q    Query
		want string
	}{
		{"all, newest first", Query{}, "[3 2 1]"},
		{"service", Query{Service: "shop"}, "[1]"},
		{"service+operation", Query{Service: "vantage", Operation: "GET /pay"}, "[2]"},
		{"unknown service", Query{Service: "nope"}, "[]"},
		{"route", Query{Route: "/cart"}, "[1]"},
		{"status", Query{HTTPStatus: 503}, "[2]"},
		{"status class", Query{HTTPStatusClass: 2}, "[1]"},
		{"error", Query{Error: true}, "[2]"},
		{"error kind", Query{ErrorKind: "upstream_timeout"}, "[2]"},
		{"min duration", Query{MinDuration: time.Second}, "[2]"},
		{"max duration", Query{Service: "vantage", MaxDuration: 100 * time.Millisecond}, "[1]"},
		{"tag on the span", Query{Tags: map[string]string{"user": "ann"}}, "[1]"},
		{"tags on one span only", Query{Service: "vantage", Tags: map[string]string{"user": "ann"}}, "[]"},
		{"derived error tag", Query{Tags: map[string]string{"error": "true"}}, "[2]"},
		{"time range", Query{StartMin: t0.Add(30 * time.Minute)}, "[3]"},
		{"class", Query{Classes: []Class{ClassError}}, "[2]"},
		{"limit", Query{Limit: 1}, "[3]"},
	}
	for _, c := range cases {
		got := fmt.Sprint(ids(c.q))
		if got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}

	if got := fmt.Sprint(s.Services()); got != "[billing shop vantage]" {
		t.Errorf("services: %s", got)
	}
	ops := s.Operations("vantage", KindServer, false)
	if fmt.Sprint(ops) != "[{GET /cart server} {GET /pay server}]" {
		t.Errorf("server operations: %v", ops)
	}
	if n := len(s.Operations("vantage", 0, true)); n != 3 {
		t.Errorf("all operations: %d", n)
	}

	sum := s.Search(Query{Service: "shop"})[0]
	if sum.RootService != "vantage" || sum.RootName != "GET /cart" || sum.Route != "/cart" || sum.HTTPStatus != 200 ||
		sum.Spans != 3 || fmt.Sprint(sum.Services) != "[shop vantage]" || sum.Duration != 30*time.Millisecond {
		t.Errorf("summary: %+v", sum)
	}
}

func TestDependencies(t *testing.T) {
	s, fc := newTestStore(t, Options{})
	// The child arrives before its parent (as the gateway writes client
	// spans before the server span, and services export on their own).
	put(s, 1, 3, spanOpts{service: "shop", name: "cart.load", parent: 2})
	put(s, 1, 2, spanOpts{service: "vantage", name: "GET shop", parent: 1})
	put(s, 1, 1, spanOpts{service: "vantage", name: "GET /cart"})
	put(s, 1, 4, spanOpts{service: "db", name: "select", parent: 3})
	put(s, 2, 1, spanOpts{service: "vantage"})
	put(s, 2, 2, spanOpts{service: "shop", parent: 1})
	got := fmt.Sprint(s.Dependencies(fc.Now(), time.Hour))
	if got != "[{shop db 1} {vantage shop 2}]" {
		t.Errorf("dependencies: %s", got)
	}
	if got := s.Dependencies(fc.Now().Add(-2*time.Hour), time.Hour); len(got) != 0 {
		t.Errorf("dependencies outside the window: %v", got)
	}
}

func TestReadersGetDeepCopies(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	put(s, 1, 1, spanOpts{attrs: []KeyValue{String("k", "v"), {Key: "b", Type: TypeBinary, Bytes: []byte{1, 2}}}})
	a, _ := s.GetTrace(tid(1), false)
	a.Spans[0].Attributes[0].Str = "changed"
	a.Spans[0].Attributes[1].Bytes[0] = 9
	a.Spans[0].Name = "changed"
	b, _ := s.GetTrace(tid(1), false)
	if b.Spans[0].Attributes[0].Str != "v" || b.Spans[0].Attributes[1].Bytes[0] != 1 || b.Spans[0].Name != "GET /x" {
		t.Fatalf("a reader's change reached the store: %+v", b.Spans[0])
	}
}

func TestRoundTripEveryField(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	sp := Span{
		TraceID: tid(7), SpanID: sid(1), ParentSpanID: sid(2), TraceState: "k=v", Flags: 1,
		Name: "op", Kind: KindProducer, Start: t0, End: t0.Add(1500 * time.Microsecond),
		StatusCode: StatusError, StatusMessage: "boom",
		Attributes:        []KeyValue{String("s", "x"), Bool("b", true), Int("i", -42), Float("f", 2.5), {Key: "bin", Type: TypeBinary, Bytes: []byte("hi")}},
		Events:            []Event{{Time: t0.Add(time.Millisecond), Name: "exception", Attributes: []KeyValue{String("exception.message", "bad")}}},
		Links:             []Link{{TraceID: tid(8), SpanID: sid(3), TraceState: "a=b", Attributes: []KeyValue{Int("n", 1)}}},
		Scope:             Scope{Name: "lib", Version: "1.0"},
		DroppedAttributes: 1, DroppedEvents: 2, DroppedLinks: 3,
	}
	b := s.NewBatch(Resource{ServiceName: "svc", Attributes: []KeyValue{String("host.name", "h1")}})
	b.AddSpan(&sp)
	b.AddLog(&LogRecord{Time: t0, TraceID: tid(7), SpanID: sid(1), SeverityNumber: 17, SeverityText: "ERROR", Body: "failed", Attributes: []KeyValue{Int("n", 3)}})
	s.Write(b)
	tr, ok := s.GetTrace(tid(7), false)
	if !ok {
		t.Fatal("not stored")
	}
	got := tr.Spans[0]
	sp.Resource = Resource{ServiceName: "svc", Attributes: []KeyValue{String("host.name", "h1")}}
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", sp) {
		t.Errorf("span round trip:\n got %+v\nwant %+v", got, sp)
	}
	if len(tr.Logs) != 1 || tr.Logs[0].Body != "failed" || tr.Logs[0].Service != "svc" || tr.Logs[0].Attributes[0].Int != 3 {
		t.Errorf("log round trip: %+v", tr.Logs)
	}
}

func TestSubmitDropsWhenFull(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	fc := clock.NewFake(t0)
	s, err := New(Options{Clock: fc, QueueSize: 1, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	accepted, dropped := 0, 0
	for i := uint64(1); i <= 200; i++ {
		b := s.NewBatch(Resource{ServiceName: "svc"})
		b.AddSpan(&Span{TraceID: tid(i), SpanID: sid(1), Start: t0, End: t0})
		if s.Submit(b) {
			accepted++
		} else {
			dropped++
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Spans; got != int64(accepted) {
		t.Errorf("stored %d spans, accepted %d", got, accepted)
	}
	if got := testutil.ToFloat64(s.m.spansDropped[dropQueueFull]); int(got) != dropped {
		t.Errorf("dropped counter %v, dropped %d", got, dropped)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
		t.Errorf("metrics: %d, %v", n, err)
	}
}

func TestDuplicateSpansAndTraceCap(t *testing.T) {
	s, _ := newTestStore(t, Options{MaxSpansPerTrace: 100})
	for k := uint64(1); k <= 150; k++ {
		put(s, 1, k, spanOpts{parent: 1})
	}
	put(s, 1, 5, spanOpts{parent: 1})
	tr, _ := s.GetTrace(tid(1), false)
	if len(tr.Spans) != 100 {
		t.Errorf("%d spans stored, cap 100", len(tr.Spans))
	}
	if got := testutil.ToFloat64(s.m.spansDropped[dropTooManySpans]); got != 51 {
		t.Errorf("trace_full drops %v", got)
	}
}

// TestBytesPerSpan measures the store's accounting of a typical gateway
// SERVER span (about 25 attributes) and reports it.
func TestBytesPerSpan(t *testing.T) {
	for _, index := range []bool{false, true} {
		s, _ := newTestStore(t, Options{Budget: 1 << 30, noTagIndex: !index})
		const n = 2000
		for i := uint64(1); i <= n; i++ {
			put(s, i, 1, spanOpts{service: "vantage", name: "GET /users/{id}", route: "/users/{id}", status: 200, attrs: gatewayAttrs(i)})
		}
		st := s.Stats()
		per := float64(st.Bytes) / n
		t.Logf("bytes per stored span (one span per trace, %d attributes), tag index %v: %.0f", len(gatewayAttrs(1))+2, index, per)
		if per > 2048 {
			t.Errorf("%.0f bytes per span: the compact model is not compact", per)
		}
	}
}

func gatewayAttrs(i uint64) []KeyValue {
	return []KeyValue{
		String("http.request.method", "GET"), String("url.path", fmt.Sprintf("/users/%d", i)),
		String("url.scheme", "http"), String("server.address", "api.example.com"), Int("server.port", 8080),
		String("network.peer.address", "10.0.0.7"), Int("network.peer.port", 50000+int64(i%1000)),
		String("client.address", "10.0.0.7"), String("network.protocol.version", "1.1"),
		String("user_agent.original", "curl/8.5.0"), Int("http.response.body.size", 512),
		String("vantage.listener", "public"), String("vantage.route", "users"), String("vantage.service", "users"),
		String("vantage.upstream", "10.0.1.4:8080"), String("vantage.sampling.decision", "ratio"),
	}
}

// TestLogsSize checks the reservation for a starting trace's log records:
// found where the last one ended, several of one trace together, around
// the end of the batch, and nothing (with the cursor kept) for a trace
// whose records are not in the batch or lie beyond the records compared.
func TestLogsSize(t *testing.T) {
	id := func(b byte) TraceID { return TraceID{1, b} }
	rec := func(b byte, body string) logIn {
		return logIn{traceID: id(b), rec: logRec{sevText: "INFO", body: body}}
	}
	logs := []logIn{rec(1, "a"), rec(1, "bb"), rec(2, "ccc"), rec(3, "dddd")}
	at := 0
	for _, c := range []struct {
		id     byte
		n, at  int
		reason string
	}{
		{1, 4 + 1 + 4 + 2, 2, "two records of trace 1, at the cursor"},
		{9, 0, 2, "no record: the cursor stays"},
		{3, 4 + 4, 4, "one record past the cursor"},
		{2, 4 + 3, 3, "around the end of the batch"},
	} {
		if n := logsSize(logs, &at, id(c.id)); n != c.n || at != c.at {
			t.Errorf("%s: logsSize = %d, cursor %d; want %d, cursor %d", c.reason, n, at, c.n, c.at)
		}
	}
	// A record more than logScan places past the cursor is not looked for.
	many := make([]logIn, logScan+1)
	for i := range many {
		many[i] = rec(byte(10+i), "x")
	}
	at = 0
	if n := logsSize(many, &at, id(byte(10+logScan))); n != 0 || at != 0 {
		t.Errorf("record beyond the window: logsSize = %d, cursor %d; want 0, 0", n, at)
	}
	if n := logsSize(many, &at, id(byte(10+logScan-1))); n != 4+1 || at != logScan {
		t.Errorf("last record in the window: logsSize = %d, cursor %d; want 5, %d", n, at, logScan)
	}
	if n := logsSize(nil, &at, id(1)); n != 0 {
		t.Errorf("no logs: logsSize = %d", n)
	}
}
