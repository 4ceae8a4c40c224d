package config

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Access log formats for AccessLog.Format.
const (
	AccessLogJSON     = "json"
	AccessLogCommon   = "common"
	AccessLogCombined = "combined"
)

// Access log outputs for AccessLog.Output.
const (
	OutputStdout = "stdout"
	OutputStderr = "stderr"
	OutputFile   = "file"
	// OutputNone writes no local access log; allowed only with
	// AccessLog.OTLP set, for deployments that ship access logs only over
	// OTLP.
	OutputNone = "none"
)

const (
	defaultAccessLogBuffer     = 4096
	defaultAccessLogMaxBackups = 5
	maxAccessLogBuffer         = 1 << 20

	// DefaultAccessLogOTLPQueueSize, DefaultAccessLogOTLPBatchSize and
	// DefaultAccessLogOTLPFlushInterval are the defaults of AccessLogOTLP.
	DefaultAccessLogOTLPQueueSize     = 4096
	DefaultAccessLogOTLPBatchSize     = 512
	DefaultAccessLogOTLPFlushInterval = time.Second
)

// AccessLog configures the per-request access log. The settings are read
// once at start; only the route filters are re-applied on every reload.
type AccessLog struct {
	// Enabled turns the access log on (default true).
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// Format is json (one JSON object per line, OpenTelemetry field names),
	// common (Common Log Format) or combined (Combined Log Format). Both CLF
	// variants append the trace id, route and duration. Default json.
	Format string `yaml:"format" json:"format"`
	// Output is stdout, stderr, file or none (default stdout). With file,
	// File.Path is required; none (no local log) requires OTLP.
	Output string `yaml:"output" json:"output"`
	// File configures the file output and its built-in rotation.
	File AccessLogFile `yaml:"file" json:"file"`
	// BufferSize is how many records may wait to be written (default 4096,
	// at most 1048576). Requests never wait for the log: records beyond
	// the buffer are dropped and counted.
	BufferSize int `yaml:"buffer_size" json:"buffer_size"`
	// Filter chooses which requests are logged (default: all).
	Filter AccessLogFilter `yaml:"filter" json:"filter"`
	// RequestHeaders lists request headers written with each record
	// (allow-list; default none). Headers the redaction policy redacts
	// (credential headers such as Authorization, Cookie and X-Api-Key, see
	// Redaction) may not be listed. User-Agent and Referer have fields of
	// their own.
	RequestHeaders []string `yaml:"request_headers,omitempty" json:"request_headers,omitempty"`
	// ResponseHeaders lists response headers written with each record
	// (allow-list; default none), with the same restriction.
	ResponseHeaders []string `yaml:"response_headers,omitempty" json:"response_headers,omitempty"`
	// RedactHeaders lists further headers that are redacted, like
	// redaction.headers (it applies to spans and pages too). Listing
	// User-Agent or Referer removes them from every record.
	RedactHeaders []string `yaml:"redact_headers,omitempty" json:"redact_headers,omitempty"`
	// RedactQueryParams lists further query parameters whose values are
	// replaced by "REDACTED", like redaction.query_params (it applies to
	// spans and pages too).
	RedactQueryParams []string `yaml:"redact_query_params,omitempty" json:"redact_query_params,omitempty"`
	// OTLP also exports every logged record as an OpenTelemetry log record,
	// in addition to Output (nil: no OTLP export). The same filters and
	// redaction apply.
	OTLP *AccessLogOTLP `yaml:"otlp,omitempty" json:"otlp,omitempty"`
}

// AccessLogOTLP exports access log records over OTLP, through the
// connection settings (endpoint, headers, TLS, compression, timeout) of one
// OTLP exporter of tracing.exporters. Log records carry the resource of
// the gateway's spans (service.name, ...) and the trace and span id of
// their request.
type AccessLogOTLP struct {
	// Exporter names an otlp_grpc or otlp_http entry of tracing.exporters
	// whose connection settings are used. Required. Tracing itself may be
	// disabled: the exporter entry is then only a set of settings.
	Exporter string `yaml:"exporter" json:"exporter"`
	// Endpoint overrides the exporter's endpoint for logs only (default:
	// the exporter's endpoint; for otlp_http, a path ending in /v1/traces
	// becomes /v1/logs and an empty path becomes /v1/logs). Same forms as
	// the exporter's endpoint.
	Endpoint string `yaml:"endpoint,omitempty" json:"endpoint,omitempty"`
	// QueueSize is how many records may wait for export (default 4096, at
	// most 1048576). Requests never wait for the export: records beyond
	// the queue are dropped and counted
	// (vantage_accesslog_records_dropped_total{reason="otlp_queue_full"}).
	QueueSize int `yaml:"queue_size,omitempty" json:"queue_size,omitempty"`
	// BatchSize is the most records sent in one export call (default 512,
	// at most QueueSize).
	BatchSize int `yaml:"batch_size,omitempty" json:"batch_size,omitempty"`
	// FlushInterval is the longest a record waits for its batch to fill
	// (default 1s).
	FlushInterval Duration `yaml:"flush_interval,omitempty" json:"flush_interval,omitempty"`
}

