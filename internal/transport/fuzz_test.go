package transport

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// fakeConn serves fixed bytes, step bytes per Read at most, and swallows
// writes.
type fakeConn struct {
	data   []byte
	off    int
	step   int
	closed atomic.Bool
}

func (f *fakeConn) Read(p []byte) (int, error) {
	if f.closed.Load() {
		return 0, net.ErrClosed
	}
	if f.off >= len(f.data) {
		return 0, io.EOF
	}
	n := min(len(p), len(f.data)-f.off, f.step)
	copy(p, f.data[f.off:f.off+n])
	f.off += n
	return n, nil
}

func (f *fakeConn) Write(p []byte) (int, error) {
	if f.closed.Load() {
		return 0, net.ErrClosed
	}
	return len(p), nil
}

func (f *fakeConn) Close() error                     { f.closed.Store(true); return nil }
func (f *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (f *fakeConn) SetDeadline(time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// referenceEnd parses data as the response to method with net/http alone
// and returns where the exchange ends, or ok false when the connection
// must not be reused after it.
func referenceEnd(data []byte, method string) (end int, ok bool) {
	rd := bytes.NewReader(data)
	br := bufio.NewReader(rd)
	req, _ := http.NewRequest(method, "http://fuzz.test/", nil)
	var resp *http.Response
	var err error
	for n := 0; ; n++ {
		resp, err = http.ReadResponse(br, req)
		if err != nil {
			return 0, false
		}
		if resp.StatusCode >= 200 || resp.StatusCode < 100 || resp.StatusCode == 101 {
			break
		}
		if n == max1xx {
			return 0, false
		}
	}
	if resp.StatusCode == 101 || resp.Close {
		return 0, false
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, false
	}
	return len(data) - rd.Len() - br.Buffered(), true
}

// FuzzResponse drives the HTTP/1.1 client against arbitrary upstream bytes.
// It must not panic, must not leak a connection slot, and may pool the
// connection only when the bytes held exactly one complete, reusable
// response (as net/http parses it) and nothing after it was read.
func FuzzResponse(f *testing.F) {
	seeds := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.0 200 OK\r\n\r\nuntil eof",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 11\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
		"HTTP/1.1 999 Weird\r\nContent-Length: 0\r\n\r\n",
		"garbage",
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint8(i*7+1), i%3 == 0)
	}
	f.Fuzz(func(t *testing.T, data []byte, step uint8, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		fc := &fakeConn{data: data, step: int(step%64) + 1}
		tr, err := NewWithOptions(testConfig(), Options{MaxResponseHeaderBytes: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		dials := 0
		tr.h1.dial = func(context.Context, string, string) (net.Conn, error) {
			dials++
			if dials > 1 {
				return nil, &net.OpError{Op: "dial", Err: io.EOF}
			}
			return fc, nil
		}
		req, _ := http.NewRequest(method, "http://fuzz.test/", nil)
		resp, err := tr.RoundTrip(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
		}
		p := (*tr.h1.pools.Load())["fuzz.test"]
		p.mu.Lock()
		idle, open := len(p.idle), p.numConns
		p.mu.Unlock()
		if open != idle {
			t.Fatalf("%d connections open, %d idle: a slot leaked", open, idle)
		}
		if idle == 0 {
			return
		}
		if fc.closed.Load() {
			t.Fatal("pooled a closed connection")
		}
		end, ok := referenceEnd(data, method)
		if !ok {
			t.Fatalf("pooled after a response net/http finds unusable: %q", data)
		}
		if fc.off != end {
			t.Fatalf("pooled at offset %d, the response ends at %d: %q", fc.off, end, data)
		}
	})
}
