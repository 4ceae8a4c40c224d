// Package mirror copies a share of a route's requests to a shadow service,
// fire-and-forget: the client's request goes on unchanged, the copy is sent
// from a bounded set of background goroutines, the shadow's response is
// discarded, and nothing the shadow does (slow, down, failing) reaches the
// client. Mirroring is for trying a new version on live traffic without
// serving its answers.
package mirror

import (
	"bytes"
	"context"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Sender sends a mirrored request to the shadow service; the gateway's proxy
// implements it for the configured service. Send is called on a mirror
// goroutine, never the client's, and may block for the whole exchange. It
// owns r: the request has the shape of an incoming server request (Method,
// URL path and query, Host, Header, RequestURI as the client sent them), a
// body that can be read once (GetBody replays it), and a context detached
// from the client's, without the client's observe.Record, that ends after
// the configured timeout. Send must read and close the shadow's response
// body, and must not write to any client.
type Sender interface {
	Send(r *http.Request)
}

// SenderFunc adapts a function to Sender.
type SenderFunc func(r *http.Request)

// Send implements Sender.
func (f SenderFunc) Send(r *http.Request) { f(r) }

// Outcomes reported as EventMirrored's Mirror. Only Sent means a copy went
// to the shadow (and sets Record.Mirrored); the others count copies that
// were chosen by the percentage but not sent.
const (
	// Sent: the copy was handed to the Sender.
	Sent = observe.MirrorSent
	// Dropped: max_in_flight copies were already in flight.
	Dropped = observe.MirrorDropped
	// BodyTooLarge: the request body is over max_body_bytes.
	BodyTooLarge = observe.MirrorBodyTooLarge
	// BodyIncomplete: the upstream did not read the whole body, so there is
	// no whole copy to send.
	BodyIncomplete = observe.MirrorBodyIncomplete
)

const perMillion = 1_000_000

type mirror struct {
	route   string
	service string
	shadow  Sender
	obs     observe.Observer
	rnd     func() uint64
	thr     uint64
	maxBody int64
	timeout time.Duration
	slots   chan struct{}
}

// New returns the mirror middleware of route for cfg, which must be
// defaulted and valid (see config.Mirror), or nil (no middleware) when cfg or
// shadow is nil. obs receives EventMirrored (nil: none); rnd draws the
// percentage and must be safe for concurrent use (nil: math/rand/v2.Uint64).
//
// A request without a body is copied before it goes on, and the copy sent at
// once, alongside it. A request with a body is teed: the body streams to the
// upstream unchanged while up to max_body_bytes of it are kept, and the copy
// is sent once the request is done, if the upstream read the whole body.
// Requests whose body is (or turns out to be) larger are not mirrored.
// When max_in_flight copies are already in flight, the copy is dropped.
func New(route string, cfg *config.Mirror, shadow Sender, obs observe.Observer, rnd func() uint64) middleware.Middleware {
	if cfg == nil || shadow == nil {
		return nil
	}
	if obs == nil {
		obs = observe.Nop{}
	}
	if rnd == nil {
		rnd = rand.Uint64
	}
	m := &mirror{
		route:   route,
		service: cfg.Service,
		shadow:  shadow,
		obs:     obs,
		rnd:     rnd,
		thr:     perMillion,
		maxBody: max(cfg.MaxBodyBytes, 0),
		timeout: cfg.Timeout.D(),
		slots:   make(chan struct{}, max(cfg.MaxInFlight, 1)),
	}
	if cfg.Percent != nil {
		m.thr = uint64(math.Round(math.Min(math.Max(*cfg.Percent, 0), 100) * perMillion / 100))
	}
	if m.timeout <= 0 {
		m.timeout = 5 * time.Second
	}
	return func(next http.Handler) http.Handler { return &handler{m: m, next: next} }
}

func (m *mirror) hit() bool {
	switch m.thr {
	case 0:
		return false
	case perMillion:
		return true
	}
	return m.rnd()%perMillion < m.thr
}

type handler struct {
	m    *mirror
	next http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := h.m
	if !m.hit() {
		h.next.ServeHTTP(w, r)
		return
	}
	rec := observe.FromContext(r.Context())
	if r.ContentLength > m.maxBody {
		m.event(r, rec, BodyTooLarge)
		h.next.ServeHTTP(w, r)
		return
	}
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		m.send(r, rec, m.copyOf(r, rec))
		h.next.ServeHTTP(w, r)
		return
	}

	c := m.copyOf(r, rec) // taken before the handlers below can change r
	tee := &teeBody{rc: r.Body, max: m.maxBody, want: r.ContentLength}
	if r.ContentLength > 0 {
		tee.buf = make([]byte, 0, r.ContentLength)
	}
	in := r.WithContext(r.Context())
	in.Body = tee
	h.next.ServeHTTP(w, in)

	switch body, outcome := tee.finish(); outcome {
	case Sent:
		c.setBody(body)
		m.send(r, rec, c)
	default:
		c.cancel()
		m.event(r, rec, outcome)
	}
}

