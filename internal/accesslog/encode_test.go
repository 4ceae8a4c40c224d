package accesslog

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenCase is one request to encode in every format.
type goldenCase struct {
	name string
	req  func() *http.Request
	rec  func() *observe.Record
	resp http.Header
}

// secrets are values that must never appear in any log line.
var secrets = []string{"secret", "Bearer", "session=", "hunter2"}

func goldenCases() []goldenCase {
	return []goldenCase{
		{
			name: "basic",
			req:  sampleRequest,
			rec:  sampleRecord,
			resp: http.Header{"Content-Type": {"application/json"}, "Set-Cookie": {"sid=secret-cookie"}},
		},
		{
			name: "retries_split_breaker",
			req: func() *http.Request {
				r := sampleRequest()
				r.Method = "POST"
				r.RequestURI = "/orders"
				r.URL = &url.URL{Path: "/orders"}
				r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
				r.Header.Set("X-Request-Id", "req-2")
				r.Header.Add("X-Request-Id", "req-2b")
				return r
			},
			rec: func() *observe.Record {
				rec := sampleRecord()
				rec.Route, rec.RouteTemplate = "orders", "/orders"
				rec.Service, rec.Upstream = "orders-canary", "10.0.1.9:9000"
				rec.Split = observe.SplitChoice{Rule: "orders", Service: "orders-canary", Reason: "weight"}
				rec.Attempts = rec.Attempts[:0]
				for i, reason := range []string{"", "connect_error", "status_503"} {
					rec.AddAttempt(observe.Attempt{Service: "orders-canary", Upstream: "10.0.1.9:9000",
						Duration: time.Duration(i+1) * time.Millisecond, Status: 503, RetryReason: reason})
				}
				rec.LastAttempt().ErrorKind = observe.ErrUpstreamTimeout
				rec.Status = 504
				rec.ErrorKind = observe.ErrUpstreamTimeout
				rec.GRPCStatus = 14
				rec.Breaker = "half_open"
				rec.Fault = "delay"
				rec.Mirrored = true
				rec.BytesIn, rec.BytesOut = 230, 87
				rec.End = rec.Start.Add(2*time.Second + 7)
				return rec
			},
			resp: http.Header{"Content-Type": {"application/json"}},
		},
		{
			name: "rate_limited_unsampled",
			req:  sampleRequest,
			rec: func() *observe.Record {
				rec := sampleRecord()
				rec.Attempts = rec.Attempts[:0]
				rec.Service, rec.Upstream = "", ""
				rec.Status = 429
				rec.ErrorKind = observe.ErrRateLimited
				rec.RateLimit = "per-client"
				rec.Trace.Sampled = false
				rec.BytesOut = 0
				rec.End = rec.Start.Add(41 * time.Microsecond)
				return rec
			},
		},
		{
			name: "no_route_no_tracing",
			req: func() *http.Request {
				r := sampleRequest()
				r.RequestURI, r.URL = "/nope", &url.URL{Path: "/nope"}
				r.Header = http.Header{}
				return r
			},
			rec: func() *observe.Record {
				rec := new(observe.Record)
				rec.Reset()
				rec.Start, rec.End = t0, t0.Add(80*time.Microsecond)
				rec.Listener, rec.ClientAddr = "public", "2001:db8::1"
				rec.Status, rec.ErrorKind, rec.BytesOut = 404, observe.ErrNoRoute, 52
				return rec
			},
		},
		{
			name: "hostile",
			req: func() *http.Request {
				return &http.Request{
					Method:     "GE\"T\n",
					RequestURI: "/a b\"c\n{\"fake\":1}?token=secret1&ToKen=secret2&%74oken=secret3&t%6Fken&a=%22x%0A&access+token=secret4&q=\xff",
					URL:        &url.URL{Path: "/a"},
					Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
					Host: "evil\"host\r\n",
					Header: http.Header{
						"User-Agent":          {"Mozilla\n{\"level\":\"error\",\"msg\":\"fake\"}\r\n127.0.0.1 - - [x] \"GET / HTTP/1.1\" 200 1"},
						"X-Request-Id":        {"id\x00\x1b[31m\\\"\u2028\u2029\xff\xfe end", "second \"value\""},
						"Authorization":       {"Bearer secret-auth"},
						"Proxy-Authorization": {"Basic hunter2"},
						"Cookie":              {"session=secret-cookie"},
						"X-Api-Key":           {"secret-api-key"},
						"Referer":             {"https://evil.example/p?access_token=secret5#frag\n"},
					},
				}
			},
			rec: func() *observe.Record {
				rec := sampleRecord()
				rec.ClientAddr = "198.51.100.1"
				return rec
			},
			resp: http.Header{"Content-Type": {"text/html\r\nX-Injected: 1"}, "Set-Cookie": {"sid=secret-set-cookie"}},
		},
	}
}

