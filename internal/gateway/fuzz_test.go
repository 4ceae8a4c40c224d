package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzClientAddr: any X-Forwarded-For chain yields an address that is either
// the peer or one of the chain's hops, and never panics.
func FuzzClientAddr(f *testing.F) {
	f.Add("203.0.113.9, 10.0.0.1", "127.0.0.1:1234")
	f.Add(",,, ,", "[::1]:80")
	f.Add("::ffff:127.0.0.1, 1.2.3.4", "garbage")
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	f.Fuzz(func(t *testing.T, xff, remote string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {xff}}}
		got, _ := clientAddr(r, trusted)
		if got != remote && !strings.Contains(remote, got) && !strings.Contains(xff, got) {
			t.Fatalf("client %q is neither the peer %q nor a hop of %q", got, remote, xff)
		}
	})
}

// FuzzCleanPath: cleaned paths are absolute and free of dot segments.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/a/../b", "//x", "/./", "a/b", "/..", "/a/b/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !needsClean(p) {
			return
		}
		c := cleanPath(p)
		if !strings.HasPrefix(c, "/") || needsClean(c) {
			t.Fatalf("cleanPath(%q) = %q", p, c)
		}
	})
}

// FuzzHandlerHeaders: hostile header names and values never crash the
// request path, and the gateway always answers.
func FuzzHandlerHeaders(f *testing.F) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer up.Close()
	cfg, err := parseBench(up.URL)
	if err != nil {
		f.Fatal(err)
	}
	g, err := New(cfg, Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer g.Close()
	h := g.Handler("public")
	f.Add("Connection", "close, X-A, ,", "/items/1", "ex.com")
	f.Add("Upgrade", "websocket", "/items/%2e%2e/x", "[::1]:9")
	f.Add("Te", "trailers", "//items//1", "")
	f.Fuzz(func(t *testing.T, name, value, path, host string) {
		u, err := url.Parse(path)
		if err != nil {
			return
		}
		r := &http.Request{Method: "GET", URL: u, Host: host, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{name: {value}, "Connection": {value}}, RemoteAddr: "127.0.0.1:1"}
		r = r.WithContext(t.Context())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r) // must not panic
		if w.Code == 0 {
			t.Fatal("no status written")
		}
	})
}
