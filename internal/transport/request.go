package transport

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"golang.org/x/net/http/httpguts"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// scratchSize is the read size of streamed request bodies (one chunk).
const scratchSize = 32 << 10

// errShortBody is the cause when a request body ends before its
// Content-Length.
var errShortBody = errors.New("request body shorter than its Content-Length")

// roundTrip sends req over HTTP/1.1: it checks the request, takes a
// connection (under lim, the calling Transport's max_conns_per_host, when
// not nil), runs the exchange, and retries once on a fresh connection when
// a reused one turned out dead before the upstream could have seen the
// request.
func (h *http1) roundTrip(req *http.Request, fields []byte, lim *limits) (*http.Response, error) {
	ctx := req.Context()
	var ri reqInfo
	body, err := checkRequest(req, &ri)
	if err != nil {
		closeReqBody(req)
		return nil, err
	}
	p := h.pool(req.URL.Host)
	var hl *hostLimit
	if lim != nil {
		hl = lim.host(req.URL.Host)
	}
	for retried := false; ; retried = true {
		if cerr := ctx.Err(); cerr != nil {
			if body != nil {
				body.Close()
			}
			return nil, ctxError(ctx, "dial", p.addr, cerr)
		}
		c, err := p.get(ctx, retried, hl)
		if err != nil {
			if body != nil {
				body.Close()
			}
			return nil, err
		}
		resp, retry, err := c.roundTrip(ctx, req, &ri, fields, body)
		if err == nil {
			return resp, nil
		}
		if !retry || retried {
			return nil, err
		}
		if body != nil {
			nb, gerr := req.GetBody()
			if gerr != nil || nb == nil {
				return nil, err
			}
			body = nb
		}
	}
}

// checkRequest validates req and fills ri. It returns the body to send,
// nil when Body is nil or http.NoBody.
func checkRequest(req *http.Request, ri *reqInfo) (io.ReadCloser, error) {
	u := req.URL
	if u.Host == "" {
		return nil, &Error{Kind: observe.ErrInternal, Op: "request", Err: errors.New("request URL has no host")}
	}
	ri.method = req.Method
	if ri.method == "" {
		ri.method = http.MethodGet
	} else if !httpguts.ValidHeaderFieldName(ri.method) {
		return nil, &Error{Kind: observe.ErrInternal, Op: "request", Addr: u.Host,
			Err: fmt.Errorf("invalid method %q", ri.method)}
	}
	if !validURIPart(u.RawQuery) || !validURIPart(u.Opaque) {
		return nil, &Error{Kind: observe.ErrInternal, Op: "request", Addr: u.Host,
			Err: errors.New("invalid character in request URI")}
	}
	ri.host = req.Host
	if ri.host == "" {
		ri.host = u.Host
	}
	if !httpguts.ValidHostHeader(ri.host) {
		return nil, &Error{Kind: observe.ErrInternal, Op: "request", Addr: u.Host,
			Err: fmt.Errorf("invalid Host header %q", ri.host)}
	}
	ri.close = req.Close
	ri.hasCloseHd, ri.upgrade = false, false
	for k, vs := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, &Error{Kind: observe.ErrInternal, Op: "request", Addr: u.Host,
				Err: fmt.Errorf("invalid header field name %q", k)}
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return nil, &Error{Kind: observe.ErrInternal, Op: "request", Addr: u.Host,
					Err: fmt.Errorf("invalid header field value for %q", k)}
			}
		}
		if k == "Connection" {
			if httpguts.HeaderValuesContainsToken(vs, "close") {
				ri.close, ri.hasCloseHd = true, true
			}
			if httpguts.HeaderValuesContainsToken(vs, "upgrade") {
				ri.upgrade = true
			}
		}
	}
	if ri.upgrade && len(req.Header["Upgrade"]) == 0 {
		ri.upgrade = false
	}

	var body io.ReadCloser
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		ri.cl = 0
	case req.ContentLength > 0:
		body, ri.cl = req.Body, req.ContentLength
	default:
		// -1, or 0 with a Body: unknown length, as net/http reads it for
		// client requests (a server's empty body is http.NoBody).
		body, ri.cl = req.Body, -1
	}
	ri.replayable = body == nil || req.GetBody != nil
	if ri.replayable {
		switch ri.method {
		case "GET", "HEAD", "OPTIONS", "TRACE":
		default:
			ri.replayable = len(req.Header["Idempotency-Key"]) > 0 || len(req.Header["X-Idempotency-Key"]) > 0
		}
	}
	return body, nil
}

