package main

import (
	"fmt"
	"net/url"
	"time"
)

// request is one query both servers answer.
type request struct {
	name string
	path string
	// deliberate says why the gateway answers differently on purpose.
	deliberate string
	// live marks a request about the gateway's own spans, which a capture
	// cannot replay (they do not reach the store through OTLP).
	live bool
}

// Differences kept on purpose.
const (
	errorTagBug = "Jaeger v1.75.0's memory store reads the tag value \"true\" (a string) as false, so error=true finds " +
		"traces with a span whose status is OK; the gateway finds traces with a span whose status is ERROR"
	sameServiceCalls = "Jaeger v1.75.0's memory store counts parent/child spans of the same service as calls " +
		"(frontend->frontend); its v1 memory and Badger stores did not, and neither does the gateway"
)

// requests are the queries of the comparison: every endpoint of Jaeger's
// HTTP API that Grafana and the Jaeger UI call, and of its api_v3, with
// the fixture's spans stored at base.
func requests(base time.Time) []request {
	us := func(d time.Duration) int64 { return base.Add(d).UnixMicro() }
	window := fmt.Sprintf("&start=%d&end=%d", us(-time.Minute), us(time.Minute))
	rfc := func(d time.Duration) string { return url.QueryEscape(base.Add(d).UTC().Format(time.RFC3339Nano)) }
	v3window := "&query.num_traces=20&query.start_time_min=" + rfc(-time.Minute) + "&query.start_time_max=" + rfc(time.Minute)
	q := url.QueryEscape
	reqs := []request{
		{name: "services", path: "/api/services"},
		{name: "operations of frontend (legacy)", path: "/api/services/frontend/operations"},
		{name: "operations of cart (legacy)", path: "/api/services/cart/operations"},
		{name: "operations of an unknown service (legacy)", path: "/api/services/nope/operations"},
		{name: "operations of frontend", path: "/api/operations?service=frontend"},
		{name: "server operations of frontend", path: "/api/operations?service=frontend&spanKind=server"},
		{name: "client operations of frontend", path: "/api/operations?service=frontend&spanKind=client"},
		{name: "internal operations of frontend", path: "/api/operations?service=frontend&spanKind=internal"},
		{name: "operations of worker", path: "/api/operations?service=worker"},
		{name: "consumer operations of worker", path: "/api/operations?service=worker&spanKind=consumer"},
		{name: "operations of an unknown service", path: "/api/operations?service=nope"},
		{name: "trace A", path: "/api/traces/" + traceA},
		{name: "trace B by its 32-digit id", path: "/api/traces/" + traceB},
		{name: "trace B by its 16-digit id", path: "/api/traces/" + traceB[16:]},
		{name: "absent trace", path: "/api/traces/" + absent},
		{name: "trace C (no service.name)", path: "/api/traces/" + traceC},
		{name: "v3 trace C (no service.name)", path: "/api/v3/traces/" + traceC},
		{name: "search by service", path: "/api/traces?service=frontend&limit=20" + window},
		{name: "search by service and operation", path: "/api/traces?service=cart&operation=" + q("cart.load") + window},
		{name: "search by a span tag (tags JSON)", path: "/api/traces?service=frontend&tags=" + q(`{"http.request.method":"GET"}`) + window},
		{name: "search by a resource tag", path: "/api/traces?service=cart&tags=" + q(`{"host.name":"cart-2"}`) + window},
		{name: "search by error=true", path: "/api/traces?service=frontend&tags=" + q(`{"error":"true"}`) + window},
		{name: "search by an int tag", path: "/api/traces?service=frontend&tags=" + q(`{"http.response.status_code":"502"}`) + window},
		{name: "search by an event field", path: "/api/traces?service=cart&tags=" + q(`{"exception.type":"LockError"}`) + window},
		{name: "search by two tags", path: "/api/traces?service=frontend&tags=" + q(`{"http.request.method":"GET","url.path":"/cart"}`) + window},
		{name: "search by tags JSON sent unencoded (as Grafana may send it)", path: `/api/traces?service=frontend&tags={"url.path":"/cart"}` + window},
		{name: "search by tag=key:value", path: "/api/traces?service=cart&tag=db.system:postgresql" + window},
		{name: "search as the Jaeger UI sends it (empty durations)", path: fmt.Sprintf("/api/traces?end=%d&limit=20&lookback=custom&maxDuration&minDuration&service=worker&start=%d", us(time.Minute), us(-time.Minute))},
		{name: "search by a tag no span has", path: "/api/traces?service=frontend&tags=" + q(`{"http.request.method":"DELETE"}`) + window},
		{name: "search by minDuration", path: "/api/traces?service=frontend&minDuration=50ms" + window},
		{name: "search by maxDuration", path: "/api/traces?service=cart&maxDuration=20ms" + window},
		{name: "search by duration range", path: "/api/traces?service=cart&minDuration=16ms&maxDuration=60ms" + window},
		{name: "search with limit 1", path: "/api/traces?service=cart&limit=1&operation=" + q("cart.checkout") + window},
		{name: "search of an unknown service", path: "/api/traces?service=nope" + window},
		{name: "search before the spans", path: fmt.Sprintf("/api/traces?service=frontend&start=%d&end=%d", us(-2*time.Hour), us(-time.Hour))},
		{name: "search by lookback", path: "/api/traces?service=worker&lookback=1h"},
		{name: "search by trace ids", path: "/api/traces?traceID=" + traceA + "&traceID=" + absent},
		{name: "search without service", path: "/api/traces?operation=x"},
		{name: "search with a bad limit", path: "/api/traces?service=frontend&limit=x"},
		{name: "absent trace, bad id", path: "/api/traces/xyz"},
		{name: "dependencies", path: fmt.Sprintf("/api/dependencies?endTs=%d&lookback=%d", base.Add(time.Minute).UnixMilli(), time.Hour.Milliseconds())},
		{name: "dependencies before the spans", path: fmt.Sprintf("/api/dependencies?endTs=%d&lookback=%d", base.Add(-time.Hour).UnixMilli(), time.Hour.Milliseconds())},
		{name: "v3 services", path: "/api/v3/services"},
		{name: "v3 operations of frontend", path: "/api/v3/operations?service=frontend"},
		{name: "v3 server operations of cart", path: "/api/v3/operations?service=cart&span_kind=server"},
		{name: "v3 trace A", path: "/api/v3/traces/" + traceA},
		{name: "v3 trace B", path: "/api/v3/traces/" + traceB},
		{name: "v3 absent trace", path: "/api/v3/traces/" + absent},
		{name: "v3 search by service", path: "/api/v3/traces?query.service_name=frontend" + v3window},
		{name: "v3 search by service and operation", path: "/api/v3/traces?query.service_name=cart&query.operation_name=" + q("cart.checkout") + v3window},
		{name: "v3 search by duration", path: "/api/v3/traces?query.service_name=frontend&query.duration_min=50ms" + v3window},
		{name: "v3 search before the spans", path: "/api/v3/traces?query.service_name=frontend&query.num_traces=20&query.start_time_min=" + rfc(-2*time.Hour) + "&query.start_time_max=" + rfc(-time.Hour)},
	}
	for i := range reqs {
		switch reqs[i].name {
		case "search by error=true":
			reqs[i].deliberate = errorTagBug
		case "dependencies":
			reqs[i].deliberate = sameServiceCalls
		}
	}
	return reqs
}
