package mirror

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/observe/observetest"
)

// events records decision events.
type events = observetest.Recorder

// reasons lists the events' outcomes in order.
func reasons(e *events) []observe.MirrorOutcome {
	var out []observe.MirrorOutcome
	for _, ev := range e.Events() {
		out = append(out, ev.Mirror)
	}
	return out
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func pct(p float64) *float64 { return &p }

func cfg(edit func(c *config.Mirror)) *config.Mirror {
	c := &config.Mirror{Service: "shadow", Percent: pct(100), MaxBodyBytes: 1024, Timeout: config.Duration(5 * time.Second), MaxInFlight: 4}
	if edit != nil {
		edit(c)
	}
	return c
}

// seen is what a server received.
type seen struct {
	method, path, header string
	body                 string
}

// shadowSender sends mirrored requests to a real shadow server, the way the
// gateway's proxy does, and reports each finished Send.
type shadowSender struct {
	server *httptest.Server
	client *http.Client
	done   chan error // one per finished Send
	// noRecord is false if a mirrored request carried the client's Record.
	noRecord atomic.Bool
	deadline atomic.Bool
}

func newShadow(t *testing.T, h http.HandlerFunc) *shadowSender {
	s := &shadowSender{server: httptest.NewServer(h), done: make(chan error, 100)}
	s.noRecord.Store(true)
	s.client = s.server.Client()
	t.Cleanup(s.server.Close)
	t.Cleanup(s.client.CloseIdleConnections)
	return s
}

func (s *shadowSender) Send(r *http.Request) {
	if observe.FromContext(r.Context()) != nil {
		s.noRecord.Store(false)
	}
	if _, ok := r.Context().Deadline(); ok {
		s.deadline.Store(true)
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = "http"
	out.URL.Host = strings.TrimPrefix(s.server.URL, "http://")
	resp, err := s.client.Do(out)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	s.done <- err
}

func (s *shadowSender) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("mirrored request never finished")
	}
	return nil
}

// stack is a stand-in entry handler that fills a Record, the mirror
// middleware, and a proxy to a real upstream that records what it got.
type stack struct {
	gateway  *httptest.Server
	client   *http.Client
	upstream chan seen
	mirrored chan bool
}

func newStack(t *testing.T, mw middleware.Middleware) *stack {
	s := &stack{upstream: make(chan seen, 100), mirrored: make(chan bool, 100)}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.upstream <- seen{r.Method, r.URL.RequestURI(), r.Header.Get("X-Test"), string(b)}
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(up.Close)
	upClient := up.Client()
	t.Cleanup(upClient.CloseIdleConnections)
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, _ := http.NewRequestWithContext(r.Context(), r.Method, up.URL+r.URL.RequestURI(), r.Body)
		out.ContentLength = r.ContentLength
		out.Header = r.Header.Clone()
		resp, err := upClient.Do(out)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	})
	chain := mw(proxy)
	s.gateway = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.GetRecord()
		defer observe.PutRecord(rec)
		chain.ServeHTTP(w, r.WithContext(observe.NewContext(r.Context(), rec)))
		s.mirrored <- rec.Mirrored
	}))
	t.Cleanup(s.gateway.Close)
	s.client = s.gateway.Client()
	t.Cleanup(s.client.CloseIdleConnections)
	return s
}

