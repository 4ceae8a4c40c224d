package tracestore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantage-gateway/vantage/internal/memsize"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/tracing/export"
)

func TestSinkTakesGatewaySpansAndLogs(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	res := resource.NewSchemaless(attribute.String("service.name", "edge"), attribute.String("host.name", "h1"))
	k := s.NewSink(res, time.Second)
	tid := trace.TraceID{1, 2, 3}
	server := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	client := server.WithSpanID(trace.SpanID{2})
	spans := []export.SpanData{
		{
			SpanContext: client, Parent: server, Name: "GET shop", Kind: trace.SpanKindClient,
			Start: t0.Add(time.Millisecond), End: t0.Add(9 * time.Millisecond),
			Attributes: []attribute.KeyValue{attribute.Int("http.response.status_code", 503), attribute.Int("http.request.resend_count", 1)},
			Status:     sdktrace.Status{Code: codes.Error, Description: "status_503"},
		},
		{
			SpanContext: server, Name: "GET /cart", Kind: trace.SpanKindServer, Start: t0, End: t0.Add(10 * time.Millisecond),
			Attributes: []attribute.KeyValue{
				attribute.String("http.route", "/cart"), attribute.Int("http.response.status_code", 200),
				attribute.StringSlice("http.request.header.x-request-id", []string{"a", "b"}),
			},
			Events: []sdktrace.Event{{Name: "retry", Time: t0.Add(5 * time.Millisecond), Attributes: []attribute.KeyValue{attribute.String("vantage.reason", "status_503")}}},
		},
	}
	k.TakeSpans(res, instrumentation.Scope{Name: "vantage", Version: "1"}, spans)
	// The caller reuses its slices at once: the store must have copied.
	spans[1].Name = "reused"
	spans[1].Attributes[0] = attribute.String("reused", "x")

	rec := &observe.Record{Start: t0, End: t0.Add(10 * time.Millisecond), Status: 200}
	rec.Trace = observe.TraceContext{TraceID: tid, SpanID: trace.SpanID{1}, Sampled: true, Valid: true}
	if !k.WantsLog(rec) {
		t.Fatal("a sampled request's log line is not wanted")
	}
	line := []byte(`{"http.route":"/cart"}` + "\n")
	k.TakeLog(rec, line)
	line[2] = 'X'
	unsampled := &observe.Record{Start: t0, End: t0.Add(time.Millisecond), Status: 200}
	unsampled.Trace = observe.TraceContext{TraceID: tid, Valid: true}
	if k.WantsLog(unsampled) {
		t.Error("the log line of a fast, successful, unsampled request is wanted")
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	tr, ok := s.GetTrace(TraceID(tid), false)
	if !ok {
		t.Fatal("trace not stored")
	}
	if len(tr.Spans) != 2 || tr.Class != ClassError {
		t.Fatalf("spans %d, class %s", len(tr.Spans), tr.Class)
	}
	sv := tr.Spans[1]
	if sv.Name != "GET /cart" || sv.Kind != KindServer || sv.Resource.ServiceName != "edge" || sv.Scope.Name != "vantage" || sv.Flags != 1 {
		t.Errorf("server span: %+v", sv)
	}
	if kv, _ := sv.Attr("http.request.header.x-request-id"); kv.Str != `["a","b"]` {
		t.Errorf("string slice attribute: %+v", kv)
	}
	if len(sv.Events) != 1 || !sv.Events[0].Time.Equal(t0.Add(5*time.Millisecond)) {
		t.Errorf("events: %+v", sv.Events)
	}
	cl := tr.Spans[0]
	if cl.ParentSpanID != SpanID(server.SpanID()) || cl.StatusCode != StatusError || cl.StatusMessage != "status_503" {
		t.Errorf("client span: %+v", cl)
	}
	if got := s.Search(Query{Route: "/cart"}); len(got) != 1 {
		t.Errorf("route index: %v", got)
	}
	if len(tr.Logs) != 1 || tr.Logs[0].Body != `{"http.route":"/cart"}` || tr.Logs[0].Service != "edge" || tr.Logs[0].SeverityText != "INFO" {
		t.Errorf("logs: %+v", tr.Logs)
	}
}

// TestSinkArenaKeepsEveryBlob hands the sink spans whose blobs fill the
// batch's arena chunks, outgrow the room left in one and outgrow a whole
// chunk, and checks that every span reads back as written: a blob encoded
// in place must not be overwritten by the next, and one moved out of the
// arena must be kept whole.
func TestSinkArenaKeepsEveryBlob(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	res := resource.NewSchemaless(attribute.String("service.name", "edge"))
	k := s.NewSink(res, 0)
	sizes := []int{10, 300, 900, 2000, 5, arenaChunk + 100, 700, 40, 3 * arenaMinRoom, 1}
	value := func(n, size int) string {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte('a' + (n+i)%26)
		}
		return string(b)
	}
	n := 0
	for range 20 {
		var spans []export.SpanData
		for range 3 {
			n++
			size := sizes[n%len(sizes)]
			sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9, byte(n >> 8), byte(n)}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
			spans = append(spans, export.SpanData{
				SpanContext: sc, Name: "GET", Kind: trace.SpanKindServer, Start: t0, End: t0.Add(time.Millisecond),
				Attributes: []attribute.KeyValue{attribute.String("v", value(n, size)), attribute.Int("n", n)},
			})
		}
		k.TakeSpans(res, instrumentation.Scope{Name: "vantage"}, spans)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		tr, ok := s.GetTrace(TraceID(trace.TraceID{9, byte(i >> 8), byte(i)}), false)
		if !ok || len(tr.Spans) != 1 {
			t.Fatalf("span %d not stored", i)
		}
		v, _ := tr.Spans[0].Attr("v")
		nv, _ := tr.Spans[0].Attr("n")
		if v.Str != value(i, sizes[i%len(sizes)]) || nv.Int != int64(i) {
			t.Fatalf("span %d reads back as v of %d bytes, n %d", i, len(v.Str), nv.Int)
		}
	}
}

