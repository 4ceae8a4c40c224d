package balancer

import (
	"errors"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/upstream"
)

// Ring sizing: each unit of weight puts vnodesPerWeight points on the ring,
// which keeps every host's share within about ±10% of its weight. Very large
// weights are scaled down so the ring never exceeds maxRing points (16 bytes
// each).
const (
	vnodesPerWeight = 160
	maxRing         = 1 << 16
)

// hashPicker is consistent hashing on a ring with virtual nodes. A request's
// key (a header value, a cookie value or the client IP) is hashed onto the
// ring and the first point at or after it names the host. When that host is
// unavailable or excluded, the walk goes on to the next points until it finds
// an eligible host.
//
// Why a ring rather than Maglev or rendezvous hashing: skipping an
// unavailable host by walking on gives exactly the mapping of a ring without
// that host, so a host going down (or being removed from the config) moves
// only its own keys, about 1/N of them, and moves them back when it returns;
// lookup is a binary search with no allocation; and points depend only on
// each host's Key and weight, so every gateway replica with the same hosts
// maps a key to the same host. Maglev needs a table rebuild to route around a
// host; rendezvous hashing costs one hash per host per request.
//
// The hash function is FNV-1a with a 64-bit finaliser: stable across
// processes and releases (changing it would move every key).
//
// Requests without the key are spread by smooth weighted round robin.
type hashPicker struct {
	hosts    []*upstream.Host
	ring     []vnode // sorted by hash
	weighted int     // hosts with weight > 0
	key      func(r *http.Request) string
	fallback *roundRobin
}

type vnode struct {
	hash uint64
	host int32
}

func newHash(hk *config.HashKey, hosts []*upstream.Host) (*hashPicker, error) {
	if hk == nil {
		return nil, errors.New("hash policy needs a hash key (header, cookie or client_ip)")
	}
	p := &hashPicker{hosts: hosts, fallback: newRoundRobin(hosts)}
	n := 0
	if hk.Header != "" {
		n++
		name := textproto.CanonicalMIMEHeaderKey(hk.Header)
		p.key = func(r *http.Request) string {
			if v := r.Header[name]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
	}
	if hk.Cookie != "" {
		n++
		name := hk.Cookie
		p.key = func(r *http.Request) string { return cookieValue(r.Header, name) }
	}
	if hk.ClientIP {
		n++
		p.key = clientIP
	}
	if n != 1 {
		return nil, errors.New("hash key needs exactly one of header, cookie, client_ip")
	}
	p.ring = buildRing(hosts)
	for _, h := range hosts {
		if h.Weight > 0 {
			p.weighted++
		}
	}
	return p, nil
}

func buildRing(hosts []*upstream.Host) []vnode {
	total := 0
	for _, h := range hosts {
		total += max(h.Weight, 0) * vnodesPerWeight
	}
	ring := make([]vnode, 0, min(total, maxRing+len(hosts)))
	for i, h := range hosts {
		if h.Weight <= 0 {
			continue
		}
		n := h.Weight * vnodesPerWeight
		if total > maxRing {
			n = max(1, int(int64(n)*maxRing/int64(total)))
		}
		for j := range n {
			ring = append(ring, vnode{hash: hashString(h.Key + "#" + strconv.Itoa(j)), host: int32(i)})
		}
	}
	slices.SortFunc(ring, func(a, b vnode) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return int(a.host - b.host)
	})
	return ring
}

// Pick implements Picker.
func (p *hashPicker) Pick(r *http.Request, exclude *upstream.Host) (*upstream.Host, error) {
	key := p.key(r)
	if key == "" || len(p.ring) == 0 {
		return p.fallback.Pick(r, exclude)
	}
	return p.lookup(hashString(key), exclude)
}

// lookup walks the ring from hash k to the first eligible host.
func (p *hashPicker) lookup(k uint64, exclude *upstream.Host) (*upstream.Host, error) {
	ring := p.ring
	// The first point at or after k, wrapping to the start.
	lo, hi := 0, len(ring)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ring[m].hash < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	i := lo
	if i == len(ring) {
		i = 0
	}
	// seen tracks hosts already tried (for the first 64 hosts), so the walk
	// stops once every host has been tried instead of going all around.
	var seen uint64
	canStop := len(p.hosts) <= 64
	tried := 0
	excluded := false
	for range ring {
		idx := ring[i].host
		if i++; i == len(ring) {
			i = 0
		}
		if idx < 64 {
			bit := uint64(1) << idx
			if seen&bit != 0 {
				continue
			}
			seen |= bit
		}
		h := p.hosts[idx]
		if h.Available() {
			if h != exclude {
				return h, nil
			}
			excluded = true
		}
		if tried++; canStop && tried == p.weighted {
			break
		}
	}
	if excluded {
		return exclude, nil
	}
	return nil, ErrNoHealthyUpstream
}

// clientIP is the request's client address: the Record's ClientAddr (after
// trusted proxies) when the gateway put a Record in the context, else the
// host part of RemoteAddr.
func clientIP(r *http.Request) string {
	if rec := observe.FromContext(r.Context()); rec != nil && rec.ClientAddr != "" {
		return rec.ClientAddr
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// cookieValue returns the value of the first cookie called name in h's
// Cookie headers, without surrounding quotes, or "". Unlike
// http.Request.Cookie it parses in place and does not allocate.
func cookieValue(h http.Header, name string) string {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(part, "=")
			if !ok || textproto.TrimString(k) != name {
				continue
			}
			v = textproto.TrimString(v)
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return ""
}

// hashString is 64-bit FNV-1a followed by splitmix64's finaliser, which
// spreads FNV's weak low bits over the whole word.
func hashString(s string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	return mix64(h)
}