// pending is a copy waiting to be sent, with the cancel of its context.
type pending struct {
	req    *http.Request
	cancel context.CancelFunc
}

func (p pending) setBody(b []byte) {
	p.req.ContentLength = int64(len(b))
	p.req.Body = io.NopCloser(bytes.NewReader(b))
	p.req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// copyOf clones r, without its body, onto a context detached from the
// client's (no cancellation, no deadline, no Record) bounded by the mirror
// timeout. The context keeps the request's trace identity, so the copy
// continues the request's trace.
func (m *mirror) copyOf(r *http.Request, rec *observe.Record) pending {
	ctx := observe.NewContext(context.WithoutCancel(r.Context()), nil)
	if rec != nil && rec.Trace.Valid {
		ctx = observe.ContextWithTrace(ctx, rec.Trace)
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	p := pending{req: r.Clone(ctx), cancel: cancel}
	p.req.Body = http.NoBody
	p.req.ContentLength = 0
	p.req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
	return p
}

// send hands p to the Sender on a goroutine of its own, or drops it when
// every slot is taken.
func (m *mirror) send(r *http.Request, rec *observe.Record, p pending) {
	select {
	case m.slots <- struct{}{}:
	default:
		p.cancel()
		m.event(r, rec, Dropped)
		return
	}
	if rec != nil {
		rec.Mirrored = true
	}
	m.event(r, rec, Sent)
	go func() {
		defer func() {
			_ = recover() // a failing shadow must never take the gateway down
			p.cancel()
			<-m.slots
		}()
		m.shadow.Send(p.req)
	}()
}

func (m *mirror) event(r *http.Request, rec *observe.Record, outcome observe.MirrorOutcome) {
	m.obs.Observe(observe.Event{
		Kind:    observe.EventMirrored,
		Time:    time.Now(),
		Ctx:     r.Context(),
		Record:  rec,
		Route:   m.route,
		Service: m.service,
		Mirror:  outcome,
	})
}

// teeBody passes a request body through unchanged while keeping a copy of
// up to max bytes of it. A transport may still read the body on its own
// goroutine after the handler returns, so the bookkeeping is locked, and
// finish detaches the copy from later reads.
type teeBody struct {
	rc   io.ReadCloser
	want int64 // ContentLength, -1 when unknown
	max  int64

	mu   sync.Mutex
	buf  []byte
	n    int64
	eof  bool
	over bool
	done bool
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	t.mu.Lock()
	if !t.done {
		t.n += int64(n)
		if !t.over {
			if t.n > t.max {
				t.over = true
				t.buf = nil
			} else {
				t.buf = append(t.buf, p[:n]...)
			}
		}
		if err == io.EOF {
			t.eof = true
		}
	}
	t.mu.Unlock()
	return n, err
}

func (t *teeBody) Close() error { return t.rc.Close() }

// finish stops copying and returns the copy with Sent when the whole body
// went through, or the reason there is no whole copy.
func (t *teeBody) finish() ([]byte, observe.MirrorOutcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done = true
	switch {
	case t.over:
		return nil, BodyTooLarge
	case t.eof || (t.want >= 0 && t.n == t.want):
		return t.buf, Sent
	}
	return nil, BodyIncomplete
}
