// Package kpi turns the business KPIs declared in the metrics config into
// counters and histograms (vantage_kpi_<name>) fed by the requests they
// match: a route, a method and a status, optionally labelled by a response
// header's value from an allow-list.
//
// Set.ForRoute pre-resolves, once per route and config snapshot, the KPIs
// that can match the route; Binding.Record then matches and records one
// finished request without allocating.
package kpi

import (
	"fmt"
	"math"
	"net/http"
	"net/textproto"
	"strconv"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/metrics/series"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Prefix is prepended to every KPI name.
const Prefix = "vantage_kpi_"

// Label values for a KPI header outside the allow-list, or missing.
const (
	OtherValue = "other"
	NoneValue  = "none"
)

// Set holds the compiled KPIs. It is immutable after New and safe for
// concurrent use.
type Set struct {
	kpis []*kpi
}

type kpi struct {
	cfg      config.KPI
	fam      *series.Family
	hist     bool
	routes   map[string]bool // nil: every route
	methods  []string        // nil: every method
	statuses []config.StatusMatcher
	// label
	header string         // canonical header name, "" without label
	values map[string]int // allowed value → slot index
	nslots int            // len(values) + 2 (other, none) or 1
	// histogram value
	valueHeader string // canonical, "" for the duration
}

// New compiles cfgs (validated config) into families of set. It fails when
// a family cannot be created (a name clash with another metric).
func New(cfgs []config.KPI, set *series.Set) (*Set, error) {
	s := &Set{}
	for _, c := range cfgs {
		k := &kpi{cfg: c, hist: c.Type == "histogram"}
		fo := series.FamilyOpts{Name: Prefix + c.Name, Help: c.Help, Kind: series.Counter}
		if k.hist {
			fo.Kind = series.Histogram
			fo.Buckets = c.Buckets
			if c.ValueHeader != "" {
				k.valueHeader = textproto.CanonicalMIMEHeaderKey(c.ValueHeader)
			}
		}
		k.nslots = 1
		if l := c.Label; l != nil {
			fo.Labels = []string{l.Name}
			k.header = textproto.CanonicalMIMEHeaderKey(l.Header)
			k.values = make(map[string]int, len(l.Values))
			for i, v := range l.Values {
				k.values[v] = i + 2
			}
			k.nslots = len(l.Values) + 2
		}
		fam, err := set.Family(fo)
		if err != nil {
			return nil, fmt.Errorf("kpi %q: %w", c.Name, err)
		}
		k.fam = fam
		if len(c.Match.Routes) > 0 {
			k.routes = map[string]bool{}
			for _, r := range c.Match.Routes {
				k.routes[r] = true
			}
		}
		k.methods = append([]string(nil), c.Match.Methods...)
		for _, st := range c.Match.Status {
			sm, err := config.ParseStatusMatcher(st)
			if err != nil {
				return nil, fmt.Errorf("kpi %q: %w", c.Name, err)
			}
			k.statuses = append(k.statuses, sm)
		}
		s.kpis = append(s.kpis, k)
	}
	return s, nil
}

// Names returns the full metric names of the KPIs, in config order.
func (s *Set) Names() []string {
	out := make([]string, len(s.kpis))
	for i, k := range s.kpis {
		out[i] = k.fam.Name()
	}
	return out
}

// ForRoute returns a Binding for every KPI that can match route (the route
// name; "" for unmatched requests, which no KPI with a route list
// matches). A nil result means no KPI applies.
func (s *Set) ForRoute(route string) []*Binding {
	var out []*Binding
	for _, k := range s.kpis {
		if k.routes != nil && !k.routes[route] {
			continue
		}
		out = append(out, &Binding{k: k, slots: make([]series.Slot, k.nslots)})
	}
	return out
}

// Binding is one KPI pre-resolved for one route. It is safe for concurrent
// use.
type Binding struct {
	k     *kpi
	slots []series.Slot
}

// Name returns the KPI's metric name.
func (b *Binding) Name() string { return b.k.fam.Name() }

// Record counts (or observes) the finished request when its method and
// status match: method is the request method, status the status sent to
// the client, h the response header, rec the finished record. traceID, when
// non-nil, is attached as an exemplar. It does not allocate unless an
// exemplar is attached.
func (b *Binding) Record(method string, status int, h http.Header, rec *observe.Record, traceID *[16]byte) {
	k := b.k
	if k.methods != nil && !contains(k.methods, method) {
		return
	}
	if k.statuses != nil && !matchStatus(k.statuses, status) {
		return
	}
	v := 1.0
	if k.hist {
		if k.valueHeader != "" {
			hv := first(h, k.valueHeader)
			if hv == "" {
				return
			}
			f, err := strconv.ParseFloat(hv, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return
			}
			v = f
		} else {
			v = rec.Total().Seconds()
		}
	}
	i := 0
	if k.header != "" {
		i = 1 // none
		if hv := first(h, k.header); hv != "" {
			i = 0 // other
			if j, ok := k.values[hv]; ok {
				i = j
			}
		}
	}
	c := b.slots[i].Load()
	if c == nil {
		c = b.resolve(i)
	}
	switch {
	case k.hist && traceID != nil:
		c.ObserveExemplar(v, traceID, rec.End)
	case k.hist:
		c.Observe(v)
	case traceID != nil:
		c.AddExemplar(1, traceID, rec.End)
	default:
		c.Inc()
	}
}

func (b *Binding) resolve(i int) *series.Child {
	var key series.Key
	if b.k.header != "" {
		switch i {
		case 0:
			key[0] = OtherValue
		case 1:
			key[0] = NoneValue
		default:
			for v, j := range b.k.values {
				if j == i {
					key[0] = v
				}
			}
		}
	}
	return b.slots[i].Resolve(b.k.fam, &key)
}

func first(h http.Header, canonical string) string {
	if vs := h[canonical]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func matchStatus(ms []config.StatusMatcher, status int) bool {
	for _, m := range ms {
		if m.Match(status) {
			return true
		}
	}
	return false
}
