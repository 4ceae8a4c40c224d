package conform

import (
	"fmt"
	"strings"
	"testing"
)

func norm(t *testing.T, path, body string) any {
	t.Helper()
	v, err := Normalize(path, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Two answers that differ only in orders Jaeger does not define and in
// the names of process ids are alike; any other change is reported.
func TestNormalizeV1(t *testing.T) {
	a := `{"data":[{"traceID":"2","spans":[{"spanID":"b","processID":"p1"},{"spanID":"a","processID":"p2"}],
	  "processes":{"p1":{"serviceName":"x","tags":[]},"p2":{"serviceName":"y","tags":[]}}},
	  {"traceID":"1","spans":[],"processes":{}}],"errors":[{"code":404,"msg":"not found"}]}`
	b := `{"data":[{"traceID":"1","spans":[],"processes":{}},
	  {"traceID":"2","spans":[{"spanID":"a","processID":"p1"},{"spanID":"b","processID":"p2"}],
	  "processes":{"p1":{"serviceName":"y","tags":[]},"p2":{"serviceName":"x","tags":[]}}}],"errors":[{"code":404,"msg":"trace not found"}]}`
	if d := Diff(norm(t, "/api/traces", a), norm(t, "/api/traces", b), 10); len(d) != 0 {
		t.Errorf("alike answers differ: %v", d)
	}
	c := strings.Replace(b, `"serviceName":"x"`, `"serviceName":"z"`, 1)
	if d := Diff(norm(t, "/api/traces", a), norm(t, "/api/traces", c), 10); len(d) == 0 {
		t.Error("a changed service name went unnoticed")
	}
	e := strings.Replace(b, `"code":404`, `"code":400`, 1)
	if d := Diff(norm(t, "/api/traces", a), norm(t, "/api/traces", e), 10); len(d) != 1 || !strings.Contains(d[0], "code") {
		t.Errorf("a changed error code: %v", d)
	}
	if d := Diff(norm(t, "/api/services", `{"data":["b","a"]}`), norm(t, "/api/services", `{"data":["a","b"]}`), 10); len(d) != 0 {
		t.Errorf("service order: %v", d)
	}
	if d := Diff(norm(t, "/api/services", `{"data":["a"],"total":1}`), norm(t, "/api/services", `{"data":["a"]}`), 10); len(d) != 1 {
		t.Errorf("a missing field: %v", d)
	}
}

// OTLP answers are compared span by span with their resource and scope,
// whatever the grouping.
func TestNormalizeV3(t *testing.T) {
	grouped := `{"result":{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"x"}}]},
	  "scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"1","spanId":"a"},{"traceId":"1","spanId":"b"}]}]}]}}`
	split := `{"result":{"resourceSpans":[
	  {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"x"}}]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"1","spanId":"b"}]}]},
	  {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"x"}}]},"scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"1","spanId":"a"}]}]}]}}`
	if d := Diff(norm(t, "/api/v3/traces/1", grouped), norm(t, "/api/v3/traces/1", split), 10); len(d) != 0 {
		t.Errorf("alike answers differ: %v", d)
	}
	other := strings.Replace(split, `"name":"s"`, `"name":"t"`, 1)
	if d := Diff(norm(t, "/api/v3/traces/1", grouped), norm(t, "/api/v3/traces/1", other), 10); len(d) != 1 {
		t.Errorf("a changed scope: %v", d)
	}
}

// Compare tolerates the known differences, says so, and sorts after
// tolerating them.
func TestCompareTolerates(t *testing.T) {
	d, notes, err := Compare("/api/services", []byte(`{"data":["x","missing-service-name","w"]}`), []byte(`{"data":["w","unknown_service","x"]}`), 10)
	if err != nil || len(d) != 0 || len(notes) != 1 {
		t.Errorf("services: %v %v %v", d, notes, err)
	}
	jaeger := `{"result":{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"arrayValue":{"values":[{"stringValue":"x"},{"intValue":"2"}]}}},
	  {"key":"m","value":{"kvlistValue":{"values":[{"key":"k","value":{"boolValue":true}}]}}}]},"scopeSpans":[{"spans":[{"traceId":"1","spanId":"a"}]}]}]}}`
	ours := `{"result":{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"stringValue":"[\"x\",2]"}},
	  {"key":"m","value":{"stringValue":"{\"k\":true}"}}]},"scopeSpans":[{"spans":[{"traceId":"1","spanId":"a"}]}]}]}}`
	if d, notes, err := Compare("/api/v3/traces/1", []byte(jaeger), []byte(ours), 10); err != nil || len(d) != 0 || len(notes) != 1 {
		t.Errorf("composite values: %v %v %v", d, notes, err)
	}
	if d, _, _ := Compare("/api/v3/traces/1", []byte(jaeger), []byte(strings.Replace(ours, `2]`, `3]`, 1)), 10); len(d) != 1 {
		t.Errorf("a changed array element: %v", d)
	}
}

func TestCompareTraceFlags(t *testing.T) {
	span := `{"result":{"resourceSpans":[{"resource":{},"scopeSpans":[{"spans":[{"traceId":"1","spanId":"a","flags":%d}]}]}]}}`
	if d, notes, err := Compare("/api/v3/traces/1", []byte(fmt.Sprintf(span, 257)), []byte(fmt.Sprintf(span, 1)), 10); err != nil || len(d) != 0 || len(notes) != 1 {
		t.Errorf("is-remote bits: %v %v %v", d, notes, err)
	}
	if d, _, _ := Compare("/api/v3/traces/1", []byte(fmt.Sprintf(span, 257)), []byte(fmt.Sprintf(span, 0)), 10); len(d) != 1 {
		t.Errorf("a sampled flag lost: %v", d)
	}
}
