package config

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// Traffic control sections: splits, circuit breakers, rate limits, retries,
// mirroring and fault injection. Their defaults and validation live here too
// (setDefaults / validate methods called from defaults.go and validate.go).

// Split shares a route's requests among services by weight (canary,
// blue-green). Requests are spread by smooth weighted round robin, so the
// shares are exact over every window of sum-of-weights requests; Sticky and
// Override change how one request picks its leg.
type Split struct {
	// Services are the legs and their weights. At least one must have a
	// positive weight; a leg of weight 0 gets no weighted traffic but can
	// still be reached by Override (test a version before it gets weight).
	// Blue-green is 100/0, flipped by a reload or the admin API.
	Services []SplitService `yaml:"services" json:"services"`
	// Sticky, when set, keeps one client on one leg: the hash of a header,
	// a cookie or the client IP falls into a weight bucket. Exactly one of
	// its fields must be set. Requests without the key are spread by
	// weight. Assignments are stable while the weights are unchanged; when
	// they change, only clients whose bucket changed hands move (raising
	// the last leg's share moves clients into it, none out of it).
	Sticky *HashKey `yaml:"sticky,omitempty" json:"sticky,omitempty"`
	// Override, when set, lets a request choose its leg by a header or
	// cookie value.
	Override *SplitOverride `yaml:"override,omitempty" json:"override,omitempty"`
}

// SplitService is one leg of a split.
type SplitService struct {
	// Service names a service of the config. Required; a service appears
	// at most once per split.
	Service string `yaml:"service" json:"service"`
	// Weight is the leg's share, relative to the others (>= 0).
	Weight int `yaml:"weight" json:"weight"`
}

// SplitOverride sends a request to the leg its header or cookie value names,
// whatever the weights, e.g.
//
//	override:
//	  header: X-Canary
//	  values: {always: checkout-v2, never: checkout}
//
// A request without the header or cookie, or with a value not listed, is
// split as usual.
type SplitOverride struct {
	// Header is the request header to read. Exactly one of Header and
	// Cookie is required.
	Header string `yaml:"header,omitempty" json:"header,omitempty"`
	// Cookie is the cookie to read.
	Cookie string `yaml:"cookie,omitempty" json:"cookie,omitempty"`
	// Values maps a header or cookie value (exact match) to the service
	// (one of the split's legs) it selects. At least one is required.
	Values map[string]string `yaml:"values" json:"values"`
}

// Circuit-breaker defaults.
const (
	defaultBreakerConsecutiveFailures = 5
	defaultBreakerErrorRatio          = 0.5
	defaultBreakerSlowCallRatio       = 0.5
	defaultBreakerMinRequests         = 20
	defaultBreakerWindow              = 10 * time.Second
	defaultBreakerWindowBuckets       = 10
	defaultBreakerOpenDuration        = 30 * time.Second
	defaultBreakerHalfOpenProbes      = 1
	defaultBreakerHalfOpenSuccesses   = 2
)

