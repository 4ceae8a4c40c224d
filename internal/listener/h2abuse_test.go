package listener

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/vantage-gateway/vantage/internal/config"
)

// h2Target is an h2c listener whose handler counts its invocations; on
// /slow it holds the stream until the test ends, as a slow upstream would.
type h2Target struct {
	s               *Server
	calls, inflight atomic.Int64
	maxInflight     atomic.Int64
	release         chan struct{}
	releaseOnce     sync.Once
	counts          *rejectCounts
}

func newH2Target(t *testing.T) *h2Target {
	t.Helper()
	tg := &h2Target{release: make(chan struct{}), counts: &rejectCounts{}}
	s, err := ListenWith(config.Listener{Name: "h2", Address: "127.0.0.1:0", H2C: true, MaxHeaderBytes: config.DefaultMaxHeaderBytes,
		MaxHeaders: config.DefaultMaxHeaders, MaxURIBytes: config.DefaultMaxURIBytes},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tg.calls.Add(1)
			n := tg.inflight.Add(1)
			defer tg.inflight.Add(-1)
			for {
				m := tg.maxInflight.Load()
				if n <= m || tg.maxInflight.CompareAndSwap(m, n) {
					break
				}
			}
			if r.URL.Path == "/slow" {
				select {
				case <-tg.release:
				case <-time.After(10 * time.Second):
				}
			}
			io.WriteString(w, "ok")
		}), Options{Rejects: tg.counts})
	if err != nil {
		t.Fatal(err)
	}
	tg.s = s
	go s.Serve()
	t.Cleanup(func() {
		tg.releaseOnce.Do(func() { close(tg.release) })
		s.Shutdown(t.Context())
	})
	return tg
}

// normalRequest checks that a fresh connection is still served.
func (tg *h2Target) normalRequest(t *testing.T) {
	t.Helper()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: &p}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + tg.s.Addr().String() + "/ok")
	if err != nil {
		t.Fatalf("a normal request on another connection failed: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" || resp.ProtoMajor != 2 {
		t.Fatalf("normal request: %d %q %s", resp.StatusCode, b, resp.Proto)
	}
}

// h2Conn opens a prior-knowledge HTTP/2 connection and reads the server's
// frames in the background until the connection ends.
type h2Conn struct {
	c      net.Conn
	fr     *http2.Framer
	goaway atomic.Pointer[http2.GoAwayFrame]
	done   chan struct{}
}

func dialH2(t *testing.T, addr string) *h2Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	hc := &h2Conn{c: c, done: make(chan struct{})}
	hc.fr = http2.NewFramer(c, c)
	if err := hc.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	rfr := http2.NewFramer(io.Discard, c)
	go func() {
		defer close(hc.done)
		for {
			f, err := rfr.ReadFrame()
			if err != nil {
				return
			}
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				cp := *ga
				hc.goaway.Store(&cp)
			}
		}
	}()
	return hc
}

// ended waits (bounded) for the server to end the connection.
func (hc *h2Conn) ended(t *testing.T) {
	t.Helper()
	select {
	case <-hc.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the server kept the abusive connection open")
	}
}

func headerBlock(path string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", path}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return buf.Bytes()
}

// TestHTTP2RapidReset opens and at once resets up to 10,000 streams
// (CVE-2023-44487) against handlers that take long: the handlers started
// stay within the stream limit, the server ends the connection, and
// another connection is still served.
func TestHTTP2RapidReset(t *testing.T) {
	tg := newH2Target(t)
	hc := dialH2(t, tg.s.Addr().String())
	block := headerBlock("/slow")
	sent := 0
	for i := 0; i < 10000; i++ {
		id := uint32(2*i + 1)
		if err := hc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
			break
		}
		if err := hc.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			break
		}
		sent++
	}
	hc.ended(t)
	if ga := hc.goaway.Load(); ga == nil || ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", ga)
	}
	if calls := tg.calls.Load(); calls > h2MaxConcurrentStreams {
		t.Errorf("%d handlers started for %d reset streams, want at most %d", calls, sent, h2MaxConcurrentStreams)
	}
	tg.counts.waitCount(t, "h2/"+ReasonHTTP2Error, 1)
	t.Logf("%d HEADERS+RST_STREAM pairs sent before the server ended the connection; %d handlers started", sent, tg.calls.Load())
	tg.normalRequest(t)
	if n := tg.counts.get("h2/" + ReasonHTTP2Error); n != 1 {
		t.Errorf("counted %d ended connections, want 1 (the normal one is not)", n)
	}
}

