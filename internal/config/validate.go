package config

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// validator collects FieldErrors; it never stops at the first. Errors get
// their lines from locate, once validation is over: a valid config (the
// common case, and every reload of a large one) never needs the line
// index.
type validator struct {
	file string
	errs Errors
	// services indexes the config's services by name (the first of a
	// duplicated name, as Config.Service finds it), so that checking the
	// references of N routes costs N lookups, not N scans.
	services map[string]*Service
}

// newValidator returns an empty validator for c.
func newValidator(c *Config) *validator {
	v := &validator{file: c.File, services: make(map[string]*Service, len(c.Services))}
	for i := range c.Services {
		if _, dup := v.services[c.Services[i].Name]; !dup {
			v.services[c.Services[i].Name] = &c.Services[i]
		}
	}
	return v
}

// service returns the service named name, nil when there is none.
func (v *validator) service(name string) *Service { return v.services[name] }

func (v *validator) errorf(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{
		File: v.file,
		Path: path,
		Msg:  fmt.Sprintf(format, args...),
	})
}

// errorfAt is errorf located at the line of linePath (when path itself
// is not in the file, such as a required section that is missing).
func (v *validator) errorfAt(linePath, path, format string, args ...any) {
	v.errorf(path, format, args...)
	v.errs[len(v.errs)-1].linePath = linePath
}

// locate sets the line of every error from lines (nil: no lines) and sorts
// them by line, the located ones in their order of discovery.
func (es Errors) locate(lines lineIndex) {
	for _, e := range es {
		e.Line = lines.lineOf(e.Path)
		if e.linePath != "" {
			if _, ok := lines[e.Path]; !ok {
				if l := lines.lineOf(e.linePath); l > 0 {
					e.Line = l
				}
			}
		}
	}
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.Line == 0 || b.Line == 0 {
			return false
		}
		return a.Line < b.Line
	})
}

func indexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// Validate checks c (after SetDefaults) and returns an Errors listing every
// problem, or nil. It does not modify c.
func (c *Config) Validate() error {
	if errs := c.check(); errs != nil {
		errs.locate(nil)
		return errs
	}
	return nil
}

// validate is Validate with the errors located by lines.
func (c *Config) validate(lines lineIndex) error {
	if errs := c.check(); errs != nil {
		errs.locate(lines)
		return errs
	}
	return nil
}

