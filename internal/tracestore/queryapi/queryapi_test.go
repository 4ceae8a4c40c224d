package queryapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/tracestore"
)

var base = time.Unix(1700000000, 0).UTC()

func at(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }

func mustID(t *testing.T, s string) tracestore.TraceID {
	t.Helper()
	id, err := tracestore.ParseTraceID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func spanID(s string) tracestore.SpanID {
	var b [8]byte
	for i := 0; i < 8; i++ {
		fmt.Sscanf(s[2*i:2*i+2], "%02x", &b[i])
	}
	return b
}

// fixtureStore holds the conformance trace: three spans over two
// processes, with references, a link, events and every attribute type.
func fixtureStore(t *testing.T) (*tracestore.Store, *clock.Fake) {
	t.Helper()
	fc := clock.NewFake(at(60_000))
	s, err := tracestore.New(tracestore.Options{Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	tid := mustID(t, "4bf92f3577b34da6a3ce929d0e0e4736")
	scope := tracestore.Scope{Name: "frontend-lib", Version: "1.2.0"}
	front := s.NewBatch(tracestore.Resource{ServiceName: "frontend", Attributes: []tracestore.KeyValue{
		tracestore.Int("process.pid", 4242), tracestore.String("host.name", "web-1"),
	}})
	front.AddSpan(&tracestore.Span{
		TraceID: tid, SpanID: spanID("00f067aa0ba902b7"), TraceState: "congo=t61rcWkgMzE", Flags: 1,
		Name: "GET /cart", Kind: tracestore.KindServer, Start: at(0), End: at(25),
		StatusCode: tracestore.StatusOK, Scope: scope,
		Attributes: []tracestore.KeyValue{
			tracestore.String("http.request.method", "GET"),
			tracestore.Int("http.response.status_code", 200),
			tracestore.Float("sampling.ratio", 0.5),
			tracestore.Bool("cache.hit", false),
			{Key: "payload", Type: tracestore.TypeBinary, Bytes: []byte{0xde, 0xad}},
			tracestore.String("tags", `["a","b"]`),
		},
		Events: []tracestore.Event{{Time: at(1), Name: "cache.miss", Attributes: []tracestore.KeyValue{tracestore.String("cache.key", "u:1")}}},
	})
	front.AddSpan(&tracestore.Span{
		TraceID: tid, SpanID: spanID("00f067aa0ba902b8"), ParentSpanID: spanID("00f067aa0ba902b7"), Flags: 1,
		Name: "GET cart", Kind: tracestore.KindClient, Start: at(2), End: at(22),
		StatusCode: tracestore.StatusError, StatusMessage: "upstream 503", Scope: scope,
		Events: []tracestore.Event{{Time: at(7), Name: "retry", Attributes: []tracestore.KeyValue{
			tracestore.Float("vantage.value", 2), tracestore.String("vantage.reason", "status_503"),
		}}},
		Links: []tracestore.Link{{TraceID: mustID(t, "abc"), SpanID: spanID("0000000000000def"), Attributes: []tracestore.KeyValue{tracestore.String("why", "batch")}}},
	})
	s.Write(front)
	cart := s.NewBatch(tracestore.Resource{ServiceName: "cart", Attributes: []tracestore.KeyValue{tracestore.String("k8s.namespace.name", "shop")}})
	cart.AddSpan(&tracestore.Span{
		TraceID: tid, SpanID: spanID("00f067aa0ba902b9"), ParentSpanID: spanID("00f067aa0ba902b8"),
		Name: "cart.load", Kind: tracestore.KindServer, Start: at(3), End: at(18),
		Attributes: []tracestore.KeyValue{tracestore.Int("db.rows", 3)},
		Events: []tracestore.Event{{Time: at(13), Name: "exception", Attributes: []tracestore.KeyValue{
			tracestore.String("exception.type", "LockError"), tracestore.String("exception.message", "row locked"),
		}}},
	})
	cart.AddLog(&tracestore.LogRecord{Time: at(14), TraceID: tid, SpanID: spanID("00f067aa0ba902b9"), SeverityNumber: 17, SeverityText: "ERROR", Body: "row locked, retrying"})
	s.Write(cart)
	return s, fc
}

func serve(t *testing.T, s *tracestore.Store, fc *clock.Fake) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/jaeger/", http.StripPrefix("/jaeger", Jaeger(s, Options{Clock: fc})))
	v := Vantage(s, Options{Clock: fc})
	mux.Handle("GET /api/traces", v)
	mux.Handle("GET /api/traces/{traceID}", v)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, srv *httptest.Server, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", path, ct)
	}
	return resp.StatusCode, b
}

func decode(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

// TestJaegerTraceConformance compares GET /jaeger/api/traces/{id} with
// the JSON Jaeger's query service returns for the same spans (its
// model/json, the OpenTelemetry Collector's OTLP-to-Jaeger translation,
// and its SortTagsAndLogFields adjuster), written out in testdata from
// Jaeger's documented model; TestAgainstCapturedJaeger compares with
// answers captured from a real Jaeger.
func TestJaegerTraceConformance(t *testing.T) {
	s, fc := fixtureStore(t)
	srv := serve(t, s, fc)
	code, body := get(t, srv, "/jaeger/api/traces/4bf92f3577b34da6a3ce929d0e0e4736")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	want, err := os.ReadFile("testdata/jaeger_trace.json")
	if err != nil {
		t.Fatal(err)
	}
	if got, w := decode(t, body), decode(t, want); !reflect.DeepEqual(got, w) {
		gb, _ := json.MarshalIndent(got, "", "  ")
		t.Errorf("trace JSON differs from Jaeger's:\n%s", gb)
	}
	// Jaeger's search returns the same trace objects in the same envelope.
	code, body = get(t, srv, "/jaeger/api/traces?service=cart&start=1699999990000000&end=1700000010000000")
	if code != http.StatusOK {
		t.Fatalf("search status %d: %s", code, body)
	}
	if got, w := decode(t, body), decode(t, want); !reflect.DeepEqual(got, w) {
		t.Errorf("search JSON differs from Jaeger's: %s", body)
	}
}

func TestJaegerEndpoints(t *testing.T) {
	s, fc := fixtureStore(t)
	srv := serve(t, s, fc)
	cases := []struct {
		path string
		code int
		want string // JSON
	}{
		{"/jaeger/api/services", 200, `{"data":["cart","frontend"],"total":2,"limit":0,"offset":0,"errors":null}`},
		{"/jaeger/api/services/frontend/operations", 200, `{"data":["GET /cart","GET cart"],"total":2,"limit":0,"offset":0,"errors":null}`},
		{"/jaeger/api/operations?service=frontend", 200, `{"data":[{"name":"GET /cart","spanKind":"server"},{"name":"GET cart","spanKind":"client"}],"total":2,"limit":0,"offset":0,"errors":null}`},
		{"/jaeger/api/operations?service=frontend&spanKind=client", 200, `{"data":[{"name":"GET cart","spanKind":"client"}],"total":1,"limit":0,"offset":0,"errors":null}`},
		{"/jaeger/api/operations", 400, `{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":400,"msg":"parameter 'service' is required"}]}`},
		{"/jaeger/api/traces/0af7651916cd43dd8448eb211c80319c", 404, `{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}`},
		{"/jaeger/api/dependencies?endTs=1700000060000&lookback=3600000", 200, `{"data":[{"parent":"frontend","child":"cart","callCount":1}],"total":0,"limit":0,"offset":0,"errors":null}`},
		{"/jaeger/api/dependencies?endTs=1600000000000", 200, `{"data":[],"total":0,"limit":0,"offset":0,"errors":null}`},
		{"/jaeger/api/traces?traceID=4bf92f3577b34da6a3ce929d0e0e4736&traceID=1", 200, ""},
	}
	for _, c := range cases {
		code, body := get(t, srv, c.path)
		if code != c.code {
			t.Errorf("%s: status %d, want %d: %s", c.path, code, c.code, body)
			continue
		}
		if c.want != "" && !reflect.DeepEqual(decode(t, body), decode(t, []byte(c.want))) {
			t.Errorf("%s:\n got %s\nwant %s", c.path, body, c.want)
		}
	}
	// By trace ids: the missing one is reported in errors[].
	_, body := get(t, srv, "/jaeger/api/traces?traceID=4bf92f3577b34da6a3ce929d0e0e4736&traceID=1")
	var r struct {
		Data   []jTrace
		Errors []jError
	}
	json.Unmarshal(body, &r)
	if len(r.Data) != 1 || len(r.Errors) != 1 || r.Errors[0].TraceID != "0000000000000001" {
		t.Errorf("search by trace ids: %s", body)
	}
}

func TestJaegerSearchFilters(t *testing.T) {
	s, fc := fixtureStore(t)
	srv := serve(t, s, fc)
	window := "&start=1699999990000000&end=1700000010000000"
	cases := []struct {
		query string
		n     int
	}{
		{"service=frontend", 1},
		{"service=frontend&operation=GET+cart", 1},
		{"service=frontend&operation=nope", 0},
		{`service=frontend&tags={"http.request.method":"GET"}`, 1}, // unencoded JSON, as some clients send it
		{"service=frontend&tags=" + url.QueryEscape(`{"http.request.method":"POST"}`), 0},
		{"service=frontend&tag=error:true", 1},
		{"service=cart&tag=k8s.namespace.name:shop", 1},
		{"service=cart&tag=exception.type:LockError", 1},
		{"service=frontend&minDuration=21ms", 1},
		{"service=frontend&minDuration=26ms", 0},
		{"service=cart&maxDuration=10ms", 0},
		{"service=frontend&limit=1", 1},
	}
	for _, c := range cases {
		path := "/jaeger/api/traces?" + c.query + window
		code, body := get(t, srv, path)
		var r struct{ Data []jTrace }
		json.Unmarshal(body, &r)
		if code != 200 || len(r.Data) != c.n {
			t.Errorf("%s: status %d, %d traces, want %d: %s", c.query, code, len(r.Data), c.n, body)
		}
	}
	// Outside the time range.
	_, body := get(t, srv, "/jaeger/api/traces?service=frontend&start=1600000000000000&end=1600000010000000")
	if strings.Contains(string(body), "GET /cart") {
		t.Errorf("trace outside the time range returned")
	}
}

func TestJaegerBadParameters(t *testing.T) {
	s, fc := fixtureStore(t)
	srv := serve(t, s, fc)
	for path, msg := range map[string]string{
		"/jaeger/api/traces":                                         "parameter 'service' is required",
		"/jaeger/api/traces?service=a&limit=x":                       "unable to parse param 'limit'",
		"/jaeger/api/traces?service=a&limit=-1":                      "unable to parse param 'limit'",
		"/jaeger/api/traces?service=a&start=yesterday":               "unable to parse param 'start'",
		"/jaeger/api/traces?service=a&minDuration=20":                "unable to parse param 'minDuration'",
		"/jaeger/api/traces?service=a&minDuration=2s&maxDuration=1s": "'maxDuration' should be greater than 'minDuration'",
		"/jaeger/api/traces?service=a&tag=novalue":                   "malformed 'tag' parameter",
		"/jaeger/api/traces?service=a&tags=%7Bbad":                   "malformed 'tags' parameter",
		"/jaeger/api/traces?service=a&start=20&end=10":               "'end' should not be before 'start'",
		"/jaeger/api/traces?service=a&lookback=soon":                 "unable to parse param 'lookback'",
		"/jaeger/api/traces/xyz":                                     "unable to parse trace id",
		"/jaeger/api/traces/00000000000000000000000000000000":        "unable to parse trace id",
		"/jaeger/api/dependencies?endTs=now":                         "unable to parse param 'endTs'",
		"/jaeger/api/dependencies?lookback=-5":                       "unable to parse param 'lookback'",
		"/jaeger/api/operations?service=a&spanKind=SERVER":           "unable to parse param 'spanKind'",
	} {
		code, body := get(t, srv, path)
		var r jResponse
		json.Unmarshal(body, &r)
		if code != http.StatusBadRequest || len(r.Errors) != 1 || r.Errors[0].Code != 400 || !strings.Contains(r.Errors[0].Msg, msg) {
			t.Errorf("%s: status %d, body %s; want 400 with %q", path, code, body, msg)
		}
	}
}

func TestV3(t *testing.T) {
	s, fc := fixtureStore(t)
	srv := serve(t, s, fc)
	code, body := get(t, srv, "/jaeger/api/v3/services")
	if code != 200 || string(body) != `{"services":["cart","frontend"]}`+"\n" {
		t.Errorf("services: %d %s", code, body)
	}
	code, body = get(t, srv, "/jaeger/api/v3/operations?service=cart&span_kind=server")
	if code != 200 || string(body) != `{"operations":[{"name":"cart.load","spanKind":"server"}]}`+"\n" {
		t.Errorf("operations: %d %s", code, body)
	}
	code, body = get(t, srv, "/jaeger/api/v3/traces/4bf92f3577b34da6a3ce929d0e0e4736")
	if code != 200 {
		t.Fatalf("trace: %d %s", code, body)
	}
	var r struct {
		Result struct {
			ResourceSpans []struct {
				Resource struct {
					Attributes []struct {
						Key   string
						Value map[string]any
					}
				}
				ScopeSpans []struct {
					Scope struct{ Name, Version string }
					Spans []map[string]any
				}
			}
		}
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	rs := r.Result.ResourceSpans
	if len(rs) != 2 || len(rs[0].ScopeSpans) != 1 || len(rs[0].ScopeSpans[0].Spans) != 2 || rs[0].ScopeSpans[0].Scope.Name != "frontend-lib" {
		t.Fatalf("OTLP shape: %s", body)
	}
	// Attributes sorted by key, as Jaeger's query service sorts them.
	if a := rs[0].Resource.Attributes; len(a) != 3 || a[0].Key != "host.name" || a[2].Key != "service.name" || a[2].Value["stringValue"] != "frontend" {
		t.Errorf("resource: %+v", rs[0].Resource)
	}
	sp := rs[0].ScopeSpans[0].Spans[1]
	if sp["traceId"] != "4bf92f3577b34da6a3ce929d0e0e4736" || sp["parentSpanId"] != "00f067aa0ba902b7" || sp["kind"] != 3.0 ||
		sp["startTimeUnixNano"] != "1700000000002000000" || sp["status"].(map[string]any)["code"] != 2.0 {
		t.Errorf("OTLP span: %v", sp)
	}
	attrs := rs[0].ScopeSpans[0].Spans[0]["attributes"].([]any)
	if kv := attrs[2].(map[string]any); kv["key"] != "http.response.status_code" || kv["value"].(map[string]any)["intValue"] != "200" {
		t.Errorf("int attribute in OTLP JSON: %v", kv)
	}
	code, body = get(t, srv, "/jaeger/api/v3/traces/0af7651916cd43dd8448eb211c80319c")
	if code != 404 || !strings.Contains(string(body), `"httpCode":404`) {
		t.Errorf("absent trace: %d %s", code, body)
	}
	// Search with an attribute filter and a result limit.
	for q, n := range map[string]int{
		"query.service_name=frontend": 1,
		"query.service_name=frontend&query.attributes=" + url.QueryEscape(`{"cache.hit":"false"}`):                    1,
		"query.service_name=frontend&query.attributes.cache.hit=true":                                                 0,
		"query.service_name=frontend&query.search_depth=1&query.duration_min=1ms":                                     1,
		"query.service_name=cart&query.start_time_min=2023-11-14T22:00:00Z&query.start_time_max=2023-11-14T22:10:00Z": 0,
	} {
		code, body := get(t, srv, "/jaeger/api/v3/traces?"+q)
		var r struct {
			Result otlpTracesData
		}
		json.Unmarshal(body, &r)
		traces := map[string]bool{}
		for _, rs := range r.Result.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					traces[sp.TraceID] = true
				}
			}
		}
		// A search that finds nothing is a 404, as Jaeger answers it.
		if want := map[bool]int{true: 404, false: 200}[n == 0]; code != want || len(traces) != n {
			t.Errorf("v3 search %s: %d, %d traces, want %d: %s", q, code, len(traces), n, body)
		}
	}
	code, body = get(t, srv, "/jaeger/api/v3/traces?query.operation_name=x")
	if code != 400 || !strings.Contains(string(body), "query.service_name is required") {
		t.Errorf("v3 search without service: %d %s", code, body)
	}
}

