package proxy

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Limits of a request body that fired, as the Reason of
// EventRequestBodyTimeout and RequestBodyError.Timeout.
const (
	bodyLimitIdle    = "idle"
	bodyLimitMinRate = "min_rate"
	// bodyLimitRead is the listener's read timeout (timeouts.read), which
	// bounds the whole request and caps the other limits.
	bodyLimitRead = "read_timeout"
)

// bodyLimitKind is the event payload of a limit's name.
func bodyLimitKind(limit string) observe.BodyLimit {
	switch limit {
	case bodyLimitMinRate:
		return observe.BodyLimitMinRate
	case bodyLimitRead:
		return observe.BodyLimitRead
	}
	return observe.BodyLimitIdle
}

// bodyLimits are a route's request-body timeouts (config.RequestBody).
// Zero disables a limit.
type bodyLimits struct {
	idle    time.Duration // longest wait for the next bytes
	minRate int64         // bytes per second of waiting, after grace
	grace   time.Duration
}

func (l bodyLimits) enabled() bool { return l.idle > 0 || l.minRate > 0 }

// next returns how long the next read may wait, and which limit that is,
// for a body of which n bytes arrived after waited of waiting on the
// client. ok is false when no limit applies. A remaining time of 0 or less
// means the body is already below its minimum rate.
func (l bodyLimits) next(n int64, waited time.Duration) (d time.Duration, limit string, ok bool) {
	if l.idle > 0 {
		d, limit, ok = l.idle, bodyLimitIdle, true
	}
	if l.minRate > 0 {
		// The body may have waited grace + n/minRate by now.
		allowed := l.grace + time.Duration(float64(n)/float64(l.minRate)*float64(time.Second))
		if r := allowed - waited; !ok || r < d {
			d, limit, ok = r, bodyLimitMinRate, true
		}
	}
	return d, limit, ok
}

// readDeadliner sets the read deadline of the client's connection (HTTP/1)
// or stream (HTTP/2): the http.ResponseWriter of net/http's servers, found
// through Unwrap like http.ResponseController does.
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