// check returns every problem of c, not yet located, or nil.
func (c *Config) check() Errors {
	v := newValidator(c)

	if len(c.Listeners) == 0 {
		v.errorf("listeners", "at least one listener is required")
	}
	listenerNames := map[string]bool{}
	addrs := map[string]string{}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		p := indexPath("listeners", i)
		if listenerNames[l.Name] {
			v.errorf(p+".name", "duplicate listener name %q", l.Name)
		}
		listenerNames[l.Name] = true
		if err := checkHostPort(l.Address); err != nil {
			v.errorf(p+".address", "%v", err)
		} else if other, dup := addrs[l.Address]; dup && !strings.HasSuffix(l.Address, ":0") {
			v.errorf(p+".address", "address %s is already used by listener %q", l.Address, other)
		} else {
			addrs[l.Address] = l.Name
		}
		if l.TLS != nil {
			if l.TLS.CertFile == "" {
				v.errorf(p+".tls.cert_file", "is required with tls")
			}
			if l.TLS.KeyFile == "" {
				v.errorf(p+".tls.key_file", "is required with tls")
			}
		}
		t := l.Timeouts
		for name, d := range map[string]Duration{"read_header": t.ReadHeader, "read": t.Read, "write": t.Write, "idle": t.Idle} {
			if d < 0 {
				v.errorf(p+".timeouts."+name, "must not be negative, got %s", d)
			}
		}
		if l.MaxHeaderBytes < 0 {
			v.errorf(p+".max_header_bytes", "must not be negative")
		} else if l.MaxHeaderBytes > 0 && l.MaxHeaderBytes < 1024 {
			v.errorf(p+".max_header_bytes", "must be at least 1024, got %d", l.MaxHeaderBytes)
		}
		if l.MaxHeaders < 0 {
			v.errorf(p+".max_headers", "must not be negative, got %d", l.MaxHeaders)
		}
		if l.MaxURIBytes < 0 {
			v.errorf(p+".max_uri_bytes", "must not be negative, got %d", l.MaxURIBytes)
		} else if l.MaxURIBytes > 0 && l.MaxHeaderBytes > 0 && l.MaxURIBytes > l.MaxHeaderBytes {
			v.errorf(p+".max_uri_bytes", "must not exceed max_header_bytes (%d), got %d", l.MaxHeaderBytes, l.MaxURIBytes)
		}
	}

	if c.Admin.Address != "off" {
		if err := checkHostPort(c.Admin.Address); err != nil {
			v.errorf("admin.address", "%v", err)
		} else if name, dup := addrs[c.Admin.Address]; dup && !strings.HasSuffix(c.Admin.Address, ":0") {
			v.errorf("admin.address", "must not be a public listener's address (listener %q uses %s)", name, c.Admin.Address)
		}
	}
	c.Admin.validate(v)
	if c.ShutdownGrace < 0 {
		v.errorf("shutdown_grace", "must not be negative")
	}
	for i, s := range c.TrustedProxies {
		if _, err := ParsePrefix(s); err != nil {
			v.errorf(indexPath("trusted_proxies", i), "%v", err)
		}
	}

	serviceNames := map[string]bool{}
	for i := range c.Services {
		s := &c.Services[i]
		p := indexPath("services", i)
		if s.Name == "" {
			v.errorf(p+".name", "is required")
		} else if !validName(s.Name) {
			v.errorf(p+".name", "must be letters, digits, '-', '_' or '.', got %q", s.Name)
		} else if serviceNames[s.Name] {
			v.errorf(p+".name", "duplicate service name %q", s.Name)
		}
		serviceNames[s.Name] = true
		s.validate(v, p)
		if s.CircuitBreaker != nil {
			s.CircuitBreaker.validateRefs(v, p+".circuit_breaker", c, s.Name)
		}
	}

	routeNames := map[string]bool{}
	for i := range c.Routes {
		r := &c.Routes[i]
		p := indexPath("routes", i)
		if r.Name == "" {
			v.errorf(p+".name", "is required")
		} else if !validName(r.Name) {
			v.errorf(p+".name", "must be letters, digits, '-', '_' or '.', got %q", r.Name)
		} else if routeNames[r.Name] {
			v.errorf(p+".name", "duplicate route name %q", r.Name)
		}
		routeNames[r.Name] = true
		for j, ln := range r.Listeners {
			if !listenerNames[ln] {
				v.errorf(indexPath(p+".listeners", j), "unknown listener %q", ln)
			}
		}
		r.validate(v, p, c)
	}

	c.Tracing.validate(v, "tracing")
	c.Tracing.validateListeners(v, "tracing", listenerNames)
	c.Metrics.validate(v, "metrics")
	c.AccessLog.validate(v, "access_log")
	c.AccessLog.validateRefs(v, "access_log", c)
	c.validateRedaction(v)
	for i, k := range c.Metrics.KPIs {
		for j, name := range k.Match.Routes {
			if !routeNames[name] {
				v.errorf(indexPath(indexPath("metrics.kpis", i)+".match.routes", j), "unknown route %q", name)
			}
		}
	}
	for kind, names := range map[string][]string{"routes": c.AccessLog.Filter.Routes, "exclude_routes": c.AccessLog.Filter.ExcludeRoutes} {
		for i, name := range names {
			if !routeNames[name] {
				v.errorf(indexPath("access_log.filter."+kind, i), "unknown route %q", name)
			}
		}
	}
	c.Log.validate(v, "log")
	c.Runtime.validate(v, "runtime")
	c.OTLPReceiver.validate(v, "otlp_receiver", c)
	c.History.validate(v, "history")
	c.TraceStore.validate(v, "trace_store")
	c.Alerts.validate(v, "alerts", c)
	validateRollouts(v, c)

	if len(v.errs) == 0 {
		return nil
	}
	return v.errs
}