// TestHTTP2ContinuationFlood sends one HEADERS frame followed by an
// endless header block in CONTINUATION frames (bounded here at 10,000 of
// 1 KiB): the server must end the connection once the block passes its
// header limit, without running a handler.
func TestHTTP2ContinuationFlood(t *testing.T) {
	tg := newH2Target(t)
	hc := dialH2(t, tg.s.Addr().String())
	if err := hc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock("/"), EndStream: true}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	enc.SetMaxDynamicTableSizeLimit(0)
	written := 0
	var werr error
	for i := 0; i < 10000; i++ {
		buf.Reset()
		enc.WriteField(hpack.HeaderField{Name: "x-flood", Value: strings.Repeat("a", 1000), Sensitive: true})
		if werr = hc.fr.WriteContinuation(1, false, buf.Bytes()); werr != nil {
			break
		}
		written += buf.Len()
	}
	hc.ended(t)
	if werr == nil {
		t.Errorf("the server read all %d bytes of the header block", written)
	}
	if calls := tg.calls.Load(); calls != 0 {
		t.Errorf("%d handlers ran", calls)
	}
	tg.counts.waitCount(t, "h2/"+ReasonHTTP2Error, 1)
	t.Logf("GOAWAY %v after %d bytes of header block written", hc.goaway.Load(), written)
	tg.normalRequest(t)
}

// TestH2FramesFindsErrorGoAway feeds the frame follower a SETTINGS frame,
// a graceful GOAWAY and an error GOAWAY in writes of every size.
func TestH2FramesFindsErrorGoAway(t *testing.T) {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
	fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	fr.WriteData(1, false, make([]byte, 300))
	fr.WriteGoAway(7, http2.ErrCodeEnhanceYourCalm, []byte("calm down"))
	fr.WriteGoAway(7, http2.ErrCodeProtocol, nil)
	wire := buf.Bytes()
	for _, step := range []int{1, 2, 5, 9, 13, len(wire)} {
		var f h2Frames
		var codes []string
		for p := wire; len(p) > 0; {
			n := min(step, len(p))
			if c := f.write(p[:n]); c != "" {
				codes = append(codes, c)
			}
			p = p[n:]
		}
		if len(codes) != 1 || codes[0] != "ENHANCE_YOUR_CALM" {
			t.Errorf("step %d: codes %v, want the first error GOAWAY only", step, codes)
		}
	}
}

// FuzzH2Frames checks the frame follower against x/net's framer: where the
// framer reads a well-formed stream up to an error GOAWAY, the follower
// reports that GOAWAY's code, and it reports none the framer does not see.
func FuzzH2Frames(f *testing.F) {
	var buf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
	fr.WriteData(1, false, []byte("hello"))
	fr.WriteGoAway(3, http2.ErrCodeEnhanceYourCalm, nil)
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var fl h2Frames
		got := fl.write(data)
		want := ""
		rd := http2.NewFramer(io.Discard, bytes.NewReader(data))
		rd.SetMaxReadFrameSize(1 << 24)
		framerStopped := false
		for {
			fm, err := rd.ReadFrame()
			if err != nil {
				framerStopped = true
				break
			}
			if ga, ok := fm.(*http2.GoAwayFrame); ok && ga.ErrCode != http2.ErrCodeNo {
				want = h2CodeName(uint32(ga.ErrCode))
				break
			}
		}
		if want != "" && got != want {
			t.Fatalf("framer read GOAWAY %s, follower %q", want, got)
		}
		if got != "" && want == "" && !framerStopped {
			t.Fatalf("follower reported %s, framer saw no error GOAWAY", got)
		}
	})
}

// TestHTTP2HeadLimits: the header-count and URI limits hold for HTTP/2
// requests too, and refuse only the stream.
func TestHTTP2HeadLimits(t *testing.T) {
	tg := newH2Target(t)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: &p}}
	defer client.CloseIdleConnections()
	do := func(path string, headers int) int {
		req, _ := http.NewRequest("GET", "http://"+tg.s.Addr().String()+path, nil)
		for i := range headers {
			req.Header.Add("X-H", strings.Repeat("v", i%5+1))
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("proto %s", resp.Proto)
		}
		return resp.StatusCode
	}
	if got := do("/ok", 101); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("101 headers: %d", got)
	}
	if got := do("/"+strings.Repeat("u", config.DefaultMaxURIBytes), 0); got != http.StatusRequestURITooLong {
		t.Errorf("long URI: %d", got)
	}
	// The client adds User-Agent and Accept-Encoding: 100 fields in all.
	if got := do("/ok", 98); got != 200 {
		t.Errorf("100 headers: %d", got)
	}
	if n := tg.counts.get("h2/" + ReasonTooManyHeaders); n != 1 {
		t.Errorf("too_many_headers counted %d", n)
	}
}
