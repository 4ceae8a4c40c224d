package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/observe"
)

func TestBodyLimitsNext(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name      string
		lim       bodyLimits
		n         int64
		waited    time.Duration
		want      time.Duration
		wantLimit string
		wantOK    bool
	}{
		{"none", bodyLimits{}, 0, 0, 0, "", false},
		{"idle only", bodyLimits{idle: 20 * s}, 1 << 20, 100 * s, 20 * s, bodyLimitIdle, true},
		{"rate: grace first", bodyLimits{minRate: 500, grace: 10 * s}, 0, 0, 10 * s, bodyLimitMinRate, true},
		{"rate: bytes earn time", bodyLimits{minRate: 500, grace: 10 * s}, 1000, 4 * s, 8 * s, bodyLimitMinRate, true},
		{"rate: already below", bodyLimits{minRate: 500, grace: 10 * s}, 10, 11 * s, 10*s + 20*time.Millisecond - 11*s, bodyLimitMinRate, true},
		{"both: idle shorter", bodyLimits{idle: 5 * s, minRate: 500, grace: 10 * s}, 0, 0, 5 * s, bodyLimitIdle, true},
		{"both: rate shorter", bodyLimits{idle: 20 * s, minRate: 500, grace: 10 * s}, 500, 9 * s, 2 * s, bodyLimitMinRate, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, l, ok := tt.lim.next(tt.n, tt.waited)
			if d != tt.want || l != tt.wantLimit || ok != tt.wantOK {
				t.Fatalf("next(%d, %v) = %v %q %v, want %v %q %v", tt.n, tt.waited, d, l, ok, tt.want, tt.wantLimit, tt.wantOK)
			}
		})
	}
}

// scriptedBody returns one step per Read, advancing the fake clock by the
// step's wait first (the time the client took to send it).
type scriptedBody struct {
	clk   *clock.Fake
	steps []step
	reads int
}

type step struct {
	wait time.Duration
	data string
	err  error
}

func (s *scriptedBody) Read(p []byte) (int, error) {
	if s.reads >= len(s.steps) {
		return 0, io.EOF
	}
	st := s.steps[s.reads]
	s.reads++
	s.clk.Advance(st.wait)
	return copy(p, st.data), st.err
}

func (s *scriptedBody) Close() error { return nil }

// deadlines records the read deadlines set on the client's connection.
type deadlines struct{ set []time.Time }

func (d *deadlines) SetReadDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func newTestBody(lim bodyLimits, steps ...step) (*clientBody, *clock.Fake, *deadlines, *scriptedBody) {
	clk := clock.NewFake(t0)
	src := &scriptedBody{clk: clk, steps: steps}
	dl := &deadlines{}
	b := &clientBody{}
	b.init(src, -1, lim, clk, dl)
	b.sysNow = clk.Now
	return b, clk, dl, src
}

// TestClientBodyMinRate drives a body at fixed times: each read's deadline
// is the minimum rate's allowance (grace + bytes/rate) minus the time
// already spent waiting on the client, and time the upstream takes between
// reads does not count against the client.
func TestClientBodyMinRate(t *testing.T) {
	const s = time.Second
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	b, clk, dl, _ := newTestBody(bodyLimits{idle: 20 * s, minRate: 100, grace: 5 * s},
		step{wait: 1 * s, data: string(make([]byte, 200))}, // waited 1s, 200 bytes: 7s allowed
		step{wait: 4 * s, data: string(make([]byte, 100))}, // waited 5s, 300 bytes: 8s allowed
		step{wait: 3 * s, err: timeout},                    // the deadline fires
	)
	buf := make([]byte, 512)
	want := []time.Time{t0.Add(5 * s)} // grace: 5s
	if _, err := b.Read(buf); err != nil {
		t.Fatal(err)
	}
	clk.Advance(100 * s)                        // the upstream is slow to take the bytes: not the client's time
	want = append(want, t0.Add(101*s).Add(6*s)) // 7s allowed − 1s waited
	if _, err := b.Read(buf); err != nil {
		t.Fatal(err)
	}
	want = append(want, t0.Add(105*s).Add(3*s)) // 8s allowed − 5s waited
	_, err := b.Read(buf)
	want = append(want, aLongTimeAgo) // past after the failure: nothing waits on the client again
	var be *observe.RequestBodyError
	if !errors.As(err, &be) || be.Timeout != bodyLimitMinRate || observe.Classify(err, nil) != observe.ErrClientTimeout {
		t.Fatalf("err %v, want a min_rate RequestBodyError classified client_timeout", err)
	}
	if b.failure() != be || b.n.Load() != 300 {
		t.Fatalf("failure %v, n %d", b.failure(), b.n.Load())
	}
	if len(dl.set) != len(want) {
		t.Fatalf("deadlines %v, want %v", dl.set, want)
	}
	for i := range want {
		if !dl.set[i].Equal(want[i]) {
			t.Fatalf("deadline %d: %v, want %v", i, dl.set[i], want[i])
		}
	}
}