// CircuitBreaker fails fast while a service is failing. It opens when any
// enabled trigger fires: ConsecutiveFailures, ErrorRatio, or the slow-call
// ratio (SlowCallDuration). While open, requests are refused (503, or sent to
// Fallback); after OpenDuration it is half-open and lets HalfOpenProbes
// requests through at a time; HalfOpenSuccesses successful probes close it,
// one failed probe opens it again.
type CircuitBreaker struct {
	// ConsecutiveFailures opens the breaker after this many failures in a
	// row (default 5; 0 disables the trigger).
	ConsecutiveFailures *int `yaml:"consecutive_failures,omitempty" json:"consecutive_failures,omitempty"`
	// ErrorRatio opens the breaker when failures / requests over Window
	// reach it, once Window holds at least MinRequests requests (default
	// 0.5; 0 disables the trigger; at most 1).
	ErrorRatio *float64 `yaml:"error_ratio,omitempty" json:"error_ratio,omitempty"`
	// SlowCallDuration makes a call that took longer than this (to its
	// response headers) slow (default 0: slow calls are not tracked).
	SlowCallDuration Duration `yaml:"slow_call_duration" json:"slow_call_duration"`
	// SlowCallRatio opens the breaker when slow calls / requests over
	// Window reach it, with at least MinRequests requests (default 0.5;
	// used only when SlowCallDuration is set). In half-open, a slow probe
	// counts as a failed probe.
	SlowCallRatio float64 `yaml:"slow_call_ratio" json:"slow_call_ratio"`
	// MinRequests is the smallest number of requests in Window for the
	// ratios to be judged (default 20).
	MinRequests int `yaml:"min_requests" json:"min_requests"`
	// Window is the rolling window of the ratios (default 10s).
	Window Duration `yaml:"window" json:"window"`
	// WindowBuckets is how many time buckets Window is kept in; the window
	// rolls forward one bucket at a time (default 10, at most 100).
	WindowBuckets int `yaml:"window_buckets" json:"window_buckets"`
	// OpenDuration is the cool-down: how long the breaker stays open
	// before letting probes through (default 30s).
	OpenDuration Duration `yaml:"open_duration" json:"open_duration"`
	// HalfOpenProbes bounds the probe requests in flight while half-open
	// (default 1). Other requests are refused as if open.
	HalfOpenProbes int `yaml:"half_open_probes" json:"half_open_probes"`
	// HalfOpenSuccesses is the number of successful probes that close the
	// breaker (default 2).
	HalfOpenSuccesses int `yaml:"half_open_successes" json:"half_open_successes"`
	// FailureOn lists what counts as a failure: "connect_error",
	// "timeout", "reset", "protocol" (error kinds), status codes ("503")
	// and classes ("5xx"). Default ["connect_error", "timeout", "reset",
	// "protocol", "5xx"]. A client that went away never counts, neither as
	// a failure nor as a request.
	FailureOn []string `yaml:"failure_on" json:"failure_on"`
	// PerHost also gives each upstream host of the service its own breaker
	// with these settings, besides the service-wide one (default false).
	PerHost bool `yaml:"per_host" json:"per_host"`
	// Fallback names a service that receives the requests while the
	// breaker is open, instead of a 503 (default: none). Fallback is one
	// hop: the fallback service's own fallback is not followed.
	Fallback string `yaml:"fallback,omitempty" json:"fallback,omitempty"`
}

// RateLimit header modes for RateLimit.Headers.
const (
	RateLimitHeadersRejected = "rejected"
	RateLimitHeadersAlways   = "always"
	RateLimitHeadersOff      = "off"
)

// Rate-limit defaults.
const (
	defaultRateLimitPeriod         = time.Second
	defaultRateLimitMaxKeys        = 100000
	defaultRateLimitInFlightStatus = http.StatusServiceUnavailable
)

// RateLimit limits a route's request rate (a token bucket per key) and/or
// its concurrency (requests in flight). At least one of Rate and MaxInFlight
// is required.
type RateLimit struct {
	// Name names the policy in the RateLimit-Policy header, events, logs
	// and metrics (default: the route's name).
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Rate is the sustained number of requests allowed per Period and key
	// (default 0: no rate limit, only MaxInFlight).
	Rate float64 `yaml:"rate" json:"rate"`
	// Period is the time Rate is counted over (default 1s): rate 10 with
	// period 1m allows 10 requests a minute.
	Period Duration `yaml:"period" json:"period"`
	// Burst is the bucket size: how many requests a key may send at once
	// after being idle (default Rate rounded up, at least 1).
	Burst int `yaml:"burst" json:"burst"`
	// Key chooses the buckets: by client IP, by a request header, or both
	// combined. Without a key (the default) the route has one bucket.
	Key RateLimitKey `yaml:"key" json:"key"`
	// MaxKeys caps the number of buckets kept (default 100000). Idle keys
	// whose bucket has refilled are dropped first; when the table is full
	// of active keys, new keys share one overflow bucket per shard.
	MaxKeys int `yaml:"max_keys" json:"max_keys"`
	// MaxInFlight caps the route's concurrent requests (default 0: no
	// cap). A request over the cap is refused with InFlightStatus.
	MaxInFlight int `yaml:"max_in_flight" json:"max_in_flight"`
	// InFlightStatus is the status of a request refused by MaxInFlight:
	// 503 (default: the gateway is shedding load, not blaming the client)
	// or 429.
	InFlightStatus int `yaml:"in_flight_status" json:"in_flight_status"`
	// Headers says when the RateLimit and RateLimit-Policy headers are
	// sent: "rejected" (default, on 429 only), "always" (every response of
	// the route) or "off". Retry-After is always sent with a 429.
	Headers string `yaml:"headers" json:"headers"`
}

