package config

import (
	"regexp"
	"strings"
	"time"
)

// Metrics defaults.
const (
	defaultMetricsMaxSeries        = 10000
	defaultMetricsMaxHistSeries    = 2000
	defaultMetricsSeriesIdle       = 10 * time.Minute
	defaultExemplarMinInterval     = time.Second
	defaultNativeBucketFactor      = 1.1
	defaultNativeMaxBuckets        = 160
	defaultHostMetricsInterval     = 15 * time.Second
	defaultHostProcPath            = "/proc"
	defaultHostSysPath             = "/sys"
	maxMetricsBuckets              = 64
	maxKPILabelValues              = 64
	metricsKPITypeCounter          = "counter"
	metricsKPITypeHistogram        = "histogram"
	minMetricsSeriesIdleTimeout    = time.Second
	maxNativeHistogramBucketFactor = 2
)

// DefaultLatencyBuckets returns (a fresh copy of) the default upper bounds,
// in seconds, of the service-level and KPI latency histograms: 1 ms to
// 30 s, spaced for an API (dense below one second, where objectives are).
func DefaultLatencyBuckets() []float64 {
	return []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
}

// DefaultOverheadBuckets returns (a fresh copy of) the default upper bounds,
// in seconds, of the per-route gateway-overhead histogram: 100 µs to 25 ms,
// since the gateway's own share of a request is usually far below the
// latency buckets' first bound; five bounds, because the histogram is
// labelled by route.
func DefaultOverheadBuckets() []float64 {
	return []float64{0.0001, 0.00025, 0.001, 0.005, 0.025}
}

// DefaultRouteBuckets returns (a fresh copy of) the default upper bounds,
// in seconds, of the latency histograms labelled by route (request total
// and upstream time, upstream attempts): four bounds, each one of
// DefaultLatencyBuckets, so that an estate of thousands of routes exposes
// 7 samples per route histogram instead of 17. The service-level
// histogram keeps Buckets in full.
func DefaultRouteBuckets() []float64 { return []float64{0.025, 0.1, 0.5, 2.5} }

// Metrics configures the Prometheus metrics served on the admin listener
// at /metrics. Settings are read at start; a reload does not change them.
type Metrics struct {
	// Enabled turns metrics on (default true).
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// Buckets are the upper bounds, in seconds, of the service-level
	// request latency histogram and of duration KPIs: strictly increasing,
	// positive, at most 64 (default DefaultLatencyBuckets(): 0.001 … 30).
	Buckets []float64 `yaml:"buckets,omitempty" json:"buckets,omitempty"`
	// OverheadBuckets are the upper bounds, in seconds, of the gateway
	// overhead histogram, labelled by route (default
	// DefaultOverheadBuckets(): 0.0001 … 0.025).
	OverheadBuckets []float64 `yaml:"overhead_buckets,omitempty" json:"overhead_buckets,omitempty"`
	// RouteBuckets are the upper bounds, in seconds, of the latency
	// histograms labelled by route: request total and upstream time, and
	// upstream attempts (default DefaultRouteBuckets(): 0.025, 0.1, 0.5,
	// 2.5). Set it to Buckets for full resolution per route.
	RouteBuckets []float64 `yaml:"route_buckets,omitempty" json:"route_buckets,omitempty"`
	// NativeHistograms also exposes every histogram as a Prometheus native
	// histogram (sent only to scrapers that negotiate the protobuf format).
	NativeHistograms NativeHistograms `yaml:"native_histograms" json:"native_histograms"`
	// Exemplars attaches the trace id of sampled requests to latency
	// histograms and error counters (OpenMetrics exemplars).
	Exemplars Exemplars `yaml:"exemplars" json:"exemplars"`
	// MaxSeriesPerMetric caps the label sets of each metric family (default
	// 10000). Past the cap, new label sets are folded into one series whose
	// labels are all "other", and vantage_metrics_series_folded_total
	// counts them.
	MaxSeriesPerMetric int `yaml:"max_series_per_metric" json:"max_series_per_metric"`
	// MaxHistogramSeriesPerMetric caps the label sets of each histogram
	// family (default 2000, at most MaxSeriesPerMetric): a histogram
	// series costs a sample per bucket, so an estate of thousands of
	// active routes folds its least early histograms into "other" long
	// before its counters, which alerts need per route.
	MaxHistogramSeriesPerMetric int `yaml:"max_histogram_series_per_metric" json:"max_histogram_series_per_metric"`
	// SeriesIdleTimeout removes a series that has not been updated for
	// this long (default 10m, at least 1s); it comes back from zero when
	// next updated. State gauges (breaker state, upstream health) never
	// expire.
	SeriesIdleTimeout Duration `yaml:"series_idle_timeout" json:"series_idle_timeout"`
	// Process turns on the Go runtime and process collectors (go_* and
	// process_* metrics; default true).
	Process *bool `yaml:"process,omitempty" json:"process,omitempty"`
	// Host configures the host CPU, memory, disk and network metrics.
	Host HostMetrics `yaml:"host" json:"host"`
	// KPIs declare business metrics counted from matching requests.
	KPIs []KPI `yaml:"kpis,omitempty" json:"kpis,omitempty"`
}