func TestVantageAPI(t *testing.T) {
	s, fc := fixtureStore(t)
	srv := serve(t, s, fc)
	code, body := get(t, srv, "/api/traces/4bf92f3577b34da6a3ce929d0e0e4736")
	if code != 200 {
		t.Fatalf("trace: %d %s", code, body)
	}
	var doc TraceDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Spans) != 3 || len(doc.Logs) != 1 || doc.Logs[0].Body != "row locked, retrying" || doc.Spans[2].Service != "cart" ||
		doc.DurationMS != 25 || doc.Class != "pinned" || doc.Spans[1].Events[0].Name != "retry" {
		t.Errorf("trace document: %s", body)
	}
	code, body = get(t, srv, "/api/traces/0af7651916cd43dd8448eb211c80319c")
	if code != 404 || !strings.Contains(string(body), "not in the trace store") {
		t.Errorf("absent trace: %d %s", code, body)
	}
	since := "&start=2023-11-14T22:00:00Z&end=2023-11-14T23:00:00Z"
	for q, n := range map[string]int{
		"service=cart":                        1,
		"status=200":                          1,
		"status=2xx":                          1,
		"status=5xx":                          0,
		"class=pinned,error":                  1,
		"class=ordinary":                      0,
		"error=true":                          1,
		"min_duration=20ms":                   1,
		"route=/nope":                         0,
		"service=frontend&operation=GET+cart": 1,
	} {
		code, body := get(t, srv, "/api/traces?"+q+since)
		var r struct{ Traces []SummaryDoc }
		json.Unmarshal(body, &r)
		if code != 200 || len(r.Traces) != n {
			t.Errorf("search %s: %d, %d traces, want %d: %s", q, code, len(r.Traces), n, body)
		}
	}
	for _, q := range []string{"status=99", "class=vip", "limit=x", "min_duration=1", "bogus=1", "operation=x", "since=-1h", "start=yesterday"} {
		if code, body := get(t, srv, "/api/traces?"+q); code != 400 {
			t.Errorf("search %s: %d %s, want 400", q, code, body)
		}
	}
}

