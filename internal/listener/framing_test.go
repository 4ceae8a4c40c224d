package listener

import "testing"

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
