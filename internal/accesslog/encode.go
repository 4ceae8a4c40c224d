package accesslog

import (
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/redact"
)

// Timestamp layouts: JSON records use RFC 3339 in UTC with nine fractional
// digits (fixed width, so lines sort as text); CLF uses its own layout in
// the clock's zone.
const (
	jsonTimeLayout = "2006-01-02T15:04:05.000000000Z07:00"
	clfTimeLayout  = "02/Jan/2006:15:04:05 -0700"
)

type format uint8

const (
	formatJSON format = iota
	formatCommon
	formatCombined
)

// headerField is one allow-listed header, resolved at build time.
type headerField struct {
	canon   string // canonical key, for a direct map lookup
	jsonKey string // `,"http.request.header.x-request-id":`
}

// encoder turns a finished request into one log line. It is immutable after
// newEncoder and safe for concurrent use; encoding allocates nothing.
type encoder struct {
	format      format
	reqHeaders  []headerField
	respHeaders []headerField
	redact      *redact.Policy
	omitUA      bool
	omitReferer bool
}

// newEncoder builds the encoder of cfg. pol is the redaction policy; nil
// means the default policy with cfg's own redact_query_params and
// redact_headers.
func newEncoder(cfg config.AccessLog, pol *redact.Policy) *encoder {
	if pol == nil {
		pol = (&config.Config{AccessLog: cfg}).RedactPolicy()
	}
	e := &encoder{redact: pol}
	switch cfg.Format {
	case config.AccessLogCommon:
		e.format = formatCommon
	case config.AccessLogCombined:
		e.format = formatCombined
	}
	e.omitUA = pol.Header("User-Agent")
	e.omitReferer = pol.Header("Referer")
	fields := func(prefix string, names []string) []headerField {
		var out []headerField
		seen := map[string]bool{}
		for _, n := range names {
			c := textproto.CanonicalMIMEHeaderKey(n)
			// Validation rejects redacted headers; skip them here too so
			// that a config built in code cannot leak one. User-Agent and
			// Referer have their own fields (Referer with its query
			// redacted).
			if pol.Header(c) || seen[c] || c == "User-Agent" || c == "Referer" {
				continue
			}
			seen[c] = true
			out = append(out, headerField{canon: c, jsonKey: `,"` + prefix + strings.ToLower(c) + `":`})
		}
		return out
	}
	e.reqHeaders = fields("http.request.header.", cfg.RequestHeaders)
	e.respHeaders = fields("http.response.header.", cfg.ResponseHeaders)
	return e
}

// encode appends the record of one finished request, with its trailing
// newline, to dst. rec must be finished (Record.Finish); respHeader is the
// response's header map. encode reads but never keeps its arguments.
func (e *encoder) encode(dst []byte, rec *observe.Record, r *http.Request, respHeader http.Header) []byte {
	if e.format == formatJSON {
		return e.appendJSON(dst, rec, r, respHeader)
	}
	return e.appendCLF(dst, rec, r, respHeader)
}

// requestTarget returns the path and raw query the client sent.
func requestTarget(r *http.Request) (path, query string) {
	if u := r.RequestURI; u != "" && u[0] == '/' {
		path, query, _ = strings.Cut(u, "?")
		return path, query
	}
	if r.URL == nil {
		return "", ""
	}
	return r.URL.EscapedPath(), r.URL.RawQuery
}

func protocolVersion(r *http.Request) string {
	switch {
	case r.ProtoMajor == 1 && r.ProtoMinor == 1:
		return "1.1"
	case r.ProtoMajor == 2:
		return "2"
	case r.ProtoMajor == 1 && r.ProtoMinor == 0:
		return "1.0"
	case r.ProtoMajor == 3:
		return "3"
	}
	return ""
}

func startTime(rec *observe.Record) time.Time {
	if rec.Start.IsZero() {
		return rec.End
	}
	return rec.Start
}

func isError(rec *observe.Record) bool {
	return rec.Status >= 400 || rec.ErrorKind != observe.ErrNone || rec.Aborted
}

