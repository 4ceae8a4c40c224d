// Package proxy is the last handler of every route's chain: it chooses the
// service (a split leg, or the breaker's fallback), asks the service's
// balancer for a host, sends the request through the service's transport,
// retries what may be retried, and writes the response back — streaming,
// with trailers, upgrades and prompt flushing. Every failure is mapped to a
// status in one place (StatusFor) and answered with a small JSON body.
//
// Each step is written to the request's observe.Record and reported as a
// decision event, so telemetry never re-derives what the proxy decided.
package proxy

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/vantage-gateway/vantage/internal/balancer"
	"github.com/vantage-gateway/vantage/internal/breaker"
	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/upstream"
)

// Splitter picks a leg of a weighted split.
type Splitter interface {
	Pick(r *http.Request, rec *observe.Record) (leg int, reason observe.SplitReason)
}

// RetryBudget caps retries to a share of requests.
type RetryBudget interface {
	Request()
	AllowRetry() bool
}

// Service is one upstream service as the proxy sees it. A Service is built
// once per config snapshot and shared by every route that uses it.
type Service struct {
	Name      string
	Picker    balancer.Picker
	Transport http.RoundTripper
	// Breaker, when non-nil, guards the service.
	Breaker *breaker.Breaker
	// HostBreakers, when non-nil, guard each host (by upstream.Host.Key).
	HostBreakers map[string]*breaker.Breaker
	// Fallback, when non-nil, takes requests while the breaker is open.
	Fallback *Service
	// Observer receives the service's decision events.
	Observer observe.Observer
	// Mirrors, when set, hears the outcome of each mirrored copy the
	// service is sent (see Send).
	Mirrors MirrorObserver
}

// Route is the proxy handler of one route. Build it with NewRoute; it is
// safe for concurrent use and immutable.
type Route struct {
	// What every request reads comes first, in the struct's first two
	// cache lines: with thousands of routes a request finds little of its
	// route in the cache, and each further line it reads is a miss.
	services  []*Service
	split     Splitter
	retry     *retryPolicy
	retryLegs []int // per leg: the leg its retries go to, or -1
	timeout   time.Duration
	body      bodyLimits
	clk       clock.Clock
	// rewrite says whether stripPrefix or addPrefix is set; hasReqOps and
	// hasRespOps whether reqOps and respOps change anything.
	rewrite, hasReqOps, hasRespOps bool

	name                   string
	obs                    observe.Observer
	stripPrefix, addPrefix string
	reqOps, respOps        headerOps
	upgrades               []string // protocols a client may switch to
	labels                 legLabeler
}

// legLabeler is implemented by a Splitter whose legs carry labels (see
// split.Splitter.SetLabels).
type legLabeler interface {
	Label(leg int) string
}

// RouteOptions configure NewRoute.
type RouteOptions struct {
	// Config is the route's validated config.
	Config *config.Route
	// Services are the route's services: one, or the split legs in the
	// order of Config.Split.Services.
	Services []*Service
	// Split picks a leg when the route has a split; nil otherwise.
	Split Splitter
	// Budget caps the route's retries; nil means no budget.
	Budget RetryBudget
	// Observer receives decision events; nil for none.
	Observer observe.Observer
	// Clock measures how long the client's request body keeps the proxy
	// waiting, for the route's request_body limits (nil: clock.Real). The
	// limits become read deadlines on the client's connection, which run
	// on the system clock.
	Clock clock.Clock
	// RetryLegs, when set, has one entry per entry of Services: the index
	// of the leg that takes the retries of a request the split sent to
	// that leg, instead of another host of the same service, or -1 (the
	// default: retries stay on the leg). A rollout points its canary at its
	// stable leg, so that a retryable failure on the canary is retried on
	// the stable — still within the route's retry policy (attempts,
	// conditions, methods) and budget. The failed attempt stays in the
	// Record (Split.Service names the canary, Service the stable) so that
	// the rollout's analysis counts it against the canary.
	RetryLegs []int
}

