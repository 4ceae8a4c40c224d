package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

const tracingBase = "listeners:\n  - name: public\n    address: \":1\"\nservices:\n  - name: s\n    upstreams: [{url: \"http://a:1\"}]\nroutes:\n  - name: r\n    service: s\n"

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestTracingValidation(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown extract format", "tracing:\n  propagation:\n    extract: [tracecontext, xray]\n", `f.yml:12: tracing.propagation.extract[1]: unknown format "xray"`},
		{"duplicate inject format", "tracing:\n  propagation:\n    inject: [b3, b3]\n", `tracing.propagation.inject[1]: format "b3" is listed twice`},
		{"trace id bits", "tracing:\n  propagation:\n    trace_id_bits: 96\n", `tracing.propagation.trace_id_bits: must be 64 or 128, got 96`},
		{"ratio range", "tracing:\n  sampling:\n    ratio: 1.5\n", `tracing.sampling.ratio: must be between 0 and 1, got 1.5`},
		{"negative rate", "tracing:\n  sampling:\n    max_per_second: -1\n", `tracing.sampling.max_per_second: must not be negative`},
		{"negative slow", "tracing:\n  sampling:\n    late:\n      slower_than: -1s\n", `tracing.sampling.late.slower_than: must not be negative`},
		{"bad response header", "tracing:\n  response_header: \"X Trace\"\n", `tracing.response_header: must be off, traceresponse or a valid header name, got "X Trace"`},
		{"listener response header", "tracing:\n  listeners:\n    public:\n      response_header: \"a:b\"\n", `tracing.listeners.public.response_header: must be off`},
		{"sensitive recorded header", "tracing:\n  record_request_headers: [X-Request-Id, Authorization]\n", `tracing.record_request_headers[1]: "Authorization" is a sensitive header`},
		{"sensitive response header", "tracing:\n  record_response_headers: [set-cookie]\n", `tracing.record_response_headers[0]: "set-cookie" is a sensitive header`},
		{"empty query param", "tracing:\n  sensitive_query_params: [\"\"]\n", `tracing.sensitive_query_params[0]: must not be empty`},
		{"exporter type missing", "tracing:\n  exporters:\n    - endpoint: \"h:1\"\n", `tracing.exporters[0].type: is required`},
		{"exporter type unknown", "tracing:\n  exporters:\n    - type: jaeger_thrift\n      endpoint: \"h:1\"\n", `tracing.exporters[0].type: must be otlp_grpc, otlp_http or zipkin, got "jaeger_thrift"`},
		{"grpc endpoint required", "tracing:\n  exporters:\n    - type: otlp_grpc\n", `tracing.exporters[0].endpoint: is required`},
		{"grpc endpoint bad", "tracing:\n  exporters:\n    - type: otlp_grpc\n      endpoint: \"ftp://x:1\"\n", `tracing.exporters[0].endpoint: must be host:port or http(s)://host:port`},
		{"http endpoint not url", "tracing:\n  exporters:\n    - type: otlp_http\n      endpoint: \"collector:4318\"\n", `tracing.exporters[0].endpoint: must be an http:// or https:// URL`},
		{"zipkin gzip", "tracing:\n  exporters:\n    - type: zipkin\n      endpoint: \"http://z:9411/api/v2/spans\"\n      compression: gzip\n", `tracing.exporters[0].compression: is not supported by the zipkin exporter`},
		{"compression unknown", "tracing:\n  exporters:\n    - type: otlp_http\n      endpoint: \"http://c:4318\"\n      compression: zstd\n", `tracing.exporters[0].compression: must be gzip or none, got "zstd"`},
		{"duplicate exporter names", "tracing:\n  exporters:\n    - {name: a, type: otlp_http, endpoint: \"http://c:4318\"}\n    - {name: a, type: otlp_grpc, endpoint: \"c:4317\"}\n", `tracing.exporters[1].name: duplicate exporter name "a"`},
		{"batch over queue", "tracing:\n  exporters:\n    - type: otlp_http\n      endpoint: \"http://c:4318\"\n      queue_size: 10\n      batch_size: 20\n", `tracing.exporters[0].batch_size: must not exceed queue_size (10), got 20`},
		{"negative queue", "tracing:\n  exporters:\n    - type: otlp_http\n      endpoint: \"http://c:4318\"\n      queue_size: -1\n", `tracing.exporters[0].queue_size: must not be negative`},
		{"half client cert", "tracing:\n  exporters:\n    - type: otlp_grpc\n      endpoint: \"c:4317\"\n      tls: {cert_file: c.pem}\n", `tracing.exporters[0].tls: set both cert_file and key_file`},
		{"insecure with ca", "tracing:\n  exporters:\n    - type: otlp_grpc\n      endpoint: \"c:4317\"\n      tls: {insecure: true, ca_file: ca.pem}\n", `tracing.exporters[0].tls.insecure: disables TLS`},
		{"header line break", "tracing:\n  exporters:\n    - type: otlp_http\n      endpoint: \"http://c:4318\"\n      headers: {x-key: \"a\\nb\"}\n", `tracing.exporters[0].headers: value of "x-key" must not contain line breaks`},
		{"unknown tracing field", "tracing:\n  sample_ratio: 0.5\n", `tracing.sample_ratio: unknown field "sample_ratio"`},
		{"route ratio", "tracing: {}\nroutes:\n  - name: r2\n    service: s\n    tracing:\n      ratio: -0.1\n", `routes[1].tracing.ratio: must be between 0 and 1, got -0.1`},
		{"route response header", "routes:\n  - name: r2\n    service: s\n    tracing:\n      response_header: \"bad header\"\n", `routes[1].tracing.response_header: must be off, traceresponse or a valid header name`},
		{"route slower than", "routes:\n  - name: r2\n    service: s\n    tracing:\n      slower_than: -2s\n", `routes[1].tracing.slower_than: must not be negative`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := tracingBase + tc.yaml
			if strings.HasPrefix(tc.yaml, "tracing: {}\nroutes:") || strings.HasPrefix(tc.yaml, "routes:") {
				// Append a second route to the existing list.
				y = tracingBase + strings.SplitN(tc.yaml, "routes:\n", 2)[1]
			}
			_, err := Parse("f.yml", []byte(y), noEnv)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestTracingDefaults(t *testing.T) {
	cfg, err := Parse("f.yml", []byte(tracingBase), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	tr := cfg.Tracing
	if !tr.IsEnabled() || !*tr.TrustIncoming || tr.ResponseHeader != ResponseHeaderOff {
		t.Errorf("enabled/trust/response_header defaults: %v %v %q", tr.IsEnabled(), *tr.TrustIncoming, tr.ResponseHeader)
	}
	if want := []string{"tracecontext", "baggage", "b3", "jaeger", "datadog", "ottrace"}; !reflect.DeepEqual(tr.Propagation.Extract, want) {
		t.Errorf("extract = %v", tr.Propagation.Extract)
	}
	if want := []string{"tracecontext", "baggage"}; !reflect.DeepEqual(tr.Propagation.Inject, want) {
		t.Errorf("inject = %v", tr.Propagation.Inject)
	}
	if tr.Propagation.TraceIDBits != 128 || *tr.Sampling.Ratio != 1 || !*tr.Sampling.ParentBased {
		t.Errorf("bits/ratio/parent: %d %v %v", tr.Propagation.TraceIDBits, *tr.Sampling.Ratio, *tr.Sampling.ParentBased)
	}
	if !*tr.Sampling.Late.Errors || !*tr.Sampling.Late.Retried || tr.Sampling.Late.MaxPerSecond != 100 || tr.Sampling.Late.SlowerThan != 0 {
		t.Errorf("late defaults: %+v", tr.Sampling.Late)
	}
	if len(tr.Exporters) != 0 {
		t.Errorf("exporters = %v, want none", tr.Exporters)
	}

	cfg, err = Parse("f.yml", []byte(tracingBase+"tracing:\n  exporters:\n    - type: otlp_grpc\n      endpoint: \"c:4317\"\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Tracing.Exporters[0]
	if e.Name != "otlp_grpc-0" || e.Timeout.D() != 10*time.Second || e.QueueSize != 2048 || e.BatchSize != 512 || e.FlushInterval.D() != time.Second || e.Compression != "none" {
		t.Errorf("exporter defaults: %+v", e)
	}
}

func TestTracingEnv(t *testing.T) {
	t.Run("env fills unset values", func(t *testing.T) {
		env := envMap(map[string]string{
			"OTEL_SERVICE_NAME":           "edge",
			"OTEL_RESOURCE_ATTRIBUTES":    "deployment.environment=prod,team=plat%20form,bad",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
			"OTEL_EXPORTER_OTLP_HEADERS":  "api-key=s3cr%3Dt,x-tenant=a",
			"OTEL_TRACES_SAMPLER":         "parentbased_traceidratio",
			"OTEL_TRACES_SAMPLER_ARG":     "0.25",
			"OTEL_PROPAGATORS":            "tracecontext,b3multi,none",
			"OTEL_EXPORTER_OTLP_TIMEOUT":  "2500",
		})
		cfg, err := Parse("f.yml", []byte(tracingBase), env)
		if err != nil {
			t.Fatal(err)
		}
		tr := cfg.Tracing
		if tr.ServiceName != "edge" {
			t.Errorf("service name %q", tr.ServiceName)
		}
		if want := map[string]string{"deployment.environment": "prod", "team": "plat form"}; !reflect.DeepEqual(tr.ResourceAttributes, want) {
			t.Errorf("resource attributes %v", tr.ResourceAttributes)
		}
		if len(tr.Exporters) != 1 {
			t.Fatalf("exporters %v", tr.Exporters)
		}
		e := tr.Exporters[0]
		if e.Type != ExporterOTLPHTTP || e.Endpoint != "http://collector:4318/v1/traces" || e.Timeout.D() != 2500*time.Millisecond {
			t.Errorf("exporter %+v", e)
		}
		if want := map[string]string{"api-key": "s3cr=t", "x-tenant": "a"}; !reflect.DeepEqual(e.Headers, want) {
			t.Errorf("headers %v", e.Headers)
		}
		if *tr.Sampling.Ratio != 0.25 || !*tr.Sampling.ParentBased {
			t.Errorf("sampler %v %v", *tr.Sampling.Ratio, *tr.Sampling.ParentBased)
		}
		if want := []string{"tracecontext", "b3multi"}; !reflect.DeepEqual(tr.Propagation.Extract, want) || !reflect.DeepEqual(tr.Propagation.Inject, want) {
			t.Errorf("propagators %v %v", tr.Propagation.Extract, tr.Propagation.Inject)
		}
	})
	t.Run("file wins over env", func(t *testing.T) {
		env := envMap(map[string]string{
			"OTEL_SERVICE_NAME":                  "edge",
			"OTEL_RESOURCE_ATTRIBUTES":           "team=env,region=eu",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4317",
			"OTEL_EXPORTER_OTLP_PROTOCOL":        "grpc",
			"OTEL_EXPORTER_OTLP_HEADERS":         "api-key=env",
			"OTEL_TRACES_SAMPLER":                "always_off",
			"OTEL_PROPAGATORS":                   "b3",
			"OTEL_SDK_DISABLED":                  "true",
		})
		y := tracingBase + `tracing:
  enabled: true
  service_name: gw
  resource_attributes: {team: file}
  propagation:
    inject: [datadog]
  sampling:
    ratio: 0.5
  exporters:
    - type: otlp_http
      endpoint: "https://file:4318/v1/traces"
      headers: {api-key: file}
    - type: otlp_grpc
`
		cfg, err := Parse("f.yml", []byte(y), env)
		if err != nil {
			t.Fatal(err)
		}
		tr := cfg.Tracing
		if !tr.IsEnabled() || tr.ServiceName != "gw" {
			t.Errorf("enabled %v service %q", tr.IsEnabled(), tr.ServiceName)
		}
		if want := map[string]string{"team": "file", "region": "eu"}; !reflect.DeepEqual(tr.ResourceAttributes, want) {
			t.Errorf("resource attributes %v", tr.ResourceAttributes)
		}
		if tr.Exporters[0].Endpoint != "https://file:4318/v1/traces" || tr.Exporters[0].Headers["api-key"] != "file" {
			t.Errorf("file exporter changed: %+v", tr.Exporters[0])
		}
		if tr.Exporters[1].Endpoint != "collector:4317" || tr.Exporters[1].Headers["api-key"] != "env" {
			t.Errorf("grpc exporter not filled from env: %+v", tr.Exporters[1])
		}
		// The file set inject, so OTEL_PROPAGATORS is ignored entirely.
		if !reflect.DeepEqual(tr.Propagation.Inject, []string{"datadog"}) || len(tr.Propagation.Extract) != 6 {
			t.Errorf("propagation %+v", tr.Propagation)
		}
		// The file set ratio; parent_based comes from the env sampler.
		if *tr.Sampling.Ratio != 0.5 || *tr.Sampling.ParentBased {
			t.Errorf("sampling ratio %v parent %v", *tr.Sampling.Ratio, *tr.Sampling.ParentBased)
		}
	})
	t.Run("sdk disabled and unknown propagator", func(t *testing.T) {
		env := envMap(map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_PROPAGATORS": "xray"})
		_, err := Parse("f.yml", []byte(tracingBase), env)
		if err == nil || !strings.Contains(err.Error(), `tracing.propagation.extract[0]: unknown format "xray"`) {
			t.Fatalf("err = %v", err)
		}
		cfg, err := Parse("f.yml", []byte(tracingBase), envMap(map[string]string{"OTEL_SDK_DISABLED": "true"}))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Tracing.IsEnabled() {
			t.Error("OTEL_SDK_DISABLED=true did not disable tracing")
		}
	})
	t.Run("traces exporter none", func(t *testing.T) {
		env := envMap(map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"})
		cfg, err := Parse("f.yml", []byte(tracingBase), env)
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Tracing.Exporters) != 0 {
			t.Errorf("exporters %v", cfg.Tracing.Exporters)
		}
	})
}

func TestTracingValidateListeners(t *testing.T) {
	_, err := Parse("f.yml", []byte(tracingBase+"tracing:\n  listeners:\n    public: {trust_incoming: false}\n    internal: {response_header: X-Trace-Id}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), `tracing.listeners.internal: unknown listener "internal"`) {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), `"public"`) {
		t.Fatalf("a known listener was rejected: %v", err)
	}
}