func (e *encoder) appendJSON(dst []byte, rec *observe.Record, r *http.Request, respHeader http.Header) []byte {
	dst = append(dst, `{"timestamp":"`...)
	dst = startTime(rec).UTC().AppendFormat(dst, jsonTimeLayout)
	dst = append(dst, '"')
	if t := &rec.Trace; t.Valid {
		dst = append(dst, `,"trace_id":"`...)
		dst = appendHex(dst, t.TraceID[:])
		dst = append(dst, `","span_id":"`...)
		dst = appendHex(dst, t.SpanID[:])
		if t.Sampled {
			dst = append(dst, `","trace_sampled":true`...)
		} else {
			dst = append(dst, `","trace_sampled":false`...)
		}
	}
	dst = appendJSONField(dst, "listener", rec.Listener)

	path, query := requestTarget(r)
	dst = append(dst, `,"http.request.method":`...)
	dst = appendJSONString(dst, r.Method)
	dst = append(dst, `,"url.path":`...)
	dst = appendJSONString(dst, path)
	if query != "" {
		dst = append(dst, `,"url.query":"`...)
		dst = e.appendQuery(dst, query, appendJSONBody)
		dst = append(dst, '"')
	}
	dst = appendJSONField(dst, "http.route", rec.RouteTemplate)
	dst = appendJSONField(dst, "network.protocol.version", protocolVersion(r))
	dst = appendJSONField(dst, "server.address", r.Host)
	dst = appendJSONField(dst, "client.address", rec.ClientAddr)
	if !e.omitUA {
		dst = appendJSONField(dst, "user_agent.original", headerValue(r.Header, "User-Agent"))
	}
	if !e.omitReferer {
		if ref := headerValue(r.Header, "Referer"); ref != "" {
			dst = append(dst, `,"http.request.header.referer":["`...)
			dst = e.appendURL(dst, ref, appendJSONBody)
			dst = append(dst, `"]`...)
		}
	}
	dst = append(dst, `,"http.response.status_code":`...)
	dst = appendInt(dst, int64(rec.Status))

	dst = appendJSONField(dst, "route", rec.Route)
	dst = appendJSONField(dst, "service", rec.Service)
	dst = appendJSONField(dst, "upstream", rec.Upstream)
	if s := &rec.Split; s.Service != "" {
		dst = appendJSONField(dst, "split.rule", s.Rule)
		dst = appendJSONField(dst, "split.service", s.Service)
		dst = appendJSONField(dst, "split.reason", s.Reason)
	}
	dst = append(dst, `,"attempts":`...)
	dst = appendInt(dst, int64(len(rec.Attempts)))
	if len(rec.Attempts) > 1 {
		dst = append(dst, `,"retry_reasons":[`...)
		for i := 1; i < len(rec.Attempts); i++ {
			if i > 1 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, rec.Attempts[i].RetryReason)
		}
		dst = append(dst, ']')
	}
	dst = appendJSONField(dst, "breaker", rec.Breaker)
	dst = appendJSONField(dst, "rate_limit", rec.RateLimit)
	dst = appendJSONField(dst, "fault", rec.Fault)
	if rec.Mirrored {
		dst = append(dst, `,"mirrored":true`...)
	}
	if rec.Aborted {
		dst = append(dst, `,"aborted":true`...)
	}
	if rec.GRPCStatus >= 0 {
		dst = append(dst, `,"rpc.grpc.status_code":`...)
		dst = appendInt(dst, int64(rec.GRPCStatus))
	}
	dst = appendJSONField(dst, "error.type", rec.ErrorKind.String())

	dst = append(dst, `,"http.request.body.size":`...)
	dst = appendInt(dst, rec.BytesIn)
	dst = append(dst, `,"http.response.body.size":`...)
	dst = appendInt(dst, rec.BytesOut)
	dst = append(dst, `,"duration_seconds":`...)
	dst = appendSeconds(dst, rec.Total())
	dst = append(dst, `,"upstream_duration_seconds":`...)
	dst = appendSeconds(dst, rec.UpstreamTime())
	dst = append(dst, `,"overhead_seconds":`...)
	dst = appendSeconds(dst, rec.Overhead())

	dst = appendJSONHeaders(dst, e.reqHeaders, r.Header)
	dst = appendJSONHeaders(dst, e.respHeaders, respHeader)
	return append(dst, '}', '\n')
}