func (s *stack) do(t *testing.T, method, path string, body io.Reader, contentLength int64) (int, string) {
	t.Helper()
	r, _ := http.NewRequest(method, s.gateway.URL+path, body)
	r.Header.Set("X-Test", "hello")
	if contentLength != 0 {
		r.ContentLength = contentLength
	}
	resp, err := s.client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// chunked hides a reader's length, so the request is sent chunked.
type chunked struct{ io.Reader }

func TestMirrorWithoutBody(t *testing.T) {
	shadowSeen := make(chan seen, 10)
	sh := newShadow(t, func(w http.ResponseWriter, r *http.Request) {
		shadowSeen <- seen{r.Method, r.URL.RequestURI(), r.Header.Get("X-Test"), ""}
		io.WriteString(w, "shadow answer, discarded")
	})
	ev := &events{}
	s := newStack(t, New("checkout", cfg(nil), sh, ev, nil))
	code, body := s.do(t, "GET", "/items/7?x=1", nil, 0)
	if code != 200 || body != "upstream" {
		t.Fatalf("client got %d %q", code, body)
	}
	if err := sh.wait(t); err != nil {
		t.Fatal(err)
	}
	want := seen{"GET", "/items/7?x=1", "hello", ""}
	if got := <-shadowSeen; got != want {
		t.Errorf("shadow saw %+v, want %+v", got, want)
	}
	if got := <-s.upstream; got != want {
		t.Errorf("upstream saw %+v", got)
	}
	if !<-s.mirrored {
		t.Error("rec.Mirrored not set")
	}
	if !sh.noRecord.Load() {
		t.Error("the mirrored request carried the client's Record")
	}
	if !sh.deadline.Load() {
		t.Error("the mirrored request has no timeout")
	}
	e := ev.Events()[0]
	if e.Kind != observe.EventMirrored || e.Route != "checkout" || e.Service != "shadow" || e.Mirror != Sent {
		t.Errorf("event = %+v", e)
	}
}

func TestMirrorTeesBody(t *testing.T) {
	for _, tc := range []struct {
		name    string
		chunked bool
	}{{"content-length", false}, {"chunked", true}} {
		t.Run(tc.name, func(t *testing.T) {
			shadowBody := make(chan string, 1)
			sh := newShadow(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				shadowBody <- string(b)
			})
			s := newStack(t, New("r", cfg(nil), sh, nil, nil))
			payload := strings.Repeat("0123456789", 100) // 1000 bytes, under the 1024 cap
			var body io.Reader = strings.NewReader(payload)
			if tc.chunked {
				body = chunked{body}
			}
			if code, _ := s.do(t, "POST", "/orders", body, 0); code != 200 {
				t.Fatalf("status %d", code)
			}
			if got := <-s.upstream; got.body != payload {
				t.Fatalf("upstream body changed: %d bytes", len(got.body))
			}
			if err := sh.wait(t); err != nil {
				t.Fatal(err)
			}
			if got := <-shadowBody; got != payload {
				t.Errorf("shadow body %d bytes, want the same 1000", len(got))
			}
		})
	}
}

func TestLargeBodiesAreNotMirrored(t *testing.T) {
	for _, tc := range []struct {
		name    string
		chunked bool
	}{{"content-length", false}, {"chunked", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var sends atomic.Int64
			ev := &events{}
			s := newStack(t, New("r", cfg(nil), SenderFunc(func(*http.Request) { sends.Add(1) }), ev, nil))
			payload := bytes.Repeat([]byte("x"), 5000)
			var body io.Reader = bytes.NewReader(payload)
			if tc.chunked {
				body = chunked{body}
			}
			if code, _ := s.do(t, "PUT", "/big", body, 0); code != 200 {
				t.Fatalf("status %d", code)
			}
			if got := <-s.upstream; len(got.body) != 5000 {
				t.Fatalf("upstream got %d bytes, want all 5000", len(got.body))
			}
			if <-s.mirrored {
				t.Error("rec.Mirrored set for an unmirrored request")
			}
			if sends.Load() != 0 {
				t.Error("large body mirrored")
			}
			if r := reasons(ev); len(r) != 1 || r[0] != BodyTooLarge {
				t.Errorf("events %v", r)
			}
		})
	}
}

