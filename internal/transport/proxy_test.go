package transport

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// TestReverseProxyCompat runs the transport under httputil.ReverseProxy,
// the way the gateway's proxy uses it: plain requests, streamed uploads
// and a protocol upgrade relayed end to end.
func TestReverseProxyCompat(t *testing.T) {
	backend := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "echo" {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			io.Copy(conn, brw)
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Len")
		io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+string(b))
		w.Header().Set("X-Len", "ok")
	}))
	target, _ := url.Parse(backend.URL)
	tr := newTestTransport(t, testConfig(), Options{})
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: tr,
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)

	client := &http.Client{Transport: newTestTransport(t, testConfig(), Options{})}
	for range 3 {
		resp, err := client.Post(front.URL+"/p?q=1", "text/plain", io.NopCloser(strings.NewReader("body")))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "POST /p?q=1 body" || resp.Trailer.Get("X-Len") != "ok" {
			t.Fatalf("got %q, trailer %v", b, resp.Trailer)
		}
	}
	if n := backend.conns.Load(); n != 1 {
		t.Fatalf("backend accepted %d connections, want 1", n)
	}

	// An upgrade through the proxy: raw bytes both ways.
	c, err := net.Dial("tcp", hostOf(front.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(c, "hello")
	buf := make([]byte, 5)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo %q %v", buf, err)
	}
}
