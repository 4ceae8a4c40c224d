package proxy

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/retry"
)

// retryPolicy is a compiled config.Retry.
type retryPolicy struct {
	attempts      int
	onConnect     bool
	onTimeout     bool
	onReset       bool
	onStatus      [6]uint128 // bit per status code, by hundreds
	nonIdempotent bool
	perTry        time.Duration
	base, max     time.Duration
	bufferBytes   int64
	budget        RetryBudget
}

// uint128 is a 100-bit set of status codes within one hundred.
type uint128 struct{ lo, hi uint64 }

func (u *uint128) set(i int) {
	if i < 64 {
		u.lo |= 1 << i
	} else {
		u.hi |= 1 << (i - 64)
	}
}

func (u uint128) has(i int) bool {
	if i < 64 {
		return u.lo&(1<<i) != 0
	}
	return u.hi&(1<<(i-64)) != 0
}

func newRetryPolicy(c *config.Retry, budget RetryBudget) *retryPolicy {
	p := &retryPolicy{
		attempts:      c.Attempts,
		nonIdempotent: c.NonIdempotent,
		perTry:        c.PerTryTimeout.D(),
		base:          c.Backoff.D(),
		max:           c.MaxBackoff.D(),
		bufferBytes:   c.BufferBodyBytes,
		budget:        budget,
	}
	for _, on := range c.On {
		switch on {
		case "connect_error":
			p.onConnect = true
		case "timeout":
			p.onTimeout = true
		case "reset":
			p.onReset = true
		default:
			if code, err := strconv.Atoi(on); err == nil && code >= 100 && code <= 599 {
				p.onStatus[code/100].set(code % 100)
			}
		}
	}
	return p
}

// idempotent reports whether a method may be sent twice (RFC 9110 §9.2.2).
func idempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// retryOnError decides for a failed attempt. A connect error is retried
// for any method when nothing of the body was sent, since the upstream never
// saw the request.
func (p *retryPolicy) retryOnError(kind observe.ErrorKind, method string, bodyUntouched bool) bool {
	if p == nil {
		return false
	}
	switch kind {
	case observe.ErrUpstreamConnect:
		return p.onConnect && bodyUntouched
	case observe.ErrUpstreamTimeout:
		return p.onTimeout && (p.nonIdempotent || idempotent(method))
	case observe.ErrUpstreamReset, observe.ErrUpstreamProtocol:
		return p.onReset && (p.nonIdempotent || idempotent(method))
	}
	return false
}

func (p *retryPolicy) retryOnStatus(code int, method string) bool {
	if p == nil || code < 100 || code > 599 {
		return false
	}
	return p.onStatus[code/100].has(code%100) && (p.nonIdempotent || idempotent(method))
}

func (p *retryPolicy) budgetRequest() {
	if p.budget != nil {
		p.budget.Request()
	}
}

func (p *retryPolicy) budgetAllow() bool {
	return p.budget == nil || p.budget.AllowRetry()
}

// backoffFor is exponential backoff with full jitter before retry number
// attempt.
func (p *retryPolicy) backoffFor(attempt int) time.Duration {
	return retry.Backoff(attempt, p.base, p.max, rand.Uint64)
}
