package accesslog

import "github.com/vantage-gateway/vantage/internal/redact"

// appendQuery appends the raw query with the values the redaction policy
// redacts replaced, each piece escaped by esc; a query longer than
// maxValueBytes is cut first and marked.
func (e *encoder) appendQuery(dst []byte, raw string, esc redact.Escaper) []byte {
	dst = e.redact.AppendQuery(dst, raw, maxValueBytes, esc)
	if len(raw) > maxValueBytes {
		dst = append(dst, truncMark...)
	}
	return dst
}

// appendURL appends a URL or path-with-query (a Referer, a request target)
// redacted by the policy, cut and marked like appendQuery.
func (e *encoder) appendURL(dst []byte, u string, esc redact.Escaper) []byte {
	dst = e.redact.AppendURL(dst, u, maxValueBytes, esc)
	if len(u) > maxValueBytes {
		dst = append(dst, truncMark...)
	}
	return dst
}
