package config

import (
	"strings"
	"time"
)

// Listener is one address that accepts client traffic.
type Listener struct {
	// Name identifies the listener in routes, logs and metrics (default
	// "listener-N", N its index).
	Name string `yaml:"name" json:"name"`
	// Address is host:port to listen on, e.g. ":8080" or "127.0.0.1:8080".
	// Required.
	Address string `yaml:"address" json:"address"`
	// TLS, when set, serves HTTPS with HTTP/2 negotiated by ALPN.
	TLS *TLS `yaml:"tls,omitempty" json:"tls,omitempty"`
	// H2C accepts HTTP/2 without TLS (prior knowledge or Upgrade). Needed
	// for gRPC clients speaking cleartext. Default false.
	H2C bool `yaml:"h2c" json:"h2c"`
	// Timeouts bound the client side of each connection.
	Timeouts ListenerTimeouts `yaml:"timeouts" json:"timeouts"`
	// MaxHeaderBytes caps the size of a request head, request line and
	// header fields together (default 61440, 60 KiB, as Envoy). net/http
	// allows 4096 bytes of slack over it and answers 431 beyond.
	MaxHeaderBytes int `yaml:"max_header_bytes" json:"max_header_bytes"`
	// MaxHeaders caps the number of request header fields (default 100, as
	// Envoy); more are answered 431.
	MaxHeaders int `yaml:"max_headers" json:"max_headers"`
	// MaxURIBytes caps the request target, path and query as sent (default
	// 16384); longer ones are answered 414. A target that also exceeds
	// MaxHeaderBytes is answered 431 by the parser first.
	MaxURIBytes int `yaml:"max_uri_bytes" json:"max_uri_bytes"`
}

// ListenerTimeouts are the http.Server timeouts. Zero means no limit, except
// where a default is given.
type ListenerTimeouts struct {
	// ReadHeader bounds reading the request headers (default 10s).
	ReadHeader Duration `yaml:"read_header" json:"read_header"`
	// Read bounds reading the whole request, body included (default 0: no
	// limit, so uploads and streams are not cut).
	Read Duration `yaml:"read" json:"read"`
	// Write bounds writing the response (default 0: no limit, so streaming
	// responses such as SSE are not cut).
	Write Duration `yaml:"write" json:"write"`
	// Idle bounds how long a keep-alive connection waits for its next
	// request (default 120s).
	Idle Duration `yaml:"idle" json:"idle"`
}

// TLS is a certificate and key to serve with.
type TLS struct {
	// CertFile and KeyFile are PEM files. Both required.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	KeyFile  string `yaml:"key_file" json:"key_file"`
}

// Admin is the admin listener. It must never be a public listener's address.
type Admin struct {
	// Address is host:port (default "127.0.0.1:9901"). Set it to "off" to
	// disable the admin listener.
	Address string `yaml:"address" json:"address"`
	// Pprof serves Go's profiler at /debug/pprof/ on the admin listener
	// (default false). Profiles show code paths, not request data.
	Pprof bool `yaml:"pprof" json:"pprof"`
	// AllowedHosts lists further names clients may use in the Host header
	// (default none). The admin listener always answers to its own address
	// and to localhost, 127.0.0.1 and [::1] with its port; any other Host
	// is refused (421), which stops DNS rebinding. An entry is a name
	// ("admin.internal"), matching with the listener's port or no port, or
	// a name with a port ("admin.internal:443"), matching exactly.
	AllowedHosts []string `yaml:"allowed_hosts,omitempty" json:"allowed_hosts,omitempty"`
	// Auth sets the credentials of the admin API. Required when Address is
	// not a loopback address; optional on loopback (without it, anyone who
	// can reach the loopback address is an admin).
	Auth *AdminAuth `yaml:"auth,omitempty" json:"auth,omitempty"`
}

// Service is a named pool of upstream hosts.
type Service struct {
	// Name identifies the service in routes, logs and metrics. Required,
	// unique.
	Name string `yaml:"name" json:"name"`
	// Upstreams are the hosts. At least one is required.
	Upstreams []Upstream `yaml:"upstreams" json:"upstreams"`
	// LoadBalancing chooses a host per attempt.
	LoadBalancing LoadBalancing `yaml:"load_balancing" json:"load_balancing"`
	// HealthCheck, when set, probes every host actively.
	HealthCheck *HealthCheck `yaml:"health_check,omitempty" json:"health_check,omitempty"`
	// OutlierDetection, when set, ejects hosts that fail live traffic.
	OutlierDetection *OutlierDetection `yaml:"outlier_detection,omitempty" json:"outlier_detection,omitempty"`
	// Transport sets connection limits and timeouts to the hosts.
	Transport Transport `yaml:"transport" json:"transport"`
	// CircuitBreaker, when set, fails fast while the service is failing.
	CircuitBreaker *CircuitBreaker `yaml:"circuit_breaker,omitempty" json:"circuit_breaker,omitempty"`
}