// validURIPart reports whether s can go into a request line as is: no
// spaces, control bytes or DEL (the path is escaped when written; the query
// and an opaque URI are written as they are).
func validURIPart(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// writeHead writes the request line, req's header fields and fields
// (already in wire form) to bw. Errors stick in bw and surface at Flush.
func writeHead(bw *bufio.Writer, req *http.Request, ri *reqInfo, fields []byte) {
	bw.WriteString(ri.method)
	bw.WriteByte(' ')
	writeRequestURI(bw, req.URL)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(ri.host)
	bw.WriteString("\r\n")
	for k, vs := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		for _, v := range vs {
			if v == "" && k == "User-Agent" {
				continue
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	writeBytes(bw, fields)
	if ri.close && !ri.hasCloseHd {
		bw.WriteString("Connection: close\r\n")
	}
	switch {
	case ri.cl < 0:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			bw.WriteString("Trailer: ")
			first := true
			for k := range req.Trailer {
				if !httpguts.ValidHeaderFieldName(k) {
					continue
				}
				if !first {
					bw.WriteString(", ")
				}
				first = false
				bw.WriteString(k)
			}
			bw.WriteString("\r\n")
		}
	case ri.cl > 0 || (ri.method != "GET" && ri.method != "HEAD" && ri.method != "CONNECT"):
		// Like net/http, say Content-Length: 0 for methods that may have
		// a body: many servers want it.
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), ri.cl, 10))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
}

// writeBytes writes p to bw by copying it into bw's buffer, so that p
// does not escape (bufio.Writer.Write may hand p to the connection, which
// would make every caller's buffer a heap allocation).
func writeBytes(bw *bufio.Writer, p []byte) {
	for len(p) > 0 {
		if bw.Available() == 0 {
			if bw.Flush() != nil {
				return // the error sticks in bw
			}
		}
		buf := bw.AvailableBuffer()
		n := copy(buf[:cap(buf)], p)
		bw.Write(buf[:n])
		p = p[n:]
	}
}

// writeRequestURI writes u.RequestURI() without building the string.
func writeRequestURI(bw *bufio.Writer, u *url.URL) {
	if u.Opaque != "" {
		bw.WriteString(u.RequestURI())
		return
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	bw.WriteString(p)
	if u.ForceQuery || u.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(u.RawQuery)
	}
}

// writeFixed copies exactly n bytes of body to bw. With scratch nil it
// reads straight into bw's free space. berr is a failure of the body
// (including ending early), werr one of the connection.
func writeFixed(bw *bufio.Writer, body io.Reader, n int64, scratch []byte) (berr, werr error) {
	for n > 0 {
		var buf []byte
		if scratch != nil {
			buf = scratch
		} else {
			if bw.Available() == 0 {
				if werr = bw.Flush(); werr != nil {
					return nil, werr
				}
			}
			buf = bw.AvailableBuffer()
			buf = buf[:cap(buf)]
		}
		if int64(len(buf)) > n {
			buf = buf[:n]
		}
		m, err := body.Read(buf)
		if m > 0 {
			if _, werr = bw.Write(buf[:m]); werr != nil {
				return nil, werr
			}
			n -= int64(m)
		}
		if err == io.EOF {
			if n > 0 {
				return errShortBody, nil
			}
			break
		}
		if err != nil {
			return err, nil
		}
	}
	return nil, nil
}

// writeChunked writes body with chunked transfer coding, one chunk per
// body read, flushing each so a streamed body is not held back, then the
// trailer fields read from trailer after the body ended.
func writeChunked(bw *bufio.Writer, body io.Reader, trailer http.Header, scratch []byte) (berr, werr error) {
	for {
		m, err := body.Read(scratch)
		if m > 0 {
			bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(m), 16))
			bw.WriteString("\r\n")
			bw.Write(scratch[:m])
			bw.WriteString("\r\n")
			if werr = bw.Flush(); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err, nil
		}
	}
	bw.WriteString("0\r\n")
	for k, vs := range trailer {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				continue
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	return nil, bw.Flush()
}

// getScratch returns a buffer for streamed request bodies.
func (h *http1) getScratch() *[]byte {
	if sp, ok := h.chunks.Get().(*[]byte); ok {
		return sp
	}
	b := make([]byte, scratchSize)
	return &b
}

func (h *http1) putScratch(sp *[]byte) { h.chunks.Put(sp) }
