package kpi

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/metrics/series"
	"github.com/vantage-gateway/vantage/internal/observe"
)

func TestMatchAndLabel(t *testing.T) {
	set := series.NewSet(series.Options{MaxSeries: 100, IdleTimeout: time.Minute}, time.Now())
	ks, err := New([]config.KPI{
		{Name: "purchases_total", Help: "p", Type: "counter", Match: config.KPIMatch{Routes: []string{"checkout"}, Methods: []string{"POST"}, Status: []string{"2xx"}},
			Label: &config.KPILabel{Name: "plan", Header: "x-plan", Values: []string{"free", "pro"}}},
		{Name: "amount", Help: "a", Type: "histogram", ValueHeader: "X-Amount", Buckets: []float64{10, 100}},
	}, set)
	if err != nil {
		t.Fatal(err)
	}
	if bs := ks.ForRoute("other"); len(bs) != 1 || bs[0].Name() != "vantage_kpi_amount" {
		t.Fatalf("route other binds %v", bs)
	}
	bs := ks.ForRoute("checkout")
	if len(bs) != 2 {
		t.Fatalf("checkout binds %d KPIs", len(bs))
	}
	rec := observe.GetRecord()
	defer observe.PutRecord(rec)
	rec.Start = time.Now()
	rec.End = rec.Start.Add(time.Second)
	h := http.Header{}
	record := func(method string, status int, plan, amount string) {
		h = http.Header{}
		if plan != "" {
			h.Set("X-Plan", plan)
		}
		if amount != "" {
			h.Set("X-Amount", amount)
		}
		for _, b := range bs {
			b.Record(method, status, h, rec, nil)
		}
	}
	record("POST", 201, "pro", "50")
	record("POST", 200, "pro", "x")  // not a number: not observed
	record("POST", 200, "gold", "")  // other
	record("POST", 200, "", "500")   // none
	record("GET", 200, "pro", "")    // method does not match
	record("POST", 500, "free", "5") // status does not match the counter
	if n := testing.AllocsPerRun(100, func() { bs[0].Record("POST", 200, h, rec, nil) }); n != 0 {
		t.Errorf("Record allocates %v", n)
	}
	fams, err := prometheus.Gatherers{set}.Gather() // with client_golang's checks
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			k := f.GetName()
			for _, l := range m.GetLabel() {
				k += "," + l.GetValue()
			}
			if m.Counter != nil {
				got[k] = m.Counter.GetValue()
			}
			if m.Histogram != nil {
				got[k] = float64(m.Histogram.GetSampleCount())
				got[k+",sum"] = m.Histogram.GetSampleSum()
			}
		}
	}
	want := map[string]float64{
		"vantage_kpi_purchases_total,pro":   2,
		"vantage_kpi_purchases_total,other": 1,
		"vantage_kpi_purchases_total,none":  1,
		"vantage_kpi_purchases_total,free":  101, // the allocation runs reuse the last header
		"vantage_kpi_amount":                3,
		"vantage_kpi_amount,sum":            555,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