// TestSinkReusesArenaChunks stores gateway traces (spans and access-log
// records) in many pending batches and checks that the batches' arena
// chunks go back to the pool and are reused, not made anew for each batch,
// and that nothing the store kept aliases a chunk: the test store
// overwrites every chunk it gets back (Options.poisonArenas), so a name,
// route, tag value or log body that still pointed into one would read
// back wrong.
func TestSinkReusesArenaChunks(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	made := 0
	s.arenas.New = func() any { made++; return new(arenaBlock) }
	batches := 0
	s.pendBatches.New = func() any { batches++; return newPendingBatch() }
	res := resource.NewSchemaless(attribute.String("service.name", "edge"))
	k := s.NewSink(res, 0)
	const n = 400
	line := func(i int) string {
		return fmt.Sprintf(`{"n":%d,"route":"/r%d","pad":"%s"}`, i, i%7, strings.Repeat("x", 500+i%300))
	}
	for i := 1; i <= n; i++ {
		tid := trace.TraceID{5, byte(i >> 8), byte(i)}
		server := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
		k.TakeSpans(res, instrumentation.Scope{Name: "vantage"}, []export.SpanData{{
			SpanContext: server, Name: fmt.Sprintf("GET /r%d", i%7), Kind: trace.SpanKindServer, Start: t0, End: t0.Add(time.Millisecond),
			Attributes: []attribute.KeyValue{
				attribute.String("http.route", fmt.Sprintf("/r%d", i%7)), attribute.String("tenant", fmt.Sprintf("t%d", i%50)),
				attribute.String(fmt.Sprintf("k%d", i%5), "v"), attribute.Int("http.response.status_code", 200),
			},
		}})
		rec := &observe.Record{Start: t0, End: t0.Add(time.Millisecond), Status: 200}
		rec.Trace = observe.TraceContext{TraceID: tid, SpanID: trace.SpanID{1}, Sampled: true, Valid: true}
		k.TakeLog(rec, []byte(line(i)+"\n"))
		if i%10 == 0 {
			if err := s.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Each of the 40 batches (10 traces of about 1 KB) takes a chunk of
	// 16 KiB: 40 made if none were reused. Reused, a few are made: the
	// pool may lose its chunks to a collection, and under the race
	// detector sync.Pool drops a quarter of what it is given on purpose.
	if made > 20 {
		t.Errorf("%d arena chunks made for %d pending batches: they are not reused", made, n/10)
	}
	// So are the batches themselves, once the writer has stored them.
	if batches > 20 {
		t.Errorf("%d pending batches made for %d: they are not reused", batches, n/10)
	}
	for i := 1; i <= n; i++ {
		tr, ok := s.GetTrace(TraceID(trace.TraceID{5, byte(i >> 8), byte(i)}), false)
		if !ok || len(tr.Spans) != 1 || len(tr.Logs) != 1 {
			t.Fatalf("trace %d not stored whole", i)
		}
		sp := tr.Spans[0]
		r, _ := sp.Attr("http.route")
		tn, _ := sp.Attr("tenant")
		if sp.Name != fmt.Sprintf("GET /r%d", i%7) || r.Str != fmt.Sprintf("/r%d", i%7) || tn.Str != fmt.Sprintf("t%d", i%50) {
			t.Fatalf("trace %d reads back as %q route %q tenant %q", i, sp.Name, r.Str, tn.Str)
		}
		if tr.Logs[0].Body != line(i) {
			t.Fatalf("trace %d's log record reads back as %.60q", i, tr.Logs[0].Body)
		}
	}
	for r := range 7 {
		if got := s.Search(Query{Route: fmt.Sprintf("/r%d", r), Limit: MaxLimit}); len(got) != len(slices.DeleteFunc(seq(n), func(i int) bool { return i%7 != r })) {
			t.Errorf("route /r%d finds %d traces", r, len(got))
		}
	}
	if got := s.Search(Query{Tags: map[string]string{"tenant": "t7"}, Limit: MaxLimit}); len(got) != n/50 {
		t.Errorf("tag tenant=t7 finds %d traces, want %d", len(got), n/50)
	}
	if got := s.Search(Query{Tags: map[string]string{"k3": "v"}, Limit: MaxLimit}); len(got) != n/5 {
		t.Errorf("tag k3=v finds %d traces, want %d", len(got), n/5)
	}
	ops := s.Operations("edge", 0, true)
	if len(ops) != 7 {
		t.Errorf("operations: %+v", ops)
	}
	for _, op := range ops {
		if !strings.HasPrefix(op.Name, "GET /r") {
			t.Errorf("operation %q", op.Name)
		}
	}
}

// seq returns 1, ..., n.
func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i + 1
	}
	return s
}

