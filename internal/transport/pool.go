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

// http1 is the built-in HTTP/1.1 client's shared half: one pool of idle
// connections per upstream host:port, for every Transport of a Pools built
// with the same settings (h1Key), used synchronously by the requesting
// goroutine. Per-Transport limits live in limits.
type http1 struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	clock       clock.Clock
	maxIdle     int
	idleTimeout time.Duration
	hdrTimeout  time.Duration
	maxHeader   int64

	key  h1Key // its key in its Pools
	refs int   // Transports holding it; guarded by the Pools' mutex

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

// h1Key is what makes two services' HTTP/1.1 connections interchangeable:
// the settings of the client that dials, pools and reads them. TLS and
// protocol settings do not apply to http:// upstreams, and
// max_conns_per_host is each Transport's own (limits).
type h1Key struct {
	dialTimeout, idleTimeout, hdrTimeout time.Duration
	maxIdle                              int
}

func h1KeyOf(cfg config.Transport) h1Key {
	k := h1Key{
		dialTimeout: cfg.DialTimeout.D(),
		idleTimeout: cfg.IdleConnTimeout.D(),
		hdrTimeout:  cfg.ResponseHeaderTimeout.D(),
		maxIdle:     cfg.MaxIdleConnsPerHost,
	}
	if k.maxIdle <= 0 {
		k.maxIdle = 64
	}
	return k
}

func newHTTP1(k h1Key, opts Options) *http1 {
	dialer := &net.Dialer{Timeout: k.dialTimeout, KeepAlive: 30 * time.Second}
	h := &http1{
		dial:        dialer.DialContext,
		clock:       opts.Clock,
		maxIdle:     k.maxIdle,
		idleTimeout: k.idleTimeout,
		hdrTimeout:  k.hdrTimeout,
		maxHeader:   opts.MaxResponseHeaderBytes,
		key:         k,
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

// hostPool holds the connections to one upstream host:port, shared by
// every Transport of its http1.
type hostPool struct {
	h    *http1
	addr string // dial address, host:port

	mu       sync.Mutex
	idle     []*conn     // LIFO: the most recently used is last
	numConns int         // open connections: idle, busy and being dialed
	timer    *time.Timer // idle-expiry janitor, armed while idle is non-empty
	armed    bool
	closed   bool
}

// get returns a connection for one request: the most recently used idle
// one unless fresh is set, else a new one. With a limit, it first takes one
// of the Transport's slots for the host (max_conns_per_host), waiting for
// one as long as ctx allows; the connection holds the slot until it is
// pooled or closed. Idle connections past idle_conn_timeout are closed;
// one idle for longer than probeIdleAfter is probed and dropped if the
// server closed it.
func (p *hostPool) get(ctx context.Context, fresh bool, lim *hostLimit) (*conn, error) {
	if lim != nil {
		if err := lim.acquire(ctx, p.addr); err != nil {
			return nil, err
		}
	}
	for !fresh {
		now := p.h.clock.Now()
		p.mu.Lock()
		c, stale := p.popIdleLocked(now)
		if c == nil && stale == nil {
			p.mu.Unlock()
			break
		}
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
		c.lim = lim
		return c, nil
	}
	p.mu.Lock()
	p.numConns++
	p.mu.Unlock()
	c, err := p.dial(ctx)
	if err != nil {
		p.released()
		if lim != nil {
			lim.release()
		}
		return nil, err
	}
	c.lim = lim
	return c, nil
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
		c.close(true) // frees the slot with the connection
		return
	}
	// The connection's slot (max_conns_per_host) is freed once it is idle,
	// not before: a request waiting for a slot then finds it there instead
	// of dialing another.
	lim := c.lim
	c.lim = nil
	var stale []*conn
	if p.h.idleTimeout > 0 && len(p.idle) > 0 && now.Sub(p.idle[0].idleAt) >= p.h.idleTimeout {
		stale = p.pruneLocked(now)
	}
	p.idle = append(p.idle, c)
	if !p.armed && p.h.idleTimeout > 0 {
		p.armLocked(p.h.idleTimeout)
	}
	p.mu.Unlock()
	if lim != nil {
		lim.release()
	}
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

// released is called when an open connection closes (or a dial fails).
func (p *hostPool) released() {
	p.mu.Lock()
	p.numConns--
	p.mu.Unlock()
}

// limits is one Transport's max_conns_per_host over the shared pools: a
// count of its busy connections (and dials) per host:port. Idle
// connections belong to the shared pool and hold no slot, so a service's
// cap bounds what it has in use, not what other services left idle.
type limits struct {
	max int
	m   atomic.Pointer[map[string]*hostLimit] // copied on write
	mu  sync.Mutex                            // serialises writers of m
}

func newLimits(max int) *limits {
	l := &limits{max: max}
	m := map[string]*hostLimit{}
	l.m.Store(&m)
	return l
}

// host returns the limit for hostport, creating it on first use.
func (l *limits) host(hostport string) *hostLimit {
	if hl := (*l.m.Load())[hostport]; hl != nil {
		return hl
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := *l.m.Load()
	if hl := old[hostport]; hl != nil {
		return hl
	}
	hl := &hostLimit{max: l.max}
	m := make(map[string]*hostLimit, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[hostport] = hl
	l.m.Store(&m)
	return hl
}

// hostLimit counts one Transport's connections in use to one host:port.
type hostLimit struct {
	max     int
	mu      sync.Mutex
	busy    int // connections held by exchanges, and dials in progress
	waiters []chan struct{}
}

// acquire takes a slot, waiting in order of arrival as long as ctx allows.
func (l *hostLimit) acquire(ctx context.Context, addr string) error {
	l.mu.Lock()
	if l.busy < l.max {
		l.busy++
		l.mu.Unlock()
		return nil
	}
	w := make(chan struct{}, 1)
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()
	select {
	case <-w: // the slot was handed over: busy already counts it
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		found := false
		for i, x := range l.waiters {
			if x == w {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				found = true
				break
			}
		}
		l.mu.Unlock()
		if !found { // handed a slot concurrently: give it back
			l.release()
		}
		return ctxError(ctx, "dial", addr, ctx.Err())
	}
}

// release frees a slot, handing it to the oldest waiter if there is one.
func (l *hostLimit) release() {
	l.mu.Lock()
	if len(l.waiters) > 0 {
		w := l.waiters[0]
		copy(l.waiters, l.waiters[1:])
		l.waiters[len(l.waiters)-1] = nil
		l.waiters = l.waiters[:len(l.waiters)-1]
		l.mu.Unlock()
		w <- struct{}{}
		return
	}
	l.busy--
	l.mu.Unlock()
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
