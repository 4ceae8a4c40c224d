package alerts

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// collecting is a Registerer that keeps what is registered.
type collecting struct {
	prometheus.Registerer
	cs []prometheus.Collector
}

func (c *collecting) MustRegister(cs ...prometheus.Collector) {
	c.cs = append(c.cs, cs...)
	c.Registerer.MustRegister(cs...)
}

// TestMetricsDocumented checks that every metric the alerts package
// registers has a row in docs/metrics.md, with its labels.
func TestMetricsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	cfg, err := parse("  rules:\n    - {name: E, scope: route, metric: error_ratio, threshold: 0.1}\n")
	if err != nil {
		t.Fatal(err)
	}
	reg := &collecting{Registerer: prometheus.NewRegistry()}
	m, err := New(cfg, Options{Source: newFakeSource(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	nameRe := regexp.MustCompile(`fqName: "([^"]+)"`)
	labelsRe := regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
	n := 0
	for _, c := range reg.cs {
		ch := make(chan *prometheus.Desc, 16)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			s := d.String()
			name := nameRe.FindStringSubmatch(s)[1]
			n++
			i := strings.Index(doc, "| `"+name+"` |")
			if i < 0 {
				t.Errorf("docs/metrics.md has no row for %s", name)
				continue
			}
			row := doc[i:]
			row = row[:strings.IndexByte(row, '\n')]
			cols := strings.Split(row, "|") // "", name, type, labels, help, ""
			if len(cols) < 5 {
				t.Errorf("docs/metrics.md row of %s is malformed: %s", name, row)
				continue
			}
			if l := labelsRe.FindStringSubmatch(s); l != nil && l[1] != "" {
				for _, label := range strings.Split(l[1], ",") {
					if !strings.Contains(cols[3], strings.TrimSpace(label)) {
						t.Errorf("docs/metrics.md row of %s does not name label %s: %s", name, label, row)
					}
				}
			}
		}
	}
	if n < 6 {
		t.Fatalf("only %d metrics registered", n)
	}
}
