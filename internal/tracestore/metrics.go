package tracestore

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons, the reason label of the dropped counters.
const (
	dropQueueFull    = iota // the write queue was full (or the store closed)
	dropTooManySpans        // the trace already holds its maximum
	dropDuplicate           // a span id the trace already holds
	dropNoTrace             // a log record without a trace id
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{"queue_full", "trace_full", "duplicate", "no_trace"}

var evictReasonNames = [...]string{evictBudget: "budget", evictAge: "age"}

type storeMetrics struct {
	s *Store

	spansReceived, logsReceived prometheus.Counter
	spansDropped, logsDropped   [numDropReasons]prometheus.Counter
	evictions                   [2][numClasses]prometheus.Counter
	query                       *prometheus.HistogramVec
	tornRecords, compactions    prometheus.Counter
	persistErrors               prometheus.Counter

	spansD, tracesD, logsD, bytesD, budgetD, classBytesD, classTracesD *prometheus.Desc
}

func newStoreMetrics(s *Store, reg prometheus.Registerer) (*storeMetrics, error) {
	m := &storeMetrics{s: s}
	m.spansReceived = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vantage_tracestore_spans_received_total", Help: "Spans stored in the trace store.",
	})
	m.logsReceived = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vantage_tracestore_logs_received_total", Help: "Log records stored in the trace store.",
	})
	spansDropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vantage_tracestore_spans_dropped_total",
		Help: "Spans not stored, by reason: queue_full (the store's write queue was full), trace_full (the trace holds its maximum), duplicate.",
	}, []string{"reason"})
	logsDropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vantage_tracestore_logs_dropped_total",
		Help: "Log records not stored, by reason: queue_full, trace_full, no_trace (OTLP records without a trace id).",
	}, []string{"reason"})
	for i, n := range dropReasonNames {
		m.spansDropped[i] = spansDropped.WithLabelValues(n)
		m.logsDropped[i] = logsDropped.WithLabelValues(n)
	}
	evictions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vantage_tracestore_evictions_total",
		Help: "Traces evicted from the trace store, by retention class and reason (budget, age).",
	}, []string{"class", "reason"})
	for r, rn := range evictReasonNames {
		for _, c := range Classes() {
			m.evictions[r][c] = evictions.WithLabelValues(c.String(), rn)
		}
	}
	m.query = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "vantage_tracestore_query_duration_seconds",
		Help:    "Time to answer a trace store query, by query (trace, search, services, operations, dependencies).",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
	}, []string{"query"})
	m.tornRecords = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vantage_tracestore_persist_torn_records_total",
		Help: "Torn or corrupt records found at the end of a segment of the data directory when it was opened (each one truncated its segment).",
	})
	m.compactions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vantage_tracestore_persist_compactions_total",
		Help: "Segments of the data directory rewritten at the head of the log and deleted to keep the disk bounded.",
	})
	m.persistErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vantage_tracestore_persist_errors_total",
		Help: "Failed writes, syncs or compactions of the data directory (the store keeps serving from memory).",
	})
	m.spansD = prometheus.NewDesc("vantage_tracestore_spans", "Spans held by the trace store.", nil, nil)
	m.tracesD = prometheus.NewDesc("vantage_tracestore_traces", "Traces held by the trace store.", nil, nil)
	m.logsD = prometheus.NewDesc("vantage_tracestore_logs", "Log records held by the trace store.", nil, nil)
	m.bytesD = prometheus.NewDesc("vantage_tracestore_bytes", "Bytes the trace store accounts for (spans, logs, indexes).", nil, nil)
	m.budgetD = prometheus.NewDesc("vantage_tracestore_budget_bytes", "The trace store's byte budget.", nil, nil)
	m.classBytesD = prometheus.NewDesc("vantage_tracestore_class_bytes", "Bytes held by the traces of each retention class.", []string{"class"}, nil)
	m.classTracesD = prometheus.NewDesc("vantage_tracestore_class_traces", "Traces of each retention class.", []string{"class"}, nil)
	if reg != nil {
		for _, c := range []prometheus.Collector{m.spansReceived, m.logsReceived, spansDropped, logsDropped, evictions, m.query, m.tornRecords, m.compactions, m.persistErrors, m} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("tracestore: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Describe implements prometheus.Collector for the gauges.
func (m *storeMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.spansD, m.tracesD, m.logsD, m.bytesD, m.budgetD, m.classBytesD, m.classTracesD} {
		ch <- d
	}
}

// Collect implements prometheus.Collector for the gauges.
func (m *storeMetrics) Collect(ch chan<- prometheus.Metric) {
	st := m.s.Stats()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	g(m.spansD, float64(st.Spans))
	g(m.tracesD, float64(st.Traces))
	g(m.logsD, float64(st.Logs))
	g(m.bytesD, float64(st.Bytes))
	g(m.budgetD, float64(st.Budget))
	for _, c := range Classes() {
		g(m.classBytesD, float64(st.ClassBytes[c]), c.String())
		g(m.classTracesD, float64(st.ClassTraces[c]), c.String())
	}
}