// NewRoute builds the proxy handler of a route.
func NewRoute(o RouteOptions) *Route {
	c := o.Config
	obs := o.Observer
	if obs == nil {
		obs = observe.Nop{}
	}
	rt := &Route{
		name:        c.Name,
		services:    o.Services,
		split:       o.Split,
		obs:         obs,
		stripPrefix: strings.TrimSuffix(c.StripPrefix, "/"),
		addPrefix:   strings.TrimSuffix(c.AddPrefix, "/"),
		reqOps:      compileHeaderOps(c.RequestHeaders),
		respOps:     compileHeaderOps(c.ResponseHeaders),
		timeout:     c.TimeoutOrDefault().D(),
		upgrades:    c.Upgrades,
		clk:         o.Clock,
	}
	if rt.upgrades == nil {
		rt.upgrades = []string{"websocket"} // config's default
	}
	if rt.clk == nil {
		rt.clk = clock.Real{}
	}
	rt.rewrite = rt.stripPrefix != "" || rt.addPrefix != ""
	rt.hasReqOps, rt.hasRespOps = !rt.reqOps.empty(), !rt.respOps.empty()
	rt.body.idle, rt.body.minRate, rt.body.grace = c.RequestBody.Limits()
	if c.Retry != nil && c.Retry.Attempts > 1 {
		rt.retry = newRetryPolicy(c.Retry, o.Budget)
	}
	rt.labels, _ = o.Split.(legLabeler)
	if len(o.RetryLegs) == len(o.Services) && o.Split != nil {
		for i, to := range o.RetryLegs {
			if to >= 0 && to < len(o.Services) && to != i {
				rt.retryLegs = o.RetryLegs
				break
			}
		}
	}
	return rt
}

// ServeHTTP proxies r to the route's service.
func (rt *Route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := observe.FromContext(r.Context())
	if rec == nil {
		rec = observe.GetRecord()
		defer observe.PutRecord(rec)
		rec.Start = time.Now()
	}
	svc, leg := rt.chooseService(r, rec)
	if svc == nil {
		return // answered
	}
	x := exchangePool.Get().(*exchange)
	x.route, x.rec, x.w, x.in = rt, rec, w, r
	if rt.retryLegs != nil && leg >= 0 {
		x.retryLeg = rt.retryLegs[leg]
	} else {
		x.retryLeg = -1
	}
	if svc.Breaker != nil {
		t, ok := svc.Breaker.Allow()
		rec.Breaker = t.State.String()
		if !ok {
			rt.event(r, rec, observe.Event{Kind: observe.EventBreakerRejected, Service: svc.Name, Breaker: observe.BreakerChange{To: t.State}})
			if svc.Fallback == nil {
				WriteError(w, rec, observe.ErrBreakerOpen)
				x.reset()
				exchangePool.Put(x)
				return
			}
			svc = svc.Fallback
			x.retryLeg = -1 // the fallback is not a leg
			if svc.Breaker != nil {
				if t, ok = svc.Breaker.Allow(); !ok {
					rt.event(r, rec, observe.Event{Kind: observe.EventBreakerRejected, Service: svc.Name, Breaker: observe.BreakerChange{To: t.State}})
					WriteError(w, rec, observe.ErrBreakerOpen)
					x.reset()
					exchangePool.Put(x)
					return
				}
				x.brk, x.ticket = svc.Breaker, t
			}
		} else {
			x.brk, x.ticket = svc.Breaker, t
		}
	}
	rec.Service = svc.Name
	x.svc = svc

	kind, status := x.run()
	if x.body.rc != nil {
		x.body.detach()
		rec.BytesIn = x.body.n.Load()
	}
	if x.brk != nil {
		var latency time.Duration
		if a := rec.LastAttempt(); a != nil {
			latency = a.Duration
		}
		x.brk.Done(x.ticket, kind, status, latency)
	}
	if x.body.inUse() {
		// A transport still streams the body from a goroutine of its
		// own (the upstream answered before reading all of it): leave x
		// to that goroutine and the garbage collector.
		return
	}
	x.reset()
	exchangePool.Put(x)
}

// chooseService returns the request's service and, for a split, its leg
// (-1 without a split).
func (rt *Route) chooseService(r *http.Request, rec *observe.Record) (*Service, int) {
	if rt.split == nil || len(rt.services) == 1 {
		return rt.services[0], -1
	}
	leg, reason := rt.split.Pick(r, rec)
	if leg < 0 || leg >= len(rt.services) {
		return rt.services[0], -1
	}
	svc := rt.services[leg]
	rec.Split = observe.SplitChoice{Rule: rt.name, Service: svc.Name, Reason: reason.String()}
	ev := observe.Event{Kind: observe.EventSplitChosen, Service: svc.Name, Split: reason}
	if rt.labels != nil {
		ev.Detail = rt.labels.Label(leg)
	}
	rt.event(r, rec, ev)
	return svc, leg
}