func TestSlowShadowNeverDelaysClientAndDropsWhenFull(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	sh := newShadow(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	})
	ev := &events{}
	s := newStack(t, New("r", cfg(func(c *config.Mirror) { c.MaxInFlight = 1 }), sh, ev, nil))

	// The shadow holds the first copy; the client is answered regardless.
	if code, body := s.do(t, "GET", "/a", nil, 0); code != 200 || body != "upstream" {
		t.Fatalf("client got %d %q", code, body)
	}
	<-arrived
	// The only slot is busy: the next copy is dropped, the client served.
	if code, _ := s.do(t, "GET", "/b", nil, 0); code != 200 {
		t.Fatalf("second request: %d", code)
	}
	if got := reasons(ev); len(got) != 2 || got[0] != Sent || got[1] != Dropped {
		t.Errorf("events %v, want [sent dropped]", got)
	}
	<-s.mirrored
	if <-s.mirrored {
		t.Error("dropped copy recorded as mirrored")
	}
	close(release)
	if err := sh.wait(t); err != nil {
		t.Errorf("shadow request failed after the client's ended: %v (its context must be detached)", err)
	}
}

func TestShadowDownOrPanickingNeverAffectsClient(t *testing.T) {
	down := newShadow(t, func(http.ResponseWriter, *http.Request) {})
	down.server.Close()
	var panicked atomic.Int64
	panicking := SenderFunc(func(*http.Request) {
		panicked.Add(1)
		panic("shadow bug")
	})
	for name, sender := range map[string]Sender{"down": down, "panicking": panicking} {
		t.Run(name, func(t *testing.T) {
			s := newStack(t, New("r", cfg(nil), sender, nil, nil))
			for i := 0; i < 3; i++ {
				if code, body := s.do(t, "GET", "/", nil, 0); code != 200 || body != "upstream" {
					t.Fatalf("client got %d %q", code, body)
				}
			}
			if name == "down" {
				for i := 0; i < 3; i++ {
					if err := down.wait(t); err == nil {
						t.Error("send to a closed server succeeded")
					}
				}
			}
		})
	}
	// Wait for the panicking sends to finish before goleak looks.
	deadline := time.Now().Add(10 * time.Second)
	for panicked.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

func TestMirrorPercentage(t *testing.T) {
	var n atomic.Uint64
	rnd := func() uint64 { return (n.Add(1) - 1) * 10_000 % perMillion } // 0%, 1%, 2%, ...
	var sends atomic.Int64
	done := make(chan struct{}, 100)
	s := newStack(t, New("r", cfg(func(c *config.Mirror) { c.Percent = pct(10); c.MaxInFlight = 100 }),
		SenderFunc(func(*http.Request) { sends.Add(1); done <- struct{}{} }), nil, rnd))
	for i := 0; i < 100; i++ {
		s.do(t, "GET", "/", nil, 0)
		<-s.upstream
	}
	for i := 0; i < 10; i++ {
		<-done
	}
	if got := sends.Load(); got != 10 {
		t.Errorf("%d of 100 mirrored, want exactly 10", got)
	}
}

func TestNilConfigOrSender(t *testing.T) {
	if New("r", nil, SenderFunc(func(*http.Request) {}), nil, nil) != nil || New("r", cfg(nil), nil, nil, nil) != nil {
		t.Error("want a nil middleware")
	}
}

func TestTeeBodyIncomplete(t *testing.T) {
	tee := &teeBody{rc: io.NopCloser(strings.NewReader("abcdef")), max: 100, want: 6}
	buf := make([]byte, 3)
	tee.Read(buf)
	if _, outcome := tee.finish(); outcome != BodyIncomplete {
		t.Errorf("half-read body: %q", outcome)
	}
	// Reads after finish do not touch the copy.
	tee.Read(buf)
	if tee.n != 3 {
		t.Errorf("read after finish counted")
	}
	full := &teeBody{rc: io.NopCloser(strings.NewReader("abcdef")), max: 100, want: 6}
	io.ReadAll(full)
	if b, outcome := full.finish(); outcome != Sent || string(b) != "abcdef" {
		t.Errorf("full body: %q %q", b, outcome)
	}
}

func BenchmarkNotMirrored(b *testing.B) {
	mw := New("r", cfg(func(c *config.Mirror) { c.Percent = pct(1) }), SenderFunc(func(*http.Request) {}), observe.Nop{},
		func() uint64 { return perMillion - 1 })
	h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest("GET", "/", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