// Upstream is one host of a service.
type Upstream struct {
	// URL is scheme://host:port of the host: http, https, or h2c (HTTP/2
	// without TLS, for gRPC). A path is not allowed. Required.
	URL string `yaml:"url" json:"url"`
	// Weight is the host's share under round_robin (default 1; 0 takes it
	// out of rotation).
	Weight *int `yaml:"weight,omitempty" json:"weight,omitempty"`
}

// WeightOrDefault returns the weight, 1 when unset.
func (u Upstream) WeightOrDefault() int {
	if u.Weight == nil {
		return 1
	}
	return *u.Weight
}

// Load-balancing policies.
const (
	PolicyRoundRobin   = "round_robin"
	PolicyLeastRequest = "least_request"
	PolicyHash         = "hash"
)

// LoadBalancing picks a host.
type LoadBalancing struct {
	// Policy is round_robin (smooth weighted), least_request (power of two
	// choices over in-flight requests) or hash (consistent, by Hash). Default
	// round_robin.
	Policy string `yaml:"policy" json:"policy"`
	// Hash chooses the hash key for the hash policy. Exactly one of its
	// fields must be set when Policy is hash.
	Hash *HashKey `yaml:"hash,omitempty" json:"hash,omitempty"`
}

// HashKey names what a consistent hash is computed over. Requests without
// the key are spread by round robin.
type HashKey struct {
	// Header hashes the value of this request header.
	Header string `yaml:"header,omitempty" json:"header,omitempty"`
	// Cookie hashes the value of this cookie.
	Cookie string `yaml:"cookie,omitempty" json:"cookie,omitempty"`
	// ClientIP hashes the client address (after trusted_proxies).
	ClientIP bool `yaml:"client_ip,omitempty" json:"client_ip,omitempty"`
}

// HealthCheck probes each host with an HTTP GET.
type HealthCheck struct {
	// Path is requested on each host (default "/healthz").
	Path string `yaml:"path" json:"path"`
	// Interval between probes of one host (default 10s).
	Interval Duration `yaml:"interval" json:"interval"`
	// Timeout of one probe (default 2s; must be less than Interval).
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// HealthyThreshold consecutive successes mark a host healthy (default 2).
	HealthyThreshold int `yaml:"healthy_threshold" json:"healthy_threshold"`
	// UnhealthyThreshold consecutive failures mark it unhealthy (default 3).
	UnhealthyThreshold int `yaml:"unhealthy_threshold" json:"unhealthy_threshold"`
	// ExpectedStatus lists accepted statuses: codes ("200") or classes
	// ("2xx"). Default ["2xx"].
	ExpectedStatus []string `yaml:"expected_status" json:"expected_status"`
	// Host overrides the Host header of probes (default: the host's own).
	Host string `yaml:"host,omitempty" json:"host,omitempty"`
}

// OutlierDetection ejects hosts that fail live traffic. A host is never
// ejected when it is the last healthy one of its service.
type OutlierDetection struct {
	// Consecutive5xx responses eject a host (default 5; -1 disables).
	Consecutive5xx int `yaml:"consecutive_5xx" json:"consecutive_5xx"`
	// ConsecutiveConnectFailures eject a host (default 3; -1 disables).
	ConsecutiveConnectFailures int `yaml:"consecutive_connect_failures" json:"consecutive_connect_failures"`
	// BaseEjectionTime is the first ejection's length; each further
	// ejection of the same host doubles it, up to MaxEjectionTime
	// (default 30s).
	BaseEjectionTime Duration `yaml:"base_ejection_time" json:"base_ejection_time"`
	// MaxEjectionTime caps the ejection length (default 300s).
	MaxEjectionTime Duration `yaml:"max_ejection_time" json:"max_ejection_time"`
}

// Upstream protocols for Transport.Protocol.
const (
	ProtocolAuto  = "auto"
	ProtocolHTTP1 = "http1"
	ProtocolHTTP2 = "http2"
)

