package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type fixedGatherer []*dto.MetricFamily

func (g fixedGatherer) Gather() ([]*dto.MetricFamily, error) { return g, nil }

func family(name string) *dto.MetricFamily {
	v := 1.0
	return &dto.MetricFamily{Name: &name, Help: &name, Type: dto.MetricType_GAUGE.Enum(), Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &v}}}}
}

func TestGatherersMergeSortedAndRejectDuplicates(t *testing.T) {
	gs := gatherers{fixedGatherer{family("b"), family("d")}, fixedGatherer{family("a"), family("c")}}
	mfs, err := gs.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if strings.Join(names, ",") != "a,b,c,d" {
		t.Errorf("names %v", names)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "b", Help: "from the registry"}))
	mfs, err = gatherers{fixedGatherer{family("b")}, reg}.Gather()
	if err == nil || !strings.Contains(err.Error(), `"b" is defined twice`) {
		t.Errorf("error %v", err)
	}
	if len(mfs) != 1 || mfs[0].GetHelp() != "b" {
		t.Errorf("families %v", mfs)
	}
}
