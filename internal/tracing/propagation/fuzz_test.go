package propagation

import (
	"net/http"
	"strings"
	"testing"
)

var everyInject = []string{"tracecontext", "baggage", "b3", "b3multi", "jaeger", "datadog", "ottrace"}

// roundTrip extracts from h with every format, removes stale headers and
// injects the result in every format, then checks what an upstream would
// receive. Malformed input must never panic nor produce an invalid header.
func roundTrip(t *testing.T, h http.Header) {
	p := mustNew(t, allFormats, everyInject)
	ex := p.Extract(h)
	if ex.Found() != ex.SpanContext.IsValid() || (ex.Found() && ex.Format == "") {
		t.Fatalf("inconsistent extraction %+v", ex)
	}
	out := h.Clone()
	p.RemoveStale(out, ex.Present)
	for _, k := range staleKeys {
		if _, ok := out[k]; ok {
			t.Fatalf("stale %s left", k)
		}
	}
	for k := range out {
		if hasPrefixedBaggage(k) {
			t.Fatalf("stale %s left", k)
		}
	}
	if !ex.Found() {
		return
	}
	p.Inject(out, ex.SpanContext, ex.Baggage)
	checkOutgoing(t, out, ex.SpanContext)
	checkFieldsMatchInject(t, mustNew(t, nil, []string{"tracecontext", "baggage"}), ex.SpanContext, ex.Baggage)
}

// validHeaderValue mirrors what net/http lets through on the wire, so the
// fuzzer explores values a real client could send.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func FuzzExtractTraceContext(f *testing.F) {
	f.Add("00-"+tid128+"-"+sid+"-01", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", "")
	f.Add("00-"+tid128+"-"+sid+"-00", "", "00-"+tid128+"-"+sid+"-01")
	f.Add("cc-"+tid128+"-"+sid+"-09-future", "a=b,a=c", "")
	f.Add("00-00000000000000000000000000000000-"+sid+"-01", "k="+strings.Repeat("v", 600), "")
	f.Fuzz(func(t *testing.T, traceparent, tracestate, second string) {
		for _, v := range []string{traceparent, tracestate, second} {
			if !validHeaderValue(v) {
				return
			}
		}
		h := hdr("traceparent", traceparent, "tracestate", tracestate)
		if second != "" {
			h.Add("traceparent", second)
		}
		roundTrip(t, h)
	})
}

func FuzzExtractBaggage(f *testing.F) {
	f.Add("tenant=acme,user=alice;prop=1", "uberctx-u", "x%20y", "ot-baggage-k", "v")
	f.Add("%%%,=,==", "uberctx-", "%zz", "ot-baggage-", "")
	f.Fuzz(func(t *testing.T, bag, k1, v1, k2, v2 string) {
		for _, v := range []string{bag, v1, v2} {
			if !validHeaderValue(v) {
				return
			}
		}
		h := hdr("traceparent", "00-"+tid128+"-"+sid+"-01", "baggage", bag)
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			if validFieldName(kv[0]) {
				h.Set(kv[0], kv[1])
			}
		}
		roundTrip(t, h)
	})
}

func FuzzExtractB3(f *testing.F) {
	f.Add(tid64+"-"+sid+"-1-"+sid, "", "", "", "")
	f.Add("", tid128, sid, "1", "")
	f.Add("", tid64, sid, "", "1")
	f.Add(tid128+"-"+sid, "", "", "true", "0")
	f.Fuzz(func(t *testing.T, single, traceID, spanID, sampled, flags string) {
		for _, v := range []string{single, traceID, spanID, sampled, flags} {
			if !validHeaderValue(v) {
				return
			}
		}
		roundTrip(t, hdr("b3", single, "X-B3-TraceId", traceID, "X-B3-SpanId", spanID, "X-B3-Sampled", sampled, "X-B3-Flags", flags))
	})
}

func FuzzExtractJaeger(f *testing.F) {
	f.Add(tid128+":"+sid+":0:1", "uberctx-user", "alice")
	f.Add("abc%3Adef%3A0%3A3", "uberctx-x", "%")
	f.Add("::0:", "", "")
	f.Add(strings.Repeat("f", 33)+":1:0:1", "uberctx-a", "b")
	f.Fuzz(func(t *testing.T, uber, bagKey, bagVal string) {
		if !validHeaderValue(uber) || !validHeaderValue(bagVal) {
			return
		}
		h := hdr("uber-trace-id", uber)
		if validFieldName(bagKey) {
			h.Set(bagKey, bagVal)
		}
		roundTrip(t, h)
	})
}

func FuzzExtractDatadog(f *testing.F) {
	f.Add("11803532876627986230", "67667974448284343", "1", "_dd.p.tid=4bf92f3577b34da6", "rum")
	f.Add("1", "1", "-1", "_dd.p.dm=-4", "")
	f.Add("18446744073709551615", "18446744073709551615", "", "_dd.p.tid=0000000000000000", "")
	f.Add("0", "-5", "abc", strings.Repeat("a=b,", 200), "")
	f.Fuzz(func(t *testing.T, traceID, parentID, priority, tags, origin string) {
		for _, v := range []string{traceID, parentID, priority, tags, origin} {
			if !validHeaderValue(v) {
				return
			}
		}
		roundTrip(t, hdr("x-datadog-trace-id", traceID, "x-datadog-parent-id", parentID,
			"x-datadog-sampling-priority", priority, "x-datadog-tags", tags, "x-datadog-origin", origin))
	})
}

func FuzzExtractOT(f *testing.F) {
	f.Add(tid64, sid, "true", "ot-baggage-k", "v")
	f.Add(tid128, sid, "", "ot-baggage-", "")
	f.Add("xyz", "", "1", "", "")
	f.Fuzz(func(t *testing.T, traceID, spanID, sampled, bagKey, bagVal string) {
		for _, v := range []string{traceID, spanID, sampled, bagVal} {
			if !validHeaderValue(v) {
				return
			}
		}
		h := hdr("ot-tracer-traceid", traceID, "ot-tracer-spanid", spanID, "ot-tracer-sampled", sampled)
		if validFieldName(bagKey) {
			h.Set(bagKey, bagVal)
		}
		roundTrip(t, h)
	})
}

func validFieldName(s string) bool {
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