// NativeHistograms configures native (sparse, exponential) histograms.
type NativeHistograms struct {
	// Enabled exposes native histograms besides the classic buckets
	// (default false).
	Enabled bool `yaml:"enabled" json:"enabled"`
	// BucketFactor is the growth factor between native buckets, above 1
	// and at most 2 (default 1.1).
	BucketFactor float64 `yaml:"bucket_factor" json:"bucket_factor"`
	// MaxBuckets caps the buckets of one native histogram; past it the
	// resolution is reduced (default 160).
	MaxBuckets int `yaml:"max_buckets" json:"max_buckets"`
}

// Exemplars configures OpenMetrics exemplars.
type Exemplars struct {
	// Enabled attaches exemplars (default true). Exemplars are served in
	// the OpenMetrics format only.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// MinInterval is the shortest time between two exemplars replacing
	// each other in one histogram bucket or counter (default 1s): a scrape
	// shows only the latest, so replacing it faster buys nothing and costs
	// allocations on the request path.
	MinInterval Duration `yaml:"min_interval" json:"min_interval"`
}

// HostMetrics configures the host metrics read from procfs and statfs.
type HostMetrics struct {
	// Enabled turns host metrics on (default true; they are collected on
	// Linux only).
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// Interval is how often the host figures are read in the background
	// (default 15s); a scrape serves the latest reading and never waits
	// on the filesystem.
	Interval Duration `yaml:"interval" json:"interval"`
	// ProcPath is the procfs mount point (default "/proc").
	ProcPath string `yaml:"proc_path" json:"proc_path"`
	// SysPath is the sysfs mount point (default "/sys").
	SysPath string `yaml:"sys_path" json:"sys_path"`
}

// KPI declares a business metric: a counter (or histogram) of the requests
// that match a route, a method and a status, optionally labelled by a
// response header's value from an allow-list. It is exposed as
// vantage_kpi_<name>.
type KPI struct {
	// Name is the metric name after the "vantage_kpi_" prefix, in
	// snake_case: a counter's ends in "_total" (purchases_total); a
	// histogram's must not, and should end in its unit (checkout_seconds).
	// Required, unique.
	Name string `yaml:"name" json:"name"`
	// Help is the metric's HELP text (default "Business KPI <name>.").
	Help string `yaml:"help,omitempty" json:"help,omitempty"`
	// Type is "counter" (default) or "histogram".
	Type string `yaml:"type,omitempty" json:"type,omitempty"`
	// Match selects the counted requests.
	Match KPIMatch `yaml:"match" json:"match"`
	// Label, when set, labels the KPI by a response header's value.
	Label *KPILabel `yaml:"label,omitempty" json:"label,omitempty"`
	// ValueHeader (histograms only) names a response header whose numeric
	// value is observed (an order amount); a response without a numeric
	// value is not observed. Default: the request's total duration in
	// seconds.
	ValueHeader string `yaml:"value_header,omitempty" json:"value_header,omitempty"`
	// Buckets are the histogram's upper bounds (histograms only; default
	// Metrics.Buckets for durations; required with ValueHeader).
	Buckets []float64 `yaml:"buckets,omitempty" json:"buckets,omitempty"`
}

// KPIMatch selects requests. Empty lists match everything; set lists must
// all match.
type KPIMatch struct {
	// Routes lists route names. A name that is not a route of the running
	// config never matches.
	Routes []string `yaml:"routes,omitempty" json:"routes,omitempty"`
	// Methods lists upper-case HTTP methods ("POST").
	Methods []string `yaml:"methods,omitempty" json:"methods,omitempty"`
	// Status lists status codes ("201") or classes ("2xx") of the response
	// sent to the client.
	Status []string `yaml:"status,omitempty" json:"status,omitempty"`
}

// KPILabel labels a KPI by a response header's value. Only allow-listed
// values become label values: any other value is "other", a missing header
// "none", so the number of series stays at most len(Values)+2.
type KPILabel struct {
	// Name is the Prometheus label name (snake_case, not "le" nor starting
	// with "__"). Required.
	Name string `yaml:"name" json:"name"`
	// Header is the response header read once the response is written.
	// Required.
	Header string `yaml:"header" json:"header"`
	// Values is the allow-list of label values (exact match), at most 64.
	// Required.
	Values []string `yaml:"values" json:"values"`
}

// ExemplarsEnabled reports whether exemplars are on (after defaults).
func (m *Metrics) ExemplarsEnabled() bool {
	return m.Exemplars.Enabled == nil || *m.Exemplars.Enabled
}