func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{
		"service=a", "service=a&tags=%7B%22k%22%3A%22v%22%7D", `service=a&tags={"k":"v"}`, "service=a&tag=k:v:w",
		"traceID=abc&traceID=0", "service=a&start=1&end=2&limit=5000&minDuration=1ms&maxDuration=2s&lookback=2d",
		"service=a&start=99999999999999999999", "%zz=%zz&service=%", "service=a&lookback=custom",
	} {
		f.Add(s)
	}
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := ParseSearch(raw, now)
		if err != nil {
			return
		}
		if s.Limit < 1 || s.Limit > tracestore.MaxLimit {
			t.Fatalf("limit %d out of bounds", s.Limit)
		}
		if len(s.TraceIDs) == 0 && (s.StartMax.Sub(s.StartMin) > MaxRange || s.StartMax.Before(s.StartMin)) {
			t.Fatalf("range %v..%v", s.StartMin, s.StartMax)
		}
		if len(s.Tags) > maxTags {
			t.Fatalf("%d tags", len(s.Tags))
		}
		if _, _, err := ParseDependencies(raw, now); err == nil {
			_ = err
		}
	})
}

func FuzzParseOtherSearches(f *testing.F) {
	for _, s := range []string{
		"query.service_name=a&query.attributes=%7B%22k%22%3A%22v%22%7D&query.search_depth=3",
		"query.service_name=a&query.attributes.k=v&query.start_time_min=2023-01-01T00:00:00Z",
		"route=/x&status=5xx&class=error,slow&min_duration=1s&since=15m&limit=9999",
		"endTs=1700000000000&lookback=3600000",
	} {
		f.Add(s)
	}
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, raw string) {
		for _, parse := range []func(string, time.Time) (tracestore.Query, error){ParseV3Search, ParseVantageSearch} {
			q, err := parse(raw, now)
			if err != nil {
				continue
			}
			if q.Limit < 1 || q.Limit > tracestore.MaxLimit || q.StartMax.Sub(q.StartMin) > MaxRange || q.StartMax.Before(q.StartMin) {
				t.Fatalf("caps not applied: %+v", q)
			}
		}
		if end, lb, err := ParseDependencies(raw, now); err == nil && (lb <= 0 || lb > MaxRange || end.IsZero()) {
			t.Fatalf("dependencies: %v %v", end, lb)
		}
	})
}
