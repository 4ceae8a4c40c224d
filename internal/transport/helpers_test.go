package transport

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// testConfig is a defaulted transport config.
func testConfig() config.Transport {
	return config.Transport{
		DialTimeout:         config.Duration(5 * time.Second),
		TLSHandshakeTimeout: config.Duration(5 * time.Second),
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     config.Duration(90 * time.Second),
		Protocol:            config.ProtocolAuto,
	}
}

// newTestTransport builds a transport closed at the end of the test.
func newTestTransport(tb testing.TB, cfg config.Transport, opts Options) *Transport {
	tb.Helper()
	tr, err := NewWithOptions(cfg, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tr.Close() })
	return tr
}

// countingServer is an httptest server that counts accepted connections.
type countingServer struct {
	*httptest.Server
	conns atomic.Int64
}

func newCountingServer(tb testing.TB, h http.Handler) *countingServer {
	tb.Helper()
	s := &countingServer{}
	s.Server = httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	tb.Cleanup(s.Close)
	return s
}

// rawServer is a TCP server whose per-connection behaviour is scripted by
// the test. It counts connections and closes them all on Close.
type rawServer struct {
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
	mu    sync.Mutex
	open  map[net.Conn]struct{}
}

func newRawServer(tb testing.TB, serve func(c net.Conn, br *bufio.Reader)) *rawServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &rawServer{ln: ln, open: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.mu.Lock()
			s.open[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.open, c)
					s.mu.Unlock()
					c.Close()
				}()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	tb.Cleanup(s.Close)
	return s
}

func (s *rawServer) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops accepting, closes every connection and waits for the
// serving goroutines.
func (s *rawServer) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// readHead reads a request head (up to the blank line) and appends it to
// buf.
func readHead(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return buf, err
		}
		buf = append(buf, line...)
		if bytes.Equal(line, []byte("\r\n")) {
			return buf, nil
		}
	}
}

// cannedServer answers every request head with the same bytes, keeping the
// connection open. It ignores request bodies (tests send none).
func cannedServer(tb testing.TB, resp string) *rawServer {
	out := []byte(resp)
	return newRawServer(tb, func(c net.Conn, br *bufio.Reader) {
		buf := make([]byte, 0, 1024)
		for {
			var err error
			if buf, err = readHead(br, buf[:0]); err != nil {
				return
			}
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	})
}

// classify is observe.Classify without a client context, as the transport's
// own tests see its errors.
func classify(err error) observe.ErrorKind { return observe.Classify(err, nil) }