// RateLimitKey chooses what a rate limit counts by. Set fields combine: with
// client_ip and header, each (IP, header value) pair has its own bucket. A
// request without the header counts under the empty value.
type RateLimitKey struct {
	// ClientIP keys by the client address (after trusted_proxies).
	ClientIP bool `yaml:"client_ip,omitempty" json:"client_ip,omitempty"`
	// Header keys by the value of this request header (an API key, a
	// tenant id).
	Header string `yaml:"header,omitempty" json:"header,omitempty"`
}

// Kind names the key for events and logs: "route", "client_ip", "header" or
// "client_ip+header". It never includes a key's value.
func (k RateLimitKey) Kind() string {
	switch {
	case k.ClientIP && k.Header != "":
		return "client_ip+header"
	case k.ClientIP:
		return "client_ip"
	case k.Header != "":
		return "header"
	}
	return "route"
}

// Mirror defaults.
const (
	defaultMirrorMaxBodyBytes = 64 << 10
	defaultMirrorTimeout      = 5 * time.Second
	defaultMirrorMaxInFlight  = 32
)

// Mirror copies a share of a route's requests to a shadow service,
// fire-and-forget: the shadow's response is discarded and its failures never
// reach the client.
type Mirror struct {
	// Service is the shadow service. Required.
	Service string `yaml:"service" json:"service"`
	// Percent of requests mirrored, 0 to 100 (default 100).
	Percent *float64 `yaml:"percent,omitempty" json:"percent,omitempty"`
	// MaxBodyBytes is the largest request body copied; requests with a
	// larger body are not mirrored (default 64 KiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes" json:"max_body_bytes"`
	// Timeout bounds one mirrored request (default 5s). The copy does not
	// end when the client's request does.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// MaxInFlight bounds the mirrored requests in flight for the route;
	// copies over it are dropped and counted (default 32).
	MaxInFlight int `yaml:"max_in_flight" json:"max_in_flight"`
}

// Fault injects delays and aborts into a route's requests, for testing how
// clients and dashboards behave. At least one of Delay and Abort is
// required; when both apply to a request, the delay comes first.
type Fault struct {
	// Delay holds a share of requests before they are sent on.
	Delay *FaultDelay `yaml:"delay,omitempty" json:"delay,omitempty"`
	// Abort answers a share of requests with a status, without sending them
	// upstream.
	Abort *FaultAbort `yaml:"abort,omitempty" json:"abort,omitempty"`
}

// FaultDelay delays a share of requests.
type FaultDelay struct {
	// Duration of the delay. Required, positive. A client that goes away
	// ends the delay.
	Duration Duration `yaml:"duration" json:"duration"`
	// Percent of requests delayed, 0 to 100 (default 100).
	Percent *float64 `yaml:"percent,omitempty" json:"percent,omitempty"`
}

// FaultAbort aborts a share of requests.
type FaultAbort struct {
	// Status answered, 400 to 599 (default 503).
	Status int `yaml:"status" json:"status"`
	// Percent of requests aborted, 0 to 100 (default 100).
	Percent *float64 `yaml:"percent,omitempty" json:"percent,omitempty"`
}

