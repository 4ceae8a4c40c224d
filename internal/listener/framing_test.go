package listener

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestFramerFirstBad(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		bad     int // firstBad
		heads   int
		stopped bool
	}{
		{"cl and te", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 1, true},
		{"te on 1.0", "POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 1, true},
		{"folded te", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", 0, 1, true},
		{"good pipeline", "POST /one HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\nPOST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyzGET / HTTP/1.1\r\n\r\n", -1, 3, false},
		{"bad third", "GET / HTTP/1.1\r\n\r\nOPTIONS * HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\n\r\nxPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 2, 3, true},
		{"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", -1, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, step := range []int{1, 2, 3, 7, 1 << 20} {
				f := newFramer()
				in := []byte(tc.in)
				for len(in) > 0 {
					n := min(step, len(in))
					f.feed(in[:n])
					in = in[n:]
				}
				if f.firstBad != tc.bad || f.heads != tc.heads || f.stopped() != tc.stopped {
					t.Errorf("step %d: firstBad %d heads %d stopped %v, want %d %d %v", step, f.firstBad, f.heads, f.stopped(), tc.bad, tc.heads, tc.stopped)
				}
			}
		})
	}
}

// FuzzFramer checks the framer against net/http's own reading of the same
// bytes: every request net/http reads (head and whole body) must be one the
// framer found at the same place, until the framer judges a head faulty;
// and the framer must not lose track while net/http reads on.
func FuzzFramer(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /one HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\nPOST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyzGET / HTTP/1.1\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\nContent-Length: 2\n\nabGET / HTTP/1.1\n\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n a\r\n0123456789\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 ;x\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\naGET / HTTP/1.1\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nContent-Length: 1\r\n\r\naGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nX: y\r\n z\r\nContent-Length: 1\r\n\r\naGET / HTTP/1.1\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\nGET / HTTP/1.1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		type head struct {
			line   string
			faulty bool
		}
		var heads []head
		fr := newFramer()
		fr.onHead = func(line string, faulty bool) { heads = append(heads, head{line, faulty}) }
		fr.feed(data)

		br := bufio.NewReader(bytes.NewReader(data))
		for i := 0; ; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.ProtoMajor != 1 {
				return // HTTP/2 preface: the framer stops too
			}
			_, err = io.Copy(io.Discard, req.Body)
			if i >= len(heads) {
				if fr.h2 {
					return
				}
				t.Fatalf("net/http read request %d (%s %.20q), the framer found %d heads (state %d)", i, req.Method, req.RequestURI, len(heads), fr.st)
			}
			h := heads[i]
			want := req.Method + " " + req.RequestURI
			if len(want) > len(h.line) {
				want = want[:len(h.line)]
			}
			if !strings.HasPrefix(h.line, want) {
				t.Fatalf("head %d: framer saw %q, net/http %q", i, h.line, want)
			}
			if h.faulty {
				return // refused: what follows does not matter
			}
			if err != nil {
				return // a body error: net/http closes the connection
			}
		}
	})
}

// BenchmarkFramer follows a typical keep-alive request with a small body,
// as conn.Read does for each read.
func BenchmarkFramer(b *testing.B) {
	req := []byte("POST /items/1?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: bench\r\nAccept: */*\r\nX-Request-Id: 0123456789\r\nContent-Length: 5\r\n\r\nhello")
	f := newFramer()
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		f.feed(req)
	}
	if f.heads != b.N || f.stopped() {
		b.Fatalf("heads %d of %d, stopped %v", f.heads, b.N, f.stopped())
	}
}
