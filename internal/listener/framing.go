package listener

import "bytes"

// framer follows the HTTP/1.x request stream of one cleartext connection as
// the bytes go by, to find what net/http hides from handlers: it drops a
// Content-Length sent beside Transfer-Encoding: chunked, and ignores
// Transfer-Encoding on HTTP/1.0, so a handler cannot tell such a request
// from a plain one. RFC 9112 §6.1 and §6.3 call both faulty framing that
// must not keep the connection open.
//
// The framer mirrors net/http's own framing (request line, header lines,
// Content-Length, chunked coding and trailers) closely enough to find where
// each request head begins; FuzzFramer checks it against net/http. It keeps
// a fixed amount of state (a prefix of the current line), whatever the
// traffic. It is not safe for concurrent use; conn serialises access.
//
// Heads are numbered in the order the server hands them to its handler; an
// "OPTIONS *" request, which net/http answers itself, takes no number.
// firstBad is the number of the first head with faulty framing: that
// request, and any after it on the connection, are refused. After a faulty
// head, after an error net/http will also see (it then closes the
// connection), and once the connection speaks HTTP/2, the framer stops.
type framer struct {
	st state

	// The current line: its first linePrefix bytes, its last 16 bytes (the
	// protocol of a request line), its length.
	line    [linePrefix]byte
	tail    [16]byte
	lineLen int

	// The current head.
	optionsStar bool
	http10      bool
	nCL, nTE    int
	cl          [24]byte // the first Content-Length value
	clLen       int      // -1: too long to keep
	clDiffer    bool
	teChunked   bool
	lastFraming bool // the last header line was Content-Length or Transfer-Encoding
	foldFraming bool // an obs-fold continued one of them
	truncated   bool // a framing header's value did not fit in the prefix

	remain uint64 // body or chunk bytes left

	heads    int // heads numbered so far
	firstBad int // -1, or the number of the first faulty head
	h2       bool

	// onHead, when set (in tests), is told of each head's request line
	// prefix as the head ends.
	onHead  func(line string, faulty bool)
	reqLine [16]byte
	reqLen  int
}

type state uint8

const (
	stRequestLine state = iota
	stHeaderLine
	stBody
	stChunkLine
	stChunkData
	stChunkCR
	stChunkLF
	stTrailerFirst
	stTrailer
	stStopped
)

const (
	linePrefix   = 256
	maxChunkLine = 4096 // net/http's limit for a chunk-size line
)

func newFramer() *framer { return &framer{firstBad: -1, clLen: 0} }

// stopped reports whether the framer follows the stream no more.
func (f *framer) stopped() bool { return f.st == stStopped }

// feed follows b, the next bytes the server reads.
func (f *framer) feed(b []byte) {
	for len(b) > 0 && f.st != stStopped {
		switch f.st {
		case stBody, stChunkData:
			n := uint64(len(b))
			if n > f.remain {
				n = f.remain
			}
			b = b[n:]
			f.remain -= n
			if f.remain == 0 {
				if f.st == stBody {
					f.st = stRequestLine
				} else {
					f.st = stChunkCR
				}
			}
		case stChunkCR, stChunkLF:
			want := byte('\r')
			if f.st == stChunkLF {
				want = '\n'
			}
			if b[0] != want {
				f.stop() // "malformed chunked encoding" in net/http too
				return
			}
			b = b[1:]
			if f.st == stChunkCR {
				f.st = stChunkLF
			} else {
				f.st = stChunkLine
			}
		default: // a line
			i := bytes.IndexByte(b, '\n')
			chunk := b
			if i >= 0 {
				chunk = b[:i+1]
			}
			f.addLine(chunk)
			b = b[len(chunk):]
			if f.st == stChunkLine && f.lineLen >= maxChunkLine+2 {
				f.stop() // net/http: "header line too long"
				return
			}
			if i >= 0 {
				f.endLine()
				f.lineLen = 0
			}
		}
	}
}

func (f *framer) addLine(p []byte) {
	if f.lineLen < linePrefix {
		copy(f.line[f.lineLen:], p)
	}
	if len(p) >= len(f.tail) {
		copy(f.tail[:], p[len(p)-len(f.tail):])
	} else {
		copy(f.tail[:], f.tail[len(p):])
		copy(f.tail[len(f.tail)-len(p):], p)
	}
	f.lineLen += len(p)
}

// text returns the kept prefix of the line without its line ending, and
// whether it is the whole line.
func (f *framer) text() ([]byte, bool) {
	n := f.lineLen - 1 // without '\n'
	if n > 0 && f.lastByte(2) == '\r' {
		n--
	}
	if n > linePrefix {
		return f.line[:linePrefix], false
	}
	return f.line[:n], true
}

// lastByte returns the line's byte i places from its end (1 is the last).
func (f *framer) lastByte(i int) byte { return f.tail[len(f.tail)-i] }