// Retry retries failed attempts of a route.
type Retry struct {
	// Attempts is the maximum number of attempts, the first included
	// (default 2 when the retry block is present).
	Attempts int `yaml:"attempts" json:"attempts"`
	// On lists what is retried: "connect_error" (always safe), "timeout",
	// "reset", "502", "503", "504", or any status code. Default
	// ["connect_error"].
	On []string `yaml:"on" json:"on"`
	// PerTryTimeout bounds each attempt up to its response headers
	// (default 0: only the route timeout applies).
	PerTryTimeout Duration `yaml:"per_try_timeout" json:"per_try_timeout"`
	// NonIdempotent allows retrying POST, PATCH and other non-idempotent
	// methods (default false). A connect error is retried regardless,
	// since the request never reached the upstream.
	NonIdempotent bool `yaml:"non_idempotent" json:"non_idempotent"`
	// Backoff is the base of the exponential backoff between attempts,
	// with full jitter (default 25ms).
	Backoff Duration `yaml:"backoff" json:"backoff"`
	// MaxBackoff caps one backoff (default 250ms).
	MaxBackoff Duration `yaml:"max_backoff" json:"max_backoff"`
	// BufferBodyBytes is the largest request body buffered so it can be
	// replayed on retry; larger bodies stream and are not retried
	// (default 64 KiB).
	BufferBodyBytes int64 `yaml:"buffer_body_bytes" json:"buffer_body_bytes"`
	// Budget caps retries as a share of the route's requests.
	Budget RetryBudget `yaml:"budget" json:"budget"`
}

// RetryBudget caps retries to a percentage of requests over a window: a
// retry is allowed when, counting it, the retries in Window do not exceed the
// larger of Percent% of the requests in Window and MinRetriesPerSecond ×
// Window.
type RetryBudget struct {
	// Percent of requests that may be retries over Window (default 20).
	Percent float64 `yaml:"percent" json:"percent"`
	// MinRetries per second is always allowed, so low-traffic routes can
	// retry (default 3).
	MinRetriesPerSecond int `yaml:"min_retries_per_second" json:"min_retries_per_second"`
	// Window is the sliding window (default 10s).
	Window Duration `yaml:"window" json:"window"`
}

func intPtr(n int) *int             { return &n }
func float64Ptr(f float64) *float64 { return &f }

func (s *Split) setDefaults() {}

func (b *CircuitBreaker) setDefaults() {
	if b.ConsecutiveFailures == nil {
		b.ConsecutiveFailures = intPtr(defaultBreakerConsecutiveFailures)
	}
	if b.ErrorRatio == nil {
		b.ErrorRatio = float64Ptr(defaultBreakerErrorRatio)
	}
	if b.SlowCallRatio == 0 {
		b.SlowCallRatio = defaultBreakerSlowCallRatio
	}
	if b.MinRequests == 0 {
		b.MinRequests = defaultBreakerMinRequests
	}
	if b.Window == 0 {
		b.Window = Duration(defaultBreakerWindow)
	}
	if b.WindowBuckets == 0 {
		b.WindowBuckets = defaultBreakerWindowBuckets
	}
	if b.OpenDuration == 0 {
		b.OpenDuration = Duration(defaultBreakerOpenDuration)
	}
	if b.HalfOpenProbes == 0 {
		b.HalfOpenProbes = defaultBreakerHalfOpenProbes
	}
	if b.HalfOpenSuccesses == 0 {
		b.HalfOpenSuccesses = defaultBreakerHalfOpenSuccesses
	}
	if len(b.FailureOn) == 0 {
		b.FailureOn = []string{"connect_error", "timeout", "reset", "protocol", "5xx"}
	}
}

func (rl *RateLimit) setDefaults() {
	if rl.Period == 0 {
		rl.Period = Duration(defaultRateLimitPeriod)
	}
	if rl.Burst == 0 && rl.Rate > 0 {
		rl.Burst = max(1, int(math.Ceil(rl.Rate)))
	}
	if rl.MaxKeys == 0 {
		rl.MaxKeys = defaultRateLimitMaxKeys
	}
	if rl.InFlightStatus == 0 {
		rl.InFlightStatus = defaultRateLimitInFlightStatus
	}
	if rl.Headers == "" {
		rl.Headers = RateLimitHeadersRejected
	}
}

