package proxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// outgoing builds the request sent upstream: a shallow copy of the client's
// with its own URL and a cleaned header map, X-Forwarded-* set, the path
// rewritten and the route's header edits applied.
func (x *exchange) outgoing() *http.Request {
	in, rec, rt := x.in, x.rec, x.route
	out := new(http.Request)
	*out = *in
	u := new(url.URL)
	*u = *in.URL
	out.URL = u
	out.RequestURI = ""
	out.Close = false

	h := cloneRequestHeader(in.Header)
	if up := upgradeType(in.Header); up != "" && rt.allowsUpgrade(up) {
		// Upgrades the route allows (WebSocket by default) need their
		// hop-by-hop headers; any other is forwarded as a plain request.
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = []string{up}
	}
	// An h2c upgrade's settings are never forwarded, even when not named
	// in Connection.
	delete(h, "Http2-Settings")
	if te := in.Header["Te"]; len(te) > 0 && listedIn(te, "trailers") {
		h["Te"] = []string{"trailers"} // gRPC needs it end to end
	}

	// X-Forwarded-*: kept and extended from a trusted peer, replaced
	// otherwise, so a client cannot forge its address.
	peer := rec.ClientAddr
	if host, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		peer = host
	}
	if rec.PeerTrusted {
		if prior := h["X-Forwarded-For"]; len(prior) > 0 {
			h["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + peer}
		} else {
			h["X-Forwarded-For"] = []string{peer}
		}
		if len(h["X-Forwarded-Proto"]) == 0 {
			h["X-Forwarded-Proto"] = []string{scheme(in)}
		}
		if len(h["X-Forwarded-Host"]) == 0 && in.Host != "" {
			h["X-Forwarded-Host"] = []string{in.Host}
		}
	} else {
		h["X-Forwarded-For"] = []string{peer}
		h["X-Forwarded-Proto"] = []string{scheme(in)}
		if in.Host != "" {
			h["X-Forwarded-Host"] = []string{in.Host}
		} else {
			delete(h, "X-Forwarded-Host") // HTTP/1.0 without Host: no empty value
		}
		delete(h, "Forwarded")
		delete(h, "X-Real-Ip")
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""} // no Go default user agent
	}
	if rt.hasReqOps {
		rt.reqOps.apply(h)
	}
	out.Header = h
	out.Trailer = nil

	if rt.rewrite {
		rewritePath(u, rt.stripPrefix, rt.addPrefix)
	}
	return out
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// rewritePath strips prefix (at a segment boundary) and then adds add.
func rewritePath(u *url.URL, strip, add string) {
	p, raw := u.Path, u.RawPath
	if strip != "" && (p == strip || strings.HasPrefix(p, strip+"/")) {
		p = p[len(strip):]
		if raw != "" && strings.HasPrefix(raw, strip) {
			raw = raw[len(strip):]
		} else {
			raw = ""
		}
	}
	if add != "" {
		p = add + p
		if raw != "" {
			raw = add + raw
		}
	}
	if p == "" {
		p = "/"
	} else if p[0] != '/' {
		p = "/" + p
	}
	u.Path, u.RawPath = p, raw
}

// replayBody reads a buffered body; rewind sets it back to the start.
type replayBody struct{ bytes.Reader }

func (replayBody) Close() error { return nil }

// prepareBody sets out.Body: nil for an empty body, the buffered copy when a
// retry may need to replay it, else the client's body streamed through
// x.body (which counts it, tags its read errors as the client's and applies
// the route's request_body limits). It reports whether the request can be
// sent more than once. A body that could not be buffered fails the request
// at once with the client's error kind (nothing was sent upstream).
func (x *exchange) prepareBody(out *http.Request) (replayable bool, failed observe.ErrorKind) {
	in := x.in
	if in.Body == nil || in.Body == http.NoBody || in.ContentLength == 0 {
		out.Body = nil
		out.ContentLength = 0
		out.GetBody = nil
		return true, observe.ErrNone
	}
	x.body.init(in.Body, in.ContentLength, x.route.body, x.route.clk, findReadDeadliner(x.w))
	if srv, ok := in.Context().Value(http.ServerContextKey).(*http.Server); ok && srv.ReadTimeout > 0 {
		// The server bounds the whole request (listeners[].timeouts.read)
		// from its arrival, which the record's start approximates.
		arrived := x.rec.Start
		if arrived.IsZero() {
			arrived = time.Now()
		}
		x.body.hard = arrived.Add(srv.ReadTimeout)
	}
	r := x.route.retry
	if r != nil && in.ContentLength > 0 && in.ContentLength <= r.bufferBytes {
		buf := x.replay[:0]
		if int64(cap(buf)) < in.ContentLength {
			buf = make([]byte, 0, in.ContentLength)
		}
		n, err := io.ReadFull(&x.body, buf[:in.ContentLength])
		x.replay = buf[:n]
		if err != nil {
			// The body ended early or broke: the client's fault, and
			// no upstream needs to see it.
			be := x.bodyFailure()
			if be == nil {
				be = &observe.RequestBodyError{Err: err}
			}
			return false, observe.Classify(be, in.Context())
		}
		x.body.disarm() // all of it arrived, maybe without an EOF yet
		x.bufBody.Reset(x.replay)
		out.Body = &x.bufBody
		out.GetBody = nil
		return true, observe.ErrNone
	}
	out.Body = &x.body
	out.GetBody = nil
	// A streamed body can be resent only if none of it was read, which
	// the retry path checks (connect errors happen before any write).
	return true, observe.ErrNone
}

// rewind resets a replayable body before a retry; false if it cannot be.
func (x *exchange) rewind(out *http.Request) bool {
	switch out.Body {
	case nil:
		return true
	case &x.bufBody:
		x.bufBody.Reset(x.replay)
		return true
	case &x.body:
		return x.body.n.Load() == 0
	}
	return false
}
