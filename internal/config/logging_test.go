package config

import (
	"strings"
	"testing"
	"time"
)

const logListener = "listeners:\n  - address: \":1\"\n"

func TestAccessLogDefaults(t *testing.T) {
	cfg, err := Parse("f.yml", []byte(logListener), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.AccessLog
	if !*a.Enabled || a.Format != AccessLogJSON || a.Output != OutputStdout || a.BufferSize != 4096 ||
		a.File.MaxBackups != 5 || a.Filter.SampleRatio() != 1 {
		t.Fatalf("defaults: %+v", a)
	}
	if cfg.Log.Level != "info" || cfg.Log.Format != "text" {
		t.Fatalf("log defaults: %+v", cfg.Log)
	}
}

func TestAccessLogParse(t *testing.T) {
	y := logListener + `access_log:
  format: combined
  output: file
  file: {path: /var/log/access.log, max_size: 100MiB, max_backups: 3}
  buffer_size: 128
  filter:
    status: ["5xx", "404"]
    min_duration: 250ms
    exclude_routes: [health]
    success_sample_ratio: 0.25
  request_headers: [X-Request-Id]
  response_headers: [content-type]
  redact_headers: [X-Api-Key]
  redact_query_params: [token]
log: {level: debug, format: json, add_source: true}
services: [{name: s, upstreams: [{url: "http://127.0.0.1:2"}]}]
routes: [{name: health, match: {path: /healthz}, service: s}]
`
	cfg, err := Parse("f.yml", []byte(y), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.AccessLog
	if a.File.MaxSize != 100<<20 || a.File.MaxBackups != 3 || a.BufferSize != 128 ||
		a.Filter.SampleRatio() != 0.25 || a.Filter.MinDuration.D().Milliseconds() != 250 {
		t.Fatalf("parsed: %+v", a)
	}
	if !cfg.Log.AddSource || cfg.Log.Level != "debug" {
		t.Fatalf("log: %+v", cfg.Log)
	}
}

func TestAccessLogValidation(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"format", "access_log: {format: xml}\n", `f.yml:3: access_log.format: must be json, common or combined; got "xml"`},
		{"output", "access_log: {output: syslog}\n", `access_log.output: must be stdout, stderr, file or none; got "syslog"`},
		{"file without path", "access_log: {output: file}\n", `access_log.file.path: is required with output file`},
		{"negative size", "access_log: {file: {max_size: -1}}\n", `access_log.file.max_size: must not be negative`},
		{"bad size", "access_log: {file: {max_size: 10 parsecs}}\n", `invalid size "10 parsecs"`},
		{"negative backups", "access_log: {file: {max_backups: -2}}\n", `access_log.file.max_backups: must not be negative`},
		{"buffer", "access_log: {buffer_size: -5}\n", `access_log.buffer_size: must be between 1 and 1048576`},
		{"status", "access_log: {filter: {status: [\"2xx\", \"6xx\"]}}\n", `access_log.filter.status[1]: must be a status code`},
		{"min duration", "access_log: {filter: {min_duration: -1s}}\n", `access_log.filter.min_duration: must not be negative`},
		{"route name", "access_log: {filter: {routes: [\"a b\"]}}\n", `access_log.filter.routes[0]: must be a route name`},
		{"exclude route", "access_log: {filter: {exclude_routes: [ok, \"\"]}}\n", `access_log.filter.exclude_routes[1]: must be a route name`},
		{"ratio", "access_log: {filter: {success_sample_ratio: 1.5}}\n", `access_log.filter.success_sample_ratio: must be between 0 and 1, got 1.5`},
		{"credential header", "access_log: {request_headers: [X-Request-Id, authorization]}\n", `access_log.request_headers[1]: header "authorization" is redacted and is never logged`},
		{"set-cookie", "access_log: {response_headers: [Set-Cookie]}\n", `access_log.response_headers[0]: header "Set-Cookie" is redacted`},
		{"configured redaction", "access_log: {redact_headers: [x-tenant-secret], request_headers: [X-Tenant-Secret]}\n", `access_log.request_headers[0]: header "X-Tenant-Secret" is redacted`},
		{"sensitive header", "access_log: {request_headers: [X-Api-Key]}\n", `access_log.request_headers[0]: header "X-Api-Key" is redacted`},
		{"header name", "access_log: {request_headers: [\"bad header\"]}\n", `access_log.request_headers[0]: invalid header name "bad header"`},
		{"redact header name", "access_log: {redact_headers: [\"a:b\"]}\n", `access_log.redact_headers[0]: invalid header name`},
		{"query param", "access_log: {redact_query_params: [\"\"]}\n", `access_log.redact_query_params[0]: must not be empty`},
		{"redaction empty name", "redaction: {query_params: [\"--\"]}\n", `f.yml:3: redaction.query_params[0]: must contain a letter or digit, got "--"`},
		{"redaction exempt nothing", "redaction: {exempt_query_params: [page]}\n", `redaction.exempt_query_params[0]: query parameter "page" is not redacted by default`},
		{"redaction exempt and add", "redaction: {query_params: [sso], exempt_query_params: [token]}\ntracing: {sensitive_query_params: [TOKEN]}\n", `redaction.exempt_query_params[0]: "token" is also listed as redacted`},
		{"redaction exempt credential", "redaction: {exempt_headers: [Cookie]}\n", `redaction.exempt_headers[0]: header "Cookie" carries credentials and is always redacted`},
		{"redaction header name", "redaction: {headers: [\"a b\"]}\n", `redaction.headers[0]: invalid header name "a b"`},
		{"header by suffix", "access_log: {request_headers: [Idempotency-Key]}\n", `access_log.request_headers[0]: header "Idempotency-Key" is redacted`},
		{"tracing header by suffix", "tracing: {record_request_headers: [X-Goog-Api-Key]}\n", `tracing.record_request_headers[0]: "X-Goog-Api-Key" is a sensitive header`},
		{"log level", "log: {level: trace}\n", `log.level: must be one of debug, info, warn, error; got "trace"`},
		{"log format", "log: {format: xml}\n", `log.format: must be json or text; got "xml"`},
		{"unknown key", "access_log: {fromat: json}\n", `unknown field "fromat"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yml", []byte(logListener+tc.yaml), noEnv)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRedactionOptions(t *testing.T) {
	c := &Config{
		AccessLog: AccessLog{RedactHeaders: []string{"x-tenant-secret"}, RedactQueryParams: []string{"sso"}},
		Tracing:   Tracing{SensitiveQueryParams: []string{"tenant"}},
		Redaction: Redaction{QueryParams: []string{"ref"}, ExemptQueryParams: []string{"state"}, Headers: []string{"X-Tenant"}},
	}
	p := c.RedactPolicy()
	for _, name := range []string{"Authorization", "Cookie", "Set-Cookie", "Proxy-Authorization", "X-Api-Key", "X-Tenant-Secret", "X-Tenant"} {
		if !p.Header(name) {
			t.Errorf("header %s not redacted", name)
		}
	}
	for q, want := range map[string]bool{"access_token": true, "sso": true, "tenant": true, "ref": true, "state": false, "page": false} {
		if p.Param(q) != want {
			t.Errorf("Param(%q) = %v, want %v", q, !want, want)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	cases := []struct {
		in   string
		want ByteSize
		err  bool
	}{
		{"0", 0, false},
		{"1048576", 1 << 20, false},
		{"512KiB", 512 << 10, false},
		{"100 MiB", 100 << 20, false},
		{"1GiB", 1 << 30, false},
		{"10MB", 10_000_000, false},
		{"2kb", 2000, false},
		{"5B", 5, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"1.5MiB", 0, true},
		{"10 parsecs", 0, true},
		{"99999999999999GiB", 0, true},
	}
	for _, tc := range cases {
		got, err := ParseByteSize(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v, err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
	if s := ByteSize(100 << 20).String(); s != "100MiB" {
		t.Errorf("String = %q", s)
	}
	if s := ByteSize(1000).String(); s != "1000" {
		t.Errorf("String = %q", s)
	}
}

func TestAccessLogFilterNamesKnownRoutes(t *testing.T) {
	_, err := Parse("f.yml", []byte(logListener+"access_log: {filter: {routes: [ghost]}}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), `f.yml:3: access_log.filter.routes[0]: unknown route "ghost"`) {
		t.Fatalf("got %v", err)
	}
}

// otlpTracing is a tracing section with one exporter of each kind.
const otlpTracing = `tracing:
  exporters:
    - {name: collector, type: otlp_grpc, endpoint: "collector:4317"}
    - {name: web, type: otlp_http, endpoint: "http://collector:4318"}
    - {name: zk, type: zipkin, endpoint: "http://zipkin:9411/api/v2/spans"}
`

func TestAccessLogOTLPParse(t *testing.T) {
	y := logListener + otlpTracing + `access_log:
  output: none
  otlp: {exporter: web}
`
	cfg, err := Parse("f.yml", []byte(y), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.AccessLog.OTLP
	if o == nil || o.Exporter != "web" || o.QueueSize != 4096 || o.BatchSize != 512 || o.FlushInterval.D() != time.Second {
		t.Fatalf("otlp defaults: %+v", o)
	}
	e, ok := cfg.AccessLog.OTLPExporter(&cfg.Tracing)
	if !ok || e.Name != "web" || e.Type != ExporterOTLPHTTP {
		t.Fatalf("OTLPExporter = %+v, %v", e, ok)
	}

	cfg, err = Parse("f.yml", []byte(logListener+otlpTracing+"access_log: {otlp: {exporter: collector, queue_size: 100, flush_interval: 250ms}}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o := cfg.AccessLog.OTLP; o.BatchSize != 100 || o.FlushInterval.D() != 250*time.Millisecond || cfg.AccessLog.Output != OutputStdout {
		t.Fatalf("otlp: %+v, output %q", o, cfg.AccessLog.Output)
	}
	// Tracing off: the exporter entry still provides the settings.
	if _, err := Parse("f.yml", []byte(logListener+otlpTracing+"  enabled: false\naccess_log: {otlp: {exporter: collector}}\n"), noEnv); err != nil {
		t.Fatal(err)
	}
	if cfg, _ := Parse("f.yml", []byte(logListener), noEnv); cfg.AccessLog.OTLP != nil {
		t.Fatal("otlp set by default")
	}
}

func TestAccessLogOTLPLogsEndpoint(t *testing.T) {
	cases := []struct {
		typ, endpoint, override, want string
		err                           bool
	}{
		{ExporterOTLPGRPC, "collector:4317", "", "collector:4317", false},
		{ExporterOTLPGRPC, "collector:4317", "logs:4317", "logs:4317", false},
		{ExporterOTLPHTTP, "http://c:4318", "", "http://c:4318/v1/logs", false},
		{ExporterOTLPHTTP, "http://c:4318/", "", "http://c:4318/v1/logs", false},
		{ExporterOTLPHTTP, "https://c/otlp/v1/traces", "", "https://c/otlp/v1/logs", false},
		{ExporterOTLPHTTP, "https://c/ingest", "", "", true},
		{ExporterOTLPHTTP, "https://c/ingest", "https://c/logs-in", "https://c/logs-in", false},
		{ExporterOTLPHTTP, "https://c/ingest", "https://l:4318", "https://l:4318/v1/logs", false},
	}
	for _, tc := range cases {
		o := AccessLogOTLP{Endpoint: tc.override}
		got, err := o.LogsEndpoint(TracingExporter{Name: "e", Type: tc.typ, Endpoint: tc.endpoint})
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s %q override %q: got %q, %v; want %q, err=%v", tc.typ, tc.endpoint, tc.override, got, err, tc.want, tc.err)
		}
	}
}

func TestAccessLogOTLPValidation(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown exporter", otlpTracing + "access_log: {otlp: {exporter: x}}\n", `access_log.otlp.exporter: no otlp exporter named "x" in tracing.exporters`},
		{"no exporters", "access_log: {otlp: {exporter: collector}}\n", `access_log.otlp.exporter: no otlp exporter named "collector" in tracing.exporters`},
		{"zipkin exporter", otlpTracing + "access_log: {otlp: {exporter: zk}}\n", `access_log.otlp.exporter: exporter "zk" is of type zipkin; OTLP logs need otlp_grpc or otlp_http`},
		{"missing exporter", otlpTracing + "access_log: {otlp: {queue_size: 10}}\n", `access_log.otlp.exporter: is required`},
		{"queue size", otlpTracing + "access_log: {otlp: {exporter: web, queue_size: -1}}\n", `access_log.otlp.queue_size: must be between 1 and 1048576, got -1`},
		{"huge queue", otlpTracing + "access_log: {otlp: {exporter: web, queue_size: 2000000}}\n", `access_log.otlp.queue_size: must be between 1 and 1048576`},
		{"batch size", otlpTracing + "access_log: {otlp: {exporter: web, queue_size: 10, batch_size: 20}}\n", `access_log.otlp.batch_size: must not exceed queue_size (10), got 20`},
		{"negative batch", otlpTracing + "access_log: {otlp: {exporter: web, batch_size: -2}}\n", `access_log.otlp.batch_size: must not be negative`},
		{"flush interval", otlpTracing + "access_log: {otlp: {exporter: web, flush_interval: -1s}}\n", `access_log.otlp.flush_interval: must not be negative`},
		{"http endpoint override", otlpTracing + "access_log: {otlp: {exporter: web, endpoint: \"collector:4318\"}}\n", `access_log.otlp.endpoint: must be an http:// or https:// URL`},
		{"grpc endpoint override", otlpTracing + "access_log: {otlp: {exporter: collector, endpoint: \"ftp://x\"}}\n", `access_log.otlp.endpoint: must be host:port or http(s)://host:port`},
		{"underivable logs URL", "tracing: {exporters: [{name: c, type: otlp_http, endpoint: \"https://otlp.example.com/ingest\"}]}\naccess_log: {otlp: {exporter: c}}\n", `access_log.otlp.endpoint: is required: the logs URL cannot be derived from exporter "c"'s endpoint`},
		{"output none without otlp", "access_log: {output: none}\n", `access_log.output: none requires access_log.otlp`},
		{"unknown otlp key", otlpTracing + "access_log: {otlp: {exporter: web, exporter_name: x}}\n", `unknown field "exporter_name"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yml", []byte(logListener+tc.yaml), noEnv)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// An exempted header may be logged and recorded.
func TestRedactionExemptHeaderMayBeListed(t *testing.T) {
	_, err := Parse("f.yml", []byte(logListener+"redaction: {exempt_headers: [Idempotency-Key]}\naccess_log: {request_headers: [Idempotency-Key]}\ntracing: {record_request_headers: [idempotency-key]}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
}
