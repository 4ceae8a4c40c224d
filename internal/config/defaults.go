package config

import (
	"fmt"
	"time"
)

const (
	defaultAdminAddress  = "127.0.0.1:9901"
	defaultRouteTimeout  = 30 * time.Second
	defaultShutdownGrace = 15 * time.Second
)

// Request head limits of a listener, when its config leaves them unset.
const (
	DefaultMaxHeaderBytes = 60 << 10
	DefaultMaxHeaders     = 100
	DefaultMaxURIBytes    = 16 << 10
)

func boolPtr(b bool) *bool { return &b }

// ApplyEnv lets standard environment variables (the OpenTelemetry OTEL_*
// ones, and Go's GOGC and GOMEMLIMIT) supply values the file left unset. It runs before SetDefaults, so
// the order is: file, then environment, then built-in defaults. lookup may
// be nil.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) {
	if lookup == nil {
		return
	}
	c.Tracing.applyEnv(lookup)
	c.Runtime.applyEnv(lookup)
}

// SetDefaults fills every unset field with its documented default. It is
// idempotent.
func (c *Config) SetDefaults() {
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = Duration(defaultShutdownGrace)
	}
	if c.Admin.Address == "" {
		c.Admin.Address = defaultAdminAddress
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Name == "" {
			l.Name = fmt.Sprintf("listener-%d", i)
		}
		if l.Timeouts.ReadHeader == 0 {
			l.Timeouts.ReadHeader = Duration(10 * time.Second)
		}
		if l.Timeouts.Idle == 0 {
			l.Timeouts.Idle = Duration(120 * time.Second)
		}
		if l.MaxHeaderBytes == 0 {
			l.MaxHeaderBytes = DefaultMaxHeaderBytes
		}
		if l.MaxHeaders == 0 {
			l.MaxHeaders = DefaultMaxHeaders
		}
		if l.MaxURIBytes == 0 {
			l.MaxURIBytes = DefaultMaxURIBytes
		}
	}
	for i := range c.Services {
		c.Services[i].setDefaults()
	}
	for i := range c.Routes {
		c.Routes[i].setDefaults()
	}
	c.Tracing.setDefaults()
	c.Metrics.setDefaults()
	c.AccessLog.setDefaults()
	c.Log.setDefaults()
	c.Runtime.setDefaults()
	c.OTLPReceiver.setDefaults()
	c.History.setDefaults()
	c.TraceStore.setDefaults()
	c.Alerts.setDefaults()
	for i := range c.Rollouts {
		c.Rollouts[i].setDefaults(c)
	}
}

func (s *Service) setDefaults() {
	if s.LoadBalancing.Policy == "" {
		s.LoadBalancing.Policy = PolicyRoundRobin
	}
	if hc := s.HealthCheck; hc != nil {
		if hc.Path == "" {
			hc.Path = "/healthz"
		}
		if hc.Interval == 0 {
			hc.Interval = Duration(10 * time.Second)
		}
		if hc.Timeout == 0 {
			hc.Timeout = Duration(2 * time.Second)
		}
		if hc.HealthyThreshold == 0 {
			hc.HealthyThreshold = 2
		}
		if hc.UnhealthyThreshold == 0 {
			hc.UnhealthyThreshold = 3
		}
		if len(hc.ExpectedStatus) == 0 {
			hc.ExpectedStatus = []string{"2xx"}
		}
	}
	if od := s.OutlierDetection; od != nil {
		if od.Consecutive5xx == 0 {
			od.Consecutive5xx = 5
		}
		if od.ConsecutiveConnectFailures == 0 {
			od.ConsecutiveConnectFailures = 3
		}
		if od.BaseEjectionTime == 0 {
			od.BaseEjectionTime = Duration(30 * time.Second)
		}
		if od.MaxEjectionTime == 0 {
			od.MaxEjectionTime = Duration(300 * time.Second)
		}
	}
	t := &s.Transport
	if t.DialTimeout == 0 {
		t.DialTimeout = Duration(5 * time.Second)
	}
	if t.TLSHandshakeTimeout == 0 {
		t.TLSHandshakeTimeout = Duration(5 * time.Second)
	}
	if t.MaxIdleConnsPerHost == 0 {
		t.MaxIdleConnsPerHost = 64
	}
	if t.IdleConnTimeout == 0 {
		t.IdleConnTimeout = Duration(90 * time.Second)
	}
	if t.Protocol == "" {
		t.Protocol = ProtocolAuto
	}
	if s.CircuitBreaker != nil {
		s.CircuitBreaker.setDefaults()
	}
}

func (r *Route) setDefaults() {
	if r.Upgrades == nil {
		r.Upgrades = []string{"websocket"}
	}
	if r.Timeout == nil {
		d := Duration(defaultRouteTimeout)
		r.Timeout = &d
	}
	if r.RequestBody == nil {
		r.RequestBody = &RequestBody{}
	}
	r.RequestBody.setDefaults()
	if r.Retry != nil {
		r.Retry.setDefaults()
	}
	if r.Split != nil {
		r.Split.setDefaults()
	}
	if r.RateLimit != nil {
		r.RateLimit.setDefaults()
	}
	if r.Mirror != nil {
		r.Mirror.setDefaults()
	}
	if r.Fault != nil {
		r.Fault.setDefaults()
	}
}

func (b *RequestBody) setDefaults() {
	if b.IdleTimeout == nil {
		d := Duration(DefaultRequestBodyIdleTimeout)
		b.IdleTimeout = &d
	}
	if b.MinRate == nil {
		n := int64(DefaultRequestBodyMinRate)
		b.MinRate = &n
	}
	if b.MinRateGrace == nil {
		d := Duration(DefaultRequestBodyMinRateGrace)
		b.MinRateGrace = &d
	}
}

func (r *Retry) setDefaults() {
	if r.Attempts == 0 {
		r.Attempts = 2
	}
	if len(r.On) == 0 {
		r.On = []string{"connect_error"}
	}
	if r.Backoff == 0 {
		r.Backoff = Duration(25 * time.Millisecond)
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = Duration(250 * time.Millisecond)
	}
	if r.BufferBodyBytes == 0 {
		r.BufferBodyBytes = 64 << 10
	}
	if r.Budget.Percent == 0 {
		r.Budget.Percent = 20
	}
	if r.Budget.MinRetriesPerSecond == 0 {
		r.Budget.MinRetriesPerSecond = 3
	}
	if r.Budget.Window == 0 {
		r.Budget.Window = Duration(10 * time.Second)
	}
}