func (m *Mirror) setDefaults() {
	if m.Percent == nil {
		m.Percent = float64Ptr(100)
	}
	if m.MaxBodyBytes == 0 {
		m.MaxBodyBytes = defaultMirrorMaxBodyBytes
	}
	if m.Timeout == 0 {
		m.Timeout = Duration(defaultMirrorTimeout)
	}
	if m.MaxInFlight == 0 {
		m.MaxInFlight = defaultMirrorMaxInFlight
	}
}

func (f *Fault) setDefaults() {
	if d := f.Delay; d != nil && d.Percent == nil {
		d.Percent = float64Ptr(100)
	}
	if a := f.Abort; a != nil {
		if a.Percent == nil {
			a.Percent = float64Ptr(100)
		}
		if a.Status == 0 {
			a.Status = http.StatusServiceUnavailable
		}
	}
}

func (s *Split) validate(v *validator, path string, c *Config) {
	if len(s.Services) == 0 {
		v.errorf(path+".services", "must list at least one service")
	}
	positive := false
	legs := make(map[string]bool, len(s.Services))
	for i, ss := range s.Services {
		p := indexPath(path+".services", i)
		if ss.Service == "" {
			v.errorf(p+".service", "is required")
		} else if v.service(ss.Service) == nil {
			v.errorf(p+".service", "unknown service %q", ss.Service)
		} else if legs[ss.Service] {
			v.errorf(p+".service", "duplicate service %q in split", ss.Service)
		}
		legs[ss.Service] = true
		if ss.Weight < 0 {
			v.errorf(p+".weight", "must be >= 0, got %d", ss.Weight)
		}
		if ss.Weight > 0 {
			positive = true
		}
	}
	if len(s.Services) > 0 && !positive {
		v.errorf(path+".services", "at least one service needs a positive weight")
	}
	if s.Sticky != nil {
		validateHashKey(v, path+".sticky", s.Sticky)
	}
	if o := s.Override; o != nil {
		op := path + ".override"
		switch {
		case o.Header != "" && o.Cookie != "":
			v.errorf(op, "set header or cookie, not both")
		case o.Header == "" && o.Cookie == "":
			v.errorf(op, "header or cookie is required")
		case o.Header != "" && !validHeaderName(o.Header):
			v.errorf(op+".header", "invalid header name %q", o.Header)
		case o.Cookie != "" && !validHeaderName(o.Cookie):
			v.errorf(op+".cookie", "invalid cookie name %q", o.Cookie)
		}
		if len(o.Values) == 0 {
			v.errorf(op+".values", "must map at least one value to a service")
		}
		for val, svc := range o.Values {
			if !legs[svc] {
				v.errorf(op+".values", "value %q selects %q, which is not a service of this split", val, svc)
			}
		}
	}
}

// validateHashKey checks that exactly one of the key's fields is set.
func validateHashKey(v *validator, path string, k *HashKey) {
	n := 0
	if k.Header != "" {
		n++
		if !validHeaderName(k.Header) {
			v.errorf(path+".header", "invalid header name %q", k.Header)
		}
	}
	if k.Cookie != "" {
		n++
		if !validHeaderName(k.Cookie) {
			v.errorf(path+".cookie", "invalid cookie name %q", k.Cookie)
		}
	}
	if k.ClientIP {
		n++
	}
	if n != 1 {
		v.errorf(path, "set exactly one of header, cookie, client_ip")
	}
}

// Breaker failure tokens that name error kinds rather than statuses.
var breakerFailureKinds = map[string]bool{"connect_error": true, "timeout": true, "reset": true, "protocol": true}

