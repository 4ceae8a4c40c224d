package transport

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// probeIdleAfter is how long a connection must have been idle before it is
// probed for a close by the server on reuse. Below it the probe would be
// wasted work under load; above it, it catches upstreams that closed idle
// connections (keep-alive timeouts) before a request is written to them.
const probeIdleAfter = 100 * time.Millisecond

// minJanitorDelay keeps the idle-expiry timer from spinning.
const minJanitorDelay = 10 * time.Millisecond

// http1 is the built-in HTTP/1.1 client: one pool of connections per
// upstream host:port, used synchronously by the requesting goroutine.
type http1 struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	clock       clock.Clock
	maxIdle     int
	maxConns    int
	idleTimeout time.Duration
	hdrTimeout  time.Duration
	maxHeader   int64

	// pools maps req.URL.Host to its pool. It is copied on write: reads
	// are a lock-free load and a map lookup.
	pools  atomic.Pointer[map[string]*hostPool]
	poolMu sync.Mutex // serialises writers of pools, and closed
	closed bool

	// Buffers, reused across connections: a connection holds a reader
	// only while busy and a writer only while writing. They hold no
	// request data once pooled.
	readers sync.Pool // *bufio.Reader
	writers sync.Pool // *bufio.Writer
	chunks  sync.Pool // *[]byte, scratch for streamed request bodies
}

func newHTTP1(cfg config.Transport, opts Options, dialer *net.Dialer) *http1 {
	h := &http1{
		dial:        dialer.DialContext,
		clock:       opts.Clock,
		maxIdle:     cfg.MaxIdleConnsPerHost,
		maxConns:    cfg.MaxConnsPerHost,
		idleTimeout: cfg.IdleConnTimeout.D(),
		hdrTimeout:  cfg.ResponseHeaderTimeout.D(),
		maxHeader:   opts.MaxResponseHeaderBytes,
	}
	if h.maxIdle <= 0 {
		h.maxIdle = 64
	}
	m := map[string]*hostPool{}
	h.pools.Store(&m)
	return h
}

// pool returns the pool for hostport (as written in the URL), creating it
// on first use.
func (h *http1) pool(hostport string) *hostPool {
	if p := (*h.pools.Load())[hostport]; p != nil {
		return p
	}
	h.poolMu.Lock()
	defer h.poolMu.Unlock()
	old := *h.pools.Load()
	if p := old[hostport]; p != nil {
		return p
	}
	addr := hostport
	if !hasPort(addr) {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "80")
	}
	p := &hostPool{h: h, addr: addr, closed: h.closed}
	m := make(map[string]*hostPool, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[hostport] = p
	h.pools.Store(&m)
	return p
}

// hasPort reports whether hostport ends in a port.
func hasPort(hostport string) bool {
	i := strings.LastIndexByte(hostport, ':')
	return i >= 0 && i > strings.LastIndexByte(hostport, ']')
}

// closeIdle closes every pool's idle connections; retire also makes the
// pools close connections instead of keeping them from now on.
func (h *http1) closeIdle(retire bool) {
	h.poolMu.Lock()
	if retire {
		h.closed = true
	}
	pools := *h.pools.Load()
	h.poolMu.Unlock()
	for _, p := range pools {
		p.closeIdle(retire)
	}
}

// hostPool holds the connections to one upstream host:port.
type hostPool struct {
	h    *http1
	addr string // dial address, host:port

	mu       sync.Mutex
	idle     []*conn // LIFO: the most recently used is last
	numConns int     // open connections: idle, busy and being dialed
	waiters  []chan struct{}
	timer    *time.Timer // idle-expiry janitor, armed while idle is non-empty
	armed    bool
	closed   bool
}

// get returns a connection for one request: the most recently used idle
// one unless fresh is set, else a new one, waiting for a free slot under
// max_conns_per_host. Idle connections past idle_conn_timeout are closed;
// one idle for longer than probeIdleAfter is probed and dropped if the
// server closed it.
func (p *hostPool) get(ctx context.Context, fresh bool) (*conn, error) {
	for {
		var now time.Time
		if !fresh {
			now = p.h.clock.Now()
		}
		p.mu.Lock()
		if !fresh {
			if c, stale := p.popIdleLocked(now); c != nil || stale != nil {
				p.mu.Unlock()
				for _, s := range stale {
					s.close(true)
				}
				if c == nil {
					continue
				}
				if now.Sub(c.idleAt) >= probeIdleAfter && !c.alive() {
					c.close(true)
					continue
				}
				return c, nil
			}
		}
		if p.h.maxConns <= 0 || p.numConns < p.h.maxConns {
			p.numConns++
			p.mu.Unlock()
			c, err := p.dial(ctx)
			if err != nil {
				p.mu.Lock()
				p.numConns--
				p.wakeOneLocked()
				p.mu.Unlock()
				return nil, err
			}
			return c, nil
		}
		if fresh && len(p.idle) > 0 {
			// At the cap with only idle connections holding the slots: a
			// fresh one cannot be had, so take an idle one after all.
			p.mu.Unlock()
			fresh = false
			continue
		}
		w := make(chan struct{}, 1)
		p.waiters = append(p.waiters, w)
		p.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			p.mu.Lock()
			found := false
			for i, x := range p.waiters {
				if x == w {
					p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
					found = true
					break
				}
			}
			if !found { // woken concurrently: pass the turn on
				p.wakeOneLocked()
			}
			p.mu.Unlock()
			return nil, ctxError(ctx, "dial", p.addr, ctx.Err())
		}
	}
}

