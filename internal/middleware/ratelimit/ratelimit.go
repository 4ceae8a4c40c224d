// Package ratelimit is the per-route rate and concurrency limit: a token
// bucket per key (client IP, a request header, both, or one for the whole
// route) and a cap on requests in flight. A refused request gets a 429 (rate)
// or the configured 429/503 (concurrency) with a small JSON body,
// Retry-After, and the IETF RateLimit and RateLimit-Policy fields
// (draft-ietf-httpapi-ratelimit-headers); it is recorded on the request's
// observe.Record and reported as EventRateLimited.
//
// The middleware sits inside the telemetry middlewares and outside the
// proxy. Its request path does not allocate unless the headers are sent on
// every response.
package ratelimit

import (
	"fmt"
	"math"
	"net/http"
	"net/textproto"
	"reflect"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/errorbody"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// KeyInFlight is the key kind (Event.RateLimit.Key) of a refusal by the
// concurrency limit.
const KeyInFlight = observe.RateLimitKeyInFlight

// keyKind is the kind of key k counts by.
func keyKind(k config.RateLimitKey) observe.RateLimitKey {
	switch {
	case k.ClientIP && k.Header != "":
		return observe.RateLimitKeyClientIPHeader
	case k.ClientIP:
		return observe.RateLimitKeyClientIP
	case k.Header != "":
		return observe.RateLimitKeyHeader
	}
	return observe.RateLimitKeyRoute
}

// RateLimit is one route's rate-limit policy. Build it with New; it is safe
// for concurrent use.
type RateLimit struct {
	route  string
	name   string
	cfg    config.RateLimit
	obs    observe.Observer
	clk    clock.Clock
	always bool // send the RateLimit fields on every response
	off    bool // never send them

	limiter  Limiter // nil without a rate
	buckets  *Buckets
	header   string // canonical key header, "" when not keyed by a header
	clientIP bool
	keyKind  observe.RateLimitKey

	inFlight    *atomic.Int64 // shared with the previous snapshot's policy
	maxInFlight int64

	policyField []string // RateLimit-Policy value, precomputed
}

// New builds the policy of route from cfg, which must be defaulted and valid
// (see config.RateLimit). The policy name is cfg.Name, or route when empty.
// obs receives EventRateLimited (nil: none); clk tells the time (nil: the
// system clock).
//
// prev is the route's policy from the previous config snapshot, or nil. When
// it has the same name and config values, its buckets and its in-flight
// count carry over, so a reload neither refills every bucket nor forgets the
// requests still running.
func New(route string, cfg *config.RateLimit, prev *RateLimit, obs observe.Observer, clk clock.Clock) (*RateLimit, error) {
	if cfg == nil {
		return nil, fmt.Errorf("rate limit of route %q: no config", route)
	}
	if cfg.Rate < 0 || math.IsNaN(cfg.Rate) || cfg.MaxInFlight < 0 || (cfg.Rate > 0 && (cfg.Burst < 1 || cfg.Period <= 0)) {
		return nil, fmt.Errorf("rate limit of route %q: invalid config (rate %g, burst %d, period %s, max_in_flight %d): apply defaults and validate first",
			route, cfg.Rate, cfg.Burst, cfg.Period, cfg.MaxInFlight)
	}
	if obs == nil {
		obs = observe.Nop{}
	}
	if clk == nil {
		clk = clock.Real{}
	}
	name := cfg.Name
	if name == "" {
		name = route
	}
	l := &RateLimit{
		route:       route,
		name:        name,
		cfg:         *cfg,
		obs:         obs,
		clk:         clk,
		always:      cfg.Headers == config.RateLimitHeadersAlways,
		off:         cfg.Headers == config.RateLimitHeadersOff,
		clientIP:    cfg.Key.ClientIP,
		keyKind:     keyKind(cfg.Key),
		maxInFlight: int64(cfg.MaxInFlight),
	}
	if cfg.Key.Header != "" {
		l.header = textproto.CanonicalMIMEHeaderKey(cfg.Key.Header)
	}
	carry := prev != nil && prev.name == name && reflect.DeepEqual(prev.cfg, *cfg)
	if carry {
		l.inFlight = prev.inFlight
	} else {
		l.inFlight = new(atomic.Int64)
	}
	if cfg.Rate > 0 {
		if carry {
			l.buckets = prev.buckets
		} else {
			l.buckets = NewBuckets(cfg.Rate, cfg.Period.D(), cfg.Burst, cfg.MaxKeys, clk.Now())
		}
		l.limiter = l.buckets
		// RateLimit-Policy: the quota is the burst, the window the time an
		// empty bucket takes to refill (whole seconds, rounded up).
		window := int64(math.Ceil(float64(cfg.Burst) * cfg.Period.D().Seconds() / cfg.Rate))
		l.policyField = []string{sfString(name) + ";q=" + strconv.Itoa(cfg.Burst) + ";w=" + strconv.FormatInt(max(window, 1), 10)}
	}
	return l, nil
}

// Name returns the policy name.
func (l *RateLimit) Name() string { return l.name }

// InFlight returns the number of the route's requests in flight, counted
// only when the policy has a concurrency limit.
func (l *RateLimit) InFlight() int64 { return l.inFlight.Load() }

// Keys returns the number of rate-limit keys tracked.
func (l *RateLimit) Keys() int {
	if l.buckets == nil {
		return 0
	}
	return l.buckets.Keys()
}

// Middleware returns the middleware enforcing the policy.
func (l *RateLimit) Middleware() middleware.Middleware {
	return func(next http.Handler) http.Handler { return &handler{l: l, next: next} }
}

type handler struct {
	l    *RateLimit
	next http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l := h.l
	rec := observe.FromContext(r.Context())
	if l.maxInFlight > 0 {
		if l.inFlight.Add(1) > l.maxInFlight {
			l.inFlight.Add(-1)
			l.rejectInFlight(w, r, rec)
			return
		}
		defer l.inFlight.Add(-1)
	}
	if l.limiter != nil {
		now := l.clk.Now()
		d := l.limiter.Allow(l.key(r, rec), now)
		if !d.OK {
			l.rejectRate(w, r, rec, d, now)
			return
		}
		if l.always {
			l.setFields(w.Header(), d)
		}
	}
	h.next.ServeHTTP(w, r)
}

// key hashes the request's key parts without allocating.
func (l *RateLimit) key(r *http.Request, rec *observe.Record) uint64 {
	h := uint64(14695981039346656037)
	if l.clientIP && rec != nil {
		h = fnv(h, rec.ClientAddr)
	}
	if l.header != "" {
		if vs := r.Header[l.header]; len(vs) > 0 {
			h = fnv(h, vs[0])
		} else {
			h = fnv(h, "")
		}
	}
	return h
}

func fnv(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h * 1099511628211
}

func (l *RateLimit) setFields(h http.Header, d Decision) {
	if l.off || l.policyField == nil {
		return
	}
	h["Ratelimit-Policy"] = l.policyField
	b := make([]byte, 0, len(l.name)+32)
	b = appendSFString(b, l.name)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, int64(d.Remaining), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, ceilSeconds(d.Reset), 10)
	h["Ratelimit"] = []string{string(b)}
}

