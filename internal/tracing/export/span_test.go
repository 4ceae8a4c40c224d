package export

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestEncodedSpansMatchSDKSpans checks that spans encoded one by one with
// AppendSpan and sent as one resource's and scope's batch make the very
// request the exporters write for the same SDK spans.
func TestEncodedSpansMatchSDKSpans(t *testing.T) {
	for _, src := range []encodedSource{
		{res: resourceA, scope: scopeFull},
		{res: resourceB, scope: instrumentation.Scope{}},
		{res: nil, scope: scopeName},
	} {
		t.Run(fmt.Sprintf("%v/%q", src.res.Attributes(), src.scope.Name), func(t *testing.T) {
			var spans []sdktrace.ReadOnlySpan
			var encoded []byte
			for _, s := range append(variedSpans(), hugeSpan(3<<20)) {
				stub := tracetest.SpanStubFromReadOnlySpan(s)
				stub.Resource, stub.InstrumentationScope = src.res, src.scope
				// withScope: Snapshot would turn the zero scope into another.
				snap := withScope{stub.Snapshot(), src.scope}
				spans = append(spans, snap)
				d := spanData(snap)
				encoded = AppendSpan(encoded, &d)
			}
			var enc traceEncoder
			want := enc.appendTraceRequest(nil, spans)
			got := appendEncodedRequest(nil, src, encoded)
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded request differs from the SDK spans' (%d bytes, want %d)", len(got), len(want))
			}
			// And it is the request the official exporter sends.
			official := officialRequests(t, spans)
			if len(official) != 1 {
				t.Fatalf("official exporter sent %d requests", len(official))
			}
			assertSameAsOfficial(t, unmarshalRequest(t, got), official[0], linkTraceStates(t, spans))
		})
	}
	if b := appendEncodedRequest([]byte("x"), encodedSource{res: resourceA}, nil); string(b) != "x" {
		t.Errorf("no spans: got %q, want the buffer unchanged", b)
	}
}

// recordingExporter takes both kinds of batches, waiting for a token on
// gate before each (when gate is not nil), and records their requests.
type recordingExporter struct {
	gate chan struct{}

	mu       sync.Mutex
	sdkSizes []int
	requests [][]byte // the encoded batches' requests
}

func (r *recordingExporter) wait(ctx context.Context) error {
	if r.gate == nil {
		return nil
	}
	select {
	case <-r.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *recordingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := r.wait(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sdkSizes = append(r.sdkSizes, len(spans))
	return nil
}

func (r *recordingExporter) exportEncoded(ctx context.Context, src encodedSource, spans []byte) error {
	if err := r.wait(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, appendEncodedRequest(nil, src, spans))
	return nil
}

func (r *recordingExporter) Shutdown(context.Context) error { return nil }

// namesOf returns the names of the spans in an encoded request, in order.
func namesOf(t *testing.T, req []byte) []string {
	var names []string
	for _, rs := range unmarshalRequest(t, req).ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				names = append(names, s.Name)
			}
		}
	}
	return names
}

// named returns n spans named prefix0, prefix1, ..., encoded one after
// the other.
func named(prefix string, n int) []byte {
	var b []byte
	for i := range n {
		d := SpanData{
			Name:        fmt.Sprintf("%s%d", prefix, i),
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{byte(i + 1)}, TraceFlags: trace.FlagsSampled}),
			Start:       time.Unix(1, 0), End: time.Unix(2, 0),
			Attributes: []attribute.KeyValue{attribute.Int("i", i)},
		}
		b = AppendSpan(b, &d)
	}
	return b
}

func TestProcessorQueuesEncodedSpans(t *testing.T) {
	exp := &recordingExporter{gate: make(chan struct{})}
	res := resource.NewSchemaless(attribute.String("service.name", "gw"))
	scope := instrumentation.Scope{Name: "scope"}
	p := NewProcessor(exp, ProcessorOptions{Name: "enc", QueueSize: 4, BatchSize: 2, FlushInterval: time.Hour, Timeout: time.Hour, Resource: res, Scope: scope})
	if !p.TakesEncoded() {
		t.Fatal("TakesEncoded = false for an exporter that takes encoded spans")
	}
	// A full batch wakes the worker, which takes it and waits at the gate.
	p.EnqueueEncoded(named("a", 2), 2)
	deadline := time.Now().Add(5 * time.Second)
	for p.Len() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if p.Len() != 0 {
		t.Fatalf("the worker did not take the first batch: %d queued", p.Len())
	}
	// A request's spans are queued or dropped whole: b (3) and d (1) fill
	// the queue of 4, c (2) and then an SDK span find it full.
	p.EnqueueEncoded(named("b", 3), 3)
	p.EnqueueEncoded(named("d", 1), 1)
	p.EnqueueEncoded(named("c", 2), 2)
	p.OnEnd(span(1))
	if got := p.Len(); got != 4 {
		t.Errorf("Len = %d, want 4", got)
	}
	if got := p.Dropped(); got != 3 {
		t.Errorf("dropped %d, want 3", got)
	}
	close(exp.gate)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Batches of at most 2 spans, but never a request split: b goes alone.
	want := [][]string{{"a0", "a1"}, {"b0", "b1", "b2"}, {"d0"}}
	if len(exp.requests) != len(want) {
		t.Fatalf("%d requests, want %d", len(exp.requests), len(want))
	}
	for i, req := range exp.requests {
		if got := namesOf(t, req); fmt.Sprint(got) != fmt.Sprint(want[i]) {
			t.Errorf("request %d carries %v, want %v", i, got, want[i])
		}
		r := unmarshalRequest(t, req).ResourceSpans[0]
		if len(r.Resource.Attributes) != 1 || r.ScopeSpans[0].Scope.Name != "scope" {
			t.Errorf("request %d: resource %v, scope %v", i, r.Resource, r.ScopeSpans[0].Scope)
		}
	}
	if len(exp.sdkSizes) != 0 {
		t.Errorf("SDK batches %v, want none", exp.sdkSizes)
	}
	if got := p.Exported(); got != 6 {
		t.Errorf("exported %d, want 6", got)
	}
	p.EnqueueEncoded(named("e", 1), 1)
	if got := p.Dropped(); got != 4 {
		t.Errorf("after shutdown: dropped %d, want 4", got)
	}
}

func TestProcessorExportsBothKinds(t *testing.T) {
	exp := &recordingExporter{}
	p := NewProcessor(exp, ProcessorOptions{Name: "both", FlushInterval: time.Hour})
	p.OnEnd(span(1))
	p.EnqueueEncoded(named("e", 2), 2)
	p.OnEnd(span(2))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	exp.mu.Lock()
	if fmt.Sprint(exp.sdkSizes) != "[2]" || len(exp.requests) != 1 || fmt.Sprint(namesOf(t, exp.requests[0])) != "[e0 e1]" {
		t.Errorf("SDK batches %v, encoded requests %d, want [2] and one of e0, e1", exp.sdkSizes, len(exp.requests))
	}
	exp.mu.Unlock()
	if got := p.Exported(); got != 4 {
		t.Errorf("exported %d, want 4", got)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	sdkOnly := NewProcessor(&failingExporter{}, ProcessorOptions{})
	defer sdkOnly.Shutdown(ctx)
	if sdkOnly.TakesEncoded() {
		t.Error("TakesEncoded = true for an SDK-only exporter")
	}
	sdkOnly.EnqueueEncoded(named("f", 2), 2)
	if got := sdkOnly.Dropped(); got != 2 {
		t.Errorf("encoded spans given to an SDK-only exporter: dropped %d, want 2", got)
	}
}
