// Package kpi turns the business KPIs declared in the metrics config into
// counters and histograms (vantage_kpi_<name>) fed by the requests they
// match: a route, a method and a status, optionally labelled by a response
// header's value from an allow-list.
//
// Set.ForRoute pre-resolves, once per route and config snapshot, the KPIs
// that can match the route; Binding.Record then matches and records one
// finished request without allocating. Matcher is the match rule alone,
// which the in-process history shares.
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
	*Matcher
	fam *series.Family
}

// Matcher is one KPI's compiled rule: which requests it matches, which
// label slot a match counts in, and the value a histogram KPI observes.
// The metrics and the in-process history both match through it. It is
// immutable after NewMatcher and safe for concurrent use.
type Matcher struct {
	cfg      config.KPI
	hist     bool
	routes   map[string]bool // nil: every route
	methods  []string        // nil: every method
	statuses []config.StatusMatcher
	// label
	header string         // canonical header name, "" without label
	values map[string]int // allowed value → slot index
	labels []string       // slot index → label value
	// histogram value
	valueHeader string // canonical, "" for the duration
}

// NewMatcher compiles one KPI (validated config).
func NewMatcher(c config.KPI) (*Matcher, error) {
	m := &Matcher{cfg: c, hist: c.Type == "histogram", labels: []string{""}}
	if m.hist && c.ValueHeader != "" {
		m.valueHeader = textproto.CanonicalMIMEHeaderKey(c.ValueHeader)
	}
	if l := c.Label; l != nil {
		m.header = textproto.CanonicalMIMEHeaderKey(l.Header)
		m.values = make(map[string]int, len(l.Values))
		m.labels = make([]string, 0, len(l.Values)+2)
		m.labels = append(m.labels, OtherValue, NoneValue)
		for i, v := range l.Values {
			m.values[v] = i + 2
			m.labels = append(m.labels, v)
		}
	}
	if len(c.Match.Routes) > 0 {
		m.routes = map[string]bool{}
		for _, r := range c.Match.Routes {
			m.routes[r] = true
		}
	}
	m.methods = append([]string(nil), c.Match.Methods...)
	for _, st := range c.Match.Status {
		sm, err := config.ParseStatusMatcher(st)
		if err != nil {
			return nil, fmt.Errorf("kpi %q: %w", c.Name, err)
		}
		m.statuses = append(m.statuses, sm)
	}
	return m, nil
}

// Compile compiles cfgs (validated config) into matchers, in config order.
func Compile(cfgs []config.KPI) ([]*Matcher, error) {
	out := make([]*Matcher, 0, len(cfgs))
	for _, c := range cfgs {
		m, err := NewMatcher(c)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Name returns the KPI's configured name (without Prefix).
func (m *Matcher) Name() string { return m.cfg.Name }

// Histogram reports whether the KPI observes a value (type histogram)
// rather than counting requests.
func (m *Matcher) Histogram() bool { return m.hist }

// Label returns the label's name, "" when the KPI has no label.
func (m *Matcher) Label() string {
	if m.cfg.Label == nil {
		return ""
	}
	return m.cfg.Label.Name
}

// Slots returns the number of label slots: 1 without a label, else the
// allowed values plus OtherValue and NoneValue.
func (m *Matcher) Slots() int { return len(m.labels) }

// SlotValue returns the label value of slot i ("" without a label).
func (m *Matcher) SlotValue(i int) string { return m.labels[i] }

// MatchesRoute reports whether the KPI can match requests of route (the
// route name; "" for unmatched requests, which no KPI with a route list
// matches).
func (m *Matcher) MatchesRoute(route string) bool {
	return m.routes == nil || m.routes[route]
}

// Match matches one finished request (the route already checked with
// MatchesRoute): method is the request method, status the status sent to
// the client, h the response header, rec the finished record. It returns
// the label slot the request counts in and the value observed (1 for a
// counter; the value header's number, or the total duration in seconds,
// for a histogram), and ok false when the request does not count. It does
// not allocate.
func (m *Matcher) Match(method string, status int, h http.Header, rec *observe.Record) (slot int, v float64, ok bool) {
	if m.methods != nil && !contains(m.methods, method) {
		return 0, 0, false
	}
	if m.statuses != nil && !matchStatus(m.statuses, status) {
		return 0, 0, false
	}
	v = 1.0
	if m.hist {
		if m.valueHeader != "" {
			hv := first(h, m.valueHeader)
			if hv == "" {
				return 0, 0, false
			}
			f, err := strconv.ParseFloat(hv, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return 0, 0, false
			}
			v = f
		} else {
			v = rec.Total().Seconds()
		}
	}
	if m.header != "" {
		slot = 1 // none
		if hv := first(h, m.header); hv != "" {
			slot = 0 // other
			if j, ok := m.values[hv]; ok {
				slot = j
			}
		}
	}
	return slot, v, true
}

// New compiles cfgs (validated config) into families of set. It fails when
// a family cannot be created (a name clash with another metric).
func New(cfgs []config.KPI, set *series.Set) (*Set, error) {
	s := &Set{}
	for _, c := range cfgs {
		m, err := NewMatcher(c)
		if err != nil {
			return nil, err
		}
		k := &kpi{Matcher: m}
		fo := series.FamilyOpts{Name: Prefix + c.Name, Help: c.Help, Kind: series.Counter}
		if k.hist {
			fo.Kind = series.Histogram
			fo.Buckets = c.Buckets
		}
		if l := c.Label; l != nil {
			fo.Labels = []string{l.Name}
		}
		fam, err := set.Family(fo)
		if err != nil {
			return nil, fmt.Errorf("kpi %q: %w", c.Name, err)
		}
		k.fam = fam
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
		if !k.MatchesRoute(route) {
			continue
		}
		out = append(out, &Binding{k: k, slots: make([]series.Slot, k.Slots())})
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
	i, v, ok := k.Match(method, status, h, rec)
	if !ok {
		return
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
		key[0] = b.k.SlotValue(i)
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