// TestSinkReservesForTheAccessLog checks that a gateway trace's buffer is
// made once, with room for its spans and its access-log record, which
// come in the same pending batch: not made for the spans and then grown
// (a second allocation and a copy) when the record arrives.
func TestSinkReservesForTheAccessLog(t *testing.T) {
	s, _ := newTestStore(t, Options{})
	res := resource.NewSchemaless(attribute.String("service.name", "edge"))
	k := s.NewSink(res, 0)
	tid := trace.TraceID{7, 7}
	server := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	spans := []export.SpanData{
		{SpanContext: server.WithSpanID(trace.SpanID{2}), Parent: server, Name: "GET shop", Kind: trace.SpanKindClient, Start: t0, End: t0.Add(time.Millisecond),
			Attributes: []attribute.KeyValue{attribute.String("url.full", "http://shop/cart?"+strings.Repeat("q", 1500))}},
		{SpanContext: server, Name: "GET /cart", Kind: trace.SpanKindServer, Start: t0, End: t0.Add(2 * time.Millisecond),
			Attributes: []attribute.KeyValue{attribute.String("http.route", "/cart")}},
	}
	k.TakeSpans(res, instrumentation.Scope{Name: "vantage"}, spans)
	rec := &observe.Record{Start: t0, End: t0.Add(2 * time.Millisecond), Status: 200}
	rec.Trace = observe.TraceContext{TraceID: tid, SpanID: trace.SpanID{1}, Sampled: true, Valid: true}
	k.TakeLog(rec, []byte(`{"http.route":"/cart","user_agent":"`+strings.Repeat("a", 400)+`"}`+"\n"))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.lookup(TraceID(tid))
	if e == nil || len(s.spansOf(e)) != 2 || len(s.logsOf(e)) != 1 {
		t.Fatal("trace not stored whole")
	}
	if e.ext&extBuf != 0 || s.exts[e.slot] != nil {
		t.Fatalf("the trace's buffer of %d bytes outgrew its block's room of %d: it was not made with room for the record", e.bufLen, e.room)
	}
	if want := memsize.Alloc(int64(entryHead) + int64(e.bufLen)); e.blockBytes() != want {
		t.Fatalf("block of %d bytes for a buffer of %d, want %d", e.blockBytes(), e.bufLen, want)
	}
}
