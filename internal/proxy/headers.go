package proxy

import (
	"net/http"
	"net/textproto"
	"strings"

	"github.com/vantage-gateway/vantage/internal/config"
)

// hopHeaders are removed from requests and responses: they describe one
// connection, not the message (RFC 9110 §7.6.1).
var hopHeaders = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// addedHeaders is how many request headers the gateway may add to a copy:
// the three X-Forwarded-* and up to two trace headers.
const addedHeaders = 5

// cloneRequestHeader copies h without hop-by-hop headers and without the
// headers named in Connection. It allocates one map and one shared backing
// slice for all values. The map has room for the headers the gateway adds
// after (X-Forwarded-For/Proto/Host and a trace context), so adding them
// does not grow it.
func cloneRequestHeader(h http.Header) http.Header {
	nv := 0
	for _, vv := range h {
		nv += len(vv)
	}
	sv := make([]string, nv)
	out := make(http.Header, len(h)+addedHeaders)
	conn := h["Connection"]
	for k, vv := range h {
		if isHopHeader(k) || (len(conn) > 0 && listedIn(conn, k)) {
			continue
		}
		n := copy(sv, vv)
		out[k] = sv[:n:n]
		sv = sv[n:]
	}
	return out
}

// removeConnectionHeaders deletes hop-by-hop headers and those named in
// Connection from h in place (used on upstream responses).
func removeConnectionHeaders(h http.Header) {
	for _, f := range h["Connection"] {
		for _, sf := range strings.Split(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// listedIn reports whether the canonical header key is named in any of the
// Connection header values.
func listedIn(conn []string, key string) bool {
	for _, f := range conn {
		for f != "" {
			var tok string
			tok, f, _ = strings.Cut(f, ",")
			if strings.EqualFold(textproto.TrimString(tok), key) {
				return true
			}
		}
	}
	return false
}

// upgradeType returns the protocol requested in Upgrade when Connection
// includes "upgrade", else "".
func upgradeType(h http.Header) string {
	if !listedIn(h["Connection"], "Upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

// headerOps is a compiled config.HeaderOps with canonical keys.
type headerOps struct {
	remove []string
	set    [][2]string
	add    [][2]string
}

func compileHeaderOps(c config.HeaderOps) headerOps {
	var h headerOps
	for _, k := range c.Remove {
		h.remove = append(h.remove, http.CanonicalHeaderKey(k))
	}
	for k, v := range c.Set {
		h.set = append(h.set, [2]string{http.CanonicalHeaderKey(k), v})
	}
	for k, v := range c.Add {
		h.add = append(h.add, [2]string{http.CanonicalHeaderKey(k), v})
	}
	return h
}

func (o *headerOps) empty() bool { return len(o.remove)+len(o.set)+len(o.add) == 0 }

func (o *headerOps) apply(h http.Header) {
	for _, k := range o.remove {
		delete(h, k)
	}
	for _, kv := range o.set {
		h[kv[0]] = []string{kv[1]}
	}
	for _, kv := range o.add {
		h[kv[0]] = append(h[kv[0]], kv[1])
	}
}
