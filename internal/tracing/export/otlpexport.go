package export

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// This file holds what the OTLP/HTTP and OTLP/gRPC span exporters share:
// their life cycle, the scratch space they encode into, and the retry
// policy of the OTLP specification.

// userAgent identifies the exporters to receivers.
const userAgent = "vantage-otlp-exporter"

// writeBufferSize is the write buffer of an OTLP/HTTP exporter's
// connections: room for a default batch of 512 gateway spans, so that a
// request goes out in one write instead of net/http's 4 KiB and 32 KiB
// pieces. Every write to a receiver costs a system call and a wake-up of the
// receiving side; on loopback this cut the exporter's write CPU by a third.
const writeBufferSize = 512 << 10

// Retry policy: exponential backoff from retryInitialBackoff, growing by
// retryMultiplier up to retryMaxBackoff, each wait randomized by ±50%.
// These are the values NewExporter gave otlptrace's retry configuration
// (whose backoff library multiplies by 1.5 with ±50% jitter).
const (
	retryInitialBackoff = 100 * time.Millisecond
	retryMaxBackoff     = time.Second
	retryMultiplier     = 1.5
)

// Scratch space kept between exports (see scratchPool).
const (
	maxIdleScratch  = 4        // idle scratch spaces kept
	maxKeptScratch  = 16 << 20 // larger buffers are left to the collector
	maxResponseBody = 64 << 10 // response bytes read
)

// errShutdown is returned by ExportSpans after Shutdown.
var errShutdown = errors.New("otlp exporter is shut down")

// partialSuccessError reports a request the receiver accepted only in
// part, as an OTLP partial_success.
type partialSuccessError struct {
	rejected int64  // spans rejected
	message  string // the receiver's explanation, maybe empty
}

func (e *partialSuccessError) Error() string {
	msg := e.message
	if msg == "" {
		msg = "no message"
	}
	return fmt.Sprintf("OTLP partial success: %d spans rejected: %s", e.rejected, msg)
}

// partialSuccess returns the error of an ExportTraceServiceResponse: nil
// when it has no partial_success, or one that says nothing was rejected.
func partialSuccess(resp []byte) error {
	rejected, msg, err := parseExportResponse(resp)
	if err != nil {
		return err
	}
	if rejected == 0 && msg == "" {
		return nil
	}
	return &partialSuccessError{rejected: rejected, message: msg}
}

// exportScratch is the memory one export works in: the encoder, the
// encoded request and, for OTLP/HTTP, its gzipped form and the response.
type exportScratch struct {
	enc  traceEncoder
	body []byte       // the encoded ExportTraceServiceRequest
	zw   *gzip.Writer // compresses body into zbuf; nil until first used
	zbuf bytes.Buffer
	resp bytes.Buffer // the response body
}

// gzip returns body compressed with gzip, in s's buffer.
func (s *exportScratch) gzip(body []byte) ([]byte, error) {
	s.zbuf.Reset()
	if s.zw == nil {
		s.zw = gzip.NewWriter(&s.zbuf)
	} else {
		s.zw.Reset(&s.zbuf)
	}
	if _, err := s.zw.Write(body); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := s.zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return s.zbuf.Bytes(), nil
}

// size returns the memory s's buffers hold.
func (s *exportScratch) size() int { return cap(s.body) + s.zbuf.Cap() + s.resp.Cap() }

// exporterCore is the life cycle of an OTLP span exporter: it bounds each
// export by the exporter's timeout, cancels the exports in flight at
// Shutdown and refuses later ones, and keeps the scratch space of finished
// exports for the next ones. It is safe for concurrent use.
//
// The scratch spaces are kept in a small free list rather than a
// sync.Pool: a pool is emptied by every other garbage collection, which at
// the gateway's load happens many times between two exports, and growing
// a batch-sized buffer again for every export is the garbage this
// exporter exists to avoid.
type exporterCore struct {
	timeout time.Duration
	// send sends an encoded request (s.body, not empty) within ctx.
	send func(ctx context.Context, s *exportScratch) error

	stopCtx context.Context // canceled by Shutdown
	stop    context.CancelFunc

	mu      sync.Mutex
	closed  bool
	free    []*exportScratch
	running sync.WaitGroup // exports in flight
}

// init readies c for exports bounded by timeout, which send sends.
func (c *exporterCore) init(timeout time.Duration, send func(context.Context, *exportScratch) error) {
	c.timeout = timeout
	c.send = send
	c.stopCtx, c.stop = context.WithCancel(context.Background())
}

// ExportSpans sends spans in one request, retrying as the receiver allows
// within the exporter's timeout. A partial success is returned as an error
// that says how many spans the receiver rejected and why.
func (c *exporterCore) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	return c.export(ctx, sdkSpans(spans))
}