func (s *Service) validate(v *validator, p string) {
	if len(s.Upstreams) == 0 {
		v.errorf(p+".upstreams", "at least one upstream is required")
	}
	seen := map[string]bool{}
	positive := false
	for j, u := range s.Upstreams {
		up := indexPath(p+".upstreams", j)
		if err := checkUpstreamURL(u.URL); err != nil {
			v.errorf(up+".url", "%v", err)
		} else if seen[u.URL] {
			v.errorf(up+".url", "duplicate upstream %q", u.URL)
		}
		seen[u.URL] = true
		if w := u.WeightOrDefault(); w < 0 {
			v.errorf(up+".weight", "must be >= 0, got %d", w)
		} else if w > 0 {
			positive = true
		}
	}
	if len(s.Upstreams) > 0 && !positive {
		v.errorf(p+".upstreams", "at least one upstream needs a positive weight")
	}

	lb := s.LoadBalancing
	switch lb.Policy {
	case PolicyRoundRobin, PolicyLeastRequest:
		if lb.Hash != nil {
			v.errorf(p+".load_balancing.hash", "is only used with policy hash")
		}
	case PolicyHash:
		if lb.Hash == nil {
			v.errorf(p+".load_balancing.hash", "is required with policy hash (header, cookie or client_ip)")
		} else {
			n := 0
			if lb.Hash.Header != "" {
				n++
			}
			if lb.Hash.Cookie != "" {
				n++
			}
			if lb.Hash.ClientIP {
				n++
			}
			if n != 1 {
				v.errorf(p+".load_balancing.hash", "set exactly one of header, cookie, client_ip")
			}
		}
	default:
		v.errorf(p+".load_balancing.policy", "must be round_robin, least_request or hash, got %q", lb.Policy)
	}

	if hc := s.HealthCheck; hc != nil {
		hp := p + ".health_check"
		if !strings.HasPrefix(hc.Path, "/") {
			v.errorf(hp+".path", "must start with '/', got %q", hc.Path)
		}
		if hc.Interval <= 0 {
			v.errorf(hp+".interval", "must be positive")
		}
		if hc.Timeout <= 0 {
			v.errorf(hp+".timeout", "must be positive")
		} else if hc.Timeout >= hc.Interval {
			v.errorf(hp+".timeout", "must be less than interval (%s), got %s", hc.Interval, hc.Timeout)
		}
		if hc.HealthyThreshold < 1 {
			v.errorf(hp+".healthy_threshold", "must be >= 1")
		}
		if hc.UnhealthyThreshold < 1 {
			v.errorf(hp+".unhealthy_threshold", "must be >= 1")
		}
		for k, st := range hc.ExpectedStatus {
			if _, err := ParseStatusMatcher(st); err != nil {
				v.errorf(indexPath(hp+".expected_status", k), "%v", err)
			}
		}
	}
	if od := s.OutlierDetection; od != nil {
		op := p + ".outlier_detection"
		if od.Consecutive5xx < -1 {
			v.errorf(op+".consecutive_5xx", "must be positive, or -1 to disable")
		}
		if od.ConsecutiveConnectFailures < -1 {
			v.errorf(op+".consecutive_connect_failures", "must be positive, or -1 to disable")
		}
		if od.BaseEjectionTime <= 0 {
			v.errorf(op+".base_ejection_time", "must be positive")
		}
		if od.MaxEjectionTime < od.BaseEjectionTime {
			v.errorf(op+".max_ejection_time", "must be >= base_ejection_time (%s)", od.BaseEjectionTime)
		}
	}
	t := s.Transport
	tp := p + ".transport"
	if t.DialTimeout < 0 || t.TLSHandshakeTimeout < 0 || t.ResponseHeaderTimeout < 0 || t.IdleConnTimeout < 0 {
		v.errorf(tp, "timeouts must not be negative")
	}
	if t.MaxIdleConnsPerHost < 0 {
		v.errorf(tp+".max_idle_conns_per_host", "must not be negative")
	}
	if t.MaxConnsPerHost < 0 {
		v.errorf(tp+".max_conns_per_host", "must not be negative")
	}
	switch t.Protocol {
	case ProtocolAuto, ProtocolHTTP1, ProtocolHTTP2:
	default:
		v.errorf(tp+".protocol", "must be auto, http1 or http2, got %q", t.Protocol)
	}
	if s.CircuitBreaker != nil {
		s.CircuitBreaker.validate(v, p+".circuit_breaker")
	}
}