// popIdleLocked pops the most recent idle connection. If it is past
// idle_conn_timeout, so are all below it: they are all removed and returned
// as stale for the caller to close.
func (p *hostPool) popIdleLocked(now time.Time) (c *conn, stale []*conn) {
	n := len(p.idle)
	if n == 0 {
		return nil, nil
	}
	c = p.idle[n-1]
	if p.h.idleTimeout > 0 && now.Sub(c.idleAt) >= p.h.idleTimeout {
		stale = append(stale, p.idle...)
		clear(p.idle)
		p.idle = p.idle[:0]
		return nil, stale
	}
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return c, nil
}

// dial opens a new connection.
func (p *hostPool) dial(ctx context.Context) (*conn, error) {
	nc, err := p.h.dial(ctx, "tcp", p.addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctxError(ctx, "dial", p.addr, err)
		}
		return nil, &Error{Kind: observe.ErrUpstreamConnect, Op: "dial", Addr: p.addr, Err: err}
	}
	return newConn(p, nc), nil
}

// put takes back a healthy connection whose exchange is complete, or closes
// it when the pool is full or retired.
func (p *hostPool) put(c *conn) {
	if c.br != nil {
		if c.br.Buffered() > 0 { // bytes nobody asked for: not reusable
			c.close(true)
			return
		}
		p.h.putReader(c.br)
		c.br = nil
	}
	c.ctx = nil // do not keep the request's context alive while idle
	now := p.h.clock.Now()
	c.idleAt = now
	c.reused = true
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.h.maxIdle {
		p.mu.Unlock()
		c.close(true)
		return
	}
	var stale []*conn
	if p.h.idleTimeout > 0 && len(p.idle) > 0 && now.Sub(p.idle[0].idleAt) >= p.h.idleTimeout {
		stale = p.pruneLocked(now)
	}
	p.idle = append(p.idle, c)
	if len(p.waiters) > 0 {
		p.wakeOneLocked()
	}
	if !p.armed && p.h.idleTimeout > 0 {
		p.armLocked(p.h.idleTimeout)
	}
	p.mu.Unlock()
	for _, s := range stale {
		s.close(true)
	}
}

// pruneLocked removes idle connections past idle_conn_timeout (the oldest
// are first) and returns them for the caller to close.
func (p *hostPool) pruneLocked(now time.Time) []*conn {
	i := 0
	for i < len(p.idle) && now.Sub(p.idle[i].idleAt) >= p.h.idleTimeout {
		i++
	}
	if i == 0 {
		return nil
	}
	stale := append([]*conn(nil), p.idle[:i]...)
	n := copy(p.idle, p.idle[i:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	return stale
}

// armLocked schedules the janitor in d.
func (p *hostPool) armLocked(d time.Duration) {
	p.armed = true
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.janitor)
		return
	}
	p.timer.Reset(d)
}

// janitor closes idle connections past idle_conn_timeout even when no
// request comes to notice them, and re-arms itself while any stay idle.
func (p *hostPool) janitor() {
	now := p.h.clock.Now()
	p.mu.Lock()
	p.armed = false
	stale := p.pruneLocked(now)
	if len(p.idle) > 0 && !p.closed {
		d := p.h.idleTimeout - now.Sub(p.idle[0].idleAt)
		p.armLocked(max(d, minJanitorDelay))
	}
	p.mu.Unlock()
	for _, s := range stale {
		s.close(true)
	}
}

// closeIdle closes the idle connections; retire marks the pool closed.
func (p *hostPool) closeIdle(retire bool) {
	p.mu.Lock()
	idle := append([]*conn(nil), p.idle...)
	clear(p.idle)
	p.idle = p.idle[:0]
	if retire {
		p.closed = true
	}
	if p.timer != nil {
		p.timer.Stop()
		p.armed = false
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.close(true)
	}
}

// released is called when an open connection closes: it frees its slot.
func (p *hostPool) released() {
	p.mu.Lock()
	p.numConns--
	if len(p.waiters) > 0 {
		p.wakeOneLocked()
	}
	p.mu.Unlock()
}

// wakeOneLocked wakes the oldest waiter for a connection slot.
func (p *hostPool) wakeOneLocked() {
	if len(p.waiters) == 0 {
		return
	}
	w := p.waiters[0]
	copy(p.waiters, p.waiters[1:])
	p.waiters[len(p.waiters)-1] = nil
	p.waiters = p.waiters[:len(p.waiters)-1]
	w <- struct{}{}
}

const bufSize = 4 << 10

// getReader returns a pooled reader over c.
func (h *http1) getReader(c *conn) *bufio.Reader {
	if br, ok := h.readers.Get().(*bufio.Reader); ok {
		br.Reset(c)
		return br
	}
	return bufio.NewReaderSize(c, bufSize)
}

// putReader pools an empty reader.
func (h *http1) putReader(br *bufio.Reader) {
	br.Reset(nil)
	h.readers.Put(br)
}

// getWriter returns a pooled writer to c.
func (h *http1) getWriter(c *conn) *bufio.Writer {
	if bw, ok := h.writers.Get().(*bufio.Writer); ok {
		bw.Reset(c)
		return bw
	}
	return bufio.NewWriterSize(c, bufSize)
}

// putWriter pools a flushed (or abandoned) writer.
func (h *http1) putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	h.writers.Put(bw)
}