// AccessLogFile is the file output of the access log. The file is opened
// for appending (created with mode 0640 when missing) and reopened on
// SIGUSR1, for logrotate.
type AccessLogFile struct {
	// Path is the file to append to. Required with output file.
	Path string `yaml:"path" json:"path"`
	// MaxSize turns on built-in rotation: before a write would take the
	// file past this size it is renamed to Path.1 (older backups shift to
	// .2, .3, ...) and a new file is started. A number of bytes or a
	// string such as "100MiB" or "1GB". Default 0: no built-in rotation.
	MaxSize ByteSize `yaml:"max_size" json:"max_size"`
	// MaxBackups is how many rotated files are kept; older ones are
	// deleted (default 5).
	MaxBackups int `yaml:"max_backups" json:"max_backups"`
}

// AccessLogFilter chooses which requests are logged. The route filters
// apply first. Then, when Status or MinDuration is set, a request is kept
// if it matches any of them (a listed status, or at least MinDuration).
// Last, successful requests (status below 400 and no error kind) are
// sampled by SuccessSampleRatio; errors are never sampled away.
type AccessLogFilter struct {
	// Status lists status codes ("404") or classes ("5xx") to log.
	// Default: all.
	Status []string `yaml:"status,omitempty" json:"status,omitempty"`
	// MinDuration logs requests that took at least this long. Default 0:
	// no duration filter.
	MinDuration Duration `yaml:"min_duration" json:"min_duration"`
	// Routes, when set, logs only these routes (by name); requests that
	// matched no route are then not logged.
	Routes []string `yaml:"routes,omitempty" json:"routes,omitempty"`
	// ExcludeRoutes never logs these routes (by name).
	ExcludeRoutes []string `yaml:"exclude_routes,omitempty" json:"exclude_routes,omitempty"`
	// SuccessSampleRatio is the share of successful requests logged, from
	// 0 to 1 (default 1: all).
	SuccessSampleRatio *float64 `yaml:"success_sample_ratio,omitempty" json:"success_sample_ratio,omitempty"`
}

// SampleRatio returns SuccessSampleRatio, 1 when unset.
func (f AccessLogFilter) SampleRatio() float64 {
	if f.SuccessSampleRatio == nil {
		return 1
	}
	return *f.SuccessSampleRatio
}

func (a *AccessLog) setDefaults() {
	if a.Enabled == nil {
		a.Enabled = boolPtr(true)
	}
	if a.Format == "" {
		a.Format = AccessLogJSON
	}
	if a.Output == "" {
		a.Output = OutputStdout
	}
	if a.BufferSize == 0 {
		a.BufferSize = defaultAccessLogBuffer
	}
	if a.File.MaxBackups == 0 {
		a.File.MaxBackups = defaultAccessLogMaxBackups
	}
	if a.Filter.SuccessSampleRatio == nil {
		r := 1.0
		a.Filter.SuccessSampleRatio = &r
	}
	if o := a.OTLP; o != nil {
		if o.QueueSize == 0 {
			o.QueueSize = DefaultAccessLogOTLPQueueSize
		}
		if o.BatchSize == 0 {
			o.BatchSize = min(DefaultAccessLogOTLPBatchSize, o.QueueSize)
		}
		if o.FlushInterval == 0 {
			o.FlushInterval = Duration(DefaultAccessLogOTLPFlushInterval)
		}
	}
}

