package accesslog

import (
	"time"
	"unicode/utf8"
)

// maxValueBytes caps every client-controlled value written to a record
// (path, query, header values): longer values are cut and end with "...".
// It bounds the size of a record, and so the memory the queue can hold.
const maxValueBytes = 4096

const (
	hexDigits = "0123456789abcdef"
	truncMark = "..."
)

// appendJSONString appends s as a quoted JSON string. Control characters,
// quotes, backslashes, DEL and U+2028/U+2029 are escaped and invalid UTF-8
// becomes U+FFFD, so the result is always valid JSON on one line whatever
// bytes s holds. Values longer than maxValueBytes are truncated.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendJSONBody(dst, s)
	return append(dst, '"')
}

// jsonSafe marks the bytes appendJSONBody copies as they are: printable
// ASCII except '"' and '\\'.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func appendJSONBody(dst []byte, s string) []byte {
	trunc := false
	if len(s) > maxValueBytes {
		s, trunc = s[:maxValueBytes], true
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	if trunc {
		dst = append(dst, truncMark...)
	}
	return dst
}

// appendCLFBody appends s for a quoted CLF field: '"' and '\' are
// backslash-escaped and every byte outside printable ASCII is written as
// \xHH, so the line stays one line of ASCII. With token set, spaces are
// escaped too (for unquoted fields). Values longer than maxValueBytes are
// truncated.
func appendCLFBody(dst []byte, s string, token bool) []byte {
	trunc := false
	if len(s) > maxValueBytes {
		s, trunc = s[:maxValueBytes], true
	}
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > 0x20 && c < 0x7f && c != '"' && c != '\\' || c == ' ' && !token {
			continue
		}
		dst = append(dst, s[start:i]...)
		if c == '"' || c == '\\' {
			dst = append(dst, '\\', c)
		} else {
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	if trunc {
		dst = append(dst, truncMark...)
	}
	return dst
}

// appendCLFQuoted appends s as a quoted CLF field, "-" when empty.
func appendCLFQuoted(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, `"-"`...)
	}
	dst = append(dst, '"')
	dst = appendCLFBody(dst, s, false)
	return append(dst, '"')
}

// appendCLFToken appends s as an unquoted CLF field, "-" when empty.
func appendCLFToken(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, '-')
	}
	return appendCLFBody(dst, s, true)
}

// appendHex appends b in lower-case hex.
func appendHex(dst []byte, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

// appendSeconds appends d as seconds with nine decimals ("0.012345678"),
// exact to the nanosecond; negative durations are written as 0.
func appendSeconds(dst []byte, d time.Duration) []byte {
	if d < 0 {
		d = 0
	}
	sec, ns := uint64(d/time.Second), uint32(d%time.Second)
	dst = appendUint(dst, sec)
	var frac [10]byte
	frac[0] = '.'
	for i := 9; i >= 1; i-- {
		frac[i] = byte('0' + ns%10)
		ns /= 10
	}
	return append(dst, frac[:]...)
}

func appendUint(dst []byte, n uint64) []byte {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}

func appendInt(dst []byte, n int64) []byte {
	if n < 0 {
		dst = append(dst, '-')
		return appendUint(dst, uint64(-n))
	}
	return appendUint(dst, uint64(n))
}