func (b *CircuitBreaker) validate(v *validator, path string) {
	consecutive := 0
	if b.ConsecutiveFailures != nil {
		consecutive = *b.ConsecutiveFailures
	}
	ratio := 0.0
	if b.ErrorRatio != nil {
		ratio = *b.ErrorRatio
	}
	if consecutive < 0 {
		v.errorf(path+".consecutive_failures", "must be >= 0, got %d", consecutive)
	}
	if ratio < 0 || ratio > 1 || math.IsNaN(ratio) {
		v.errorf(path+".error_ratio", "must be between 0 and 1, got %g", ratio)
	}
	if b.SlowCallDuration < 0 {
		v.errorf(path+".slow_call_duration", "must not be negative")
	}
	if b.SlowCallRatio <= 0 || b.SlowCallRatio > 1 {
		v.errorf(path+".slow_call_ratio", "must be > 0 and <= 1, got %g", b.SlowCallRatio)
	}
	if consecutive <= 0 && ratio <= 0 && b.SlowCallDuration <= 0 {
		v.errorf(path, "enable at least one trigger: consecutive_failures, error_ratio or slow_call_duration")
	}
	if b.MinRequests < 1 {
		v.errorf(path+".min_requests", "must be >= 1, got %d", b.MinRequests)
	}
	if b.Window <= 0 {
		v.errorf(path+".window", "must be positive")
	}
	if b.WindowBuckets < 1 || b.WindowBuckets > 100 {
		v.errorf(path+".window_buckets", "must be between 1 and 100, got %d", b.WindowBuckets)
	} else if b.Window > 0 && b.Window.D()/time.Duration(b.WindowBuckets) < time.Millisecond {
		v.errorf(path+".window_buckets", "buckets must be at least 1ms long (window %s / %d)", b.Window, b.WindowBuckets)
	}
	if b.OpenDuration <= 0 {
		v.errorf(path+".open_duration", "must be positive")
	}
	if b.HalfOpenProbes < 1 {
		v.errorf(path+".half_open_probes", "must be >= 1, got %d", b.HalfOpenProbes)
	}
	if b.HalfOpenSuccesses < 1 {
		v.errorf(path+".half_open_successes", "must be >= 1, got %d", b.HalfOpenSuccesses)
	}
	for i, tok := range b.FailureOn {
		if breakerFailureKinds[tok] {
			continue
		}
		if _, err := ParseStatusMatcher(tok); err != nil {
			v.errorf(indexPath(path+".failure_on", i), "must be connect_error, timeout, reset, protocol, a status code (\"503\") or class (\"5xx\"), got %q", tok)
		}
	}
}

// validateRefs checks the breaker's references to other services: Fallback
// must name another service of c. It needs the whole config, so it is called
// apart from validate.
func (b *CircuitBreaker) validateRefs(v *validator, path string, c *Config, service string) {
	if b.Fallback == "" {
		return
	}
	if b.Fallback == service {
		v.errorf(path+".fallback", "must name another service, not %q itself", service)
	} else if v.service(b.Fallback) == nil {
		v.errorf(path+".fallback", "unknown service %q", b.Fallback)
	}
}

func (rl *RateLimit) validate(v *validator, path string) {
	if rl.Name != "" && !validName(rl.Name) {
		v.errorf(path+".name", "must be letters, digits, '-', '_' or '.', got %q", rl.Name)
	}
	if rl.Rate < 0 || math.IsNaN(rl.Rate) || math.IsInf(rl.Rate, 0) {
		v.errorf(path+".rate", "must be >= 0, got %g", rl.Rate)
	}
	if rl.MaxInFlight < 0 {
		v.errorf(path+".max_in_flight", "must be >= 0, got %d", rl.MaxInFlight)
	}
	if rl.Rate == 0 && rl.MaxInFlight == 0 {
		v.errorf(path, "set rate, max_in_flight or both")
	}
	if rl.Period <= 0 {
		v.errorf(path+".period", "must be positive")
	}
	if rl.Rate > 0 && rl.Burst < 1 {
		v.errorf(path+".burst", "must be >= 1, got %d", rl.Burst)
	}
	if rl.Key.Header != "" && !validHeaderName(rl.Key.Header) {
		v.errorf(path+".key.header", "invalid header name %q", rl.Key.Header)
	}
	if rl.MaxKeys < 1 {
		v.errorf(path+".max_keys", "must be >= 1, got %d", rl.MaxKeys)
	}
	if rl.InFlightStatus != http.StatusTooManyRequests && rl.InFlightStatus != http.StatusServiceUnavailable {
		v.errorf(path+".in_flight_status", "must be 429 or 503, got %d", rl.InFlightStatus)
	}
	switch rl.Headers {
	case RateLimitHeadersRejected, RateLimitHeadersAlways, RateLimitHeadersOff:
	default:
		v.errorf(path+".headers", "must be rejected, always or off, got %q", rl.Headers)
	}
}