// ProcessEnabled reports whether the Go runtime and process collectors are
// on (after defaults).
func (m *Metrics) ProcessEnabled() bool { return m.Process == nil || *m.Process }

// HostEnabled reports whether host metrics are on (after defaults).
func (m *Metrics) HostEnabled() bool { return m.Host.Enabled == nil || *m.Host.Enabled }

// IsEnabled reports whether metrics are on (after defaults).
func (m *Metrics) IsEnabled() bool { return m.Enabled == nil || *m.Enabled }

func (m *Metrics) setDefaults() {
	if m.Enabled == nil {
		m.Enabled = boolPtr(true)
	}
	if len(m.Buckets) == 0 {
		m.Buckets = DefaultLatencyBuckets()
	}
	if len(m.OverheadBuckets) == 0 {
		m.OverheadBuckets = DefaultOverheadBuckets()
	}
	if len(m.RouteBuckets) == 0 {
		m.RouteBuckets = DefaultRouteBuckets()
	}
	if m.NativeHistograms.BucketFactor == 0 {
		m.NativeHistograms.BucketFactor = defaultNativeBucketFactor
	}
	if m.NativeHistograms.MaxBuckets == 0 {
		m.NativeHistograms.MaxBuckets = defaultNativeMaxBuckets
	}
	if m.Exemplars.Enabled == nil {
		m.Exemplars.Enabled = boolPtr(true)
	}
	if m.Exemplars.MinInterval == 0 {
		m.Exemplars.MinInterval = Duration(defaultExemplarMinInterval)
	}
	if m.MaxSeriesPerMetric == 0 {
		m.MaxSeriesPerMetric = defaultMetricsMaxSeries
	}
	if m.MaxHistogramSeriesPerMetric == 0 {
		m.MaxHistogramSeriesPerMetric = min(defaultMetricsMaxHistSeries, max(m.MaxSeriesPerMetric, 1))
	}
	if m.SeriesIdleTimeout == 0 {
		m.SeriesIdleTimeout = Duration(defaultMetricsSeriesIdle)
	}
	if m.Process == nil {
		m.Process = boolPtr(true)
	}
	h := &m.Host
	if h.Enabled == nil {
		h.Enabled = boolPtr(true)
	}
	if h.Interval == 0 {
		h.Interval = Duration(defaultHostMetricsInterval)
	}
	if h.ProcPath == "" {
		h.ProcPath = defaultHostProcPath
	}
	if h.SysPath == "" {
		h.SysPath = defaultHostSysPath
	}
	for i := range m.KPIs {
		k := &m.KPIs[i]
		if k.Type == "" {
			k.Type = metricsKPITypeCounter
		}
		if k.Help == "" {
			k.Help = "Business KPI " + k.Name + "."
		}
		if k.Type == metricsKPITypeHistogram && len(k.Buckets) == 0 && k.ValueHeader == "" {
			k.Buckets = append([]float64(nil), m.Buckets...)
		}
	}
}

var (
	metricNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
)

func (m *Metrics) validate(v *validator, path string) {
	validateBuckets(v, path+".buckets", m.Buckets)
	validateBuckets(v, path+".overhead_buckets", m.OverheadBuckets)
	validateBuckets(v, path+".route_buckets", m.RouteBuckets)
	nh := m.NativeHistograms
	if nh.BucketFactor <= 1 || nh.BucketFactor > maxNativeHistogramBucketFactor {
		v.errorf(path+".native_histograms.bucket_factor", "must be above 1 and at most 2, got %g", nh.BucketFactor)
	}
	if nh.MaxBuckets < 1 {
		v.errorf(path+".native_histograms.max_buckets", "must be >= 1, got %d", nh.MaxBuckets)
	}
	if m.Exemplars.MinInterval < 0 {
		v.errorf(path+".exemplars.min_interval", "must not be negative")
	}
	if h := m.MaxHistogramSeriesPerMetric; h < 1 || m.MaxSeriesPerMetric >= 1 && h > m.MaxSeriesPerMetric {
		v.errorf(path+".max_histogram_series_per_metric", "must be between 1 and max_series_per_metric (%d), got %d", m.MaxSeriesPerMetric, h)
	}
	if m.MaxSeriesPerMetric < 1 {
		v.errorf(path+".max_series_per_metric", "must be >= 1, got %d", m.MaxSeriesPerMetric)
	}
	if m.SeriesIdleTimeout.D() < minMetricsSeriesIdleTimeout {
		v.errorf(path+".series_idle_timeout", "must be at least 1s, got %s", m.SeriesIdleTimeout)
	}
	h := m.Host
	if h.Interval <= 0 {
		v.errorf(path+".host.interval", "must be positive")
	}
	if !strings.HasPrefix(h.ProcPath, "/") {
		v.errorf(path+".host.proc_path", "must be an absolute path, got %q", h.ProcPath)
	}
	if !strings.HasPrefix(h.SysPath, "/") {
		v.errorf(path+".host.sys_path", "must be an absolute path, got %q", h.SysPath)
	}
	names := map[string]bool{}
	for i := range m.KPIs {
		p := indexPath(path+".kpis", i)
		k := &m.KPIs[i]
		k.validate(v, p)
		if k.Name != "" {
			if names[k.Name] {
				v.errorf(p+".name", "duplicate KPI name %q", k.Name)
			}
			names[k.Name] = true
		}
	}
}

