package tracestore

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Limits on what one query returns.
const (
	// MaxLimit is the most traces one search returns.
	MaxLimit = 1000
	// DefaultLimit is the number of traces a search returns when its
	// Limit is 0.
	DefaultLimit = 20
)

// Query selects traces. A trace matches when it is of one of Classes (any
// class when empty) and one of its spans meets every span condition that
// is set. Zero fields are unset.
type Query struct {
	// Service is the span's resource service.name.
	Service string
	// Operation is the span name (needs Service).
	Operation string
	// Tags must all be found among the span's attributes, its resource's
	// attributes or its events' attributes (Jaeger's rule), compared as
	// text.
	Tags map[string]string
	// MinDuration and MaxDuration bound the span's duration.
	MinDuration, MaxDuration time.Duration
	// StartMin and StartMax bound the span's start time.
	StartMin, StartMax time.Time
	// Route is the span's http.route.
	Route string
	// HTTPStatus is the span's http.response.status_code; HTTPStatusClass
	// its first digit (5 for 5xx).
	HTTPStatus, HTTPStatusClass int
	// ErrorKind is the span's vantage.error.kind.
	ErrorKind string
	// Error requires the span's status to be Error.
	Error bool
	// Classes restricts the traces' retention classes.
	Classes []Class
	// Limit is the most traces returned (DefaultLimit when 0, at most
	// MaxLimit).
	Limit int
}

func (q *Query) needsBlob() bool { return len(q.Tags) > 0 || q.ErrorKind != "" }

func (s *Store) observeQuery(name string, start time.Time) {
	s.m.query.WithLabelValues(name).Observe(s.clock.Now().Sub(start).Seconds())
}

// GetTrace returns a deep copy of the trace, its spans and its logs, and
// whether it is stored. With open set, the trace is marked as opened by a
// person: it moves to the pinned class and outlives ordinary traces.
func (s *Store) GetTrace(id TraceID, open bool) (*Trace, bool) {
	s.writePending()
	defer s.observeQuery("trace", s.clock.Now())
	if open {
		s.walMu.Lock() // a pin is logged in a persistent store
		defer s.walMu.Unlock()
		s.mu.Lock()
		defer s.mu.Unlock()
	} else {
		s.mu.RLock()
		defer s.mu.RUnlock()
	}
	e := s.lookup(id)
	if e == nil || len(s.spansOf(e)) == 0 && len(s.logsOf(e)) == 0 {
		return nil, false
	}
	if open {
		s.pinLocked(e)
	}
	return s.copyTrace(e), true
}

func (s *Store) copyTrace(e *traceEntry) *Trace {
	spans, logs := s.spansOf(e), s.logsOf(e)
	t := &Trace{TraceID: e.id, Class: e.class, Spans: make([]Span, len(spans))}
	for i := range spans {
		s.copySpan(&t.Spans[i], e, &spans[i])
	}
	if len(logs) > 0 {
		t.Logs = make([]LogRecord, len(logs))
		for i := range logs {
			l := &logs[i]
			sev, body, attrs := s.logParts(e, l)
			t.Logs[i] = LogRecord{
				Time: time.Unix(0, l.time), TraceID: e.id, SpanID: l.spanID,
				SeverityNumber: l.severity, SeverityText: string(sev), Body: string(body),
				Attributes: decodeAttrsBlob(unsafeString(attrs), s.dict),
			}
			if p := s.procTab[l.proc]; p != nil {
				t.Logs[i].Service = p.service
			}
		}
	}
	return t
}

// copySpan fills sp with a copy of st, a span of e.
func (s *Store) copySpan(sp *Span, e *traceEntry, st *storedSpan) {
	name := s.spanName(e, st)
	if st.name == 0 {
		name = strings.Clone(name)
	}
	*sp = Span{
		TraceID: e.id, SpanID: st.spanID, ParentSpanID: st.parentID,
		Flags: uint32(st.flags), Name: name, Kind: st.kind,
		Start: time.Unix(0, st.start), End: time.Unix(0, st.start+st.dur),
		StatusCode: st.status,
	}
	p := s.procTab[st.proc]
	sp.Resource.ServiceName = p.service
	sp.Resource.Attributes = decodeAttrsBlob(p.attrs, s.dict)
	decodeSpanBlob(sp, unsafeString(s.blob(e, st)), s.dict)
}

