package proxy

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// respond writes the upstream's response to the client and returns how the
// exchange ended (ErrNone, or why the body copy broke).
func (x *exchange) respond(resp *http.Response, a *observe.Attempt) observe.ErrorKind {
	w, rec := x.w, x.rec
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return x.upgrade(resp)
	}
	bodyStart := time.Now()
	defer func() {
		if a := rec.LastAttempt(); a != nil {
			a.BodyDuration = time.Since(bodyStart)
		}
	}()

	removeConnectionHeaders(resp.Header)
	if x.route.hasRespOps {
		x.route.respOps.apply(resp.Header)
	}
	// Headers the gateway set before the proxy ran (the trace id response
	// header, rate-limit headers) win over the upstream's of the same name.
	dst := w.Header()
	for k, vv := range resp.Header {
		if _, ok := dst[k]; !ok {
			dst[k] = vv
		}
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		dst["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	if g := resp.Header["Grpc-Status"]; len(g) > 0 {
		rec.GRPCStatus = atoiOr(g[0], -1)
	}
	w.WriteHeader(resp.StatusCode)

	kind := x.copyBody(resp)
	_ = resp.Body.Close()
	if kind != observe.ErrNone {
		rec.ErrorKind = kind
		rec.Aborted = !kind.IsClientError()
		if kind == observe.ErrClientTimeout {
			x.reportBodyTimeout() // the status is already out
		}
		return kind
	}

	if len(resp.Trailer) > 0 {
		if g := resp.Trailer["Grpc-Status"]; len(g) > 0 {
			rec.GRPCStatus = atoiOr(g[0], -1)
		}
		// Trailers that were not announced go out with the TrailerPrefix.
		if len(resp.Trailer) != announced {
			http.NewResponseController(w).Flush() //nolint:errcheck
		}
		for k, vv := range resp.Trailer {
			if len(resp.Trailer) != announced {
				k = http.TrailerPrefix + k
			}
			dst[k] = append(dst[k], vv...)
		}
	}
	return observe.ErrNone
}

// copyBody streams the response body. Streamed responses (unknown length,
// or server-sent events) are flushed whenever the upstream pauses, so events
// reach the client promptly; sized responses are left to the server's
// buffering.
func (x *exchange) copyBody(resp *http.Response) observe.ErrorKind {
	if resp.Body == nil || resp.Body == http.NoBody {
		return observe.ErrNone
	}
	w := x.w
	streaming := resp.ContentLength < 0 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	var flusher http.Flusher
	if streaming {
		flusher, _ = w.(http.Flusher)
	}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return observe.ErrClientCanceled
			}
			if flusher != nil && n < len(buf) {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			return observe.ErrNone
		}
		if rerr != nil {
			if be := x.bodyFailure(); be != nil {
				// The transport cut the upstream exchange because the
				// client's body failed.
				return observe.Classify(be, x.in.Context())
			}
			return observe.Classify(rerr, x.in.Context())
		}
	}
}

func atoiOr(s string, def int) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return def
	}
	return n
}

// upgrade completes a protocol switch the route allows (WebSocket by
// default): it hijacks the client connection, sends the 101 head, and
// copies bytes both ways until either side closes. The bytes copied count
// as the request's BytesIn and BytesOut, and the request lasts as long as
// the upgraded connection, so the access log, metrics and span show both.
// A 101 to a protocol the client did not ask for, or the route does not
// allow, is an invalid response.
func (x *exchange) upgrade(resp *http.Response) observe.ErrorKind {
	w, in := x.w, x.in
	reqUp, respUp := upgradeType(in.Header), upgradeType(resp.Header)
	if !strings.EqualFold(reqUp, respUp) || !x.route.allowsUpgrade(reqUp) {
		_ = resp.Body.Close()
		WriteError(w, x.rec, observe.ErrUpstreamProtocol)
		return observe.ErrUpstreamProtocol
	}
	backConn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		_ = resp.Body.Close()
		WriteError(w, x.rec, observe.ErrUpstreamProtocol)
		return observe.ErrUpstreamProtocol
	}
	defer backConn.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		WriteError(w, x.rec, observe.ErrInternal)
		return observe.ErrInternal
	}
	defer conn.Close()
	x.rec.Status = resp.StatusCode

	removeConnectionHeaders(resp.Header)
	resp.Header["Connection"] = []string{"Upgrade"}
	resp.Header["Upgrade"] = []string{respUp}
	head := &http.Response{StatusCode: resp.StatusCode, ProtoMajor: 1, ProtoMinor: 1, Header: resp.Header}
	if err := head.Write(brw); err != nil {
		return observe.ErrClientCanceled
	}
	if err := brw.Flush(); err != nil {
		return observe.ErrClientCanceled
	}
	// Bytes the client sent after its request, already buffered.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Peek(n)
		if _, err := backConn.Write(b); err != nil {
			return observe.ErrUpstreamReset
		}
		x.rec.BytesIn += int64(n)
	}

	var once sync.Once
	done := make(chan struct{})
	closeBoth := func() { once.Do(func() { close(done); conn.Close(); backConn.Close() }) }
	var wg sync.WaitGroup
	var up, down int64
	wg.Add(2)
	go func() { defer wg.Done(); up, _ = io.Copy(backConn, conn); closeBoth() }()
	go func() { defer wg.Done(); down, _ = io.Copy(conn, backConn); closeBoth() }()
	select {
	case <-done:
	case <-in.Context().Done():
		closeBoth()
	}
	wg.Wait()
	x.rec.BytesIn += up
	x.rec.BytesOut += down
	return observe.ErrNone
}
