// Package redact owns Vantage's redaction policy: which query parameters and
// headers carry credentials, and what is written in their place. Every
// place that shows request data — access-log records in every format, span
// attributes, admin pages and alert annotations — asks one Policy, so the
// same URL is redacted the same way wherever it appears.
//
// # The rule
//
// Names are compared case-insensitively on their letters and digits only:
// '-', '_', '.', brackets, spaces and every other byte are ignored, and a
// query parameter's name is percent-decoded ('+' is a space) first. So
// "access-token", "Access_Token", "access%5Ftoken" and "user[access_token]"
// are all "accesstoken".
//
// A query parameter's value is replaced by [Mark] when its name:
//   - is named by Options.QueryParams (exactly, after normalising), or
//   - is not named by Options.ExemptQueryParams and is or ends in token,
//     secret, password, passwd, key (so apikey), auth, session, sessionid,
//     sig, signature, credential, credentials or jwt, or is one of code and
//     state (OAuth's authorization response), authorization or pwd, or
//   - is longer than MaxNameBytes once decoded (a hostile client must not
//     hide a value behind padding).
//
// Query strings are split on both '&' and ';' (some servers read both), and
// a redacted value runs to the next '&', as a server that does not split on
// ';' reads it. A fragment is redacted like a query (OAuth's implicit flow
// puts tokens there), and the user information of a URL
// ("https://user:pass@host/") becomes "REDACTED:REDACTED".
//
// A header's value is replaced when its name is a credential header
// (Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key,
// X-Auth-Token, X-CSRF-Token, X-XSRF-Token, X-Amz-Security-Token: never
// exempt), is named by Options.Headers, or follows the parameter rule's
// suffixes (X-Tenant-Secret, X-Goog-Api-Key, X-Hub-Signature, ...) and is
// not named by Options.ExemptHeaders.
//
// All methods are safe for concurrent use, and a nil *Policy behaves as
// [Default]. The methods that return or append a redacted form allocate
// nothing when nothing needs redacting.
package redact

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unsafe"
)

// Mark replaces every redacted value.
const Mark = "REDACTED"

// userinfoMark replaces the user information of a URL, in the form
// OpenTelemetry's semantic conventions give for url.full.
const userinfoMark = Mark + ":" + Mark

// MaxNameBytes is the longest decoded parameter name that is matched by
// name; the values of longer names are always redacted.
const MaxNameBytes = 128

// Default suffixes and exact names of the parameter rule, normalised.
var (
	defaultSuffixes = []string{
		"token", "secret", "password", "passwd", "key", "auth", "session", "sessionid",
		"sig", "signature", "credential", "credentials", "jwt",
	}
	defaultExact = []string{"code", "state", "authorization", "pwd"}
	// credentialHeaders are always redacted and cannot be exempted.
	credentialHeaders = []string{
		"authorization", "proxyauthorization", "cookie", "setcookie", "xapikey",
		"xauthtoken", "xcsrftoken", "xxsrftoken", "xamzsecuritytoken",
	}
)

// Options adjust the default rule. Every name is normalised as the rule
// says; a name with no letter or digit is an error.
type Options struct {
	// QueryParams are further parameter names whose values are redacted
	// (matched exactly after normalising, not as suffixes).
	QueryParams []string
	// ExemptQueryParams are parameter names the default rule would redact
	// but that are kept (matched exactly after normalising): exempting
	// "state" keeps ?state=, but not ?oauth_state=.
	ExemptQueryParams []string
	// Headers are further header names whose values are redacted.
	Headers []string
	// ExemptHeaders are header names the default rule would redact but
	// that are kept. Credential headers cannot be exempted.
	ExemptHeaders []string
}

// Policy is one redaction policy, immutable once built. The zero value and
// nil are the default policy.
type Policy struct {
	params, exemptParams   []string
	headers, exemptHeaders []string
}

var defaultPolicy = &Policy{}

// Default returns the policy with no options: the built-in rule alone.
func Default() *Policy { return defaultPolicy }