func (k *KPI) validate(v *validator, p string) {
	switch {
	case k.Name == "":
		v.errorf(p+".name", "is required")
	case !metricNameRE.MatchString(k.Name):
		v.errorf(p+".name", "must be snake_case (lower-case letters, digits, '_'), got %q", k.Name)
	}
	switch k.Type {
	case metricsKPITypeCounter:
		if k.Name != "" && !strings.HasSuffix(k.Name, "_total") {
			v.errorf(p+".name", "a counter's name must end in _total, got %q", k.Name)
		}
		if k.ValueHeader != "" {
			v.errorf(p+".value_header", "is only used with type histogram")
		}
		if len(k.Buckets) > 0 {
			v.errorf(p+".buckets", "are only used with type histogram")
		}
	case metricsKPITypeHistogram:
		for _, suf := range []string{"_total", "_bucket", "_count", "_sum", "_created"} {
			if strings.HasSuffix(k.Name, suf) {
				v.errorf(p+".name", "a histogram's name must not end in %s, got %q", suf, k.Name)
			}
		}
		if k.ValueHeader != "" {
			if !validHeaderName(k.ValueHeader) {
				v.errorf(p+".value_header", "invalid header name %q", k.ValueHeader)
			}
			if len(k.Buckets) == 0 {
				v.errorf(p+".buckets", "are required with value_header")
			}
		}
		if len(k.Buckets) > 0 {
			validateBuckets(v, p+".buckets", k.Buckets)
		}
	default:
		v.errorf(p+".type", "must be counter or histogram, got %q", k.Type)
	}
	for i, r := range k.Match.Routes {
		if !validName(r) {
			v.errorf(indexPath(p+".match.routes", i), "must be a route name, got %q", r)
		}
	}
	for i, meth := range k.Match.Methods {
		if meth == "" || strings.ToUpper(meth) != meth || strings.ContainsAny(meth, " \t/") {
			v.errorf(indexPath(p+".match.methods", i), "must be an upper-case method like POST, got %q", meth)
		}
	}
	for i, st := range k.Match.Status {
		if _, err := ParseStatusMatcher(st); err != nil {
			v.errorf(indexPath(p+".match.status", i), "%v", err)
		}
	}
	if l := k.Label; l != nil {
		lp := p + ".label"
		switch {
		case l.Name == "":
			v.errorf(lp+".name", "is required")
		case !labelNameRE.MatchString(l.Name) || strings.HasPrefix(l.Name, "__") || l.Name == "le" || l.Name == "quantile":
			v.errorf(lp+".name", "must be a snake_case label name, not le, quantile or starting with __, got %q", l.Name)
		}
		if l.Header == "" {
			v.errorf(lp+".header", "is required")
		} else if !validHeaderName(l.Header) {
			v.errorf(lp+".header", "invalid header name %q", l.Header)
		}
		switch {
		case len(l.Values) == 0:
			v.errorf(lp+".values", "must list at least one allowed value")
		case len(l.Values) > maxKPILabelValues:
			v.errorf(lp+".values", "must list at most %d values, got %d", maxKPILabelValues, len(l.Values))
		}
		seen := map[string]bool{}
		for i, val := range l.Values {
			switch {
			case val == "":
				v.errorf(indexPath(lp+".values", i), "must not be empty")
			case val == "other" || val == "none":
				v.errorf(indexPath(lp+".values", i), "%q is reserved (it stands for values outside the list, or a missing header)", val)
			case seen[val]:
				v.errorf(indexPath(lp+".values", i), "duplicate value %q", val)
			}
			seen[val] = true
		}
	}
}

func validateBuckets(v *validator, p string, b []float64) {
	if len(b) > maxMetricsBuckets {
		v.errorf(p, "must list at most %d bounds, got %d", maxMetricsBuckets, len(b))
	}
	for i, x := range b {
		if !(x > 0) || x != x || x > 1e300 {
			v.errorf(indexPath(p, i), "must be a positive finite number, got %g", x)
			continue
		}
		if i > 0 && x <= b[i-1] {
			v.errorf(indexPath(p, i), "must be greater than the previous bound %g, got %g", b[i-1], x)
		}
	}
}
