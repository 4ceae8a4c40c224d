package transport

import (
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
)

// Pools holds the connection pools of the Transports built from it (New),
// shared by upstream address and settings: two services whose upstreams
// reach the same host:port with the same settings reuse each other's idle
// connections instead of keeping a pool each. With thousands of services
// in front of a few upstream addresses, per-service pools would almost
// never hold an idle connection for the next request, and nearly every
// request would dial.
//
// What must match for sharing, per client:
//
//   - http:// (the built-in HTTP/1.1 client): dial_timeout,
//     idle_conn_timeout, response_header_timeout and
//     max_idle_conns_per_host, which then caps the idle connections to
//     one address for all of them together. max_conns_per_host stays each
//     Transport's own: it caps the connections that Transport has in use
//     (busy or being dialed) to a host, while idle connections belong to
//     the shared pool and hold no Transport's slot.
//   - https:// (net/http's Transport): every transport setting, TLS and
//     protocol included. A Transport with max_conns_per_host keeps an
//     *http.Transport of its own, since that cap is http.Transport's.
//   - h2c:// (x/net's HTTP/2 Transport): dial_timeout and
//     idle_conn_timeout; response_header_timeout is applied per Transport.
//
// A pool lives while a Transport uses it: the last Transport's Close
// closes its idle connections (see Transport.Close). A gateway keeps one
// Pools for its life, so that a reload's new Transports take over the
// previous ones' connections.
//
// The zero value is not usable; call NewPools. Pools is safe for
// concurrent use.
type Pools struct {
	opts Options

	mu  sync.Mutex
	h1  map[h1Key]*http1
	std map[config.Transport]*stdEntry
	h2c map[h2cKey]*h2cEntry
}

// stdEntry is a shared *http.Transport and the Transports using it.
type stdEntry struct {
	key  config.Transport
	t    *http.Transport
	refs int // guarded by Pools.mu
}

// h2cKey is what makes two services' h2c connections interchangeable.
type h2cKey struct {
	dialTimeout, idleTimeout time.Duration
}

// h2cEntry is a shared h2c transport and the Transports using it.
type h2cEntry struct {
	key  h2cKey
	t    *http2.Transport
	refs int // guarded by Pools.mu
}

// NewPools returns an empty set of pools whose Transports have opts (see
// Options; the zero value is the production setting).
func NewPools(opts Options) *Pools {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.MaxResponseHeaderBytes <= 0 {
		opts.MaxResponseHeaderBytes = DefaultMaxResponseHeaderBytes
	}
	return &Pools{
		opts: opts,
		h1:   map[h1Key]*http1{},
		std:  map[config.Transport]*stdEntry{},
		h2c:  map[h2cKey]*h2cEntry{},
	}
}

// New builds the transport for one service from its config (normally after
// config defaults were applied; see the package New for what zero values
// mean) over the shared pools of ps. It fails when ca_file cannot be read
// or holds no certificate. The caller closes the Transport when the service
// no longer uses it (Transport.Close), which lets its pools go.
func (ps *Pools) New(cfg config.Transport) (*Transport, error) {
	t := &Transport{pools: ps, h2cHeaderTimeout: cfg.ResponseHeaderTimeout.D()}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	// std first: it is the part that can fail (reading ca_file).
	if cfg.MaxConnsPerHost > 0 {
		std, err := newStd(cfg, ps.opts)
		if err != nil {
			return nil, err
		}
		t.std = std
	} else {
		e := ps.std[cfg]
		if e == nil {
			std, err := newStd(cfg, ps.opts)
			if err != nil {
				return nil, err
			}
			e = &stdEntry{key: cfg, t: std}
			ps.std[cfg] = e
		}
		e.refs++
		t.std, t.stdE = e.t, e
	}
	if !ps.opts.DisableFastHTTP1 {
		k := h1KeyOf(cfg)
		h := ps.h1[k]
		if h == nil {
			h = newHTTP1(k, ps.opts)
			ps.h1[k] = h
		}
		h.refs++
		t.h1 = h
		if cfg.MaxConnsPerHost > 0 {
			t.lim = newLimits(cfg.MaxConnsPerHost)
		}
	}
	hk := h2cKey{dialTimeout: cfg.DialTimeout.D(), idleTimeout: cfg.IdleConnTimeout.D()}
	he := ps.h2c[hk]
	if he == nil {
		he = &h2cEntry{key: hk, t: newH2C(hk, ps.opts)}
		ps.h2c[hk] = he
	}
	he.refs++
	t.h2c = he
	return t, nil
}

// release gives up t's share of its pools and closes the idle connections
// of those no Transport uses any more.
func (ps *Pools) release(t *Transport) {
	var (
		h1  *http1
		std *http.Transport
		h2c *http2.Transport
	)
	ps.mu.Lock()
	if h := t.h1; h != nil {
		if h.refs--; h.refs == 0 {
			delete(ps.h1, h.key)
			h1 = h
		}
	}
	if e := t.stdE; e == nil {
		std = t.std
	} else if e.refs--; e.refs == 0 {
		delete(ps.std, e.key)
		std = e.t
	}
	t.h2c.refs--
	if e := t.h2c; e.refs == 0 {
		delete(ps.h2c, e.key)
		h2c = e.t
	}
	ps.mu.Unlock()
	if h1 != nil {
		h1.closeIdle(true)
	}
	if std != nil {
		std.CloseIdleConnections()
	}
	if h2c != nil {
		h2c.CloseIdleConnections()
	}
}

// PoolStats counts what a Pools holds, for tests and the admin API.
type PoolStats struct {
	// Clients is the number of distinct HTTP/1.1 settings in use;
	// Addresses the number of host:port pools under them.
	Clients, Addresses int
	// Open and Idle are the HTTP/1.1 connections open (idle, busy or
	// being dialed) and idle, over every pool.
	Open, Idle int
}

// Stats returns the counts of ps's HTTP/1.1 pools, read one pool at a time.
func (ps *Pools) Stats() PoolStats {
	ps.mu.Lock()
	hs := make([]*http1, 0, len(ps.h1))
	for _, h := range ps.h1 {
		hs = append(hs, h)
	}
	ps.mu.Unlock()
	var st PoolStats
	st.Clients = len(hs)
	for _, h := range hs {
		for _, p := range *h.pools.Load() {
			st.Addresses++
			p.mu.Lock()
			st.Open += p.numConns
			st.Idle += len(p.idle)
			p.mu.Unlock()
		}
	}
	return st
}
