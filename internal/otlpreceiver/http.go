package otlpreceiver

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/code"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Paths are where OTLP/HTTP exporters post by default.
const (
	TracesPath = "/v1/traces"
	LogsPath   = "/v1/logs"
)

// recursionLimit bounds message nesting while decoding; a body nested
// deeper is malformed. It leaves room for Limits.MaxDepth levels of
// attribute values and more.
const recursionLimit = 100

var (
	protoUnmarshal = proto.UnmarshalOptions{RecursionLimit: recursionLimit}
	// OTLP/JSON receivers must ignore unknown fields; protojson accepts
	// lowerCamelCase and the proto names, enums as numbers or names, and
	// 64-bit integers as numbers or strings, as OTLP/JSON asks.
	jsonUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: true, RecursionLimit: recursionLimit}
)

// encoding is a request body's wire format.
type encoding int

const (
	encProto encoding = iota
	encJSON
)

func (e encoding) contentType() string {
	if e == encJSON {
		return "application/json"
	}
	return "application/x-protobuf"
}

// Handlers returns the OTLP/HTTP handlers by path (TracesPath, LogsPath),
// for the signals that have a consumer. They answer any method: other than
// POST gets 405.
func (r *Receiver) Handlers() map[string]http.Handler {
	h := map[string]http.Handler{}
	if r.opts.Traces != nil {
		h[TracesPath] = http.HandlerFunc(r.serveTraces)
	}
	if r.opts.Logs != nil {
		h[LogsPath] = http.HandlerFunc(r.serveLogs)
	}
	return h
}

// ServeHTTP serves TracesPath and LogsPath (404 elsewhere, and for a signal
// without a consumer).
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch {
	case req.URL.Path == TracesPath && r.opts.Traces != nil:
		r.serveTraces(w, req)
	case req.URL.Path == LogsPath && r.opts.Logs != nil:
		r.serveLogs(w, req)
	default:
		http.NotFound(w, req)
	}
}

func (r *Receiver) serveTraces(w http.ResponseWriter, req *http.Request) {
	enc, body, ok := r.begin(w, req, signalTraces)
	if !ok {
		return
	}
	defer r.release()
	defer r.bufs.put(body)
	msg := &coltracepb.ExportTraceServiceRequest{}
	if err := decode(enc, body.Bytes(), msg); err != nil {
		r.refuse(w, enc, signalTraces, outcomeMalformed, http.StatusBadRequest, code.Code_INVALID_ARGUMENT, err.Error())
		return
	}
	res := r.exportTraces(req.Context(), msg, enc == encJSON, transportHTTP)
	if r.failed(w, enc, res) {
		return
	}
	resp := &coltracepb.ExportTraceServiceResponse{}
	if res.rejected > 0 {
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: res.rejected, ErrorMessage: res.message}
	}
	writeMessage(w, enc, http.StatusOK, resp)
}

func (r *Receiver) serveLogs(w http.ResponseWriter, req *http.Request) {
	enc, body, ok := r.begin(w, req, signalLogs)
	if !ok {
		return
	}
	defer r.release()
	defer r.bufs.put(body)
	msg := &collogspb.ExportLogsServiceRequest{}
	if err := decode(enc, body.Bytes(), msg); err != nil {
		r.refuse(w, enc, signalLogs, outcomeMalformed, http.StatusBadRequest, code.Code_INVALID_ARGUMENT, err.Error())
		return
	}
	res := r.exportLogs(req.Context(), msg, enc == encJSON, transportHTTP)
	if r.failed(w, enc, res) {
		return
	}
	resp := &collogspb.ExportLogsServiceResponse{}
	if res.rejected > 0 {
		resp.PartialSuccess = &collogspb.ExportLogsPartialSuccess{RejectedLogRecords: res.rejected, ErrorMessage: res.message}
	}
	writeMessage(w, enc, http.StatusOK, resp)
}

func decode(enc encoding, body []byte, msg proto.Message) error {
	if enc == encJSON {
		if err := jsonUnmarshal.Unmarshal(body, msg); err != nil {
			return fmt.Errorf("decoding the OTLP/JSON body: %w", err)
		}
		return nil
	}
	if err := protoUnmarshal.Unmarshal(body, msg); err != nil {
		return fmt.Errorf("decoding the OTLP/protobuf body: %w", err)
	}
	return nil
}

