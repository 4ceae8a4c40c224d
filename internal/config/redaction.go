package config

import "github.com/vantage-gateway/vantage/internal/redact"

// Redaction adjusts the one redaction policy (package redact) that every
// place showing request data applies: access-log records in every format,
// span attributes, admin pages and alert annotations. By default the value
// of any query parameter whose name, compared case-insensitively on its
// letters and digits, is or ends in token, secret, password, passwd, key,
// auth, session, sessionid, sig, signature, credential(s) or jwt, or is
// code, state, authorization or pwd, is replaced by "REDACTED"; so are the
// values of credential headers (Authorization, Proxy-Authorization, Cookie,
// Set-Cookie, X-Api-Key, ...) and of headers whose names end like those
// parameters. Read once at start.
type Redaction struct {
	// QueryParams lists further parameter names whose values are redacted
	// (compared as above, exactly rather than as suffixes). Default none.
	QueryParams []string `yaml:"query_params,omitempty" json:"query_params,omitempty"`
	// ExemptQueryParams lists parameter names the default rule redacts but
	// that are shown (exactly: exempting state keeps ?state= but not
	// ?oauth_state=). Naming a parameter the rule does not redact is an
	// error. Default none.
	ExemptQueryParams []string `yaml:"exempt_query_params,omitempty" json:"exempt_query_params,omitempty"`
	// Headers lists further header names whose values are redacted.
	// Default none.
	Headers []string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// ExemptHeaders lists header names the default rule redacts but that
	// are shown (for example Idempotency-Key). Credential headers cannot
	// be exempted. Default none.
	ExemptHeaders []string `yaml:"exempt_headers,omitempty" json:"exempt_headers,omitempty"`
}

// RedactOptions returns the options of the redaction policy: the
// redaction section plus the older per-signal lists, which apply
// everywhere too: access_log.redact_query_params and
// tracing.sensitive_query_params add parameters, access_log.redact_headers
// adds headers.
func (c *Config) RedactOptions() redact.Options {
	r := c.Redaction
	o := redact.Options{ExemptQueryParams: r.ExemptQueryParams, ExemptHeaders: r.ExemptHeaders}
	o.QueryParams = append(o.QueryParams, r.QueryParams...)
	o.QueryParams = append(o.QueryParams, c.AccessLog.RedactQueryParams...)
	o.QueryParams = append(o.QueryParams, c.Tracing.SensitiveQueryParams...)
	o.Headers = append(o.Headers, r.Headers...)
	o.Headers = append(o.Headers, c.AccessLog.RedactHeaders...)
	return o
}

// RedactPolicy builds the redaction policy of c. For a validated config it
// cannot fail; for one that is not, the names that are in error are left
// out and the rest applies (never less than the default rule).
func (c *Config) RedactPolicy() *redact.Policy {
	o := c.RedactOptions()
	if p, err := redact.New(o); err == nil {
		return p
	}
	keep := func(names []string, bad func(string) bool) []string {
		var out []string
		for _, n := range names {
			if redact.Normalize(n) != "" && !bad(n) {
				out = append(out, n)
			}
		}
		return out
	}
	o.QueryParams = keep(o.QueryParams, func(string) bool { return false })
	o.Headers = keep(o.Headers, func(string) bool { return false })
	o.ExemptQueryParams = keep(o.ExemptQueryParams, func(n string) bool {
		return redact.CheckExemptParam(n) != nil || containsNorm(o.QueryParams, n)
	})
	o.ExemptHeaders = keep(o.ExemptHeaders, func(n string) bool {
		return redact.CheckExemptHeader(n) != nil || containsNorm(o.Headers, n)
	})
	if p, err := redact.New(o); err == nil {
		return p
	}
	return redact.Default()
}

func containsNorm(list []string, name string) bool {
	k := redact.Normalize(name)
	for _, n := range list {
		if redact.Normalize(n) == k {
			return true
		}
	}
	return false
}

// validateRedaction checks the redaction section, and that no header
// allow-list (access_log.request_headers and response_headers,
// tracing.record_request_headers and record_response_headers) names a
// header the policy redacts.
func (c *Config) validateRedaction(v *validator) {
	r := &c.Redaction
	names := func(field string, list []string, header bool) {
		for i, n := range list {
			p := indexPath("redaction."+field, i)
			switch {
			case header && !validHeaderName(n):
				v.errorf(p, "invalid header name %q", n)
			case redact.Normalize(n) == "":
				v.errorf(p, "must contain a letter or digit, got %q", n)
			}
		}
	}
	names("query_params", r.QueryParams, false)
	names("exempt_query_params", r.ExemptQueryParams, false)
	names("headers", r.Headers, true)
	names("exempt_headers", r.ExemptHeaders, true)
	o := c.RedactOptions()
	for i, n := range r.ExemptQueryParams {
		p := indexPath("redaction.exempt_query_params", i)
		if err := redact.CheckExemptParam(n); err != nil {
			v.errorf(p, "%v", err)
		} else if containsNorm(o.QueryParams, n) {
			v.errorf(p, "%q is also listed as redacted", n)
		}
	}
	for i, n := range r.ExemptHeaders {
		p := indexPath("redaction.exempt_headers", i)
		if !validHeaderName(n) {
			continue
		}
		if err := redact.CheckExemptHeader(n); err != nil {
			v.errorf(p, "%v", err)
		} else if containsNorm(o.Headers, n) {
			v.errorf(p, "%q is also listed as redacted", n)
		}
	}

	pol := c.RedactPolicy()
	allow := func(path string, list []string, msg string) {
		for i, h := range list {
			if validHeaderName(h) && pol.Header(h) {
				v.errorf(indexPath(path, i), msg, h)
			}
		}
	}
	allow("access_log.request_headers", c.AccessLog.RequestHeaders, "header %q is redacted and is never logged")
	allow("access_log.response_headers", c.AccessLog.ResponseHeaders, "header %q is redacted and is never logged")
	allow("tracing.record_request_headers", c.Tracing.RecordRequestHeaders, "%q is a sensitive header and is never recorded")
	allow("tracing.record_response_headers", c.Tracing.RecordResponseHeaders, "%q is a sensitive header and is never recorded")
}
