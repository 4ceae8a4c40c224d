package listener

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
)

// Reasons a request is refused before it reaches the handler. They label
// the rejection counter, so the set is closed: RejectReasons lists it.
const (
	// ReasonAmbiguousFraming: Transfer-Encoding beside Content-Length, or
	// on HTTP/1.0, or folded (400, connection closed).
	ReasonAmbiguousFraming = "ambiguous_framing"
	// ReasonBadRequest: net/http could not parse the request (400).
	ReasonBadRequest = "bad_request"
	// ReasonHeaderTooLarge: the head exceeded max_header_bytes (431).
	ReasonHeaderTooLarge = "header_too_large"
	// ReasonTooManyHeaders: more header fields than max_headers (431).
	ReasonTooManyHeaders = "too_many_headers"
	// ReasonURITooLong: the request target exceeded max_uri_bytes (414).
	ReasonURITooLong = "uri_too_long"
	// ReasonUnsupportedTE: a transfer coding other than a single
	// "chunked" (501, as net/http answers it per RFC 9112 §6.1).
	ReasonUnsupportedTE = "unsupported_transfer_encoding"
	// ReasonUnsupportedVersion: not HTTP/1.x (505).
	ReasonUnsupportedVersion = "unsupported_version"
	// ReasonConnect: a CONNECT request; the gateway does not tunnel (405).
	ReasonConnect = "connect"
	// ReasonHeaderTimeout: the head did not arrive within
	// timeouts.read_header (no answer; connection closed).
	ReasonHeaderTimeout = "header_timeout"
	// ReasonIncomplete: the client closed the connection mid-head.
	ReasonIncomplete = "incomplete"
	// ReasonHTTP2Error: an HTTP/2 connection ended for a protocol error
	// or abuse (streams reset faster than handlers run, CVE-2023-44487; a
	// malformed or oversized frame). Counted once per connection.
	ReasonHTTP2Error = "http2_connection_error"
	// ReasonOther: any other refusal by net/http (for example 417, or a
	// status a TLS connection hides from the listener).
	ReasonOther = "other"
)

// RejectReasons is every reason, in a fixed order.
var RejectReasons = []string{
	ReasonAmbiguousFraming, ReasonBadRequest, ReasonHeaderTooLarge, ReasonTooManyHeaders,
	ReasonURITooLong, ReasonUnsupportedTE, ReasonUnsupportedVersion, ReasonConnect,
	ReasonHeaderTimeout, ReasonIncomplete, ReasonHTTP2Error, ReasonOther,
}

// conn wraps each accepted connection, to see what net/http does not tell a
// handler: the framing of cleartext HTTP/1 requests (framer) and the
// requests net/http refuses itself, writing its own 400/431/501/505 without
// calling any handler.
//
// How a refusal is seen: net/http moves a connection to StateActive (the
// ConnState hook) once it has read bytes of a request head, whether or not
// the head parses, and calls the handler only when it does. So a write on a
// connection that is active but whose handler has not been entered since is
// net/http's own error response, and its status line names the reason. A
// connection that closes in that state without such a write timed out or
// was closed by the client mid-head. This needs no copy of the parser's
// rules and does not depend on its error texts: only on the documented
// ConnState sequence and on the status line.
//
// On a TLS listener conn wraps the *tls.Conn, so it sees the decrypted
// bytes: the listener terminates TLS itself (see Server.Serve).
//
// HTTP/2 connections (h2c prior knowledge, or "h2" by ALPN) are left alone
// once their preface is seen: the HTTP/2 server writes frames at any time,
// and limits itself.
type conn struct {
	net.Conn
	srv *Server
	tc  *tls.Conn // the TLS layer under Conn, nil on cleartext

	tlsOnce  sync.Once
	tlsState *tls.ConnectionState

	mu       sync.Mutex
	fr       *framer
	h2       bool
	hijacked bool
	active   bool // a head is being read and no handler was entered for it
	counted  bool // the current refusal was counted
	timedOut bool // the last read timed out
	eof      bool // the client closed its side
	handlers int  // handlers entered (HTTP/1)
	h2out    h2Frames
}

// h2Frames follows the frames the HTTP/2 server writes, to see the GOAWAY
// that ends a connection with an error: net/http's HTTP/2 server ends a
// connection this way on abuse (streams reset faster than handlers run,
// CVE-2023-44487; a header block past the limit in CONTINUATION frames,
// CVE-2023-45288) and on protocol errors, without telling anyone else.
type h2Frames struct {
	hdr     [9]byte
	nhdr    int
	remain  uint32 // payload bytes left in the current frame
	goaway  bool   // the current frame is a GOAWAY
	payload [8]byte
	npay    int
	ended   bool // an error GOAWAY was seen
}

// write follows p and returns the error code of an error GOAWAY it
// completes, or "".
func (f *h2Frames) write(p []byte) string {
	code := ""
	for len(p) > 0 {
		if f.nhdr < len(f.hdr) {
			n := copy(f.hdr[f.nhdr:], p)
			f.nhdr += n
			p = p[n:]
			if f.nhdr < len(f.hdr) {
				return code
			}
			f.remain = uint32(f.hdr[0])<<16 | uint32(f.hdr[1])<<8 | uint32(f.hdr[2])
			f.goaway, f.npay = f.hdr[3] == 0x7, 0
		}
		n := uint32(len(p))
		if n > f.remain {
			n = f.remain
		}
		if f.goaway && f.npay < len(f.payload) {
			f.npay += copy(f.payload[f.npay:], p[:n])
			if f.npay == len(f.payload) && !f.ended {
				if c := uint32(f.payload[4])<<24 | uint32(f.payload[5])<<16 | uint32(f.payload[6])<<8 | uint32(f.payload[7]); c != 0 {
					f.ended = true
					code = h2CodeName(c)
				}
			}
		}
		p = p[n:]
		f.remain -= n
		if f.remain == 0 {
			f.nhdr = 0
		}
	}
	return code
}

// h2CodeName names an HTTP/2 error code (RFC 9113 §7), from a fixed set.
func h2CodeName(c uint32) string {
	names := [...]string{"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
		"STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR",
		"ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"}
	if int(c) < len(names) {
		return names[c]
	}
	return "UNKNOWN"
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if re, ok := err.(tls.RecordHeaderError); ok && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
		// Plain HTTP to a TLS listener: say so, as net/http does.
		_, _ = io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
	}
	c.mu.Lock()
	if c.fr != nil && n > 0 && !c.fr.stopped() {
		c.fr.feed(p[:n])
		if c.fr.h2 && c.srv.h2 {
			c.h2 = true
		}
	}
	c.timedOut = false
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.timedOut = true
	}
	c.eof = c.eof || err == io.EOF
	c.mu.Unlock()
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.h2 && !c.hijacked {
		code := c.h2out.write(p)
		c.mu.Unlock()
		if code != "" {
			c.srv.http2Ended(c.RemoteAddr().String(), code)
		}
		return c.Conn.Write(p)
	}
	if c.active && !c.counted && !c.h2 {
		c.counted = true
		reason := ReasonOther
		if c.eof {
			// net/http answers a head cut short by the client's close
			// with 400, to nobody.
			reason = ReasonIncomplete
		} else {
			reason = reasonForStatus(p)
		}
		c.mu.Unlock()
		c.srv.rejected(c.RemoteAddr().String(), reason, 0)
	} else {
		c.mu.Unlock()
	}
	return c.Conn.Write(p)
}

// CloseWrite half-closes the connection, as net/http does after a final
// response (so a client still sending its request reads the answer instead
// of a reset): it passes the call to the TCP or TLS connection beneath.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// reasonForStatus maps net/http's own error response to a reason.
func reasonForStatus(p []byte) string {
	if len(p) < 12 || string(p[:9]) != "HTTP/1.1 " {
		return ReasonOther
	}
	switch string(p[9:12]) {
	case "400":
		return ReasonBadRequest
	case "431":
		return ReasonHeaderTooLarge
	case "501":
		return ReasonUnsupportedTE
	case "505":
		return ReasonUnsupportedVersion
	}
	return ReasonOther
}

// state is the http.Server's ConnState hook.
func (s *Server) state(nc net.Conn, st http.ConnState) {
	c := unwrap(nc)
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.h2 {
		c.mu.Unlock()
		return
	}
	switch st {
	case http.StateActive:
		c.active, c.counted = true, false
	case http.StateIdle:
		c.active = false
	case http.StateHijacked:
		// The handler owns the bytes now (a protocol upgrade).
		c.active = false
		c.h2, c.hijacked = true, true // ignore from now on
		if c.fr != nil {
			c.fr.stop()
		}
	case http.StateClosed:
		if c.active && !c.counted {
			c.counted = true
			reason := ReasonIncomplete
			if c.timedOut {
				reason = ReasonHeaderTimeout
			}
			c.mu.Unlock()
			s.rejected(c.RemoteAddr().String(), reason, 0)
			return
		}
	}
	c.mu.Unlock()
}

// enter marks the handler entered for the current HTTP/1 request and
// reports whether its framing is faulty.
func (c *conn) enter() (faulty bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active = false
	if c.fr == nil {
		return false
	}
	n := c.handlers
	c.handlers++
	return c.fr.firstBad >= 0 && n >= c.fr.firstBad
}

type connKey struct{}

// connContext is the http.Server's ConnContext hook: it makes the conn
// reachable from each request.
func connContext(ctx context.Context, nc net.Conn) context.Context {
	if c := unwrap(nc); c != nil {
		return context.WithValue(ctx, connKey{}, c)
	}
	return ctx
}

func unwrap(nc net.Conn) *conn {
	c, _ := nc.(*conn)
	return c
}

// connectionState returns the connection's TLS state (nil on cleartext),
// once its handshake is done.
func (c *conn) connectionState() *tls.ConnectionState {
	if c.tc == nil {
		return nil
	}
	c.tlsOnce.Do(func() {
		st := c.tc.ConnectionState()
		c.tlsState = &st
	})
	return c.tlsState
}

// looksLikeHTTP reports whether a TLS record header is the start of a
// plain HTTP request (as net/http judges it).
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// wrapListener wraps every accepted connection.
type wrapListener struct {
	net.Listener
	srv *Server
}

func (l wrapListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, srv: l.srv, fr: newFramer()}
	if l.srv.tlsConfig != nil {
		// The handshake runs on the connection's goroutine, at its first
		// read, under the read-header deadline net/http sets.
		c.tc = tls.Server(nc, l.srv.tlsConfig)
		c.Conn = c.tc
	}
	return c, nil
}