// candidates returns the posting lists a query can be answered from:
// the smallest one that applies, or several duration buckets to merge.
func (s *Store) candidates(q *Query) []*postings {
	var best *postings
	consider := func(parts ...string) bool {
		p := s.idx[strings.Join(parts, "\x00")]
		if p == nil {
			return false // nothing can match
		}
		if best == nil || len(p.list)-p.dead < len(best.list)-best.dead {
			best = p
		}
		return true
	}
	ok := true
	considerTag := func(k, v string) {
		p, indexed := s.tagList(k, v)
		switch {
		case !indexed:
		case p == nil:
			ok = false // the key is indexed and no trace has the value
		case best == nil || len(p.list)-p.dead < len(best.list)-best.dead:
			best = p
		}
	}
	for k, v := range q.Tags {
		considerTag(k, v)
	}
	if q.ErrorKind != "" {
		considerTag(keyErrorKind, q.ErrorKind)
	}
	if q.Service != "" {
		ok = ok && consider("s", q.Service)
		if q.Operation != "" {
			ok = ok && consider("o", q.Service, q.Operation)
		}
	}
	if q.Route != "" {
		ok = ok && consider("r", q.Route)
	}
	if q.Error {
		ok = ok && consider("e")
	}
	switch {
	case q.HTTPStatus > 0:
		ok = ok && consider("h", strconv.Itoa(q.HTTPStatus/100))
	case q.HTTPStatusClass > 0:
		ok = ok && consider("h", strconv.Itoa(q.HTTPStatusClass))
	}
	if !ok {
		return nil
	}
	if q.MinDuration > 0 {
		var lists []*postings
		n := 0
		for b := durBucket(int64(q.MinDuration)); b <= 64; b++ {
			if p := s.idx["d\x00"+strconv.Itoa(b)]; p != nil {
				lists = append(lists, p)
				n += len(p.list) - p.dead
			}
		}
		if len(lists) == 0 {
			return nil
		}
		if best == nil || n < len(best.list)-best.dead {
			return lists
		}
	}
	if best == nil {
		best = s.idx["a"]
	}
	if best == nil {
		return nil
	}
	return []*postings{best}
}