// begin checks the method, credentials and content type, takes an
// in-flight slot and reads the body. When it returns ok, the caller must
// release the slot and put the buffer back; otherwise it has answered.
func (r *Receiver) begin(w http.ResponseWriter, req *http.Request, signal string) (encoding, *bytes.Buffer, bool) {
	enc, encOK := requestEncoding(req.Header.Get("Content-Type"))
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		r.refuse(w, enc, signal, outcomeMethodNotAllowed, http.StatusMethodNotAllowed, code.Code_UNIMPLEMENTED, "OTLP/HTTP takes POST only")
		return 0, nil, false
	}
	if !r.authorized(req.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="otlp"`)
		r.refuse(w, enc, signal, outcomeUnauthorized, http.StatusUnauthorized, code.Code_UNAUTHENTICATED, "a valid bearer token is required")
		return 0, nil, false
	}
	if !encOK {
		r.refuse(w, enc, signal, outcomeUnsupportedMedia, http.StatusUnsupportedMediaType, code.Code_INVALID_ARGUMENT,
			"Content-Type must be application/x-protobuf or application/json")
		return 0, nil, false
	}
	ce := strings.ToLower(strings.TrimSpace(req.Header.Get("Content-Encoding")))
	if ce != "" && ce != "identity" && ce != "gzip" {
		r.refuse(w, enc, signal, outcomeUnsupportedMedia, http.StatusUnsupportedMediaType, code.Code_INVALID_ARGUMENT,
			"Content-Encoding must be gzip or none")
		return 0, nil, false
	}
	if req.ContentLength > r.opts.MaxBodyBytes {
		r.refuse(w, enc, signal, outcomeTooLarge, http.StatusRequestEntityTooLarge, code.Code_RESOURCE_EXHAUSTED, r.tooLarge())
		return 0, nil, false
	}
	if !r.acquire() {
		r.retryLater(w)
		r.refuse(w, enc, signal, outcomeOverloaded, http.StatusServiceUnavailable, code.Code_UNAVAILABLE, "too many export requests at once; retry later")
		return 0, nil, false
	}
	// A slow body must not hold a slot for long. The deadline is on the
	// socket, so it is wall-clock time, not the receiver's clock.
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(r.bodyTimeout)) == nil
	buf, err := r.readBody(req, ce == "gzip")
	if deadline && err == nil {
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		// The rest of the body is not read: the connection cannot be
		// reused (and the deadline stays, so the server does not wait
		// for the rest either).
		w.Header().Set("Connection", "close")
		r.release()
		r.bufs.put(buf)
		if errors.Is(err, errTooLarge) {
			r.refuse(w, enc, signal, outcomeTooLarge, http.StatusRequestEntityTooLarge, code.Code_RESOURCE_EXHAUSTED, r.tooLarge())
		} else {
			r.refuse(w, enc, signal, outcomeMalformed, http.StatusBadRequest, code.Code_INVALID_ARGUMENT, err.Error())
		}
		return 0, nil, false
	}
	return enc, buf, true
}

func (r *Receiver) tooLarge() string {
	return fmt.Sprintf("the body is larger than %d bytes (otlp_receiver.max_body_bytes)", r.opts.MaxBodyBytes)
}

var errTooLarge = errors.New("body too large")

// bodyReadTimeout bounds reading one request body, so that slow clients
// cannot hold the in-flight slots for long.
const bodyReadTimeout = 30 * time.Second

// readBody reads the (decompressed) body into a pooled buffer, at most
// MaxBodyBytes of it.
func (r *Receiver) readBody(req *http.Request, gz bool) (*bytes.Buffer, error) {
	buf := r.bufs.get()
	limit := r.opts.MaxBodyBytes
	// The compressed body is bounded too, and cannot be larger than what
	// it decompresses to by much.
	var rd io.Reader = io.LimitReader(req.Body, limit+1)
	if gz {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return buf, fmt.Errorf("reading the gzip body: %w", err)
		}
		defer zr.Close()
		rd = zr
	}
	if req.ContentLength > 0 && !gz {
		buf.Grow(int(req.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(rd, limit+1))
	if n > limit {
		return buf, errTooLarge
	}
	if err != nil {
		return buf, fmt.Errorf("reading the body: %w", err)
	}
	return buf, nil
}

// failed answers a consumer's failure; it reports whether it did.
func (r *Receiver) failed(w http.ResponseWriter, enc encoding, res result) bool {
	switch res.outcome {
	case outcomeOverloaded:
		r.retryLater(w)
		writeStatus(w, enc, http.StatusTooManyRequests, code.Code_RESOURCE_EXHAUSTED, "the trace store is overloaded; retry later")
		return true
	case outcomeFailed:
		writeStatus(w, enc, http.StatusInternalServerError, code.Code_INTERNAL, "storing the data failed")
		return true
	}
	return false
}

func (r *Receiver) retryLater(w http.ResponseWriter) {
	secs := int((r.opts.RetryAfter + 999_999_999) / 1_000_000_000)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
}

// refuse counts a refused request and answers it with a google.rpc.Status.
func (r *Receiver) refuse(w http.ResponseWriter, enc encoding, signal, outcome string, httpStatus int, c code.Code, msg string) {
	r.m.request(signal, transportHTTP, outcome)
	writeStatus(w, enc, httpStatus, c, msg)
}

func writeStatus(w http.ResponseWriter, enc encoding, httpStatus int, c code.Code, msg string) {
	// A decoder's message may quote the invalid bytes it met; a protobuf
	// string must be UTF-8.
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	writeMessage(w, enc, httpStatus, &spb.Status{Code: int32(c), Message: msg})
}

// writeMessage answers msg in the request's encoding.
func writeMessage(w http.ResponseWriter, enc encoding, httpStatus int, msg proto.Message) {
	var b []byte
	var err error
	if enc == encJSON {
		b, err = protojson.Marshal(msg)
	} else {
		b, err = proto.Marshal(msg)
	}
	if err != nil { // cannot happen for these message types
		http.Error(w, "encoding the response failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", enc.contentType())
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(httpStatus)
	_, _ = w.Write(b)
}

// requestEncoding maps a Content-Type to an encoding. An unknown one
// reports false (and protobuf, for the answer's encoding).
func requestEncoding(ct string) (encoding, bool) {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return encProto, false
	}
	switch mt {
	case "application/x-protobuf", "application/protobuf":
		return encProto, true
	case "application/json":
		return encJSON, true
	}
	return encProto, false
}

// bufferPool holds request body buffers; buffers that grew past
// maxPooledBuffer are dropped so one large request does not pin memory.
// The zero value is ready to use.
type bufferPool struct{ p sync.Pool }

const maxPooledBuffer = 1 << 20

func (bp *bufferPool) get() *bytes.Buffer {
	if b, ok := bp.p.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func (bp *bufferPool) put(b *bytes.Buffer) {
	if b == nil || b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	bp.p.Put(b)
}