// TestClientBodyIdle: with only the idle limit, every read may wait the
// idle timeout from when it starts; an expired one is an "idle" timeout;
// EOF clears the deadline.
func TestClientBodyIdle(t *testing.T) {
	const s = time.Second
	b, _, dl, _ := newTestBody(bodyLimits{idle: 10 * s},
		step{wait: 9 * s, data: "a"},
		step{wait: 9 * s, data: "b", err: io.EOF},
	)
	buf := make([]byte, 8)
	if _, err := b.Read(buf); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Read(buf); n != 1 || err != io.EOF {
		t.Fatalf("got %d %v, want 1 EOF", n, err)
	}
	want := []time.Time{t0.Add(10 * s), t0.Add(19 * s), {}}
	if len(dl.set) != 3 || !dl.set[0].Equal(want[0]) || !dl.set[1].Equal(want[1]) || !dl.set[2].IsZero() {
		t.Fatalf("deadlines %v, want %v", dl.set, want)
	}
	if b.failure() != nil {
		t.Fatalf("failure %v after EOF", b.failure())
	}

	b, _, _, _ = newTestBody(bodyLimits{idle: 10 * s}, step{wait: 10 * s, err: os.ErrDeadlineExceeded})
	_, err := b.Read(buf)
	var be *observe.RequestBodyError
	if !errors.As(err, &be) || be.Timeout != bodyLimitIdle {
		t.Fatalf("err %v, want an idle timeout", err)
	}
}

// TestClientBodyErrors: a malformed body is tagged as the client's; a body
// without limits sets no deadline.
func TestClientBodyErrors(t *testing.T) {
	malformed := errors.New("http: malformed chunked encoding")
	b, _, dl, _ := newTestBody(bodyLimits{}, step{data: "abc"}, step{err: malformed})
	buf := make([]byte, 8)
	b.Read(buf)
	_, err := b.Read(buf)
	if !errors.Is(err, malformed) || observe.Classify(err, nil) != observe.ErrClientBadRequest || len(dl.set) != 0 {
		t.Fatalf("err %v (%v), deadlines %v", err, observe.Classify(err, nil), dl.set)
	}
}

// TestClientBodyDetach: once the exchange ends, a body a transport still
// holds gets a past deadline (a blocked read ends at once) and later reads
// fail without reaching the client's connection.
func TestClientBodyDetach(t *testing.T) {
	b, _, dl, src := newTestBody(bodyLimits{idle: time.Second}, step{data: "a"}, step{data: "b"})
	buf := make([]byte, 8)
	b.Read(buf)
	b.handed.Store(true)
	b.detach()
	if last := dl.set[len(dl.set)-1]; !last.Equal(aLongTimeAgo) {
		t.Fatalf("deadline after detach %v, want one in the past", last)
	}
	if _, err := b.Read(buf); !errors.Is(err, errBodyDetached) || src.reads != 1 {
		t.Fatalf("read after detach: %v, %d reads of the client's body", err, src.reads)
	}
	b.Close()
	if b.inUse() {
		t.Fatal("closed body still in use")
	}
}