func (f *framer) endLine() {
	switch f.st {
	case stRequestLine:
		f.requestLine()
	case stHeaderLine:
		f.headerLine()
	case stChunkLine:
		f.chunkLine()
	case stTrailerFirst, stTrailer:
		// Trailer fields end at an empty line, CRLF or bare LF as
		// net/http's header reader takes it.
		if t, _ := f.text(); len(t) == 0 {
			f.st = stRequestLine
		}
	}
}

func (f *framer) requestLine() {
	t, whole := f.text()
	f.optionsStar, f.http10 = false, false
	f.nCL, f.nTE, f.clLen, f.clDiffer, f.teChunked = 0, 0, 0, false, false
	f.lastFraming, f.foldFraming, f.truncated = false, false, false
	if len(t) == 0 {
		f.stop() // net/http: "malformed HTTP request"
		return
	}
	// The protocol is the line's last field.
	var proto []byte
	if whole {
		if i := bytes.LastIndexByte(t, ' '); i >= 0 {
			proto = t[i+1:]
		}
	} else {
		end := len(f.tail) - 1
		if f.lastByte(2) == '\r' {
			end--
		}
		tail := f.tail[:end]
		if i := bytes.LastIndexByte(tail, ' '); i >= 0 {
			proto = tail[i+1:]
		}
	}
	if bytes.HasPrefix(proto, []byte("HTTP/2")) {
		// The h2c preface ("PRI * HTTP/2.0"): the rest is HTTP/2 frames,
		// or net/http refuses the request.
		f.h2 = true
		f.stop()
		return
	}
	f.http10 = string(proto) == "HTTP/1.0"
	f.reqLen = copy(f.reqLine[:], t)
	f.optionsStar = bytes.HasPrefix(t, []byte("OPTIONS * "))
	f.st = stHeaderLine
}

func (f *framer) headerLine() {
	t, whole := f.text()
	if len(t) == 0 {
		f.endHead()
		return
	}
	if t[0] == ' ' || t[0] == '\t' {
		if f.lastFraming {
			f.foldFraming = true
		}
		return
	}
	f.lastFraming = false
	colon := bytes.IndexByte(t, ':')
	if colon < 0 {
		return // net/http refuses a line without a colon
	}
	name, value := t[:colon], trimOWS(t[colon+1:])
	switch {
	case asciiEqualFold(name, "Content-Length"):
		f.lastFraming = true
		f.nCL++
		if !whole || len(value) > len(f.cl) {
			f.truncated = true
			return
		}
		if f.nCL == 1 {
			f.clLen = copy(f.cl[:], value)
		} else if string(f.cl[:f.clLen]) != string(value) {
			f.clDiffer = true
		}
	case asciiEqualFold(name, "Transfer-Encoding"):
		f.lastFraming = true
		f.nTE++
		if !whole {
			f.truncated = true
			return
		}
		f.teChunked = f.nTE == 1 && asciiEqualFold(value, "chunked")
	}
}

// endHead judges the head just ended and sets up its body.
func (f *framer) endHead() {
	n := f.heads
	if !f.optionsStar {
		f.heads++
	}
	faulty := f.nTE > 0 && (f.nCL > 0 || f.http10) || f.foldFraming || f.truncated
	if f.onHead != nil {
		f.onHead(string(f.reqLine[:f.reqLen]), faulty)
	}
	if faulty {
		// A faulty "OPTIONS *" cannot be refused (net/http answers it
		// without a handler): the request after it is.
		f.firstBad = n
		f.stop()
		return
	}
	switch {
	case f.nTE > 0:
		if !f.teChunked {
			f.stop() // net/http answers 501 and closes
			return
		}
		f.st = stChunkLine
	case f.nCL > 0:
		v, ok := parseDecimal(f.cl[:f.clLen])
		if !ok || f.clDiffer {
			f.stop() // net/http answers 400 and closes
			return
		}
		f.remain = v
		f.st = stBody
		if v == 0 {
			f.st = stRequestLine
		}
	default:
		f.st = stRequestLine
	}
}

func (f *framer) chunkLine() {
	t, whole := f.text()
	// net/http requires CRLF and no other CR on a chunk line.
	if !whole || f.lineLen < 2 || f.lastByte(2) != '\r' || bytes.IndexByte(t, '\r') >= 0 {
		f.stop()
		return
	}
	// As net/http: trailing whitespace is trimmed, then the extension cut.
	for len(t) > 0 && (t[len(t)-1] == ' ' || t[len(t)-1] == '\t') {
		t = t[:len(t)-1]
	}
	if i := bytes.IndexByte(t, ';'); i >= 0 {
		t = t[:i]
	}
	n, ok := parseHex(t)
	if !ok {
		f.stop()
		return
	}
	if n == 0 {
		f.st = stTrailerFirst
		return
	}
	f.remain = n
	f.st = stChunkData
}

func (f *framer) stop() { f.st = stStopped }

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// parseDecimal parses a Content-Length as net/http does
// (strconv.ParseUint(s, 10, 63)).
func parseDecimal(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63-1)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<63-1 {
			return 0, false
		}
	}
	return n, true
}

// parseHex parses a chunk size as net/http does: 1 to 16 hex digits.
func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(c)
	}
	return n, true
}