var templateSegRE = regexp.MustCompile(`^\{[A-Za-z_][A-Za-z0-9_]*(\.\.\.)?\}$`)

func (r *Route) validate(v *validator, p string, c *Config) {
	for i, u := range r.Upgrades {
		switch {
		case strings.EqualFold(u, "h2c"):
			v.errorf(indexPath(p+".upgrades", i), "h2c upgrades are never forwarded (they would carry HTTP/2 past routing and limits)")
		case !validToken(u):
			v.errorf(indexPath(p+".upgrades", i), "must be a protocol name like websocket, got %q", u)
		}
	}
	m := r.Match
	mp := p + ".match"
	if m.Path != "" && m.PathPrefix != "" {
		v.errorf(mp, "set path or path_prefix, not both")
	}
	if m.Path != "" {
		if err := CheckPathTemplate(m.Path); err != nil {
			v.errorf(mp+".path", "%v", err)
		}
	}
	if m.PathPrefix != "" && !strings.HasPrefix(m.PathPrefix, "/") {
		v.errorf(mp+".path_prefix", "must start with '/', got %q", m.PathPrefix)
	}
	for i, h := range m.Hosts {
		if err := checkHostPattern(h); err != nil {
			v.errorf(indexPath(mp+".hosts", i), "%v", err)
		}
	}
	for i, meth := range m.Methods {
		if meth == "" || strings.ToUpper(meth) != meth || strings.ContainsAny(meth, " \t/") {
			v.errorf(indexPath(mp+".methods", i), "must be an upper-case method like GET, got %q", meth)
		}
	}
	for kind, kvs := range map[string][]KeyValueMatch{"headers": m.Headers, "query": m.Query} {
		for i, kv := range kvs {
			kp := indexPath(mp+"."+kind, i)
			if kv.Name == "" {
				v.errorf(kp+".name", "is required")
			}
			if kv.Value != "" && kv.Regex != "" {
				v.errorf(kp, "set value or regex, not both")
			}
			if kv.Absent && (kv.Value != "" || kv.Regex != "") {
				v.errorf(kp+".absent", "cannot be combined with value or regex")
			}
			if kv.Regex != "" {
				if _, err := regexp.Compile(kv.Regex); err != nil {
					v.errorf(kp+".regex", "%v", err)
				}
			}
		}
	}

	switch {
	case r.Service != "" && r.Split != nil:
		v.errorf(p+".service", "set service or split, not both")
	case r.Service == "" && r.Split == nil:
		v.errorf(p+".service", "is required (or split)")
	case r.Service != "":
		if v.service(r.Service) == nil {
			v.errorf(p+".service", "unknown service %q", r.Service)
		}
	default:
		r.Split.validate(v, p+".split", c)
	}
	if r.StripPrefix != "" {
		if !strings.HasPrefix(r.StripPrefix, "/") {
			v.errorf(p+".strip_prefix", "must start with '/', got %q", r.StripPrefix)
		}
	}
	if r.AddPrefix != "" && !strings.HasPrefix(r.AddPrefix, "/") {
		v.errorf(p+".add_prefix", "must start with '/', got %q", r.AddPrefix)
	}
	validateHeaderOps(v, p+".request_headers", r.RequestHeaders)
	validateHeaderOps(v, p+".response_headers", r.ResponseHeaders)
	if r.Timeout != nil && *r.Timeout < 0 {
		v.errorf(p+".timeout", "must not be negative")
	}
	if r.RequestBody != nil {
		r.RequestBody.validate(v, p+".request_body")
	}
	if r.Retry != nil {
		r.Retry.validate(v, p+".retry")
	}
	if r.RateLimit != nil {
		r.RateLimit.validate(v, p+".rate_limit")
	}
	if r.Mirror != nil {
		r.Mirror.validate(v, p+".mirror", c)
	}
	if r.Fault != nil {
		r.Fault.validate(v, p+".fault")
	}
	if r.Tracing != nil {
		r.Tracing.validate(v, p+".tracing")
	}
}