func goldenConfig(format string) config.AccessLog {
	return testConfig(func(a *config.AccessLog) {
		a.Format = format
		a.RequestHeaders = []string{"X-Request-Id"}
		a.ResponseHeaders = []string{"Content-Type"}
		a.RedactHeaders = []string{"X-Api-Key"}
		a.RedactQueryParams = []string{"token", "access_token", "access token"}
	})
}

func TestGolden(t *testing.T) {
	for _, format := range []string{config.AccessLogJSON, config.AccessLogCommon, config.AccessLogCombined} {
		t.Run(format, func(t *testing.T) {
			enc := newEncoder(goldenConfig(format), nil)
			var out []byte
			for _, c := range goldenCases() {
				line := enc.encode(nil, c.rec(), c.req(), c.resp)
				checkLine(t, c.name, format, line)
				out = append(out, line...)
			}
			golden := filepath.Join("testdata", format+".golden")
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("%s differs from the encoder's output:\n--- got\n%s--- want\n%s", golden, out, want)
			}
		})
	}
}

// checkLine asserts what every line must satisfy: one line, no secret, and
// valid JSON (json) or printable ASCII (CLF).
func checkLine(t *testing.T, name, format string, line []byte) {
	t.Helper()
	if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
		t.Errorf("%s/%s: not exactly one line: %q", name, format, line)
	}
	if bytes.ContainsAny(line[:len(line)-1], "\r\u2028\u2029") {
		t.Errorf("%s/%s: line break inside the line: %q", name, format, line)
	}
	for _, s := range secrets {
		if bytes.Contains(line, []byte(s)) {
			t.Errorf("%s/%s: secret %q leaked: %s", name, format, s, line)
		}
	}
	if format == config.AccessLogJSON {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Errorf("%s: invalid JSON: %v\n%s", name, err, line)
		}
		return
	}
	for _, c := range line[:len(line)-1] {
		if c < 0x20 || c >= 0x7f {
			t.Errorf("%s/%s: byte %#x outside printable ASCII: %q", name, format, c, line)
			break
		}
	}
}

func TestJSONFields(t *testing.T) {
	enc := newEncoder(goldenConfig(config.AccessLogJSON), nil)
	line := enc.encode(nil, sampleRecord(), sampleRequest(), http.Header{"Content-Type": {"application/json"}})
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"timestamp":                         "2026-03-14T15:09:26.535897932Z",
		"trace_id":                          "4bf92f3577b34da6a3ce929d0e0e4736",
		"span_id":                           "00f067aa0ba902b7",
		"trace_sampled":                     true,
		"listener":                          "public",
		"http.request.method":               "GET",
		"url.path":                          "/users/42",
		"url.query":                         "page=2&token=REDACTED",
		"http.route":                        "/users/{id}",
		"network.protocol.version":          "1.1",
		"server.address":                    "api.example.com",
		"client.address":                    "203.0.113.7",
		"user_agent.original":               "curl/8.5.0",
		"http.request.header.referer":       []any{"https://shop.example.com/cart?token=REDACTED&x=1"},
		"http.response.status_code":         200.0,
		"route":                             "users",
		"service":                           "users",
		"upstream":                          "10.0.0.5:8080",
		"attempts":                          1.0,
		"http.request.body.size":            0.0,
		"http.response.body.size":           1532.0,
		"duration_seconds":                  0.012345678,
		"upstream_duration_seconds":         0.0095,
		"overhead_seconds":                  0.002845678,
		"http.request.header.x-request-id":  []any{"req-1"},
		"http.response.header.content-type": []any{"application/json"},
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("field %q missing", k)
			continue
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(v)
		if !bytes.Equal(gb, wb) {
			t.Errorf("%s = %s, want %s", k, gb, wb)
		}
	}
	for k := range m {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected field %q = %v", k, m[k])
		}
	}
}

func TestNoTraceIDWithoutTracing(t *testing.T) {
	rec := sampleRecord()
	rec.Trace = observe.TraceContext{}
	for _, f := range []string{config.AccessLogJSON, config.AccessLogCombined} {
		line := string(newEncoder(goldenConfig(f), nil).encode(nil, rec, sampleRequest(), nil))
		if strings.Contains(line, "trace_id") || strings.Contains(line, "4bf92f35") {
			t.Errorf("%s: trace id written without tracing: %s", f, line)
		}
	}
}

