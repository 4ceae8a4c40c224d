package config

import "strconv"

// Traffic control sections: splits, circuit breakers, rate limits, retries,
// mirroring and fault injection. Their defaults and validation live here too
// (setDefaults / validate methods called from defaults.go and validate.go).

// Split shares a route's requests among services by weight (canary,
// blue-green).
type Split struct {
	// Services and their weights. At least one must have a positive weight.
	Services []SplitService `yaml:"services" json:"services"`
}

// SplitService is one leg of a split.
type SplitService struct {
	Service string `yaml:"service" json:"service"`
	Weight  int    `yaml:"weight" json:"weight"`
}

// CircuitBreaker fails fast while a service is failing.
type CircuitBreaker struct{}

// RateLimit limits a route's request rate or concurrency.
type RateLimit struct{}

// Mirror copies a share of a route's requests to a shadow service.
type Mirror struct{}

// Fault injects delays and aborts into a route's requests.
type Fault struct{}

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

// RetryBudget caps retries to a percentage of requests over a window.
type RetryBudget struct {
	// Percent of requests that may be retries over Window (default 20).
	Percent float64 `yaml:"percent" json:"percent"`
	// MinRetries per second is always allowed, so low-traffic routes can
	// retry (default 3).
	MinRetriesPerSecond int `yaml:"min_retries_per_second" json:"min_retries_per_second"`
	// Window is the sliding window (default 10s).
	Window Duration `yaml:"window" json:"window"`
}

func (s *Split) setDefaults()          {}
func (b *CircuitBreaker) setDefaults() {}
func (rl *RateLimit) setDefaults()     {}
func (m *Mirror) setDefaults()         {}
func (f *Fault) setDefaults()          {}

func (s *Split) validate(v *validator, path string, c *Config) {
	if len(s.Services) == 0 {
		v.errorf(path+".services", "must list at least one service")
	}
	positive := false
	for i, ss := range s.Services {
		p := indexPath(path+".services", i)
		if ss.Service == "" {
			v.errorf(p+".service", "is required")
		} else if c.Service(ss.Service) == nil {
			v.errorf(p+".service", "unknown service %q", ss.Service)
		}
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
}

func (b *CircuitBreaker) validate(v *validator, path string)    {}
func (rl *RateLimit) validate(v *validator, path string)        {}
func (m *Mirror) validate(v *validator, path string, c *Config) {}
func (f *Fault) validate(v *validator, path string)             {}
func (rt *RouteTracing) validate(v *validator, path string)     {}

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
	if r.Budget.Window <= 0 {
		v.errorf(path+".budget.window", "must be positive")
	}
}