// TestClientBodyDetachComplete: a body that all arrived is not cut at
// detach, even if the transport has not closed it yet, so the client's
// connection stays usable for its next request.
func TestClientBodyDetachComplete(t *testing.T) {
	b, _, dl, _ := newTestBody(bodyLimits{idle: time.Second}, step{data: "ab", err: io.EOF})
	b.Read(make([]byte, 8))
	b.handed.Store(true)
	b.detach()
	for _, d := range dl.set {
		if d.Equal(aLongTimeAgo) {
			t.Fatalf("deadlines %v: a complete body was cut", dl.set)
		}
	}
}

type nopDeadliner struct{}

func (nopDeadliner) SetReadDeadline(time.Time) error { return nil }

// loopBody is an endless body of 32 KiB reads.
type loopBody struct{}

func (loopBody) Read(p []byte) (int, error) { return len(p), nil }
func (loopBody) Close() error               { return nil }

// BenchmarkClientBodyRead is the cost per 32 KiB read of the client's
// body: counting only (no connection deadline, as before request-body
// limits), and with both limits computed and set on a connection whose
// SetReadDeadline does nothing (the system call's own cost excluded).
func BenchmarkClientBodyRead(b *testing.B) {
	buf := make([]byte, 32<<10)
	for _, tc := range []struct {
		name string
		dl   readDeadliner
	}{{"count-only", nil}, {"limits", nopDeadliner{}}} {
		b.Run(tc.name, func(b *testing.B) {
			var cb clientBody
			cb.init(loopBody{}, -1, bodyLimits{idle: 20 * time.Second, minRate: 500, grace: 10 * time.Second}, clock.Real{}, tc.dl)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				cb.Read(buf)
			}
		})
	}
}

// TestClientBodyKeepsTheServersReadTimeout: the limits never set a read
// deadline later than the one the server set for the whole request
// (listeners[].timeouts.read), and put it back when done.
func TestClientBodyKeepsTheServersReadTimeout(t *testing.T) {
	const s = time.Second
	b, _, dl, _ := newTestBody(bodyLimits{idle: 20 * s},
		step{wait: s, data: "a"},
		step{wait: 4 * s, err: os.ErrDeadlineExceeded},
	)
	b.hard = t0.Add(5 * s)
	buf := make([]byte, 8)
	b.Read(buf)
	_, err := b.Read(buf)
	var be *observe.RequestBodyError
	if !errors.As(err, &be) || be.Timeout != bodyLimitRead {
		t.Fatalf("err %v, want a read_timeout cut", err)
	}
	if want := t0.Add(5 * s); !dl.set[0].Equal(want) || !dl.set[1].Equal(want) {
		t.Fatalf("deadlines %v, want the server's %v", dl.set, want)
	}

	b, _, dl, _ = newTestBody(bodyLimits{idle: 20 * s}, step{data: "a", err: io.EOF})
	b.hard = t0.Add(30 * s)
	b.Read(buf)
	if want := []time.Time{t0.Add(20 * s), t0.Add(30 * s)}; len(dl.set) != 2 || !dl.set[0].Equal(want[0]) || !dl.set[1].Equal(want[1]) {
		t.Fatalf("deadlines %v, want %v (the server's put back)", dl.set, want)
	}
}

// TestClientBodyExpired: once a deadline the body set has passed, the
// proxy knows the read is failing for it, even before the read returns
// (an HTTP/1 server cancels the request context first).
func TestClientBodyExpired(t *testing.T) {
	b, _, _, _ := newTestBody(bodyLimits{idle: time.Second, minRate: 100, grace: 10 * time.Second})
	if _, _, err := b.arm(); err != nil {
		t.Fatal(err)
	}
	if be := b.expired(t0.Add(999 * time.Millisecond)); be != nil {
		t.Fatalf("expired before the deadline: %v", be)
	}
	be := b.expired(t0.Add(time.Second))
	if be == nil || be.Timeout != bodyLimitIdle || observe.Classify(be, nil) != observe.ErrClientTimeout {
		t.Fatalf("at the deadline: %v", be)
	}
}