func (a *AccessLog) validate(v *validator, path string) {
	switch a.Format {
	case AccessLogJSON, AccessLogCommon, AccessLogCombined:
	default:
		v.errorf(path+".format", "must be json, common or combined; got %q", a.Format)
	}
	switch a.Output {
	case OutputStdout, OutputStderr:
	case OutputFile:
		if a.File.Path == "" {
			v.errorf(path+".file.path", "is required with output file")
		}
	case OutputNone:
		if a.OTLP == nil {
			v.errorf(path+".output", "none requires access_log.otlp (use enabled: false to turn the access log off)")
		}
	default:
		v.errorf(path+".output", "must be stdout, stderr, file or none; got %q", a.Output)
	}
	if a.File.MaxSize < 0 {
		v.errorf(path+".file.max_size", "must not be negative")
	}
	if a.File.MaxBackups < 0 {
		v.errorf(path+".file.max_backups", "must not be negative")
	}
	if a.BufferSize < 0 || a.BufferSize > maxAccessLogBuffer {
		v.errorf(path+".buffer_size", "must be between 1 and %d, got %d", maxAccessLogBuffer, a.BufferSize)
	}

	f := &a.Filter
	fp := path + ".filter"
	for i, s := range f.Status {
		if _, err := ParseStatusMatcher(s); err != nil {
			v.errorf(indexPath(fp+".status", i), "%v", err)
		}
	}
	if f.MinDuration < 0 {
		v.errorf(fp+".min_duration", "must not be negative")
	}
	for i, r := range f.Routes {
		if !validName(r) {
			v.errorf(indexPath(fp+".routes", i), "must be a route name, got %q", r)
		}
	}
	for i, r := range f.ExcludeRoutes {
		if !validName(r) {
			v.errorf(indexPath(fp+".exclude_routes", i), "must be a route name, got %q", r)
		}
	}
	if r := f.SuccessSampleRatio; r != nil && (math.IsNaN(*r) || *r < 0 || *r > 1) {
		v.errorf(fp+".success_sample_ratio", "must be between 0 and 1, got %v", *r)
	}

	for i, h := range a.RedactHeaders {
		if !validHeaderName(h) {
			v.errorf(indexPath(path+".redact_headers", i), "invalid header name %q", h)
		}
	}
	// Headers the redaction policy redacts are refused by
	// Config.validateRedaction, which sees the whole policy.
	checkAllow := func(field string, list []string) {
		for i, h := range list {
			if !validHeaderName(h) {
				v.errorf(indexPath(path+"."+field, i), "invalid header name %q", h)
			}
		}
	}
	checkAllow("request_headers", a.RequestHeaders)
	checkAllow("response_headers", a.ResponseHeaders)
	for i, q := range a.RedactQueryParams {
		if q == "" {
			v.errorf(indexPath(path+".redact_query_params", i), "must not be empty")
		}
	}
	if o := a.OTLP; o != nil {
		op := path + ".otlp"
		if o.Exporter == "" {
			v.errorf(op+".exporter", "is required (the name of an otlp_grpc or otlp_http entry of tracing.exporters)")
		}
		if o.QueueSize < 0 || o.QueueSize > maxAccessLogBuffer {
			v.errorf(op+".queue_size", "must be between 1 and %d, got %d", maxAccessLogBuffer, o.QueueSize)
		}
		if o.BatchSize < 0 {
			v.errorf(op+".batch_size", "must not be negative")
		} else if o.QueueSize > 0 && o.BatchSize > o.QueueSize {
			v.errorf(op+".batch_size", "must not exceed queue_size (%d), got %d", o.QueueSize, o.BatchSize)
		}
		if o.FlushInterval < 0 {
			v.errorf(op+".flush_interval", "must not be negative")
		}
	}
}

// OTLPExporter returns the tracing exporter entry that access_log.otlp
// names, and whether there is one of an OTLP type. It is meaningful on a
// validated config.
func (a *AccessLog) OTLPExporter(t *Tracing) (TracingExporter, bool) {
	if a.OTLP == nil {
		return TracingExporter{}, false
	}
	for _, e := range t.Exporters {
		if e.Name == a.OTLP.Exporter && (e.Type == ExporterOTLPGRPC || e.Type == ExporterOTLPHTTP) {
			return e, true
		}
	}
	return TracingExporter{}, false
}

// validateRefs checks what refers outside the access_log section: the
// exporter access_log.otlp names must be an OTLP entry of
// c.Tracing.Exporters, and an endpoint override must fit its type.
func (a *AccessLog) validateRefs(v *validator, path string, c *Config) {
	o := a.OTLP
	if o == nil || o.Exporter == "" {
		return
	}
	op := path + ".otlp"
	e, ok := a.OTLPExporter(&c.Tracing)
	if !ok {
		for _, x := range c.Tracing.Exporters {
			if x.Name == o.Exporter {
				v.errorf(op+".exporter", "exporter %q is of type %s; OTLP logs need otlp_grpc or otlp_http", o.Exporter, x.Type)
				return
			}
		}
		v.errorf(op+".exporter", "no otlp exporter named %q in tracing.exporters", o.Exporter)
		return
	}
	if o.Endpoint != "" {
		// Check the override as the exporter's own endpoint is checked.
		probe := TracingExporter{Name: e.Name, Type: e.Type, Endpoint: o.Endpoint, Compression: "none"}
		sub := &validator{}
		probe.validate(sub, op, map[string]bool{})
		for _, fe := range sub.errs {
			v.errorf(fe.Path, "%s", fe.Msg)
		}
		if len(sub.errs) > 0 {
			return
		}
	}
	if _, err := o.LogsEndpoint(e); err != nil {
		v.errorf(op+".endpoint", "%v", err)
	}
}