func validateHeaderOps(v *validator, p string, h HeaderOps) {
	check := func(kind, name string) {
		if !validHeaderName(name) {
			v.errorf(p+"."+kind, "invalid header name %q", name)
		}
	}
	for k, val := range h.Add {
		check("add", k)
		if strings.ContainsAny(val, "\r\n") {
			v.errorf(p+".add", "value of %q must not contain line breaks", k)
		}
	}
	for k, val := range h.Set {
		check("set", k)
		if strings.ContainsAny(val, "\r\n") {
			v.errorf(p+".set", "value of %q must not contain line breaks", k)
		}
	}
	for _, k := range h.Remove {
		check("remove", k)
	}
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

func validName(s string) bool {
	for _, c := range s {
		if !(c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return s != ""
}

func checkHostPort(addr string) error {
	if addr == "" {
		return fmt.Errorf("is required (host:port)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port, got %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("invalid port %q", port)
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
			return fmt.Errorf("invalid host %q", host)
		}
	}
	return nil
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
				return false
			}
		}
	}
	return true
}

func checkHostPattern(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return fmt.Errorf("wildcard is only allowed as a leading \"*.\", got %q", h)
	}
	if !validHostname(name) {
		return fmt.Errorf("invalid host %q", h)
	}
	return nil
}

func checkUpstreamURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %v", raw, err)
	}
	switch u.Scheme {
	case "http", "https", "h2c":
	default:
		return fmt.Errorf("scheme must be http, https or h2c, got %q", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("must have a host, got %q", raw)
	}
	if u.Path != "" && u.Path != "/" {
		return fmt.Errorf("must not have a path (use the route's add_prefix), got %q", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("must not have a query, fragment or user info, got %q", raw)
	}
	return nil
}

// CheckPathTemplate validates an exact path or a template such as
// "/users/{id}" or "/files/{rest...}" ("{name...}" only as the last segment).
func CheckPathTemplate(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("must start with '/', got %q", p)
	}
	segs := strings.Split(p[1:], "/")
	names := map[string]bool{}
	for i, s := range segs {
		if !strings.ContainsAny(s, "{}") {
			continue
		}
		if !templateSegRE.MatchString(s) {
			return fmt.Errorf("template segment %q must be a whole segment like {id} or {rest...}", s)
		}
		name := strings.TrimSuffix(s[1:len(s)-1], "...")
		if names[name] {
			return fmt.Errorf("template variable %q appears twice", name)
		}
		names[name] = true
		if strings.HasSuffix(s, "...}") && i != len(segs)-1 {
			return fmt.Errorf("%q must be the last segment", s)
		}
	}
	return nil
}

// ParsePrefix parses a CIDR or a single IP address as a prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid IP or CIDR %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// StatusMatcher matches one status code or a class ("5xx").
type StatusMatcher struct{ Lo, Hi int }

// Match reports whether code is in the matcher's range.
func (m StatusMatcher) Match(code int) bool { return code >= m.Lo && code <= m.Hi }

// ParseStatusMatcher parses "200" or "2xx".
func ParseStatusMatcher(s string) (StatusMatcher, error) {
	if len(s) == 3 && s[1:] == "xx" && s[0] >= '1' && s[0] <= '5' {
		lo := int(s[0]-'0') * 100
		return StatusMatcher{lo, lo + 99}, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 100 || n > 599 || http.StatusText(n) == "" && n%100 > 99 {
		return StatusMatcher{}, fmt.Errorf("must be a status code (\"200\") or class (\"2xx\"), got %q", s)
	}
	return StatusMatcher{n, n}, nil
}

// validToken reports whether s is an RFC 9110 token, optionally with a
// "/version" (an Upgrade protocol).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~/", c) >= 0 {
			continue
		}
		return false
	}
	return true
}