func (l *RateLimit) rejectRate(w http.ResponseWriter, r *http.Request, rec *observe.Record, d Decision, now time.Time) {
	h := w.Header()
	l.setFields(h, d)
	h.Set("Retry-After", strconv.FormatInt(max(ceilSeconds(d.RetryAfter), 1), 10))
	l.reject(w, r, rec, http.StatusTooManyRequests, "rate_limited", "rate limit exceeded", l.keyKind, now)
}

func (l *RateLimit) rejectInFlight(w http.ResponseWriter, r *http.Request, rec *observe.Record) {
	w.Header().Set("Retry-After", "1")
	l.reject(w, r, rec, l.cfg.InFlightStatus, "concurrency_limited", "too many requests in flight", KeyInFlight, l.clk.Now())
}

func (l *RateLimit) reject(w http.ResponseWriter, r *http.Request, rec *observe.Record, status int, code, msg string, kind observe.RateLimitKey, now time.Time) {
	if rec != nil {
		rec.RateLimit = l.name
		rec.ErrorKind = observe.ErrRateLimited
	}
	l.obs.Observe(observe.Event{
		Kind:      observe.EventRateLimited,
		Time:      now,
		Ctx:       r.Context(),
		Record:    rec,
		Route:     l.route,
		RateLimit: observe.RateLimitHit{Policy: l.name, Key: kind},
	})
	errorbody.Write(w, rec, status, code, msg)
}

// ceilSeconds rounds d up to whole seconds.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// sfString formats s as a Structured Field string (RFC 8941 §3.3.3).
func sfString(s string) string { return string(appendSFString(nil, s)) }

func appendSFString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			continue // not representable; policy names are validated anyway
		}
		if c == '"' || c == '\\' {
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	return append(b, '"')
}
