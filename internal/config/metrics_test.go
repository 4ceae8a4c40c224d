package config

import (
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const metricsBase = "listeners:\n  - name: public\n    address: \":1\"\nservices:\n  - name: s\n    upstreams: [{url: \"http://a:1\"}]\nroutes:\n  - name: checkout\n    service: s\n"

func TestMetricsDefaults(t *testing.T) {
	cfg, err := Parse("f.yml", []byte(metricsBase), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Metrics
	if !m.IsEnabled() || !m.ExemplarsEnabled() || !m.ProcessEnabled() || !m.HostEnabled() {
		t.Errorf("enabled flags: metrics %v exemplars %v process %v host %v, want all true",
			m.IsEnabled(), m.ExemplarsEnabled(), m.ProcessEnabled(), m.HostEnabled())
	}
	if !reflect.DeepEqual(m.Buckets, DefaultLatencyBuckets()) {
		t.Errorf("buckets = %v", m.Buckets)
	}
	if m.Buckets[0] != 0.001 || m.Buckets[len(m.Buckets)-1] != 30 {
		t.Errorf("latency buckets must span 1ms..30s, got %v", m.Buckets)
	}
	if !reflect.DeepEqual(m.OverheadBuckets, DefaultOverheadBuckets()) {
		t.Errorf("overhead buckets = %v", m.OverheadBuckets)
	}
	if !reflect.DeepEqual(m.RouteBuckets, []float64{0.025, 0.1, 0.5, 2.5}) {
		t.Errorf("route buckets %v", m.RouteBuckets)
	}
	for _, b := range m.RouteBuckets {
		if !slices.Contains(m.Buckets, b) {
			t.Errorf("route bucket %g is not one of the service-level buckets %v", b, m.Buckets)
		}
	}
	if m.MaxSeriesPerMetric != 10000 || m.MaxHistogramSeriesPerMetric != 2000 || m.SeriesIdleTimeout.D() != 10*time.Minute {
		t.Errorf("cap %d idle %s", m.MaxSeriesPerMetric, m.SeriesIdleTimeout)
	}
	if m.Exemplars.MinInterval.D() != time.Second {
		t.Errorf("exemplar interval %s", m.Exemplars.MinInterval)
	}
	if m.NativeHistograms.Enabled || m.NativeHistograms.BucketFactor != 1.1 || m.NativeHistograms.MaxBuckets != 160 {
		t.Errorf("native %+v", m.NativeHistograms)
	}
	if m.Host.Interval.D() != 15*time.Second || m.Host.ProcPath != "/proc" || m.Host.SysPath != "/sys" {
		t.Errorf("host %+v", m.Host)
	}
}

func TestMetricsKPIDefaults(t *testing.T) {
	y := metricsBase + `metrics:
  buckets: [0.01, 0.1, 1]
  kpis:
    - name: purchases_total
      match: {routes: [checkout], methods: [POST], status: ["2xx"]}
      label: {name: payment_method, header: X-Payment-Method, values: [card, paypal]}
    - name: checkout_seconds
      type: histogram
      match: {routes: [checkout]}
    - name: order_amount
      type: histogram
      value_header: X-Order-Amount
      buckets: [10, 100, 1000]
`
	cfg, err := Parse("f.yml", []byte(y), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Metrics.KPIs
	if k[0].Type != "counter" || k[0].Help != "Business KPI purchases_total." {
		t.Errorf("kpi[0] defaults: %+v", k[0])
	}
	if !reflect.DeepEqual(k[1].Buckets, []float64{0.01, 0.1, 1}) {
		t.Errorf("duration KPI buckets default to metrics.buckets, got %v", k[1].Buckets)
	}
	if !reflect.DeepEqual(k[2].Buckets, []float64{10, 100, 1000}) {
		t.Errorf("kpi[2] buckets %v", k[2].Buckets)
	}
}

// TestMetricsHistogramCapFollowsASmallCap: a series cap below 2000 is the
// histogram cap's default too.
func TestMetricsHistogramCapFollowsASmallCap(t *testing.T) {
	cfg, err := Parse("f.yml", []byte(metricsBase+"metrics:\n  max_series_per_metric: 300\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Metrics.MaxHistogramSeriesPerMetric; got != 300 {
		t.Errorf("histogram cap %d, want 300", got)
	}
}

func TestMetricsValidation(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unordered buckets", "metrics:\n  buckets: [0.1, 0.05]\n", `metrics.buckets[1]: must be greater than the previous bound 0.1, got 0.05`},
		{"negative bucket", "metrics:\n  overhead_buckets: [-1, 1]\n", `metrics.overhead_buckets[0]: must be a positive finite number`},
		{"unordered route buckets", "metrics:\n  route_buckets: [1, 1]\n", `metrics.route_buckets[1]: must be greater than the previous bound 1, got 1`},
		{"too many buckets", "metrics:\n  buckets: [" + manyBuckets(65) + "]\n", `metrics.buckets: must list at most 64 bounds, got 65`},
		{"bucket factor", "metrics:\n  native_histograms: {enabled: true, bucket_factor: 3}\n", `metrics.native_histograms.bucket_factor: must be above 1 and at most 2, got 3`},
		{"max buckets", "metrics:\n  native_histograms: {max_buckets: -1}\n", `metrics.native_histograms.max_buckets: must be >= 1`},
		{"exemplar interval", "metrics:\n  exemplars: {min_interval: -1s}\n", `metrics.exemplars.min_interval: must not be negative`},
		{"series cap", "metrics:\n  max_series_per_metric: -5\n", `metrics.max_series_per_metric: must be >= 1, got -5`},
		{"histogram cap above the cap", "metrics:\n  max_series_per_metric: 100\n  max_histogram_series_per_metric: 500\n", `metrics.max_histogram_series_per_metric: must be between 1 and max_series_per_metric (100), got 500`},
		{"histogram cap negative", "metrics:\n  max_histogram_series_per_metric: -1\n", `metrics.max_histogram_series_per_metric: must be between 1`},
		{"idle timeout", "metrics:\n  series_idle_timeout: 10ms\n", `metrics.series_idle_timeout: must be at least 1s, got 10ms`},
		{"host interval", "metrics:\n  host: {interval: -1s}\n", `metrics.host.interval: must be positive`},
		{"proc path", "metrics:\n  host: {proc_path: proc}\n", `metrics.host.proc_path: must be an absolute path, got "proc"`},
		{"sys path", "metrics:\n  host: {sys_path: sys}\n", `metrics.host.sys_path: must be an absolute path`},
		{"kpi name required", "metrics:\n  kpis:\n    - match: {routes: [checkout]}\n", `metrics.kpis[0].name: is required`},
		{"kpi name case", "metrics:\n  kpis:\n    - name: Purchases_total\n", `metrics.kpis[0].name: must be snake_case`},
		{"kpi counter suffix", "metrics:\n  kpis:\n    - name: purchases\n", `metrics.kpis[0].name: a counter's name must end in _total, got "purchases"`},
		{"kpi histogram suffix", "metrics:\n  kpis:\n    - name: checkout_count\n      type: histogram\n", `metrics.kpis[0].name: a histogram's name must not end in _count`},
		{"kpi type", "metrics:\n  kpis:\n    - name: a_total\n      type: summary\n", `metrics.kpis[0].type: must be counter or histogram, got "summary"`},
		{"kpi duplicate", "metrics:\n  kpis:\n    - name: a_total\n    - name: a_total\n", `metrics.kpis[1].name: duplicate KPI name "a_total"`},
		{"kpi counter value header", "metrics:\n  kpis:\n    - name: a_total\n      value_header: X-Amount\n", `metrics.kpis[0].value_header: is only used with type histogram`},
		{"kpi counter buckets", "metrics:\n  kpis:\n    - name: a_total\n      buckets: [1]\n", `metrics.kpis[0].buckets: are only used with type histogram`},
		{"kpi value header needs buckets", "metrics:\n  kpis:\n    - name: amount\n      type: histogram\n      value_header: X-Amount\n", `metrics.kpis[0].buckets: are required with value_header`},
		{"kpi bad value header", "metrics:\n  kpis:\n    - name: amount\n      type: histogram\n      value_header: \"X Amount\"\n      buckets: [1]\n", `metrics.kpis[0].value_header: invalid header name "X Amount"`},
		{"kpi histogram buckets", "metrics:\n  kpis:\n    - name: amount\n      type: histogram\n      buckets: [2, 1]\n", `metrics.kpis[0].buckets[1]: must be greater than the previous bound`},
		{"kpi route name", "metrics:\n  kpis:\n    - name: a_total\n      match: {routes: [\"/checkout\"]}\n", `metrics.kpis[0].match.routes[0]: must be a route name, got "/checkout"`},
		{"kpi method", "metrics:\n  kpis:\n    - name: a_total\n      match: {methods: [post]}\n", `metrics.kpis[0].match.methods[0]: must be an upper-case method like POST, got "post"`},
		{"kpi status", "metrics:\n  kpis:\n    - name: a_total\n      match: {status: [\"2x\"]}\n", `metrics.kpis[0].match.status[0]: must be a status code`},
		{"kpi label name", "metrics:\n  kpis:\n    - name: a_total\n      label: {header: X-Plan, values: [free]}\n", `metrics.kpis[0].label.name: is required`},
		{"kpi label reserved", "metrics:\n  kpis:\n    - name: a_total\n      label: {name: le, header: X-Plan, values: [free]}\n", `metrics.kpis[0].label.name: must be a snake_case label name`},
		{"kpi label header", "metrics:\n  kpis:\n    - name: a_total\n      label: {name: plan, values: [free]}\n", `metrics.kpis[0].label.header: is required`},
		{"kpi label values", "metrics:\n  kpis:\n    - name: a_total\n      label: {name: plan, header: X-Plan}\n", `metrics.kpis[0].label.values: must list at least one allowed value`},
		{"kpi label reserved value", "metrics:\n  kpis:\n    - name: a_total\n      label: {name: plan, header: X-Plan, values: [free, other]}\n", `metrics.kpis[0].label.values[1]: "other" is reserved`},
		{"kpi label duplicate value", "metrics:\n  kpis:\n    - name: a_total\n      label: {name: plan, header: X-Plan, values: [free, free]}\n", `metrics.kpis[0].label.values[1]: duplicate value "free"`},
		{"kpi unknown field", "metrics:\n  kpis:\n    - name: a_total\n      labels: {}\n", `metrics.kpis[0].labels: unknown field "labels"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yml", []byte(metricsBase+tc.yaml), noEnv)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestMetricsValidationCollectsEveryError(t *testing.T) {
	y := metricsBase + "metrics:\n  max_series_per_metric: -1\n  series_idle_timeout: 1ms\n  kpis:\n    - name: x\n"
	_, err := Parse("f.yml", []byte(y), noEnv)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"metrics.max_series_per_metric", "metrics.series_idle_timeout", "metrics.kpis[0].name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %s in %v", want, err)
		}
	}
}

func TestMetricsDisabledKeepsOtherDefaults(t *testing.T) {
	cfg, err := Parse("f.yml", []byte(metricsBase+"metrics:\n  enabled: false\n  exemplars: {enabled: false}\n  host: {enabled: false}\n  process: false\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Metrics
	if m.IsEnabled() || m.ExemplarsEnabled() || m.HostEnabled() || m.ProcessEnabled() {
		t.Errorf("flags not honoured: %+v", m)
	}
}

func manyBuckets(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = strconv.Itoa(i + 1)
	}
	return strings.Join(parts, ", ")
}