// LogsEndpoint returns where OTLP logs go when e is the named exporter:
// Endpoint when set, else e.Endpoint. For otlp_http the URL's path is
// /v1/logs when it has none, and a path ending in /v1/traces taken from
// the exporter ends in /v1/logs instead; any other exporter path cannot be
// mapped and is an error (set Endpoint). e's endpoint must be valid.
func (o *AccessLogOTLP) LogsEndpoint(e TracingExporter) (string, error) {
	ep := e.Endpoint
	if o.Endpoint != "" {
		ep = o.Endpoint
	}
	if e.Type != ExporterOTLPHTTP {
		return ep, nil
	}
	u, err := url.Parse(ep)
	if err != nil {
		return "", fmt.Errorf("invalid URL %q: %w", ep, err)
	}
	switch {
	case u.Path == "" || u.Path == "/":
		u.Path = "/v1/logs"
	case o.Endpoint != "":
	case strings.HasSuffix(u.Path, "/v1/traces"):
		u.Path = strings.TrimSuffix(u.Path, "/v1/traces") + "/v1/logs"
	default:
		return "", fmt.Errorf("is required: the logs URL cannot be derived from exporter %q's endpoint %q (its path does not end in /v1/traces)", e.Name, ep)
	}
	return u.String(), nil
}

// Log configures the gateway's own operational log (log/slog).
type Log struct {
	// Level is debug, info, warn or error (default info).
	Level string `yaml:"level" json:"level"`
	// Format is json or text (default text).
	Format string `yaml:"format" json:"format"`
	// AddSource adds the source file and line of each log call (default
	// false).
	AddSource bool `yaml:"add_source" json:"add_source"`
}

func (l *Log) setDefaults() {
	if l.Level == "" {
		l.Level = "info"
	}
	if l.Format == "" {
		l.Format = "text"
	}
}

func (l *Log) validate(v *validator, path string) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		v.errorf(path+".level", "must be one of debug, info, warn, error; got %q", l.Level)
	}
	switch l.Format {
	case "json", "text":
	default:
		v.errorf(path+".format", "must be json or text; got %q", l.Format)
	}
}

// ByteSize is a number of bytes, written in YAML and JSON as a plain
// integer or as a string with a unit: B, KB, MB, GB (powers of 1000) or
// KiB, MiB, GiB (powers of 1024), for example "100MiB".
type ByteSize int64

// Bytes returns s as an int64.
func (s ByteSize) Bytes() int64 { return int64(s) }

// String formats s with the largest binary unit that divides it.
func (s ByteSize) String() string {
	n := int64(s)
	for _, u := range []struct {
		name string
		mul  int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mul == 0 {
			return strconv.FormatInt(n/u.mul, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// ParseByteSize parses "1048576", "512KiB", "100MB", "1GiB" and the like.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '-') {
		i++
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q (use a number of bytes or a unit: KB, MB, GB, KiB, MiB, GiB)", s)
	}
	var mul int64
	switch strings.ToLower(strings.TrimSpace(t[i:])) {
	case "", "b":
		mul = 1
	case "kb", "k":
		mul = 1000
	case "mb", "m":
		mul = 1000 * 1000
	case "gb", "g":
		mul = 1000 * 1000 * 1000
	case "kib":
		mul = 1 << 10
	case "mib":
		mul = 1 << 20
	case "gib":
		mul = 1 << 30
	default:
		return 0, fmt.Errorf("invalid size %q (use a number of bytes or a unit: KB, MB, GB, KiB, MiB, GiB)", s)
	}
	if n > math.MaxInt64/mul || n < math.MinInt64/mul {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return ByteSize(n * mul), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	var str string
	if err := n.Decode(&str); err != nil {
		return typeError(n, "size must be a number of bytes or a string like \"100MiB\"")
	}
	v, err := ParseByteSize(str)
	if err != nil {
		return typeError(n, "%v", err)
	}
	*s = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (s ByteSize) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON implements json.Marshaler.
func (s ByteSize) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }
