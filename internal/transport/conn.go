package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// syncBodyMax is the largest request body written by the requesting
// goroutine before it reads the response. Larger bodies, and bodies of
// unknown length, are streamed by a short-lived goroutine while the response
// is read, so that an upstream answering early (or streaming its response
// while it reads) cannot deadlock the exchange.
const syncBodyMax = 64 << 10

// max1xx is how many informational responses may precede the final one.
const max1xx = 5

// bodyWaitMax is how long the end of a response waits for the goroutine
// streaming its request body to finish before giving up on reusing the
// connection.
const bodyWaitMax = 50 * time.Millisecond

// aLongTimeAgo is a deadline in the past, to interrupt I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one HTTP/1.1 connection to an upstream. It serves one exchange at
// a time and is owned by the goroutine of that exchange (or by its pool
// while idle); the few fields another goroutine may touch say so.
type conn struct {
	p   *hostPool
	nc  net.Conn
	br  *bufio.Reader // non-nil while busy
	lim *hostLimit    // the slot of the Transport using it; nil while idle or uncapped

	idleAt time.Time // when it was last put back in the pool
	reused bool      // it has served an exchange before the current one

	// Per exchange, reset by roundTrip. The read side is owned by the
	// goroutine reading the response, the write side by whoever writes.
	ctx        context.Context
	nread      int64
	rerr       error // last error of the underlying Read
	hdrLimit   int64 // > 0 while reading headers: reads past it fail
	nwritten   int64
	closeAfter bool            // the exchange ends with the connection closed
	stop       func() bool     // stops the cancellation hook; nil if none
	cancelFn   func()          // c.onCancel, bound once per connection
	wch        chan error      // result of the body-streaming goroutine
	writing    bool            // a body-streaming goroutine is running
	canceled   atomic.Bool     // the request context ended: never reuse
	dlMu       sync.Mutex      // orders deadline changes against onCancel
	hdrDone    bool            // guarded by dlMu: response headers are in
	bodyErr    error           // guarded by dlMu: the request body failed
	closed     atomic.Bool     // closed; slot released
	raw        syscall.RawConn // nil when the idle probe is unsupported
	probeFn    func(fd uintptr) bool
	probeAlive bool
	probeBuf   [1]byte
}

func newConn(p *hostPool, nc net.Conn) *conn {
	c := &conn{p: p, nc: nc}
	c.cancelFn = c.onCancel
	c.initProbe()
	return c
}

// Read reads from the network, counting bytes and keeping the last error
// so that failures can be told apart: a conn error is a reset or timeout,
// a parse error with no conn error is a protocol error.
func (c *conn) Read(p []byte) (int, error) {
	if c.hdrLimit > 0 && c.nread >= c.hdrLimit {
		return 0, ErrHeaderTooLarge
	}
	n, err := c.nc.Read(p)
	c.nread += int64(n)
	if err != nil {
		c.rerr = err
	}
	return n, err
}

// Write writes to the network, counting bytes.
func (c *conn) Write(p []byte) (int, error) {
	n, err := c.nc.Write(p)
	c.nwritten += int64(n)
	return n, err
}

// onCancel runs when the request context ends: it interrupts any I/O and
// poisons the connection so it is never reused.
func (c *conn) onCancel() {
	c.dlMu.Lock()
	c.canceled.Store(true)
	c.nc.SetDeadline(aLongTimeAgo)
	c.dlMu.Unlock()
}

// setReadDeadline sets a read deadline unless a cancellation got there
// first (whose past deadline must stay).
func (c *conn) setReadDeadline(t time.Time) {
	c.dlMu.Lock()
	if !c.canceled.Load() {
		c.nc.SetReadDeadline(t)
	}
	c.dlMu.Unlock()
}

// close closes the connection and frees its slot in the pool. recycle
// returns its reader to the pool; it must be false when another goroutine
// may still be reading. close is idempotent.
func (c *conn) close(recycle bool) {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	c.nc.Close()
	if recycle && c.br != nil {
		c.p.h.putReader(c.br)
	}
	c.br = nil
	c.p.released()
	if lim := c.lim; lim != nil {
		c.lim = nil
		lim.release()
	}
}

// reqInfo is what RoundTrip derived from the request once, for every try.
type reqInfo struct {
	method     string
	host       string // Host header
	cl         int64  // body length; -1: chunked
	close      bool   // the request asks to close the connection
	hasCloseHd bool   // ... through its Connection header
	upgrade    bool   // Connection: Upgrade with an Upgrade header
	replayable bool   // safe to resend after it may have been received
}

// roundTrip runs one exchange on c, with fields (RoundTripFields's, in wire
// form) written after req.Header's. It takes ownership of body (closing it
// when done with it). On error the connection is closed and retry reports
// whether the request may be resent on a fresh connection: c was reused and
// the request certainly or probably never reached the upstream.
func (c *conn) roundTrip(ctx context.Context, req *http.Request, ri *reqInfo, fields []byte, body io.ReadCloser) (resp *http.Response, retry bool, err error) {
	h := c.p.h
	c.ctx = ctx
	c.nread, c.rerr, c.nwritten = 0, nil, 0
	c.closeAfter = ri.close
	c.hdrDone = false
	if c.br == nil {
		c.br = h.getReader(c)
	}
	if ctx.Done() != nil {
		c.stop = context.AfterFunc(ctx, c.cancelFn)
	}

	async := body != nil && (ri.cl < 0 || ri.cl > syncBodyMax) && !ri.upgrade
	bw := h.getWriter(c)
	writeHead(bw, req, ri, fields)
	var werr error // conn write error
	if body != nil && !async {
		var berr error
		if ri.cl < 0 {
			sp := h.getScratch()
			berr, werr = writeChunked(bw, body, req.Trailer, *sp)
			h.putScratch(sp)
		} else {
			berr, werr = writeFixed(bw, body, ri.cl, nil)
		}
		body.Close()
		body = nil
		if berr != nil {
			h.putWriter(bw)
			c.abort()
			return nil, false, c.requestBodyError(berr)
		}
	}
	if werr == nil {
		werr = bw.Flush()
	}
	if werr != nil || !async {
		h.putWriter(bw)
	}
	if werr != nil {
		if body != nil {
			body.Close()
		}
		c.closeAfter = true
		// The upstream may have answered before hanging up (an early
		// 4xx): look for a response before giving up.
		if c.canceled.Load() {
			c.abort()
			return nil, false, ctxError(ctx, "write", c.p.addr, werr)
		}
		if resp, rerr := c.readResponse(req, ri, false); rerr == nil {
			return c.finishHead(resp, ri)
		}
		retry = c.reused && ctx.Err() == nil &&
			((c.nwritten == 0 && (ri.cl == 0 || req.GetBody != nil)) ||
				(c.nread == 0 && ri.replayable))
		c.abort()
		return nil, retry, &Error{Kind: observe.ErrUpstreamReset, Op: "write", Addr: c.p.addr, Err: werr}
	}
	if async {
		if c.wch == nil {
			c.wch = make(chan error, 1)
		}
		c.writing = true
		go c.streamBody(bw, body, ri.cl, req.Trailer)
	}

	resp, err = c.readResponse(req, ri, async)
	if err != nil {
		retry = c.reused && ctx.Err() == nil && !c.canceled.Load() &&
			c.nread == 0 && c.rerr != nil && !isTimeout(c.rerr) && ri.replayable
		err = c.readError(err, "read")
		c.abort()
		return nil, retry, err
	}
	return c.finishHead(resp, ri)
}

// finishHead turns the response head into the response returned: an
// upgrade, an empty body (the connection is released at once) or a body
// that releases it at its end.
func (c *conn) finishHead(resp *http.Response, ri *reqInfo) (*http.Response, bool, error) {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if !ri.upgrade || c.writing {
			c.abort()
			return nil, false, &Error{Kind: observe.ErrUpstreamProtocol, Op: "read", Addr: c.p.addr,
				Err: errors.New("101 Switching Protocols to a request that asked for no upgrade")}
		}
		if c.stop != nil && !c.stop() {
			c.stop = nil
			c.abort()
			return nil, false, ctxError(c.ctx, "read", c.p.addr, nil)
		}
		c.stop = nil
		resp.Body = &upgradeBody{c: c, br: c.br}
		return resp, false, nil
	}
	if resp.Close {
		c.closeAfter = true
	}
	if resp.Body == http.NoBody {
		c.release(true)
		return resp, false, nil
	}
	resp.Body = &body{c: c, rc: resp.Body}
	return resp, false, nil
}

// readResponse reads the response head, skipping 1xx informational
// responses other than 101. streaming says the request body is still being
// written by streamBody: the header timeout then starts when it is done.
func (c *conn) readResponse(req *http.Request, ri *reqInfo, streaming bool) (*http.Response, error) {
	h := c.p.h
	if h.hdrTimeout > 0 && !streaming {
		c.setReadDeadline(time.Now().Add(h.hdrTimeout))
	}
	c.hdrLimit = h.maxHeader
	var resp *http.Response
	var err error
	for n := 0; ; n++ {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode < 100 || resp.StatusCode == 101 {
			break
		}
		if n == max1xx {
			err = fmt.Errorf("more than %d informational responses", max1xx)
			break
		}
	}
	c.hdrLimit = 0
	if h.hdrTimeout > 0 {
		c.dlMu.Lock()
		c.hdrDone = true
		if !c.canceled.Load() {
			c.nc.SetReadDeadline(time.Time{})
		}
		c.dlMu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// readError classifies a failure to read from the upstream.
func (c *conn) readError(err error, op string) error {
	if c.canceled.Load() || c.ctx.Err() != nil {
		return ctxError(c.ctx, op, c.p.addr, err)
	}
	if c.writing {
		c.dlMu.Lock()
		berr := c.bodyErr
		c.dlMu.Unlock()
		if berr != nil {
			return c.requestBodyError(berr)
		}
	}
	if c.rerr != nil {
		if isTimeout(c.rerr) {
			cause := error(timeoutErr{ErrResponseHeaderTimeout})
			if op == "body" {
				cause = c.rerr
			}
			return &Error{Kind: observe.ErrUpstreamTimeout, Op: op, Addr: c.p.addr, Err: cause}
		}
		if err == io.EOF && op == "read" {
			err = io.ErrUnexpectedEOF
		}
		return &Error{Kind: observe.ErrUpstreamReset, Op: op, Addr: c.p.addr, Err: err}
	}
	return &Error{Kind: observe.ErrUpstreamProtocol, Op: op, Addr: c.p.addr, Err: err}
}

// requestBodyError reports a failure to read the request body: the client
// went away mid-upload, its body was malformed or did not match its
// Content-Length, or it was too slow. The cause is an
// *observe.RequestBodyError, so the failure is never blamed on the upstream.
func (c *conn) requestBodyError(err error) error {
	var be *observe.RequestBodyError
	if !errors.As(err, &be) {
		be = &observe.RequestBodyError{Err: err}
	}
	return &Error{Kind: observe.Classify(be, c.ctx), Op: "write", Addr: c.p.addr, Err: be}
}

// ctxError reports that the request context ended during op.
func ctxError(ctx context.Context, op, addr string, _ error) *Error {
	cerr := ctx.Err()
	kind := observe.ErrUpstreamTimeout
	if errors.Is(cerr, context.Canceled) {
		kind = observe.ErrClientCanceled
	}
	if cause := context.Cause(ctx); cause != nil && cause != cerr {
		cerr = fmt.Errorf("%w: %w", cerr, cause)
	}
	return &Error{Kind: kind, Op: op, Addr: addr, Err: cerr}
}

// abort ends a failed exchange: the connection is closed.
func (c *conn) abort() {
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
	c.close(true)
}

// release ends an exchange whose response was read completely (ok) or not:
// the connection goes back to the pool when ok, the request allows it, the
// context did not end and the request body was fully sent.
func (c *conn) release(ok bool) {
	if c.stop != nil {
		if !c.stop() {
			ok = false
		}
		c.stop = nil
	}
	if c.writing {
		select {
		case err := <-c.wch:
			c.writing = false
			ok = ok && err == nil
		default:
			if ok && !c.closeAfter {
				t := time.NewTimer(bodyWaitMax)
				select {
				case err := <-c.wch:
					c.writing = false
					ok = err == nil
				case <-t.C:
					ok = false
				}
				t.Stop()
			} else {
				ok = false
			}
		}
	}
	if !ok || c.closeAfter || c.canceled.Load() {
		c.close(true)
		return
	}
	c.p.put(c)
}

// streamBody writes the request body while the response is read. It owns
// bw and body. It reports on c.wch when done and touches c no more after.
func (c *conn) streamBody(bw *bufio.Writer, body io.ReadCloser, cl int64, trailer http.Header) {
	h := c.p.h
	sp := h.getScratch()
	var berr, werr error
	if cl < 0 {
		berr, werr = writeChunked(bw, body, trailer, *sp)
	} else {
		berr, werr = writeFixed(bw, body, cl, *sp)
	}
	if berr == nil && werr == nil {
		werr = bw.Flush()
	}
	h.putScratch(sp)
	h.putWriter(bw)
	body.Close()
	switch {
	case berr != nil:
		// The upstream is waiting for the rest of a body that will not
		// come: record why, then cut the exchange short.
		c.dlMu.Lock()
		c.bodyErr = berr
		c.dlMu.Unlock()
		c.nc.Close()
	case werr == nil && h.hdrTimeout > 0:
		c.dlMu.Lock()
		if !c.hdrDone && !c.canceled.Load() {
			c.nc.SetReadDeadline(time.Now().Add(h.hdrTimeout))
		}
		c.dlMu.Unlock()
	}
	err := berr
	if err == nil {
		err = werr
	}
	c.wch <- err
}

// body is the response body of the HTTP/1.1 client. Reading it to EOF
// releases the connection to the pool; closing it before EOF closes the
// connection. Read and Close may be called concurrently.
type body struct {
	c  *conn
	rc io.ReadCloser // from http.ReadResponse

	mu      sync.Mutex
	done    bool  // the connection was released or closed
	reading bool  // a Read is in rc.Read
	err     error // what Read returns once done
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.done {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	b.reading = true
	b.mu.Unlock()

	n, err := b.rc.Read(p)

	b.mu.Lock()
	b.reading = false
	if err == nil {
		b.mu.Unlock()
		return n, nil
	}
	if b.done { // closed while reading: the hook is ours to stop
		err = b.err
		b.mu.Unlock()
		if b.c.stop != nil {
			b.c.stop()
			b.c.stop = nil
		}
		return n, err
	}
	b.done = true
	if err == io.EOF {
		b.err = io.EOF
		b.mu.Unlock()
		b.c.release(true)
		return n, io.EOF
	}
	err = b.c.readError(err, "body")
	b.err = err
	b.mu.Unlock()
	b.c.abort()
	return n, err
}

// Close closes the body. Before EOF it closes the connection.
func (b *body) Close() error {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return nil
	}
	b.done = true
	b.err = ErrBodyClosed
	reading := b.reading
	b.mu.Unlock()
	c := b.c
	if c.stop != nil && !reading {
		c.stop()
		c.stop = nil
	}
	c.close(!reading)
	return nil
}

// upgradeBody is the body of a 101 response: the raw connection, read
// through the bytes already buffered. It is never pooled.
type upgradeBody struct {
	c  *conn
	br *bufio.Reader
}

func (u *upgradeBody) Read(p []byte) (int, error) {
	return u.br.Read(p)
}

func (u *upgradeBody) Write(p []byte) (int, error) {
	return u.c.nc.Write(p)
}

// Close closes the connection.
func (u *upgradeBody) Close() error {
	u.c.close(false)
	return nil
}

var _ io.ReadWriteCloser = (*upgradeBody)(nil)
