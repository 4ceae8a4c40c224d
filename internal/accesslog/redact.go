package accesslog

import "strings"

// redactedValue replaces the value of a redacted query parameter.
const redactedValue = "REDACTED"

// queryRedactor rewrites a raw query so that the values of the listed
// parameters never reach a log line. Its zero value redacts nothing.
type queryRedactor struct {
	// names are the parameter names, compared case-insensitively with the
	// percent-decoded key.
	names []string
}

func newQueryRedactor(names []string) queryRedactor {
	return queryRedactor{names: append([]string(nil), names...)}
}

// redacts reports whether the raw (still percent-encoded) key names a
// redacted parameter.
func (q *queryRedactor) redacts(rawKey string) bool {
	if len(q.names) == 0 {
		return false
	}
	// Decode into a stack buffer: "+" is a space and %XX a byte; a broken
	// escape stays as written, as a server would read it.
	var buf [128]byte
	n := 0
	for i := 0; i < len(rawKey); i++ {
		if n == len(buf) {
			// A key this long matches no sane parameter name, but a
			// hostile client must not be able to hide a secret behind
			// padding: redact.
			return true
		}
		c := rawKey[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(rawKey) && isHex(rawKey[i+1]) && isHex(rawKey[i+2]):
			c = unhex(rawKey[i+1])<<4 | unhex(rawKey[i+2])
			i += 2
		}
		buf[n] = c
		n++
	}
	key := buf[:n]
	for _, name := range q.names {
		if equalFoldBytes(key, name) {
			return true
		}
	}
	return false
}

// appendQuery appends the raw query with redacted values replaced, each
// piece escaped by esc.
func (q *queryRedactor) appendQuery(dst []byte, raw string, esc func([]byte, string) []byte) []byte {
	if len(q.names) == 0 || raw == "" {
		return esc(dst, raw)
	}
	// Cut first, then redact: a cut can shorten a key (which then has no
	// value left to leak) or a value (whose key is still seen whole).
	trunc := len(raw) > maxValueBytes
	if trunc {
		raw = raw[:maxValueBytes]
	}
	for {
		// Split on ';' as well as '&': some servers read both, and a
		// secret must not hide behind the one we would not split on.
		part, sep := raw, byte(0)
		for i := 0; i < len(raw); i++ {
			if raw[i] == '&' || raw[i] == ';' {
				part, sep, raw = raw[:i], raw[i], raw[i+1:]
				break
			}
		}
		key, _, hasValue := strings.Cut(part, "=")
		if q.redacts(key) {
			dst = esc(dst, key)
			if hasValue {
				dst = append(dst, '=')
				dst = append(dst, redactedValue...)
			}
		} else {
			dst = esc(dst, part)
		}
		if sep == 0 {
			break
		}
		dst = append(dst, sep)
	}
	if trunc {
		dst = append(dst, truncMark...)
	}
	return dst
}

// appendURL appends a URL or path-with-query (a Referer, a request
// target) with its query redacted.
func (q *queryRedactor) appendURL(dst []byte, u string, esc func([]byte, string) []byte) []byte {
	path, query, ok := strings.Cut(u, "?")
	if !ok || len(q.names) == 0 {
		return esc(dst, u)
	}
	trunc := len(u) > maxValueBytes
	if trunc {
		u = u[:maxValueBytes]
		path, query, ok = strings.Cut(u, "?")
		if !ok {
			dst = esc(dst, u)
			return append(dst, truncMark...)
		}
	}
	frag := ""
	if i := strings.IndexByte(query, '#'); i >= 0 {
		query, frag = query[:i], query[i:]
	}
	dst = esc(dst, path)
	dst = append(dst, '?')
	dst = q.appendQuery(dst, query, esc)
	dst = esc(dst, frag)
	if trunc {
		dst = append(dst, truncMark...)
	}
	return dst
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
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

func equalFoldBytes(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