// appendJSONField appends `,"key":"value"`, nothing when value is empty.
// key must need no escaping.
func appendJSONField(dst []byte, key, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return appendJSONString(dst, value)
}

// appendJSONHeaders writes each present header as an array of its values,
// the OpenTelemetry shape of http.*.header.<name>.
func appendJSONHeaders(dst []byte, fields []headerField, h http.Header) []byte {
	for i := range fields {
		vs := h[fields[i].canon]
		if len(vs) == 0 {
			continue
		}
		dst = append(dst, fields[i].jsonKey...)
		dst = append(dst, '[')
		for j, v := range vs {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, v)
		}
		dst = append(dst, ']')
	}
	return dst
}

// headerValue is h.Get for a canonical key, without re-canonicalising.
func headerValue(h http.Header, canon string) string {
	if vs := h[canon]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// appendCLF writes the Common or Combined Log Format:
//
//	client - - [time] "METHOD target PROTO" status bytes ["referer" "user-agent"] trace_id route duration ["header"...]
//
// The fields after the standard ones are the trace id ("-" without
// tracing), the route name ("-" when none matched), the total duration in
// seconds and the allow-listed headers, quoted, request headers first,
// several values joined by ", ".
func (e *encoder) appendCLF(dst []byte, rec *observe.Record, r *http.Request, respHeader http.Header) []byte {
	dst = appendCLFToken(dst, rec.ClientAddr)
	dst = append(dst, " - - ["...)
	dst = startTime(rec).AppendFormat(dst, clfTimeLayout)
	dst = append(dst, `] "`...)
	dst = appendCLFBody(dst, r.Method, true)
	dst = append(dst, ' ')
	path, query := requestTarget(r)
	dst = appendCLFBody(dst, path, true)
	if query != "" {
		dst = append(dst, '?')
		dst = e.appendQuery(dst, query, appendCLFTokenBody)
	}
	dst = append(dst, ' ')
	dst = appendCLFBody(dst, r.Proto, true)
	dst = append(dst, '"', ' ')
	dst = appendInt(dst, int64(rec.Status))
	dst = append(dst, ' ')
	if rec.BytesOut > 0 {
		dst = appendInt(dst, rec.BytesOut)
	} else {
		dst = append(dst, '-')
	}
	if e.format == formatCombined {
		dst = append(dst, ' ')
		ref := ""
		if !e.omitReferer {
			ref = headerValue(r.Header, "Referer")
		}
		if ref == "" {
			dst = append(dst, `"-"`...)
		} else {
			dst = append(dst, '"')
			dst = e.appendURL(dst, ref, appendCLFQuotedBody)
			dst = append(dst, '"')
		}
		dst = append(dst, ' ')
		if e.omitUA {
			dst = append(dst, `"-"`...)
		} else {
			dst = appendCLFQuoted(dst, headerValue(r.Header, "User-Agent"))
		}
	}
	dst = append(dst, ' ')
	if rec.Trace.Valid {
		dst = appendHex(dst, rec.Trace.TraceID[:])
	} else {
		dst = append(dst, '-')
	}
	dst = append(dst, ' ')
	dst = appendCLFToken(dst, rec.Route)
	dst = append(dst, ' ')
	dst = appendSeconds(dst, rec.Total())
	dst = appendCLFHeaders(dst, e.reqHeaders, r.Header)
	dst = appendCLFHeaders(dst, e.respHeaders, respHeader)
	return append(dst, '\n')
}

func appendCLFTokenBody(dst []byte, s string) []byte  { return appendCLFBody(dst, s, true) }
func appendCLFQuotedBody(dst []byte, s string) []byte { return appendCLFBody(dst, s, false) }

func appendCLFHeaders(dst []byte, fields []headerField, h http.Header) []byte {
	for i := range fields {
		vs := h[fields[i].canon]
		dst = append(dst, ' ')
		if len(vs) == 0 {
			dst = append(dst, `"-"`...)
			continue
		}
		dst = append(dst, '"')
		for j, v := range vs {
			if j > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendCLFBody(dst, v, false)
		}
		dst = append(dst, '"')
	}
	return dst
}
