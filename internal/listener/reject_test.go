package listener

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
)

// rejectCounts records Rejected calls.
type rejectCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *rejectCounts) Rejected(listener, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[listener+"/"+reason]++
}

func (r *rejectCounts) get(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[key]
}

// waitCount polls (bounded) until key reaches want.
func (r *rejectCounts) waitCount(t *testing.T, key string, want int) {
	t.Helper()
	for i := 0; i < 300 && r.get(key) < want; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.get(key); got != want {
		r.mu.Lock()
		t.Errorf("%s counted %d, want %d (all: %v)", key, got, want, r.n)
		r.mu.Unlock()
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// exchange writes payload on a new connection and returns what came back
// before the server closed it (bounded by 3 s).
func exchange(t *testing.T, addr, payload string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, payload)
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

// TestRejectsCountedAndLogged sends requests that net/http refuses itself
// (its handler never runs) and requests the listener refuses: each is
// counted under its reason, and the log says so at a bounded rate.
func TestRejectsCountedAndLogged(t *testing.T) {
	counts := &rejectCounts{}
	logs := &syncBuffer{}
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	var handled atomic.Int64
	s, err := ListenWith(config.Listener{Name: "pub", Address: "127.0.0.1:0", MaxHeaderBytes: 4096, MaxHeaders: 10, MaxURIBytes: 100,
		Timeouts: config.ListenerTimeouts{ReadHeader: config.Duration(200 * time.Millisecond)}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handled.Add(1) }),
		Options{Rejects: counts, Logger: slog.New(slog.NewTextHandler(logs, nil)), LogBurst: 3, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	addr := s.Addr().String()

	cases := []struct {
		payload, reason, status string
	}{
		{"GARBAGE\r\n\r\n", ReasonBadRequest, "400"},
		{"GET / HTTP/1.1\r\n\r\n", ReasonBadRequest, "400"}, // no Host
		{"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 10000) + "\r\n\r\n", ReasonHeaderTooLarge, "431"},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", ReasonUnsupportedTE, "501"},
		{"GET / HTTP/0.9\r\nHost: a\r\n\r\n", ReasonUnsupportedVersion, "505"},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", ReasonAmbiguousFraming, "400"},
		{"GET /" + strings.Repeat("u", 200) + " HTTP/1.1\r\nHost: a\r\n\r\n", ReasonURITooLong, "414"},
		{"GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X-A: b\r\n", 11) + "\r\n", ReasonTooManyHeaders, "431"},
		{"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", ReasonConnect, "405"},
	}
	for _, tc := range cases {
		got := exchange(t, addr, tc.payload)
		if !strings.HasPrefix(got, "HTTP/1.1 "+tc.status) && !strings.HasPrefix(got, "HTTP/1.0 "+tc.status) {
			t.Errorf("%q: got %q, want %s", tc.payload[:min(len(tc.payload), 40)], got, tc.status)
		}
	}
	// A head cut off by the read-header timeout, and one the client abandons.
	exchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\n")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHo")
	time.Sleep(50 * time.Millisecond) // let the server read it
	c.Close()

	for reason, want := range map[string]int{ReasonBadRequest: 2, ReasonHeaderTooLarge: 1, ReasonUnsupportedTE: 1, ReasonUnsupportedVersion: 1,
		ReasonAmbiguousFraming: 1, ReasonURITooLong: 1, ReasonTooManyHeaders: 1, ReasonConnect: 1, ReasonHeaderTimeout: 1, ReasonIncomplete: 1} {
		counts.waitCount(t, "pub/"+reason, want)
	}
	if got := counts.get("pub/" + ReasonOther); got != 0 {
		t.Errorf("other: %d", got)
	}
	if handled.Load() != 0 {
		t.Errorf("the handler ran %d times", handled.Load())
	}

	// All in one (fake) second: 3 lines, the rest suppressed and counted.
	if n := strings.Count(logs.String(), "request refused before routing"); n != 3 {
		t.Errorf("%d log lines in one second, want 3:\n%s", n, logs)
	}
	clk.Advance(time.Second)
	exchange(t, addr, "GARBAGE\r\n\r\n")
	counts.waitCount(t, "pub/"+ReasonBadRequest, 3)
	if !strings.Contains(logs.String(), "suppressed=8") {
		t.Errorf("no count of suppressed lines:\n%s", logs)
	}
}

// TestGoodTrafficNotCounted: keep-alive requests, a pipelined pair and an
// idle connection closed by the client count nothing.
func TestGoodTrafficNotCounted(t *testing.T) {
	counts := &rejectCounts{}
	s, err := ListenWith(config.Listener{Name: "pub", Address: "127.0.0.1:0", MaxHeaders: 100, MaxURIBytes: 1000},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body); io.WriteString(w, "ok") }),
		Options{Rejects: counts})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	got := exchange(t, s.Addr().String(), "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"+
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if n := strings.Count(got, "HTTP/1.1 200 OK"); n != 3 {
		t.Fatalf("%d answers: %q", n, got)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for range 3 {
		resp, err := client.Get("http://" + s.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	client.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond) // let the server see the closes
	counts.mu.Lock()
	defer counts.mu.Unlock()
	if len(counts.n) != 0 {
		t.Errorf("counted %v", counts.n)
	}
}

// TestTLSFramingRefusedAndCounted: on a TLS listener the framing check and
// the refusal reasons work on the decrypted bytes as on cleartext, and
// plain HTTP sent to it is told so.
func TestTLSFramingRefusedAndCounted(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	counts := &rejectCounts{}
	var handled atomic.Int64
	s, err := ListenWith(config.Listener{Name: "tls", Address: "127.0.0.1:0", TLS: &config.TLS{CertFile: certFile, KeyFile: keyFile},
		MaxHeaderBytes: 4096, MaxHeaders: 100, MaxURIBytes: 1000},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handled.Add(1); io.WriteString(w, "ok") }),
		Options{Rejects: counts})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Shutdown(t.Context()) })
	tlsExchange := func(payload string) string {
		c, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, payload)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		b, _ := io.ReadAll(c)
		return string(b)
	}
	got := tlsExchange("GET /ok HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 200 OK") || strings.Count(got, "HTTP/1.1 ") != 2 || !strings.Contains(got, "HTTP/1.1 400 Bad Request") || !strings.Contains(got, "Connection: close") {
		t.Errorf("got %q", got)
	}
	if handled.Load() != 1 {
		t.Errorf("handler ran %d times, want 1", handled.Load())
	}
	tlsExchange("GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 10000) + "\r\n\r\n")
	counts.waitCount(t, "tls/"+ReasonAmbiguousFraming, 1)
	counts.waitCount(t, "tls/"+ReasonHeaderTooLarge, 1)
	if n := counts.get("tls/" + ReasonOther); n != 0 {
		t.Errorf("other: %d", n)
	}
	if got := exchange(t, s.Addr().String(), "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); !strings.Contains(got, "Client sent an HTTP request to an HTTPS server") {
		t.Errorf("plain HTTP to TLS: %q", got)
	}
}
