package export

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/otlptest"
)

// captured is one request a captureServer received.
type captured struct {
	at     time.Time
	method string
	path   string
	header http.Header
	body   []byte // decompressed
}

// captureServer is a local OTLP/HTTP receiver that records every request
// and answers as its respond function says.
type captureServer struct {
	url string

	mu  sync.Mutex
	got []captured
}

// startCapture starts a captureServer on 127.0.0.1 until the test ends.
// respond answers the n-th request (from 1); nil answers 200 with an empty
// protobuf body.
func startCapture(t *testing.T, respond func(w http.ResponseWriter, n int)) *captureServer {
	t.Helper()
	c := &captureServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil && r.Header.Get("Content-Encoding") == "gzip" {
			body, err = gunzip(body)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.got = append(c.got, captured{at: time.Now(), method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body})
		n := len(c.got)
		c.mu.Unlock()
		if respond != nil {
			respond(w, n)
			return
		}
		w.Header().Set("Content-Type", contentTypeProtobuf)
	}))
	t.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

// received returns the requests so far.
func (c *captureServer) received() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]captured(nil), c.got...)
}

// requests decodes the requests so far.
func (c *captureServer) requests(t *testing.T) []*coltracepb.ExportTraceServiceRequest {
	t.Helper()
	var out []*coltracepb.ExportTraceServiceRequest
	for _, r := range c.received() {
		out = append(out, unmarshalRequest(t, r.body))
	}
	return out
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// newTestHTTPExporter returns an exporter to base + "/v1/traces" with a 5 s
// timeout, as edit changes it, shut down when the test ends.
func newTestHTTPExporter(t *testing.T, base string, edit func(*otlpHTTPConfig)) *otlpHTTPExporter {
	t.Helper()
	u, err := url.Parse(base + "/v1/traces")
	if err != nil {
		t.Fatal(err)
	}
	cfg := otlpHTTPConfig{URL: u, Timeout: 5 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	e, err := newOTLPHTTPExporter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	return e
}

// export calls ExportSpans with a 10 s safety timeout and returns how long
// it took and its error.
func export(e sdktrace.SpanExporter, spans []sdktrace.ReadOnlySpan) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := e.ExportSpans(ctx, spans)
	return time.Since(start), err
}

// respondStatus answers with code and body, after setting header h.
func respondStatus(w http.ResponseWriter, code int, body string, h ...string) {
	for i := 0; i+1 < len(h); i += 2 {
		w.Header().Set(h[i], h[i+1])
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

func TestOTLPHTTPMatchesOfficialExporter(t *testing.T) {
	spans := variedSpans()
	want := officialRequests(t, spans)
	for _, gz := range []bool{false, true} {
		rcv := startCapture(t, nil)
		e := newTestHTTPExporter(t, rcv.url, func(c *otlpHTTPConfig) { c.Gzip = gz })
		if _, err := export(e, spans); err != nil {
			t.Fatalf("gzip %v: %v", gz, err)
		}
		got := rcv.requests(t)
		if len(got) != 1 || len(want) != 1 {
			t.Fatalf("gzip %v: %d requests, official %d", gz, len(got), len(want))
		}
		assertSameAsOfficial(t, got[0], proto.Clone(want[0]).(*coltracepb.ExportTraceServiceRequest), linkTraceStates(t, spans))
	}
}

func TestOTLPHTTPRequest(t *testing.T) {
	rcv := startCapture(t, nil)
	e := newTestHTTPExporter(t, rcv.url, func(c *otlpHTTPConfig) {
		c.Headers = map[string]string{"x-api-key": "k1", "Authorization": "Bearer t"}
	})
	spans := variedSpans()[:2]
	if _, err := export(e, spans); err != nil {
		t.Fatal(err)
	}
	got := rcv.received()
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	r := got[0]
	if r.method != http.MethodPost || r.path != "/v1/traces" {
		t.Errorf("%s %s", r.method, r.path)
	}
	for k, want := range map[string]string{
		"Content-Type":     "application/x-protobuf",
		"X-Api-Key":        "k1",
		"Authorization":    "Bearer t",
		"User-Agent":       "vantage-otlp-exporter",
		"Content-Encoding": "",
	} {
		if v := r.header.Get(k); v != want {
			t.Errorf("%s: %q, want %q", k, v, want)
		}
	}
	var enc traceEncoder
	if want := enc.appendTraceRequest(nil, spans); !bytes.Equal(r.body, want) {
		t.Errorf("body is not the encoder's output")
	}
	if _, err := export(e, nil); err != nil || len(rcv.received()) != 1 {
		t.Errorf("empty batch: %v, %d requests; want no request", err, len(rcv.received()))
	}
}

func TestOTLPHTTPGzip(t *testing.T) {
	rcv := startCapture(t, nil)
	e := newTestHTTPExporter(t, rcv.url, func(c *otlpHTTPConfig) { c.Gzip = true })
	spans := variedSpans()
	for range 3 { // the gzip writer is reused
		if _, err := export(e, spans); err != nil {
			t.Fatal(err)
		}
	}
	var enc traceEncoder
	want := enc.appendTraceRequest(nil, spans)
	for i, r := range rcv.received() {
		if ce := r.header.Get("Content-Encoding"); ce != "gzip" {
			t.Errorf("request %d: Content-Encoding %q", i, ce)
		}
		if !bytes.Equal(r.body, want) {
			t.Errorf("request %d: gunzipped body is not the encoder's output", i)
		}
	}
}

func TestOTLPHTTPRetriesUnavailable(t *testing.T) {
	for _, code := range []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout} {
		rcv := startCapture(t, func(w http.ResponseWriter, n int) {
			if n == 1 {
				respondStatus(w, code, "busy")
				return
			}
			w.Header().Set("Content-Type", contentTypeProtobuf)
		})
		e := newTestHTTPExporter(t, rcv.url, nil)
		if _, err := export(e, variedSpans()); err != nil {
			t.Fatalf("%d then 200: %v", code, err)
		}
		got := rcv.received()
		if len(got) != 2 || !bytes.Equal(got[0].body, got[1].body) {
			t.Fatalf("%d then 200: %d requests, want 2 with the same body", code, len(got))
		}
	}
}

func TestOTLPHTTPHonoursRetryAfter(t *testing.T) {
	rcv := startCapture(t, func(w http.ResponseWriter, n int) {
		if n == 1 {
			respondStatus(w, http.StatusTooManyRequests, "slow down", "Retry-After", "1")
		}
	})
	e := newTestHTTPExporter(t, rcv.url, nil)
	if _, err := export(e, variedSpans()); err != nil {
		t.Fatal(err)
	}
	got := rcv.received()
	if len(got) != 2 {
		t.Fatalf("%d requests", len(got))
	}
	// Without Retry-After, the first backoff is at most 150 ms.
	if gap := got[1].at.Sub(got[0].at); gap < 950*time.Millisecond || gap > 3*time.Second {
		t.Errorf("retried after %v, want about 1s", gap)
	}
}

func TestOTLPHTTPGivesUpWhenRetryAfterPassesTheTimeout(t *testing.T) {
	rcv := startCapture(t, func(w http.ResponseWriter, n int) {
		respondStatus(w, http.StatusServiceUnavailable, "down for maintenance", "Retry-After", "30")
	})
	e := newTestHTTPExporter(t, rcv.url, func(c *otlpHTTPConfig) { c.Timeout = 2 * time.Second })
	took, err := export(e, variedSpans()[:1])
	if err == nil || !strings.Contains(err.Error(), "503 Service Unavailable") || !strings.Contains(err.Error(), "down for maintenance") {
		t.Fatalf("error %v", err)
	}
	if n := len(rcv.received()); n != 1 || took > time.Second {
		t.Errorf("%d requests in %v: want one, and no waiting for a retry that cannot happen", n, took)
	}
}

func TestOTLPHTTPRetriesUntilTheTimeout(t *testing.T) {
	rcv := startCapture(t, func(w http.ResponseWriter, n int) { respondStatus(w, http.StatusBadGateway, "") })
	e := newTestHTTPExporter(t, rcv.url, func(c *otlpHTTPConfig) { c.Timeout = 700 * time.Millisecond })
	took, err := export(e, variedSpans()[:1])
	if err == nil || !strings.Contains(err.Error(), "502 Bad Gateway: (empty body)") {
		t.Fatalf("error %v", err)
	}
	if n := len(rcv.received()); n < 2 || took > 1500*time.Millisecond {
		t.Errorf("%d requests in %v: want retries within the timeout", n, took)
	}
}

func TestOTLPHTTPDoesNotRetryClientErrors(t *testing.T) {
	rcv := startCapture(t, func(w http.ResponseWriter, n int) {
		respondStatus(w, http.StatusBadRequest, "  bad span: "+strings.Repeat("x", 1000)+"\n")
	})
	e := newTestHTTPExporter(t, rcv.url, nil)
	_, err := export(e, variedSpans()[:1])
	if err == nil || !strings.Contains(err.Error(), "400 Bad Request: bad span: xxx") || len(err.Error()) > 400 {
		t.Fatalf("error %v", err)
	}
	if n := len(rcv.received()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestOTLPHTTPTimesOutOnASilentReceiver(t *testing.T) {
	addr := otlptest.StartBlackHole(t)
	e := newTestHTTPExporter(t, "http://"+addr, func(c *otlpHTTPConfig) { c.Timeout = 300 * time.Millisecond })
	took, err := export(e, variedSpans()[:1])
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want a deadline", err)
	}
	if took > 2*time.Second {
		t.Errorf("took %v with a 300ms timeout", took)
	}
}

func TestOTLPHTTPRetriesRefusedConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := newTestHTTPExporter(t, "http://"+addr, func(c *otlpHTTPConfig) { c.Timeout = 500 * time.Millisecond })
	took, err := export(e, variedSpans()[:1])
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("error %v", err)
	}
	if took < 100*time.Millisecond || took > 2*time.Second {
		t.Errorf("took %v: want retries until the 500ms timeout", took)
	}
}

func TestOTLPHTTPPartialSuccess(t *testing.T) {
	answer := func(resp *coltracepb.ExportTraceServiceResponse, ct string) func(http.ResponseWriter, int) {
		b, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		return func(w http.ResponseWriter, _ int) {
			w.Header().Set("Content-Type", ct)
			_, _ = w.Write(b)
		}
	}
	partial := &coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{RejectedSpans: 3, ErrorMessage: "spans too old"}}

	rcv := startCapture(t, answer(partial, contentTypeProtobuf))
	_, err := export(newTestHTTPExporter(t, rcv.url, nil), variedSpans())
	var pe *partialSuccessError
	if !errors.As(err, &pe) || pe.rejected != 3 || !strings.Contains(err.Error(), "3 spans rejected: spans too old") {
		t.Errorf("error %v", err)
	}
	if n := len(rcv.received()); n != 1 {
		t.Errorf("%d requests: a partial success is not retried", n)
	}

	for name, handler := range map[string]func(http.ResponseWriter, int){
		"empty partial success": answer(&coltracepb.ExportTraceServiceResponse{PartialSuccess: &coltracepb.ExportTracePartialSuccess{}}, contentTypeProtobuf),
		"not protobuf":          answer(partial, "text/plain"),
	} {
		rcv := startCapture(t, handler)
		if _, err := export(newTestHTTPExporter(t, rcv.url, nil), variedSpans()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestOTLPHTTPShutdown(t *testing.T) {
	rcv := startCapture(t, nil)
	e := newTestHTTPExporter(t, rcv.url, nil)
	if _, err := export(e, variedSpans()); err != nil {
		t.Fatal(err)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := export(e, variedSpans()); !errors.Is(err, errShutdown) {
		t.Errorf("export after Shutdown: %v", err)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if n := len(rcv.received()); n != 1 {
		t.Errorf("%d requests", n)
	}
}

func TestOTLPHTTPShutdownCancelsExportsInFlight(t *testing.T) {
	// A receiver that accepts the connection and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	e := newTestHTTPExporter(t, "http://"+ln.Addr().String(), func(c *otlpHTTPConfig) { c.Timeout = time.Minute })
	done := make(chan error, 1)
	go func() {
		_, err := export(e, variedSpans())
		done <- err
	}()
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the exporter did not connect")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("export in flight: %v, want canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the export in flight was not canceled")
	}
}

func TestNewExporterOTLPHTTP(t *testing.T) {
	// https:// with tls.insecure sends plaintext to the same host:port,
	// and the default path is added.
	rcv := startCapture(t, nil)
	exp, err := NewExporter(config.TracingExporter{
		Name: "h", Type: config.ExporterOTLPHTTP, Endpoint: "https://" + strings.TrimPrefix(rcv.url, "http://"),
		TLS: &config.ExporterTLS{Insecure: true}, Timeout: config.Duration(5 * time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Shutdown(context.Background())
	if _, err := export(exp, variedSpans()[:1]); err != nil {
		t.Fatal(err)
	}
	if got := rcv.received(); len(got) != 1 || got[0].path != "/v1/traces" {
		t.Errorf("received %+v", got)
	}

	// https:// verifies the receiver with the configured roots.
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tls     *config.ExporterTLS
		wantErr bool
	}{
		{&config.ExporterTLS{CAFile: ca}, false},
		{nil, true}, // the system roots do not know the test CA
	} {
		exp, err := NewExporter(config.TracingExporter{
			Name: "tls", Type: config.ExporterOTLPHTTP, Endpoint: srv.URL + "/custom/path", TLS: tc.tls, Timeout: config.Duration(20 * time.Second),
		})
		if err != nil {
			t.Fatal(err)
		}
		took, err := export(exp, variedSpans()[:1])
		if (err != nil) != tc.wantErr {
			t.Errorf("tls %+v: error %v", tc.tls, err)
		}
		// A retried TLS failure would back off until the 20 s timeout; one
		// attempt ends far sooner, even on a loaded machine.
		if took > 10*time.Second {
			t.Errorf("tls %+v: took %v; a TLS failure is not retried", tc.tls, took)
		}
		_ = exp.Shutdown(context.Background())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "/custom/path" {
		t.Errorf("TLS receiver got %q", paths)
	}
}

// TestWithRetriesKeepsTheReasonWhenTheDeadlineCutsAnAttempt: an attempt
// cut short by the deadline after a retryable failure (a slow receiver on
// a loaded machine) still reports why the export was being retried.
func TestWithRetriesKeepsTheReasonWhenTheDeadlineCutsAnAttempt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	n := 0
	err := withRetries(ctx, func(ctx context.Context) error {
		n++
		if n == 1 {
			return &retryableError{err: errors.New("502 Bad Gateway")}
		}
		<-ctx.Done()
		return fmt.Errorf("post: %w", ctx.Err())
	})
	if n != 2 || err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "502 Bad Gateway") {
		t.Fatalf("%d attempts, error %v", n, err)
	}
}