// New builds a policy from o. It reports every bad name: one with no
// letter or digit, a name both added and exempted, a credential header
// exempted, or an exemption the default rule does not redact anyway
// (which would do nothing, and is most likely a typo).
func New(o Options) (*Policy, error) {
	var errs []error
	norm := func(field string, names []string) []string {
		out := make([]string, 0, len(names))
		for _, n := range names {
			k := Normalize(n)
			if k == "" {
				errs = append(errs, fmt.Errorf("%s: %q has no letter or digit", field, n))
				continue
			}
			out = append(out, k)
		}
		return out
	}
	p := &Policy{
		params:        norm("query params", o.QueryParams),
		exemptParams:  norm("exempt query params", o.ExemptQueryParams),
		headers:       norm("headers", o.Headers),
		exemptHeaders: norm("exempt headers", o.ExemptHeaders),
	}
	for _, n := range o.ExemptQueryParams {
		if err := CheckExemptParam(n); err != nil {
			errs = append(errs, err)
		}
		if k := Normalize(n); contains(p.params, k) {
			errs = append(errs, fmt.Errorf("query parameter %q is both redacted and exempt", n))
		}
	}
	for _, n := range o.ExemptHeaders {
		if err := CheckExemptHeader(n); err != nil {
			errs = append(errs, err)
		}
		if k := Normalize(n); contains(p.headers, k) {
			errs = append(errs, fmt.Errorf("header %q is both redacted and exempt", n))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("redact: %w", errors.Join(errs...))
	}
	return p, nil
}

// CheckExemptParam reports why name cannot be exempted from the default
// rule, or nil.
func CheckExemptParam(name string) error {
	k := Normalize(name)
	if k == "" || defaultParam([]byte(k)) {
		return nil
	}
	return fmt.Errorf("query parameter %q is not redacted by default; there is nothing to exempt", name)
}

// CheckExemptHeader reports why name cannot be exempted from the default
// rule, or nil.
func CheckExemptHeader(name string) error {
	k := Normalize(name)
	switch {
	case k == "":
		return nil
	case contains(credentialHeaders, k):
		return fmt.Errorf("header %q carries credentials and is always redacted", name)
	case !hasSuffix([]byte(k), defaultSuffixes) && k != "authorization":
		return fmt.Errorf("header %q is not redacted by default; there is nothing to exempt", name)
	}
	return nil
}

// Normalize returns name as the rule compares it: its ASCII letters (in
// lower case) and digits, nothing else. It does not percent-decode.
func Normalize(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if c, ok := normByte(name[i]); ok {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// normByte maps c to its lower-case form when it is an ASCII letter or
// digit, and reports whether it is one.
func normByte(c byte) (byte, bool) {
	switch {
	case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		return c, true
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A', true
	}
	return 0, false
}

// Param reports whether the value of the query parameter named rawKey (as
// sent: still percent-encoded) is redacted.
func (p *Policy) Param(rawKey string) bool {
	if p == nil {
		p = defaultPolicy
	}
	// Decode and normalise into a stack buffer: '+' is a space and %XX a
	// byte; a broken escape stays as written, as a server would read it.
	var buf [MaxNameBytes]byte
	n, decoded := 0, 0
	for i := 0; i < len(rawKey); i++ {
		c := rawKey[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(rawKey) && isHex(rawKey[i+1]) && isHex(rawKey[i+2]):
			c = unhex(rawKey[i+1])<<4 | unhex(rawKey[i+2])
			i += 2
		}
		if decoded++; decoded > MaxNameBytes {
			return true
		}
		if c, ok := normByte(c); ok {
			buf[n] = c
			n++
		}
	}
	return p.matchParam(buf[:n])
}

func (p *Policy) matchParam(k []byte) bool {
	if len(k) == 0 {
		return false
	}
	if containsBytes(p.params, k) {
		return true
	}
	if containsBytes(p.exemptParams, k) {
		return false
	}
	return defaultParam(k)
}

// defaultParam is the built-in rule over a normalised name:
// hasSuffix(k, defaultSuffixes) || containsBytes(defaultExact, k),
// dispatched on the last byte so that a name that cannot match costs one
// or two comparisons (TestDefaultParamMatchesLists keeps the two forms
// equal).
func defaultParam(k []byte) bool {
	n := len(k)
	if n < 3 {
		return false
	}
	end := func(s string) bool { return n >= len(s) && string(k[n-len(s):]) == s }
	switch k[n-1] {
	case 'n':
		return end("token") || end("session") || string(k) == "authorization"
	case 't':
		return end("secret") || end("jwt")
	case 'd':
		return end("password") || end("passwd") || end("sessionid") || string(k) == "pwd"
	case 'y':
		return end("key")
	case 'h':
		return end("auth")
	case 'g':
		return end("sig")
	case 'e':
		return end("signature") || string(k) == "code" || string(k) == "state"
	case 'l':
		return end("credential")
	case 's':
		return end("credentials")
	}
	return false
}

// Header reports whether the value of the header named name is redacted.
func (p *Policy) Header(name string) bool {
	if p == nil {
		p = defaultPolicy
	}
	if len(name) > MaxNameBytes {
		return true
	}
	var buf [MaxNameBytes]byte
	n := 0
	for i := 0; i < len(name); i++ {
		if c, ok := normByte(name[i]); ok {
			buf[n] = c
			n++
		}
	}
	k := buf[:n]
	if len(k) == 0 {
		return false
	}
	if containsBytes(credentialHeaders, k) || containsBytes(p.headers, k) {
		return true
	}
	if containsBytes(p.exemptHeaders, k) {
		return false
	}
	return defaultParam(k) && !containsBytes(defaultExact, k) || string(k) == "authorization"
}

// HeaderValue returns value, or Mark when the header name is redacted.
func (p *Policy) HeaderValue(name, value string) string {
	if p.Header(name) {
		return Mark
	}
	return value
}

// Headers returns h with the values of redacted headers replaced by Mark:
// h itself when none is, else a copy (h is never modified).
func (p *Policy) Headers(h http.Header) http.Header {
	var out http.Header
	for name := range h {
		if !p.Header(name) {
			continue
		}
		if out == nil {
			out = h.Clone()
		}
		vs := make([]string, len(out[name]))
		for i := range vs {
			vs[i] = Mark
		}
		out[name] = vs
	}
	if out == nil {
		return h
	}
	return out
}

// Escaper appends s to dst, escaped for an output format. A nil Escaper
// appends s as it is.
type Escaper func(dst []byte, s string) []byte

func appendRaw(dst []byte, s string) []byte { return append(dst, s...) }

// Query returns the raw query with redacted values replaced: raw itself,
// without allocating, when nothing needs redacting.
func (p *Policy) Query(raw string) string {
	first := p.firstRedacted(raw)
	if first < 0 {
		return raw
	}
	dst := append(make([]byte, 0, len(raw)+len(Mark)), raw[:first]...)
	return bytesString(p.appendQueryFrom(dst, raw[first:], appendRaw))
}

// URL returns u (an absolute URL, or a path with a query) with redacted
// query values, fragment values and user information replaced: u itself,
// without allocating, when nothing needs redacting.
func (p *Policy) URL(u string) string {
	if !p.urlNeeds(u) {
		return u
	}
	return bytesString(p.AppendURL(make([]byte, 0, len(u)+len(userinfoMark)), u, 0, nil))
}

// bytesString returns b as a string without copying it. b must never be
// written again (as strings.Builder does with its own buffer).
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// AppendQuery appends the raw query to dst with redacted values replaced,
// each piece written through esc. With limit > 0 the query is first cut to
// limit bytes (a cut can shorten a key, which then has no value left to
// leak, or a value, whose key is still seen whole); marking the cut is the
// caller's.
func (p *Policy) AppendQuery(dst []byte, raw string, limit int, esc Escaper) []byte {
	if esc == nil {
		esc = appendRaw
	}
	if limit > 0 && len(raw) > limit {
		raw = raw[:limit]
	}
	first := p.firstRedacted(raw)
	if first < 0 {
		return esc(dst, raw)
	}
	// Everything before the first redacted parameter is written as it is.
	if first > 0 {
		dst = esc(dst, raw[:first])
	}
	return p.appendQueryFrom(dst, raw[first:], esc)
}

// appendQueryFrom is AppendQuery's loop over the parameters of raw, whose
// first parameter firstRedacted found redacted.
func (p *Policy) appendQueryFrom(dst []byte, raw string, esc Escaper) []byte {
	for known := true; ; known = false {
		var part string
		var sep byte
		part, sep, raw = cutSep(raw)
		key, _, hasValue := strings.Cut(part, "=")
		if known || hasValue && p.Param(key) {
			dst = esc(dst, key)
			dst = append(dst, '=')
			dst = append(dst, Mark...)
			// The value runs to the next '&' for a server that does
			// not split on ';'.
			if sep == ';' {
				sep = 0
				if i := strings.IndexByte(raw, '&'); i >= 0 {
					sep, raw = '&', raw[i+1:]
				}
			}
		} else {
			dst = esc(dst, part)
		}
		if sep == 0 {
			return dst
		}
		dst = append(dst, sep)
	}
}

// queryNeeds reports whether any parameter of raw is redacted.
func (p *Policy) queryNeeds(raw string) bool { return p.firstRedacted(raw) >= 0 }

// firstRedacted returns the offset in raw of the first parameter whose
// value is redacted, or -1.
func (p *Policy) firstRedacted(raw string) int {
	off := 0
	for off < len(raw) {
		part, sep, _ := cutSep(raw[off:])
		if key, _, ok := strings.Cut(part, "="); ok && p.Param(key) {
			return off
		}
		if sep == 0 {
			break
		}
		off += len(part) + 1
	}
	return -1
}

// cutSep cuts raw at its first '&' or ';': part before, the separator (0
// when there is none) and the rest after.
func cutSep(raw string) (part string, sep byte, rest string) {
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c == '&' || c == ';' {
			return raw[:i], c, raw[i+1:]
		}
	}
	return raw, 0, ""
}

// AppendURL appends u (an absolute URL, or a path with a query) to dst
// with its user information, query values and fragment values redacted,
// each piece written through esc. With limit > 0, u is first cut to limit
// bytes; user information is still found in the whole u, so a cut cannot
// reveal part of a password. Marking the cut is the caller's.
func (p *Policy) AppendURL(dst []byte, u string, limit int, esc Escaper) []byte {
	if esc == nil {
		esc = appendRaw
	}
	uiStart, uiEnd := userinfo(u)
	if limit > 0 && len(u) > limit {
		u = u[:limit]
	}
	if uiEnd > 0 && uiStart >= len(u) {
		uiEnd = 0 // the cut left only the scheme
	}
	if uiEnd > 0 {
		dst = esc(dst, u[:uiStart])
		dst = append(dst, userinfoMark...)
		if uiEnd >= len(u) {
			return dst
		}
		dst = append(dst, '@')
		u = u[uiEnd+1:]
	}
	rest, frag, hasFrag := strings.Cut(u, "#")
	path, query, hasQuery := strings.Cut(rest, "?")
	qf, ff := -1, -1
	if hasQuery {
		qf = p.firstRedacted(query)
	}
	if hasFrag {
		ff = p.firstRedacted(frag)
	}
	if qf < 0 && ff < 0 {
		return esc(dst, u)
	}
	// Each part up to its first redacted parameter is written as it is.
	if qf >= 0 {
		dst = esc(dst, u[:len(path)+1+qf])
		dst = p.appendQueryFrom(dst, query[qf:], esc)
		if hasFrag {
			dst = append(dst, '#')
		}
	} else {
		dst = esc(dst, u[:len(rest)+1])
	}
	if ff >= 0 {
		dst = esc(dst, frag[:ff])
		dst = p.appendQueryFrom(dst, frag[ff:], esc)
	} else if hasFrag {
		dst = esc(dst, frag)
	}
	return dst
}

func (p *Policy) urlNeeds(u string) bool {
	if _, end := userinfo(u); end > 0 {
		return true
	}
	rest, frag, _ := strings.Cut(u, "#")
	_, query, _ := strings.Cut(rest, "?")
	return p.queryNeeds(query) || p.queryNeeds(frag)
}

// userinfo returns the span of the user information of an absolute URL
// ("scheme://userinfo@host..."): u[start:end] is the user information and
// u[end] its '@'. end is 0 when there is none.
func userinfo(u string) (start, end int) {
	// The scheme: a letter, then letters, digits, '+', '-' or '.'.
	i := 0
	for ; i < len(u); i++ {
		c := u[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			break
		}
	}
	if i == 0 || len(u)-i < 3 || u[i:i+3] != "://" {
		return 0, 0
	}
	start = i + 3
	at := -1
	for j := start; j < len(u); j++ {
		c := u[j]
		if c == '/' || c == '?' || c == '#' {
			break
		}
		if c == '@' {
			at = j
		}
	}
	if at < 0 {
		return 0, 0
	}
	return start, at
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

func hasSuffix(k []byte, suffixes []string) bool {
	for _, s := range suffixes {
		if len(k) >= len(s) && string(k[len(k)-len(s):]) == s {
			return true
		}
	}
	return false
}

func containsBytes(list []string, k []byte) bool {
	for _, s := range list {
		if string(k) == s {
			return true
		}
	}
	return false
}

func contains(list []string, k string) bool {
	for _, s := range list {
		if k == s {
			return true
		}
	}
	return false
}