func findReadDeadliner(w http.ResponseWriter) readDeadliner {
	for {
		switch t := w.(type) {
		case readDeadliner:
			return t
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
}

// errBodyDetached is what a read of the client's body returns once the
// exchange is over (a late read by a transport still streaming it).
var errBodyDetached = errors.New("proxy: request body read after the exchange ended")

// clientBody is the client's request body as the proxy sends it upstream.
// It counts the bytes read, tags every read error (other than io.EOF) as
// an *observe.RequestBodyError so that no classifier blames the upstream,
// and enforces the route's body limits with read deadlines on the client's
// connection.
//
// The transport may read and close it from a goroutine of its own, even
// after RoundTrip returned; the proxy goroutine reads n and failure, and
// ends the body's use of the connection with detach before the handler
// returns.
type clientBody struct {
	rc  io.ReadCloser
	lim bodyLimits
	clk clock.Clock
	// sysNow tells the system time that read deadlines are set in (nil:
	// time.Now); with clock.Real the wait's start is used.
	sysNow func() time.Time
	dl     readDeadliner // nil when the connection offers none
	// hard is the read deadline the server itself set for the whole
	// request (its ReadTimeout), on the system clock; zero when none. The
	// limits never set a later one, and restore it when they are done.
	hard time.Time
	// enforce: the limits apply (some limit is set and dl is non-nil).
	enforce bool

	size   int64 // the declared length, -1 when unknown
	n      atomic.Int64
	eof    atomic.Bool // the client's body ended
	handed atomic.Bool // given to a transport, which will close it
	closed atomic.Bool

	// Owned by the reading goroutine.
	waited time.Duration // time spent waiting on the client

	mu       sync.Mutex
	err      *observe.RequestBodyError // first failure
	armed    bool                      // a read deadline is set
	armedAt  time.Time                 // ... at this system time
	armedBy  string                    // ... by this limit
	detached bool
}

// init prepares b to read rc, of declared length size (-1: unknown). The
// limits apply only when dl is non-nil.
func (b *clientBody) init(rc io.ReadCloser, size int64, lim bodyLimits, clk clock.Clock, dl readDeadliner) {
	b.rc, b.size, b.lim, b.clk, b.dl = rc, size, lim, clk, dl
	b.enforce = dl != nil && lim.enabled()
}

// complete reports whether all of the body arrived: its EOF was read, or
// as many bytes as it declared.
func (b *clientBody) complete() bool {
	return b.eof.Load() || b.size >= 0 && b.n.Load() >= b.size
}

// Read implements io.Reader.
func (b *clientBody) Read(p []byte) (int, error) {
	start, limit, err := b.arm()
	if err != nil {
		return 0, err
	}
	n, err := b.rc.Read(p)
	if n > 0 {
		b.n.Add(int64(n))
	}
	if b.enforce {
		b.waited += b.clk.Now().Sub(start)
	}
	if err == nil {
		return n, nil
	}
	if err == io.EOF {
		b.eof.Store(true)
		b.disarm()
		return n, err
	}
	be := &observe.RequestBodyError{Err: err}
	if limit != "" && observe.Classify(be, nil) == observe.ErrClientTimeout {
		be.Timeout = limit
	}
	b.mu.Lock()
	if b.err == nil {
		b.err = be
	}
	if b.enforce && !b.detached {
		// The body is broken and its connection will not be reused: a
		// deadline in the past keeps whoever reads on (closing a
		// net/http body discards the rest of it) from waiting on the
		// client again.
		b.armed = false
		_ = b.dl.SetReadDeadline(aLongTimeAgo)
	}
	b.mu.Unlock()
	return n, be
}

// arm sets the read deadline of the next read from the limits, and returns
// when the wait starts and which limit the deadline is. After detach it
// fails.
func (b *clientBody) arm() (start time.Time, limit string, err error) {
	if b.dl == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.detached {
		return start, "", errBodyDetached
	}
	if !b.enforce {
		return
	}
	start = b.clk.Now()
	if d, l, ok := b.lim.next(b.n.Load(), b.waited); ok {
		t := b.deadline(start, d)
		limit = l
		if !b.hard.IsZero() && t.After(b.hard) {
			t, limit = b.hard, bodyLimitRead
		}
		b.armed, b.armedAt, b.armedBy = true, t, limit
		_ = b.dl.SetReadDeadline(t)
	}
	return start, limit, nil
}

// deadline turns the wait d, measured from now on b's clock, into a
// deadline on the system clock the connection uses.
func (b *clientBody) deadline(now time.Time, d time.Duration) time.Time {
	switch {
	case b.sysNow != nil:
		now = b.sysNow()
	default:
		if _, real := b.clk.(clock.Real); !real {
			now = time.Now()
		}
	}
	return now.Add(d)
}

// disarm puts back the server's own read deadline (none, or its
// ReadTimeout's) in place of one b set, so that b's cannot cut the
// connection's later reads.
func (b *clientBody) disarm() {
	if !b.enforce {
		return
	}
	b.mu.Lock()
	if b.armed && !b.detached {
		b.armed = false
		_ = b.dl.SetReadDeadline(b.hard)
	}
	b.mu.Unlock()
}

// Close implements io.Closer.
func (b *clientBody) Close() error {
	err := b.rc.Close()
	b.closed.Store(true) // the last touch: the exchange may be reused after it
	return err
}

// detach ends b's use of the client's connection before the proxy's
// handler returns. When a transport may still be reading the body (it
// streams it from a goroutine of its own and stopped waiting for it) and
// the body has not all arrived, the read deadline is put in the past, so
// that a read blocked on a slow client ends now instead of holding the
// connection; otherwise the server's own deadline is put back. Later reads fail without touching the connection.
func (b *clientBody) detach() {
	if b.dl == nil {
		return
	}
	b.mu.Lock()
	if b.inUse() && !b.complete() {
		_ = b.dl.SetReadDeadline(aLongTimeAgo)
	} else if b.armed {
		_ = b.dl.SetReadDeadline(b.hard)
	}
	b.armed = false
	b.detached = true
	b.mu.Unlock()
}

// aLongTimeAgo is a deadline in the past, to end a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// failure returns the first read error, nil if none.
func (b *clientBody) failure() *observe.RequestBodyError {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// expired returns the error a read blocked past a deadline b set is about
// to return, when that deadline has passed by now (system time), else nil.
// An HTTP/1 server cancels the request's context as soon as its connection
// read fails, which the proxy may see before the read returns to b.
func (b *clientBody) expired(now time.Time) *observe.RequestBodyError {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	if b.armed && !now.Before(b.armedAt) {
		return &observe.RequestBodyError{Err: os.ErrDeadlineExceeded, Timeout: b.armedBy}
	}
	return nil
}

// inUse reports whether a transport may still read or close b.
func (b *clientBody) inUse() bool { return b.handed.Load() && !b.closed.Load() }