// exportEncoded is ExportSpans for spans AppendSpan encoded, all of src.
func (c *exporterCore) exportEncoded(ctx context.Context, src encodedSource, spans []byte) error {
	return c.export(ctx, encodedSpans(src, spans))
}

// export encodes one request with encode and, unless it carries no spans,
// sends it.
func (c *exporterCore) export(ctx context.Context, encode encodeFunc) error {
	ctx, s, end, err := c.begin(ctx, encode)
	if err != nil {
		return err
	}
	defer end()
	if len(s.body) == 0 {
		return nil // no spans
	}
	return c.send(ctx, s)
}

// encodeFunc appends the ExportTraceServiceRequest of one export to dst,
// with enc's scratch space at hand, and returns the extended buffer.
type encodeFunc func(dst []byte, enc *traceEncoder) []byte

// sdkSpans is the encodeFunc of a batch of SDK spans.
func sdkSpans(spans []sdktrace.ReadOnlySpan) encodeFunc {
	return func(dst []byte, enc *traceEncoder) []byte { return enc.appendTraceRequest(dst, spans) }
}

// encodedSpans is the encodeFunc of spans already encoded by AppendSpan.
func encodedSpans(src encodedSource, spans []byte) encodeFunc {
	return func(dst []byte, _ *traceEncoder) []byte { return appendEncodedRequest(dst, src, spans) }
}

// begin starts an export: it returns the export's context (ctx bounded by
// the timeout and canceled by Shutdown), scratch space whose body holds
// the request encode wrote (empty when there are no spans), and the
// function that ends the export, which the caller must call when done with
// both. After Shutdown it returns errShutdown.
func (c *exporterCore) begin(ctx context.Context, encode encodeFunc) (context.Context, *exportScratch, func(), error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, nil, nil, errShutdown
	}
	c.running.Add(1)
	var s *exportScratch
	if n := len(c.free); n > 0 {
		s, c.free[n-1] = c.free[n-1], nil
		c.free = c.free[:n-1]
	} else {
		s = new(exportScratch)
	}
	c.mu.Unlock()
	s.body = encode(s.body[:0], &s.enc)

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	unhook := context.AfterFunc(c.stopCtx, cancel)
	end := func() {
		unhook()
		cancel()
		c.release(s)
		c.running.Done()
	}
	return ctx, s, end, nil
}

// release returns s to the free list, unless the list is full or s has
// grown past maxKeptScratch.
func (c *exporterCore) release(s *exportScratch) {
	if s.size() > maxKeptScratch {
		return
	}
	c.mu.Lock()
	if !c.closed && len(c.free) < maxIdleScratch {
		c.free = append(c.free, s)
	}
	c.mu.Unlock()
}

// shutdown refuses new exports, cancels those in flight and waits for them
// to return, or for ctx.
func (c *exporterCore) shutdown(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	c.free = nil
	c.mu.Unlock()
	c.stop()
	done := make(chan struct{})
	go func() {
		c.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("otlp exporter shutdown: %w", ctx.Err())
	}
}

// retryableError is the failure of an attempt that may succeed if
// repeated: the receiver was unavailable or asked the client to slow down.
type retryableError struct {
	err error
	// wait is the least time to wait before the next attempt, as the
	// receiver asked (Retry-After, RetryInfo); 0 if it did not.
	wait time.Duration
}

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// withRetries calls attempt until it succeeds or returns an error other
// than a *retryableError, waiting between attempts with exponential
// backoff or as long as the receiver asked, if longer. It gives up when
// the next attempt could not start before ctx's deadline, or when ctx
// ends, and returns the last attempt's error. When ctx ends during an
// attempt that follows retryable failures, the error also carries the last
// of those, which says why the export was being retried.
func withRetries(ctx context.Context, attempt func(context.Context) error) error {
	backoff := retryInitialBackoff
	var last error // the latest retryable failure
	for n := 1; ; n++ {
		err := attempt(ctx)
		re, ok := err.(*retryableError)
		if !ok {
			if err != nil && last != nil && ctx.Err() != nil {
				return fmt.Errorf("%w during attempt %d; attempt %d failed with: %w", context.Cause(ctx), n, n-1, last)
			}
			return err
		}
		last = re.err
		// Uniform in [backoff/2, backoff*3/2).
		delay := max(backoff/2+rand.N(backoff), re.wait)
		backoff = min(time.Duration(float64(backoff)*retryMultiplier), retryMaxBackoff)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < delay {
			return fmt.Errorf("giving up after %d attempts, the next would be after the deadline: %w", n, re.err)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w after %d attempts: %w", context.Cause(ctx), n, re.err)
		}
	}
}
