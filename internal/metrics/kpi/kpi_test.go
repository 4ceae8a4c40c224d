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

func TestMatcher(t *testing.T) {
	ms, err := Compile([]config.KPI{
		{Name: "purchases_total", Type: "counter", Match: config.KPIMatch{Routes: []string{"checkout"}, Methods: []string{"POST"}, Status: []string{"2xx"}},
			Label: &config.KPILabel{Name: "plan", Header: "x-plan", Values: []string{"free", "pro"}}},
		{Name: "amount", Type: "histogram", ValueHeader: "X-Amount", Buckets: []float64{10, 100}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, a := ms[0], ms[1]
	if p.Name() != "purchases_total" || p.Histogram() || p.Label() != "plan" || p.Slots() != 4 || !a.Histogram() || a.Label() != "" || a.Slots() != 1 {
		t.Fatalf("matchers %+v %+v", p, a)
	}
	if got := []string{p.SlotValue(0), p.SlotValue(1), p.SlotValue(2), p.SlotValue(3), a.SlotValue(0)}; got[0] != "other" || got[1] != "none" || got[2] != "free" || got[3] != "pro" || got[4] != "" {
		t.Fatalf("slot values %q", got)
	}
	if !p.MatchesRoute("checkout") || p.MatchesRoute("") || !a.MatchesRoute("") {
		t.Fatal("route lists")
	}
	rec := &observe.Record{}
	for _, tc := range []struct {
		m      *Matcher
		method string
		status int
		plan   string
		amount string
		slot   int
		v      float64
		ok     bool
	}{
		{p, "POST", 201, "pro", "", 3, 1, true},
		{p, "POST", 200, "gold", "", 0, 1, true},
		{p, "POST", 200, "", "", 1, 1, true},
		{p, "GET", 200, "pro", "", 0, 0, false},
		{p, "POST", 500, "pro", "", 0, 0, false},
		{a, "GET", 500, "", "12.5", 0, 12.5, true},
		{a, "GET", 200, "", "NaN", 0, 0, false},
		{a, "GET", 200, "", "", 0, 0, false},
	} {
		h := http.Header{}
		if tc.plan != "" {
			h.Set("X-Plan", tc.plan)
		}
		if tc.amount != "" {
			h.Set("X-Amount", tc.amount)
		}
		slot, v, ok := tc.m.Match(tc.method, tc.status, h, rec)
		if slot != tc.slot || v != tc.v || ok != tc.ok {
			t.Errorf("%s %s %d %q %q: %d %g %v, want %d %g %v", tc.m.Name(), tc.method, tc.status, tc.plan, tc.amount, slot, v, ok, tc.slot, tc.v, tc.ok)
		}
	}
}