// allowsUpgrade reports whether the route lets a client switch to protocol.
func (rt *Route) allowsUpgrade(protocol string) bool {
	for _, u := range rt.upgrades {
		if strings.EqualFold(u, protocol) {
			return true
		}
	}
	return false
}

// event fills in the per-request fields of ev (the time, unless set) and
// reports it. Without an observer it does nothing, not even read the clock.
func (rt *Route) event(r *http.Request, rec *observe.Record, ev observe.Event) {
	if _, nop := rt.obs.(observe.Nop); nop {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Ctx = r.Context()
	ev.Record = rec
	ev.Route = rt.name
	rt.obs.Observe(ev)
}

// exchange is the state of one proxied request, pooled to keep the request
// path free of per-request allocations beyond the outgoing request itself.
type exchange struct {
	route *Route
	svc   *Service
	rec   *observe.Record
	w     http.ResponseWriter
	in    *http.Request

	body    clientBody
	replay  []byte
	bufBody replayBody

	hostBreaker *breaker.Breaker // the current attempt's host breaker
	hostTicket  breaker.Ticket

	brk    *breaker.Breaker // the current service's breaker, if any
	ticket breaker.Ticket
	// retryLeg is the split leg that takes this request's retries (see
	// RouteOptions.RetryLegs), -1 for none or once taken.
	retryLeg int
}

var exchangePool = sync.Pool{New: func() any { return new(exchange) }}

func (x *exchange) reset() {
	replay := x.replay[:0]
	*x = exchange{}
	if cap(replay) <= 256<<10 {
		x.replay = replay
	}
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// run performs the attempts and writes the response. It returns the final
// outcome for the breaker.
func (x *exchange) run() (observe.ErrorKind, int) {
	rt, in, rec := x.route, x.in, x.rec
	out := x.outgoing()
	replayable, kind := x.prepareBody(out)
	if kind != observe.ErrNone {
		x.clientFailed(kind)
		return kind, 0
	}

	var (
		prev    *upstream.Host
		lastErr error
		resp    *http.Response
		cancel  context.CancelCauseFunc
		timer   *time.Timer
	)
	deadline := time.Time{}
	if rt.timeout > 0 {
		deadline = time.Now().Add(rt.timeout)
	}
	maxAttempts := 1
	if rt.retry != nil {
		maxAttempts = rt.retry.attempts
		rt.retry.budgetRequest()
	}
	reason := ""
	for attempt := 1; ; attempt++ {
		host, err := x.svc.Picker.Pick(out, prev)
		if err != nil && len(rec.Attempts) == 0 && rt.retry != nil && x.retryLeg >= 0 {
			// The leg has no host to send to (all ejected or down): the
			// request was never sent, so its retry leg takes it.
			cause := observe.RetryCause{Kind: observe.ErrNoHealthyUpstream}
			x.route.event(in, rec, observe.Event{Kind: observe.EventRetry, Service: x.svc.Name, Retry: cause})
			if x.switchLeg(observe.ErrNoHealthyUpstream, 0, 0) {
				reason = cause.String()
				host, err = x.svc.Picker.Pick(out, nil)
			}
		}
		if err != nil {
			if resp == nil && lastErr == nil {
				WriteError(x.w, rec, observe.ErrNoHealthyUpstream)
				return observe.ErrNoHealthyUpstream, 0
			}
			break
		}
		if x.svc.HostBreakers != nil {
			if host = x.admitHost(out, host); host == nil {
				WriteError(x.w, rec, observe.ErrBreakerOpen)
				return observe.ErrBreakerOpen, 0
			}
		}
		start := time.Now()
		a := rec.AddAttempt(observe.Attempt{Service: x.svc.Name, Upstream: host.Addr, Start: start, RetryReason: reason})
		rec.Upstream = host.Addr
		x.route.event(in, rec, observe.Event{Kind: observe.EventUpstreamPicked, Time: start, Service: x.svc.Name, Upstream: host.Addr})

		// One context per attempt: the client's, cut by the route deadline
		// or the per-try timeout, whichever is first. The timer stops once
		// response headers arrive, so a long body is not cut.
		var ctx context.Context
		ctx, cancel = context.WithCancelCause(in.Context())
		if d, cause := x.attemptDeadline(start, deadline); !d.IsZero() {
			timer = time.AfterFunc(d.Sub(start), func() { cancel(cause) })
		}
		out = out.WithContext(ctx)
		out.URL.Scheme = host.URL.Scheme
		out.URL.Host = host.URL.Host
		if out.Body == &x.body {
			x.body.handed.Store(true)
		}

		host.Begin()
		resp, err = x.svc.Transport.RoundTrip(out)
		if timer != nil {
			timer.Stop()
			timer = nil
		}
		a = rec.LastAttempt()
		a.Duration = time.Since(start)
		if err != nil {
			kind := x.failureKind(ctx, err)
			a.ErrorKind = kind
			host.End(kind, 0)
			x.hostDone(kind, 0, a.Duration)
			cancel(nil)
			lastErr = err
			resp = nil
			if attempt < maxAttempts && replayable && rt.retry.retryOnError(kind, in.Method, out.Body != &x.body || x.body.n.Load() == 0) {
				if cause := (observe.RetryCause{Kind: kind}); x.retryAllowed(in, rec, cause) && x.backoff(in, attempt, deadline) && x.rewind(out) {
					prev = host
					reason = cause.String()
					if x.switchLeg(kind, 0, a.Duration) {
						prev = nil
					}
					continue
				}
			}
			if kind.IsClientError() {
				x.clientFailed(kind)
			} else {
				WriteError(x.w, rec, kind)
			}
			return kind, 0
		}
		a.Status = resp.StatusCode
		if attempt < maxAttempts && replayable && rt.retry.retryOnStatus(resp.StatusCode, in.Method) {
			if cause := (observe.RetryCause{Status: resp.StatusCode}); x.retryAllowed(in, rec, cause) && x.backoff(in, attempt, deadline) && x.rewind(out) {
				host.End(observe.ErrNone, resp.StatusCode)
				x.hostDone(observe.ErrNone, resp.StatusCode, a.Duration)
				drainAndClose(resp.Body)
				cancel(nil)
				prev = host
				reason = cause.String()
				if x.switchLeg(observe.ErrNone, resp.StatusCode, a.Duration) {
					prev = nil
				}
				continue
			}
		}
		kind := x.respond(resp, a)
		host.End(kind, resp.StatusCode)
		x.hostDone(kind, resp.StatusCode, a.Duration)
		cancel(nil)
		return kind, resp.StatusCode
	}
	// Ran out of hosts to retry on: answer with the last failure.
	kind = rec.LastAttempt().ErrorKind
	if kind == observe.ErrNone {
		kind = observe.ErrNoHealthyUpstream
	}
	WriteError(x.w, rec, kind)
	return kind, 0
}

// switchLeg moves the request's retries to its retry leg (see
// RouteOptions.RetryLegs), once: the current service's breaker is told of
// the failed attempt, and the retry leg's breaker must admit the request
// (else the retries stay where they are). It reports whether it switched.
func (x *exchange) switchLeg(kind observe.ErrorKind, status int, latency time.Duration) bool {
	if x.retryLeg < 0 {
		return false
	}
	to := x.route.services[x.retryLeg]
	x.retryLeg = -1
	var (
		t  breaker.Ticket
		ok = true
	)
	if to.Breaker != nil {
		if t, ok = to.Breaker.Allow(); !ok {
			x.route.event(x.in, x.rec, observe.Event{Kind: observe.EventBreakerRejected, Service: to.Name, Breaker: observe.BreakerChange{To: t.State}})
			return false
		}
	}
	if x.brk != nil {
		x.brk.Done(x.ticket, kind, status, latency)
	}
	x.brk, x.ticket = nil, breaker.Ticket{}
	if to.Breaker != nil {
		x.brk, x.ticket = to.Breaker, t
		x.rec.Breaker = t.State.String()
	}
	x.svc = to
	x.rec.Service = to.Name
	return true
}

// failureKind classifies a failed attempt. A failed read of the client's
// body wins over whatever the transport made of it (the upstream
// connection it then closed, the client context that ended with the
// client's connection); then a cause the proxy gave the attempt's context
// (a route or per-try timeout); then the transport's error.
func (x *exchange) failureKind(ctx context.Context, err error) observe.ErrorKind {
	client := x.in.Context()
	if be := x.bodyFailure(); be != nil {
		return observe.Classify(be, client)
	}
	if ctx.Err() != nil {
		if k := observe.Classify(context.Cause(ctx), client); k != observe.ErrNone {
			return k
		}
	}
	return observe.Classify(err, client)
}

// bodyFailure returns how reading the client's body failed, nil if it did
// not (yet). A client context that ended while a read deadline the body
// set has passed is that deadline's doing, even before the read reports it.
func (x *exchange) bodyFailure() *observe.RequestBodyError {
	if x.body.rc == nil {
		return nil
	}
	if x.in.Context().Err() != nil {
		return x.body.expired(time.Now())
	}
	return x.body.failure()
}

// clientFailed answers a request whose body could not be read (400), was
// too slow (408) or whose client left (recorded only), and reports a body
// cut for slowness as EventRequestBodyTimeout.
func (x *exchange) clientFailed(kind observe.ErrorKind) {
	if kind == observe.ErrClientTimeout {
		x.reportBodyTimeout()
	}
	WriteError(x.w, x.rec, kind)
}

// reportBodyTimeout reports EventRequestBodyTimeout with the limit that
// fired ("idle" when a read deadline the proxy did not set expired).
func (x *exchange) reportBodyTimeout() {
	limit := bodyLimitIdle
	if be := x.bodyFailure(); be != nil && be.Timeout != "" {
		limit = be.Timeout
	}
	x.route.event(x.in, x.rec, observe.Event{Kind: observe.EventRequestBodyTimeout, Service: x.svc.Name, BodyTimeout: bodyLimitKind(limit)})
}

// admitHost checks the picked host's own breaker; when it refuses, one other
// host is tried. It returns nil when no admitted host was found.
func (x *exchange) admitHost(out *http.Request, host *upstream.Host) *upstream.Host {
	for try := 0; try < 2; try++ {
		hb := x.svc.HostBreakers[host.Key]
		if hb == nil {
			return host
		}
		t, ok := hb.Allow()
		if ok {
			x.hostBreaker, x.hostTicket = hb, t
			return host
		}
		x.route.event(x.in, x.rec, observe.Event{Kind: observe.EventBreakerRejected, Service: x.svc.Name, Upstream: host.Addr, Breaker: observe.BreakerChange{To: t.State}})
		next, err := x.svc.Picker.Pick(out, host)
		if err != nil || next == host {
			return nil
		}
		host = next
	}
	return nil
}

// hostDone reports the attempt's outcome to its host breaker, if any.
func (x *exchange) hostDone(kind observe.ErrorKind, status int, latency time.Duration) {
	if x.hostBreaker != nil {
		x.hostBreaker.Done(x.hostTicket, kind, status, latency)
		x.hostBreaker = nil
	}
}

func (x *exchange) attemptDeadline(start, routeDeadline time.Time) (time.Time, error) {
	d, cause := routeDeadline, errRouteTimeout
	if r := x.route.retry; r != nil && r.perTry > 0 {
		if t := start.Add(r.perTry); d.IsZero() || t.Before(d) {
			d, cause = t, errTryTimeout
		}
	}
	return d, cause
}

func (x *exchange) retryAllowed(in *http.Request, rec *observe.Record, cause observe.RetryCause) bool {
	if !x.route.retry.budgetAllow() {
		x.route.event(in, rec, observe.Event{Kind: observe.EventRetryBudgetExhausted, Service: x.svc.Name, Retry: cause})
		return false
	}
	x.route.event(in, rec, observe.Event{Kind: observe.EventRetry, Service: x.svc.Name, Upstream: rec.Upstream, Retry: cause})
	return true
}

// backoff waits before the next attempt; false when the client left or the
// route deadline would pass.
func (x *exchange) backoff(in *http.Request, attempt int, deadline time.Time) bool {
	d := x.route.retry.backoffFor(attempt)
	if d <= 0 {
		return true
	}
	if !deadline.IsZero() && time.Now().Add(d).After(deadline) {
		return false
	}
	return clock.Sleep(in.Context(), d)
}

func drainAndClose(b io.ReadCloser) {
	if b == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, b, 64<<10)
	_ = b.Close()
}