// find returns the entries matching q, newest first: it walks the
// candidate posting lists from their ends, merged by posting sequence, and
// stops at the limit.
func (s *Store) find(q *Query) []*traceEntry {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	lists := s.candidates(q)
	pos := make([]int, len(lists))
	for i, p := range lists {
		pos[i] = len(p.list) - 1
	}
	var seen map[uint32]bool
	if len(lists) > 1 {
		seen = map[uint32]bool{}
	}
	var out []*traceEntry
	for len(out) < limit {
		best := -1
		for i, p := range lists {
			if pos[i] >= 0 && (best < 0 || p.list[pos[i]].seq > lists[best].list[pos[best]].seq) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		e := s.entryOf(lists[best].list[pos[best]])
		pos[best]--
		if e == nil {
			continue
		}
		if seen != nil {
			if seen[e.slot] {
				continue
			}
			seen[e.slot] = true
		}
		if s.matches(e, q) {
			out = append(out, e)
		}
	}
	return out
}

func (s *Store) matches(e *traceEntry, q *Query) bool {
	if len(q.Classes) > 0 && !slices.Contains(q.Classes, e.class) {
		return false
	}
	spans := s.spansOf(e)
	if len(spans) == 0 {
		return false
	}
	if !q.StartMin.IsZero() && e.maxEnd < q.StartMin.UnixNano() {
		return false
	}
	if !q.StartMax.IsZero() && e.minStart > q.StartMax.UnixNano() {
		return false
	}
	for i := range spans {
		if s.spanMatches(e, &spans[i], q) {
			return true
		}
	}
	return false
}

func (s *Store) spanMatches(e *traceEntry, st *storedSpan, q *Query) bool {
	proc := s.procTab[st.proc]
	if q.Service != "" && proc.service != q.Service {
		return false
	}
	if q.Operation != "" && s.spanName(e, st) != q.Operation {
		return false
	}
	d := time.Duration(st.dur)
	if q.MinDuration > 0 && d < q.MinDuration || q.MaxDuration > 0 && d > q.MaxDuration {
		return false
	}
	if !q.StartMin.IsZero() && st.start < q.StartMin.UnixNano() || !q.StartMax.IsZero() && st.start > q.StartMax.UnixNano() {
		return false
	}
	if q.Error && st.status != StatusError {
		return false
	}
	if q.HTTPStatus > 0 && int(st.httpStatus) != q.HTTPStatus {
		return false
	}
	if q.HTTPStatusClass > 0 && int(st.httpStatus)/100 != q.HTTPStatusClass {
		return false
	}
	if q.Route == "" && !q.needsBlob() {
		return true
	}
	blob := s.blob(e, st)
	if q.Route != "" && !blobHasAttr(blob, s.dict, tagCond{key: keyHTTPRoute, val: q.Route}, false) {
		return false
	}
	if q.ErrorKind != "" && !blobHasAttr(blob, s.dict, tagCond{key: keyErrorKind, val: q.ErrorKind}, false) {
		return false
	}
	for k, v := range q.Tags {
		c := tagCond{key: k, val: v}
		if blobHasAttr(blob, s.dict, c, true) || s.procHasAttr(proc, c) || derivedTag(st, k, v) {
			continue
		}
		return false
	}
	return true
}

// tagCond is one tag condition: an attribute whose value, as text, is val.
type tagCond struct{ key, val string }

// procHasAttr reports whether the process's resource attributes meet c.
func (s *Store) procHasAttr(p *process, c tagCond) bool {
	r := blobReader{b: []byte(p.attrs), d: s.dict}
	return r.scanAttrs(c)
}

// blobHasAttr reports whether the span blob's attributes (and, with
// events set, its events' attributes) meet c, reading the blob in place.
func blobHasAttr(blob []byte, d *dict, c tagCond, events bool) bool {
	r := blobReader{b: blob, d: d}
	for range 4 { // scope name and version, trace state, status message
		r.raw()
	}
	r.uvarint()
	r.uvarint()
	r.uvarint()
	if r.scanAttrs(c) {
		return true
	}
	if !events {
		return false
	}
	n := r.uvarint()
	for i := uint64(0); i < n && !r.bad; i++ {
		r.varint()
		r.raw()
		if r.scanAttrs(c) {
			return true
		}
	}
	return false
}

// scanAttrs reads a list of attributes and reports whether one meets c,
// without allocating.
func (r *blobReader) scanAttrs(c tagCond) bool {
	n := r.uvarint()
	found := false
	for i := uint64(0); i < n && !r.bad; i++ {
		var keyMatch bool
		if ref := r.uvarint(); ref == 0 {
			keyMatch = string(r.raw()) == c.key
		} else {
			keyMatch = r.d.key(ref) == c.key
		}
		t := ValueType(r.byte1())
		switch t {
		case TypeBool:
			v := r.byte1() == 1
			keyMatch = keyMatch && (v && c.val == "true" || !v && c.val == "false")
		case TypeInt64:
			v := r.varint()
			keyMatch = keyMatch && strconv.FormatInt(v, 10) == c.val
		case TypeFloat64:
			if len(r.b) < 8 {
				r.bad = true
				return found
			}
			if keyMatch {
				kv := KeyValue{Type: TypeFloat64, Float: math.Float64frombits(binary.LittleEndian.Uint64(r.b))}
				keyMatch = kv.AsString() == c.val
			}
			r.b = r.b[8:]
		case TypeBinary:
			v := r.raw()
			keyMatch = keyMatch && hex.EncodeToString(v) == c.val
		default:
			v := r.raw() // read even when the key differs: the next attribute follows
			keyMatch = keyMatch && string(v) == c.val
		}
		if keyMatch {
			found = true
		}
	}
	return found
}

// derivedTag answers Jaeger's tags that are derived from span fields.
func derivedTag(st *storedSpan, k, v string) bool {
	switch k {
	case "error":
		return v == "true" && st.status == StatusError
	case "span.kind":
		return v == st.kind.String()
	case "otel.status_code":
		return st.status == StatusError && v == "ERROR" || st.status == StatusOK && v == "OK"
	}
	return false
}

func unsafeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// FindTraces returns deep copies of the traces matching q, newest first.
func (s *Store) FindTraces(q Query) []*Trace {
	s.writePending()
	defer s.observeQuery("search", s.clock.Now())
	s.mu.RLock()
	defer s.mu.RUnlock()
	es := s.find(&q)
	out := make([]*Trace, len(es))
	for i, e := range es {
		out[i] = s.copyTrace(e)
	}
	return out
}

// Search returns summaries of the traces matching q, newest first.
func (s *Store) Search(q Query) []Summary {
	s.writePending()
	defer s.observeQuery("search", s.clock.Now())
	s.mu.RLock()
	defer s.mu.RUnlock()
	es := s.find(&q)
	out := make([]Summary, len(es))
	for i, e := range es {
		out[i] = s.summary(e)
	}
	return out
}

func (s *Store) summary(e *traceEntry) Summary {
	spans := s.spansOf(e)
	sum := Summary{
		TraceID: e.id, Start: time.Unix(0, e.minStart), Duration: time.Duration(e.maxEnd - e.minStart),
		Spans: len(spans), Logs: len(s.logsOf(e)), Class: e.class,
	}
	root := -1
	svcs := map[string]bool{}
	for i := range spans {
		st := &spans[i]
		if st.status == StatusError {
			sum.Errors++
		}
		if svc := s.procTab[st.proc].service; !svcs[svc] {
			svcs[svc] = true
			sum.Services = append(sum.Services, svc)
		}
		isRoot := st.parentID.IsZero() || !st.parentFound && s.findSpan(e, st.parentID) < 0
		if isRoot && (root < 0 || st.start < spans[root].start) {
			root = i
		}
	}
	sort.Strings(sum.Services)
	if root < 0 && len(spans) > 0 {
		root = 0
	}
	if root >= 0 {
		var sp Span
		s.copySpan(&sp, e, &spans[root])
		sum.RootService, sum.RootName = sp.Resource.ServiceName, sp.Name
		sum.HTTPStatus = int(spans[root].httpStatus)
		if kv, ok := sp.Attr(keyHTTPRoute); ok {
			sum.Route = kv.AsString()
		}
		if kv, ok := sp.Attr(keyErrorKind); ok {
			sum.ErrorKind = kv.AsString()
		}
	}
	return sum
}

// Services returns the names of the services seen, sorted.
func (s *Store) Services() []string {
	s.writePending()
	defer s.observeQuery("services", s.clock.Now())
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.services))
	for name := range s.services {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Operation is a span name and kind seen for a service.
type Operation struct {
	Name string
	Kind SpanKind
}

// Operations returns the operations seen for service, sorted by name then
// kind; with kind set (not KindUnspecified and anyKind false), only those
// of that kind.
func (s *Store) Operations(service string, kind SpanKind, anyKind bool) []Operation {
	s.writePending()
	defer s.observeQuery("operations", s.clock.Now())
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Operation
	for k := range s.services[service] {
		if !anyKind && k.kind != kind {
			continue
		}
		out = append(out, Operation{Name: k.name, Kind: k.kind})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

// Dependencies returns the calls between services whose child span started
// in [end-lookback, end], summed per pair (at most the last 24 hours are
// kept), sorted by parent then child.
func (s *Store) Dependencies(end time.Time, lookback time.Duration) []Dependency {
	s.writePending()
	defer s.observeQuery("dependencies", s.clock.Now())
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.deps.links(end.Add(-lookback), end)
}
