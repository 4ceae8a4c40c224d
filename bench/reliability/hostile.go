package reliability

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// TrickleResult is what a set of trickling connections saw: how long each
// stayed open before the server cut it, and the status lines it answered
// with before cutting (for example "HTTP/1.1 408 Request Timeout").
type TrickleResult struct {
	// Cut holds, for each connection the server closed, how long after
	// its start the close was seen.
	Cut []time.Duration
	// Open counts connections still open when the run's bound ended.
	Open int
	// DialErrors counts connections that could not be opened.
	DialErrors int
	// Statuses counts the status lines the server wrote before closing.
	Statuses map[string]int
}

// TrickleOptions describe hostile clients that send a request one byte at
// a time.
type TrickleOptions struct {
	// Addr is the server's host:port.
	Addr string
	// Conns is the number of connections (required).
	Conns int
	// Head is written at once when a connection opens; Trickle then one
	// byte per Every, from the start again when it runs out.
	Head, Trickle string
	// Every is the pause between two trickled bytes (default 1 s).
	Every time.Duration
	// Max bounds the run: every connection still open then is closed by
	// the client and counted in Open (required).
	Max time.Duration
}

// Slowloris sends the start of a request's headers and then one more header
// byte every o.Every, never finishing the head.
func Slowloris(ctx context.Context, addr string, conns int, every, max time.Duration) TrickleResult {
	return Trickle(ctx, TrickleOptions{
		Addr: addr, Conns: conns, Every: every, Max: max,
		Head:    "GET / HTTP/1.1\r\nHost: slowloris\r\n",
		Trickle: "X-Slow: aaaaaaaa\r\n",
	})
}

// SlowBody sends a complete POST head announcing a body and then the body
// one byte every o.Every.
func SlowBody(ctx context.Context, addr string, conns int, every, max time.Duration) TrickleResult {
	const size = 1 << 20
	return Trickle(ctx, TrickleOptions{
		Addr: addr, Conns: conns, Every: every, Max: max,
		Head:    fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: slowbody\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", size),
		Trickle: "b",
	})
}

// Trickle runs o.Conns hostile connections in parallel until the server has
// cut each of them or o.Max passes.
func Trickle(ctx context.Context, o TrickleOptions) TrickleResult {
	if o.Every <= 0 {
		o.Every = time.Second
	}
	res := TrickleResult{Statuses: map[string]int{}}
	if o.Conns <= 0 || o.Max <= 0 || o.Trickle == "" {
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, o.Max)
	defer cancel()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for range o.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cut, status, err := trickleOne(ctx, o)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, errDial):
				res.DialErrors++
			case cut > 0:
				res.Cut = append(res.Cut, cut)
				if status != "" {
					res.Statuses[status]++
				}
			default:
				res.Open++
			}
		}()
	}
	wg.Wait()
	return res
}

var errDial = errors.New("dial failed")

// trickleOne returns how long the connection lived until the server closed
// it (0 when the client's bound ended first) and the status line the server
// sent, if any.
func trickleOne(ctx context.Context, o TrickleOptions) (time.Duration, string, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return 0, "", errDial
	}
	defer c.Close()
	start := time.Now()
	closed := make(chan string, 1)
	go func() {
		// The reader sees the server's answer or its close.
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		_, _ = io.Copy(io.Discard, br)
		closed <- strings.TrimSpace(line)
	}()
	if _, err := io.WriteString(c, o.Head); err != nil {
		return time.Since(start), "", nil
	}
	t := time.NewTicker(o.Every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case status := <-closed:
			return time.Since(start), status, nil
		case <-ctx.Done():
			return 0, "", nil
		case <-t.C:
			b := o.Trickle[i%len(o.Trickle)]
			_ = c.SetWriteDeadline(time.Now().Add(o.Every))
			if _, err := c.Write([]byte{b}); err != nil {
				// A failed write is a cut too; wait briefly for the reader.
				select {
				case status := <-closed:
					return time.Since(start), status, nil
				case <-time.After(100 * time.Millisecond):
					return time.Since(start), "", nil
				}
			}
		}
	}
}

// readWhole reads one response from c and reports the body bytes read and
// whether the body was whole (as long as its Content-Length, or to a clean
// end of a chunked body).
func readWhole(c net.Conn) (int64, bool) {
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	return n, err == nil
}

// SlowReaders opens conns connections that each ask for path and then do
// not read the answer for hold; after that each reads what it can for up to
// 30 seconds (a response still arriving then counts as cut). It returns how
// many were cut before their response was whole, and the bytes all of them
// received.
func SlowReaders(ctx context.Context, addr, path string, conns int, hold time.Duration) (cut int, bytes int64) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 2 * time.Second}
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: slowreader\r\nConnection: close\r\n\r\n", path)
			select {
			case <-ctx.Done():
			case <-time.After(hold):
			}
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			n, whole := readWhole(c)
			mu.Lock()
			bytes += n
			if !whole {
				cut++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return cut, bytes
}