func validatePercent(v *validator, path string, p *float64) {
	if p != nil && (*p < 0 || *p > 100 || math.IsNaN(*p)) {
		v.errorf(path, "must be between 0 and 100, got %g", *p)
	}
}

func (m *Mirror) validate(v *validator, path string, c *Config) {
	if m.Service == "" {
		v.errorf(path+".service", "is required")
	} else if v.service(m.Service) == nil {
		v.errorf(path+".service", "unknown service %q", m.Service)
	}
	validatePercent(v, path+".percent", m.Percent)
	if m.MaxBodyBytes < 0 {
		v.errorf(path+".max_body_bytes", "must not be negative")
	}
	if m.Timeout <= 0 {
		v.errorf(path+".timeout", "must be positive")
	}
	if m.MaxInFlight < 1 {
		v.errorf(path+".max_in_flight", "must be >= 1, got %d", m.MaxInFlight)
	}
}

func (f *Fault) validate(v *validator, path string) {
	if f.Delay == nil && f.Abort == nil {
		v.errorf(path, "set delay, abort or both")
	}
	if d := f.Delay; d != nil {
		if d.Duration <= 0 {
			v.errorf(path+".delay.duration", "must be positive")
		}
		validatePercent(v, path+".delay.percent", d.Percent)
	}
	if a := f.Abort; a != nil {
		if a.Status < 400 || a.Status > 599 {
			v.errorf(path+".abort.status", "must be between 400 and 599, got %d", a.Status)
		}
		validatePercent(v, path+".abort.percent", a.Percent)
	}
}

func (r *Retry) validate(v *validator, path string) {
	if r.Attempts < 1 || r.Attempts > 10 {
		v.errorf(path+".attempts", "must be between 1 and 10, got %d", r.Attempts)
	}
	for i, on := range r.On {
		switch on {
		case "connect_error", "timeout", "reset":
			continue
		}
		if code, err := strconv.Atoi(on); err != nil || code < 100 || code > 599 {
			v.errorf(indexPath(path+".on", i), "must be connect_error, timeout, reset or a status code, got %q", on)
		}
	}
	if r.PerTryTimeout < 0 {
		v.errorf(path+".per_try_timeout", "must not be negative")
	}
	if r.Backoff < 0 || r.MaxBackoff < 0 {
		v.errorf(path+".backoff", "must not be negative")
	}
	if r.MaxBackoff < r.Backoff {
		v.errorf(path+".max_backoff", "must be >= backoff (%s), got %s", r.Backoff, r.MaxBackoff)
	}
	if r.BufferBodyBytes < 0 {
		v.errorf(path+".buffer_body_bytes", "must not be negative")
	}
	if r.Budget.Percent < 0 || r.Budget.Percent > 100 {
		v.errorf(path+".budget.percent", "must be between 0 and 100, got %g", r.Budget.Percent)
	}
	if r.Budget.MinRetriesPerSecond < 0 {
		v.errorf(path+".budget.min_retries_per_second", "must not be negative, got %d", r.Budget.MinRetriesPerSecond)
	}
	if r.Budget.Window <= 0 {
		v.errorf(path+".budget.window", "must be positive")
	}
}