// Transport is how the gateway connects to a service's hosts.
type Transport struct {
	// DialTimeout bounds a TCP connect (default 5s).
	DialTimeout Duration `yaml:"dial_timeout" json:"dial_timeout"`
	// TLSHandshakeTimeout bounds a TLS handshake (default 5s).
	TLSHandshakeTimeout Duration `yaml:"tls_handshake_timeout" json:"tls_handshake_timeout"`
	// ResponseHeaderTimeout bounds the wait for response headers after the
	// request was sent (default 0: the route timeout governs).
	ResponseHeaderTimeout Duration `yaml:"response_header_timeout" json:"response_header_timeout"`
	// MaxIdleConnsPerHost keeps at most this many idle connections per host
	// (default 64).
	MaxIdleConnsPerHost int `yaml:"max_idle_conns_per_host" json:"max_idle_conns_per_host"`
	// MaxConnsPerHost caps connections per host, 0 for no cap (default 0).
	MaxConnsPerHost int `yaml:"max_conns_per_host" json:"max_conns_per_host"`
	// IdleConnTimeout closes idle connections after this long (default 90s).
	IdleConnTimeout Duration `yaml:"idle_conn_timeout" json:"idle_conn_timeout"`
	// Protocol to https hosts: auto (HTTP/2 by ALPN, else HTTP/1.1), http1
	// or http2 (default auto). h2c:// hosts always speak HTTP/2.
	Protocol string `yaml:"protocol" json:"protocol"`
	// InsecureSkipVerify disables verification of hosts' certificates.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify"`
	// CAFile is a PEM bundle to verify hosts' certificates with (default:
	// the system roots).
	CAFile string `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	// ServerName overrides the TLS server name (default: the URL's host).
	ServerName string `yaml:"server_name,omitempty" json:"server_name,omitempty"`
}

// Route sends matching requests to a service.
type Route struct {
	// Name identifies the route in logs, metrics and traces. Required,
	// unique.
	Name string `yaml:"name" json:"name"`
	// Listeners restricts the route to these listeners (default: all).
	Listeners []string `yaml:"listeners,omitempty" json:"listeners,omitempty"`
	// Match decides which requests the route takes.
	Match Match `yaml:"match" json:"match"`
	// Priority overrides specificity ordering: higher wins (default 0).
	// Routes of equal priority are ordered by specificity, then by order in
	// the file.
	Priority int `yaml:"priority" json:"priority"`
	// Service receives the route's requests. Exactly one of Service and
	// Split is required.
	Service string `yaml:"service,omitempty" json:"service,omitempty"`
	// Split shares the route's requests among several services by weight.
	Split *Split `yaml:"split,omitempty" json:"split,omitempty"`
	// StripPrefix removes this prefix from the path before forwarding.
	StripPrefix string `yaml:"strip_prefix,omitempty" json:"strip_prefix,omitempty"`
	// AddPrefix puts this prefix in front of the (stripped) path.
	AddPrefix string `yaml:"add_prefix,omitempty" json:"add_prefix,omitempty"`
	// RequestHeaders edits the request sent upstream.
	RequestHeaders HeaderOps `yaml:"request_headers" json:"request_headers"`
	// ResponseHeaders edits the response sent to the client.
	ResponseHeaders HeaderOps `yaml:"response_headers" json:"response_headers"`
	// Timeout bounds the whole upstream exchange up to the response headers,
	// retries included (default 30s; 0 disables).
	Timeout *Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// RequestBody bounds how slowly the client may send its request body
	// (defaults: idle_timeout 20s, min_rate 500 bytes/s after 10s).
	RequestBody *RequestBody `yaml:"request_body,omitempty" json:"request_body,omitempty"`
	// Retry retries failed attempts.
	Retry *Retry `yaml:"retry,omitempty" json:"retry,omitempty"`
	// RateLimit limits the route's request rate or concurrency.
	RateLimit *RateLimit `yaml:"rate_limit,omitempty" json:"rate_limit,omitempty"`
	// Mirror copies a share of requests to a shadow service.
	Mirror *Mirror `yaml:"mirror,omitempty" json:"mirror,omitempty"`
	// Fault injects delays and aborts, for testing.
	Fault *Fault `yaml:"fault,omitempty" json:"fault,omitempty"`
	// Tracing overrides the global tracing settings for this route.
	Tracing *RouteTracing `yaml:"tracing,omitempty" json:"tracing,omitempty"`
	// Upgrades lists the protocols a client may switch to on this route
	// (Upgrade header, answered 101 by the upstream), compared without
	// case. Default ["websocket"]; an empty list allows none. Requests
	// asking for any other protocol are forwarded without their Upgrade
	// headers. h2c is never allowed: it would carry HTTP/2 streams past
	// routing, limits and logging.
	Upgrades []string `yaml:"upgrades" json:"upgrades"`
}

// AllowsUpgrade reports whether the route allows switching to protocol.
func (r *Route) AllowsUpgrade(protocol string) bool {
	for _, u := range r.Upgrades {
		if strings.EqualFold(u, protocol) {
			return true
		}
	}
	return false
}

// TimeoutOrDefault returns the route timeout (default 30s).
func (r *Route) TimeoutOrDefault() Duration {
	if r.Timeout == nil {
		return Duration(defaultRouteTimeout)
	}
	return *r.Timeout
}

// RequestBody bounds how slowly a client may send a request body while the
// gateway streams (or buffers) it to the upstream, like NGINX's
// client_body_timeout and Apache's mod_reqtimeout MinRate. A body cut by
// either limit is answered 408 and recorded as client_timeout; it never
// counts against the upstream. Unset fields take their defaults; 0
// disables a limit.
type RequestBody struct {
	// IdleTimeout is the longest the gateway waits for the next bytes of
	// the body (default 20s; 0 disables).
	IdleTimeout *Duration `yaml:"idle_timeout,omitempty" json:"idle_timeout,omitempty"`
	// MinRate is the slowest average rate, in bytes per second, a body may
	// arrive at once MinRateGrace is spent (default 500; 0 disables). Only
	// time spent waiting on the client counts, not time the upstream
	// takes to accept what was sent.
	MinRate *int64 `yaml:"min_rate,omitempty" json:"min_rate,omitempty"`
	// MinRateGrace is the waiting time allowed before MinRate applies; a
	// body then may take MinRateGrace + size/MinRate of waiting in all
	// (default 10s).
	MinRateGrace *Duration `yaml:"min_rate_grace,omitempty" json:"min_rate_grace,omitempty"`
}

// Request-body limits applied when a route does not set them.
const (
	DefaultRequestBodyIdleTimeout  = 20 * time.Second
	DefaultRequestBodyMinRate      = 500
	DefaultRequestBodyMinRateGrace = 10 * time.Second
)

// Limits returns the body limits with defaults for unset fields: the idle
// timeout, the minimum rate in bytes per second and its grace. r may be nil.
func (r *RequestBody) Limits() (idle time.Duration, minRate int64, grace time.Duration) {
	idle, minRate, grace = DefaultRequestBodyIdleTimeout, DefaultRequestBodyMinRate, DefaultRequestBodyMinRateGrace
	if r == nil {
		return
	}
	if r.IdleTimeout != nil {
		idle = r.IdleTimeout.D()
	}
	if r.MinRate != nil {
		minRate = *r.MinRate
	}
	if r.MinRateGrace != nil {
		grace = r.MinRateGrace.D()
	}
	return
}

func (r *RequestBody) validate(v *validator, p string) {
	if r.IdleTimeout != nil && *r.IdleTimeout < 0 {
		v.errorf(p+".idle_timeout", "must not be negative")
	}
	if r.MinRate != nil && *r.MinRate < 0 {
		v.errorf(p+".min_rate", "must not be negative (bytes per second; 0 disables)")
	}
	if r.MinRateGrace != nil && *r.MinRateGrace < 0 {
		v.errorf(p+".min_rate_grace", "must not be negative")
	}
}

// Match is the conjunction of its set fields; an empty Match matches all.
type Match struct {
	// Hosts matches the Host header (port ignored): exact names or
	// wildcards "*.example.com" (one or more labels). Any one must match.
	Hosts []string `yaml:"hosts,omitempty" json:"hosts,omitempty"`
	// Path matches the whole path exactly, or as a template when it holds
	// segments like "{id}" (one segment) or "{rest...}" (the rest).
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// PathPrefix matches paths starting with it. "/api" matches "/api" and
	// "/api/x" but not "/apix"; "/api/" requires the slash.
	PathPrefix string `yaml:"path_prefix,omitempty" json:"path_prefix,omitempty"`
	// Methods matches any one of these methods (upper case).
	Methods []string `yaml:"methods,omitempty" json:"methods,omitempty"`
	// Headers must all match.
	Headers []KeyValueMatch `yaml:"headers,omitempty" json:"headers,omitempty"`
	// Query parameters must all match.
	Query []KeyValueMatch `yaml:"query,omitempty" json:"query,omitempty"`
}

// KeyValueMatch matches one header or query parameter. With neither Value
// nor Regex, presence is enough.
type KeyValueMatch struct {
	Name string `yaml:"name" json:"name"`
	// Value must equal the value exactly.
	Value string `yaml:"value,omitempty" json:"value,omitempty"`
	// Regex must match the value (RE2 syntax, anchored).
	Regex string `yaml:"regex,omitempty" json:"regex,omitempty"`
	// Absent inverts: the key must not be present.
	Absent bool `yaml:"absent,omitempty" json:"absent,omitempty"`
}

// HeaderOps edits headers: Remove first, then Set (replace), then Add
// (append).
type HeaderOps struct {
	Add    map[string]string `yaml:"add,omitempty" json:"add,omitempty"`
	Set    map[string]string `yaml:"set,omitempty" json:"set,omitempty"`
	Remove []string          `yaml:"remove,omitempty" json:"remove,omitempty"`
}

// IsZero reports whether h does nothing.
func (h HeaderOps) IsZero() bool {
	return len(h.Add) == 0 && len(h.Set) == 0 && len(h.Remove) == 0
}