// TestQueryRedaction checks the encoder's use of the redaction policy
// (package redact tests the policy itself): escaping per format, and the
// cut of a long query or Referer, which never leaks a value.
func TestQueryRedaction(t *testing.T) {
	e := newEncoder(testConfig(func(a *config.AccessLog) { a.RedactQueryParams = []string{"api key"} }), nil)
	cases := []struct{ in, want string }{
		{"", ""},
		{"a=1", "a=1"},
		{"token=x", "token=REDACTED"},
		{"api+key=x&a=\"", `api+key=REDACTED&a=\"`},
		{"a=1;token=x", "a=1;token=REDACTED"},
		{"token=x;token=y&b", "token=REDACTED&b"},
	}
	for _, c := range cases {
		got := string(e.appendQuery(nil, c.in, appendJSONBody))
		if got != c.want {
			t.Errorf("appendQuery(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// A long query is cut without leaking the value of a key cut short.
	long := strings.Repeat("a=1&", maxValueBytes/4-1) + "token=secret"
	if got := string(e.appendQuery(nil, long, appendJSONBody)); strings.Contains(got, "secret") || !strings.HasSuffix(got, truncMark) {
		t.Errorf("truncated query: ...%s", got[len(got)-40:])
	}
	ref := "https://x/" + strings.Repeat("p", maxValueBytes) + "?token=secret"
	if got := string(e.appendURL(nil, ref, appendJSONBody)); strings.Contains(got, "secret") || !strings.HasSuffix(got, truncMark) {
		t.Errorf("long referer: ...%s", got[len(got)-30:])
	}
	ref = "https://ann:" + strings.Repeat("p", maxValueBytes) + "@x/"
	if got := string(e.appendURL(nil, ref, appendCLFQuotedBody)); strings.Contains(got, "pp") || strings.Contains(got, "ann") {
		t.Errorf("password of a long referer: %.60s", got)
	}
}

func TestEscapeTruncates(t *testing.T) {
	long := strings.Repeat("é", maxValueBytes) // two bytes each
	got := appendJSONString(nil, long)
	if len(got) > maxValueBytes+16 || !json.Valid(got) || !bytes.HasSuffix(got, []byte(`..."`)) {
		t.Fatalf("truncated string: len %d, valid %v, tail %q", len(got), json.Valid(got), got[len(got)-8:])
	}
	clf := appendCLFQuoted(nil, strings.Repeat("a", maxValueBytes+10))
	if len(clf) != maxValueBytes+len(truncMark)+2 {
		t.Fatalf("CLF truncation: len %d", len(clf))
	}
}

func TestAppendSeconds(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want string
	}{
		{0, "0.000000000"},
		{1, "0.000000001"},
		{12345678, "0.012345678"},
		{2*time.Second + 7, "2.000000007"},
		{-5, "0.000000000"},
		{3 * time.Hour, "10800.000000000"},
	}
	for _, c := range cases {
		if got := string(appendSeconds(nil, c.d)); got != c.want {
			t.Errorf("appendSeconds(%v) = %s, want %s", c.d, got, c.want)
		}
	}
}

func FuzzEncode(f *testing.F) {
	f.Add("GET", "/a?token=x", "curl", "v\n{\"x\":1}", "https://r/?token=y", "h", byte(0))
	f.Add("P\x00", "/\xff\u2028", "\"\\", "\xfe\xff", "\x1b[31m", "host\r\n", byte(1))
	f.Add("", "", "", "", "", "", byte(2))
	encs := []*encoder{
		newEncoder(goldenConfig(config.AccessLogJSON), nil),
		newEncoder(goldenConfig(config.AccessLogCommon), nil),
		newEncoder(goldenConfig(config.AccessLogCombined), nil),
	}
	f.Fuzz(func(t *testing.T, method, target, ua, hdr, referer, host string, fmtSel byte) {
		r := &http.Request{
			Method: method, RequestURI: target, URL: &url.URL{Path: target},
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: host,
			Header: http.Header{
				"User-Agent":    {ua},
				"X-Request-Id":  {hdr, ua},
				"Referer":       {referer},
				"Authorization": {"Bearer secret-" + hdr},
			},
		}
		rec := sampleRecord()
		rec.RouteTemplate = hdr
		resp := http.Header{"Content-Type": {hdr}}
		enc := encs[int(fmtSel)%len(encs)]
		line := enc.encode(nil, rec, r, resp)
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("not one line: %q", line)
		}
		if bytes.Contains(line, []byte("Bearer")) {
			t.Fatalf("authorization leaked: %q", line)
		}
		if enc.format == formatJSON {
			if !json.Valid(line) {
				t.Fatalf("invalid JSON: %q", line)
			}
			if bytes.ContainsAny(line[:len(line)-1], "\r\u2028\u2029") {
				t.Fatalf("line separator in JSON: %q", line)
			}
			return
		}
		for _, c := range line[:len(line)-1] {
			if c < 0x20 || c >= 0x7f {
				t.Fatalf("non-printable byte %#x in CLF line %q", c, line)
			}
		}
	})
}

// The default policy applies without any config.
func TestDefaultQueryRedaction(t *testing.T) {
	enc := newEncoder(testConfig(nil), nil)
	r := sampleRequest()
	r.RequestURI = "/login?user=ann&password=hunter2&api_key=k1&code=c1&page=3"
	line := string(enc.encode(nil, sampleRecord(), r, nil))
	if !strings.Contains(line, `"url.query":"user=ann&password=REDACTED&api_key=REDACTED&code=REDACTED&page=3"`) {
		t.Fatalf("default redaction: %s", line)
	}
}
