package history

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/vantage-gateway/vantage/internal/observe"
)

// Field names one number a Point holds. Counters add up over time and
// across series; gauges (see IsGauge) are sampled once a second and
// aggregate by maximum.
type Field uint8

// The fields. The order is the storage order: the fields most often
// non-zero come first so that a stored second's field mask is short.
const (
	// Requests counts requests (scopes gateway, route, leg, service) or
	// attempts (scope host).
	Requests Field = iota
	// Class2xx ... ClassOther count requests by the status class sent to
	// the client (attempts by the upstream's status class for hosts;
	// ClassNone counts attempts that got no response).
	Class2xx
	// LatencySum is the sum of the latencies, in microseconds.
	LatencySum
	// OverheadSum is the sum of the gateway overheads (total time minus
	// upstream time), in microseconds.
	OverheadSum
	// UpstreamSum is the sum of the time spent waiting on upstreams, in
	// microseconds.
	UpstreamSum
	// BytesOut and BytesIn count response and request body bytes.
	BytesOut
	BytesIn
	Attempts
	Class4xx
	Class5xx
	Class3xx
	Class1xx
	ClassOther
	ClassNone
	// Retries counts attempts after the first.
	Retries
	// InFlight is the requests of a route in flight when the second was
	// sampled (gauge; routes and gateway).
	InFlight
	// ErrorKind0 + k counts requests (attempts for hosts) that failed
	// with observe.ErrorKind k, for k in 1..maxErrorKinds-1; kinds beyond
	// count in ErrorKind0 (as "other").
	ErrorKind0
	errorKindEnd = ErrorKind0 + maxErrorKinds - 1
)

// The decision and machine fields.
const (
	// RetryBudgetExhausted counts retries refused by the retry budget.
	RetryBudgetExhausted Field = errorKindEnd + 1 + iota
	// BreakerTransitions counts breaker state changes (service, host).
	BreakerTransitions
	// BreakerState is the breaker's state (gauge): 0 closed, 1 half-open,
	// 2 open.
	BreakerState
	// Ejections counts passive-health ejections of a host.
	Ejections
	// Ejected is 1 while a host is ejected (gauge).
	Ejected
	// Unhealthy is 1 while active health checks find a host unhealthy
	// (gauge).
	Unhealthy
	// HealthTransitions counts changes of a host's active health.
	HealthTransitions
	// Weight is a split leg's configured weight (gauge).
	Weight
	// Reloads and ReloadFailures count config reloads (gateway).
	Reloads
	ReloadFailures
	// CPUMillis is the machine's busy CPU time, in milliseconds summed
	// over CPUs (gateway): its rate over a window is the busy CPUs.
	CPUMillis
	// MemUsed and MemTotal are the machine's memory in use (total minus
	// available) and its size, in bytes (gauges; gateway).
	MemUsed
	MemTotal
	// DiskRead, DiskWritten, NetRx and NetTx count the machine's disk and
	// network bytes (gateway).
	DiskRead
	DiskWritten
	NetRx
	NetTx
	// KPICount counts a business KPI's events (scope kpi): the matching
	// requests of a counter KPI, the observed values of a histogram KPI.
	KPICount
	// KPISum is the sum of a histogram KPI's observed values, in
	// millionths of the value's unit, as a two's-complement int64 (so
	// negative values add up right); read it with Point.KPISum.
	KPISum
	// RateLimitRejections counts the requests a rate-limit policy refused
	// (scope ratelimit).
	RateLimitRejections
	// NumFields is the number of fields.
	NumFields
)

// maxErrorKinds is the number of error-kind slots (slot 0: kinds beyond).
const maxErrorKinds = 16

var fieldNames = func() [NumFields]string {
	n := [NumFields]string{
		Requests: "requests", Class1xx: "1xx", Class2xx: "2xx", Class3xx: "3xx", Class4xx: "4xx", Class5xx: "5xx",
		ClassOther: "other", ClassNone: "none",
		LatencySum: "latency_sum_us", OverheadSum: "overhead_sum_us", UpstreamSum: "upstream_sum_us",
		BytesIn: "bytes_in", BytesOut: "bytes_out", Attempts: "attempts", Retries: "retries", InFlight: "in_flight",
		RetryBudgetExhausted: "retry_budget_exhausted", BreakerTransitions: "breaker_transitions",
		BreakerState: "breaker_state", Ejections: "ejections", Ejected: "ejected", Unhealthy: "unhealthy",
		HealthTransitions: "health_transitions", Weight: "weight", Reloads: "reloads", ReloadFailures: "reload_failures",
		CPUMillis: "cpu_ms", MemUsed: "memory_used_bytes", MemTotal: "memory_total_bytes",
		DiskRead: "disk_read_bytes", DiskWritten: "disk_written_bytes", NetRx: "net_rx_bytes", NetTx: "net_tx_bytes",
		KPICount: "kpi_count", KPISum: "kpi_sum_micro", RateLimitRejections: "rate_limit_rejections",
	}
	n[ErrorKind0] = "error_other"
	for k := 1; k < maxErrorKinds; k++ {
		if name := observe.ErrorKind(k).String(); name != "unknown" && name != "" {
			n[ErrorKind0+Field(k)] = "error_" + name
		} else {
			n[ErrorKind0+Field(k)] = "error_kind_" + string(rune('0'+k/10)) + string(rune('0'+k%10))
		}
	}
	return n
}()

// String returns the field's name in the JSON API.
func (f Field) String() string {
	if f < NumFields {
		return fieldNames[f]
	}
	return "unknown"
}

// IsGauge reports whether f is a gauge (aggregated by maximum) rather than
// a counter (aggregated by sum).
func (f Field) IsGauge() bool {
	switch f {
	case InFlight, BreakerState, Ejected, Unhealthy, Weight, MemUsed, MemTotal:
		return true
	}
	return false
}

// ErrorField returns the field counting error kind k.
func ErrorField(k observe.ErrorKind) Field {
	if k == observe.ErrNone || int(k) >= maxErrorKinds {
		return ErrorKind0
	}
	return ErrorKind0 + Field(k)
}

// ClassField returns the field counting a status code's class.
func ClassField(status int) Field {
	switch {
	case status == 0:
		return ClassNone
	case status < 100 || status > 599:
		return ClassOther
	}
	return classFields[status/100]
}

var classFields = [6]Field{ClassOther, Class1xx, Class2xx, Class3xx, Class4xx, Class5xx}

// Values holds every field of a point, indexed by Field.
type Values [NumFields]uint64

// add adds o to v: counters by sum, gauges by maximum.
func (v *Values) add(o *Values) {
	for f := range v {
		if gaugeMask&(1<<uint(f)) != 0 {
			v[f] = max(v[f], o[f])
		} else {
			v[f] += o[f]
		}
	}
}

var gaugeMask = func() uint64 {
	var m uint64
	for f := Field(0); f < NumFields; f++ {
		if f.IsGauge() {
			m |= 1 << uint(f)
		}
	}
	return m
}()

// Errors returns the requests that failed with any error kind.
func (v *Values) Errors() uint64 {
	var n uint64
	for f := ErrorKind0; f <= errorKindEnd; f++ {
		n += v[f]
	}
	return n
}

// Point is the data of one step of a series: the values and latency
// histograms of the requests that ended within [Time, Time+step).
type Point struct {
	// Time is the start of the step.
	Time time.Time
	// V holds the counters and gauges.
	V Values
	// Latency is the distribution of request latencies (attempt
	// latencies for a host).
	Latency Histogram
	// Overhead is the distribution of gateway overheads (empty for hosts).
	Overhead Histogram
	// Exemplars are trace ids of failing and slow requests of the step,
	// the most recent kept (see Exemplar).
	Exemplars []Exemplar
}

// Add merges o into p (counters add, gauges take the maximum, histograms
// add bucket-wise, exemplars are appended).
func (p *Point) Add(o *Point) {
	p.V.add(&o.V)
	p.Latency.Merge(o.Latency)
	p.Overhead.Merge(o.Overhead)
	p.Exemplars = append(p.Exemplars, o.Exemplars...)
}

// accum is a point under aggregation, with dense histograms.
type accum struct {
	v        Values
	lat, ovh denseHist
	hasLat   bool
	hasOvh   bool
}

func (a *accum) reset() {
	a.v = Values{}
	if a.hasLat {
		a.lat = denseHist{}
	}
	if a.hasOvh {
		a.ovh = denseHist{}
	}
	a.hasLat, a.hasOvh = false, false
}

func (a *accum) empty() bool {
	return a.v == Values{} && !a.hasLat && !a.hasOvh
}

func (a *accum) add(o *accum) {
	a.v.add(&o.v)
	if o.hasLat {
		a.lat.add(&o.lat)
		a.hasLat = true
	}
	if o.hasOvh {
		a.ovh.add(&o.ovh)
		a.hasOvh = true
	}
}

// point returns a's content as a Point starting at t.
func (a *accum) point(t time.Time) Point {
	p := Point{Time: t, V: a.v}
	if a.hasLat {
		p.Latency = a.lat.hist()
	}
	if a.hasOvh {
		p.Overhead = a.ovh.hist()
	}
	return p
}

// appendRecord encodes a as one stored record: a mask of the stored
// fields, their values, then the two histograms (appendHist), all as
// uvarints. Fields that equal what the others imply (see derive) are left
// out of the mask: Class2xx, UpstreamSum and Attempts are nearly always
// derivable, so a record stores only what carries information.
func (a *accum) appendRecord(b []byte) []byte {
	var mask uint64
	// The decoder knows an overhead histogram only by its counts.
	d := derive(&a.v, a.hasOvh && !a.ovh.empty())
	for f, x := range a.v {
		if derivable(Field(f)) {
			if x != d[f] {
				mask |= 1 << uint(f)
			}
		} else if x != 0 {
			mask |= 1 << uint(f)
		}
	}
	b = binary.AppendUvarint(b, mask)
	for f, x := range a.v {
		if mask&(1<<uint(f)) != 0 {
			b = binary.AppendUvarint(b, x)
		}
	}
	b = appendHist(b, &a.lat, a.hasLat)
	b = appendHist(b, &a.ovh, a.hasOvh)
	return b
}

func (d *denseHist) empty() bool {
	lo, _ := d.span()
	return lo < 0
}

// clear zeroes d, writing only the buckets between its first and last
// non-zero ones (an accumulator of one series' second has a few).
func (d *denseHist) clear() {
	if lo, hi := d.span(); lo >= 0 {
		clear(d[lo : hi+1])
	}
}

// derivable reports whether a record leaves f out when it equals what
// derive implies.
func derivable(f Field) bool { return f == Class2xx || f == UpstreamSum || f == Attempts }

// derivedFields are the derivable fields, in the order derive computes
// them.
var derivedFields = [...]Field{Class2xx, UpstreamSum, Attempts}

// derive returns what a record's other fields imply for the derivable
// ones: every request has exactly one status class, so Class2xx is the
// requests less the other classes; requests (hasOvh: series of requests
// rather than of attempts) spend their latency in the gateway or upstream,
// so UpstreamSum is LatencySum less OverheadSum, and they make one attempt
// plus their retries, so Attempts is Requests plus Retries. Series of
// attempts (hosts) imply 0 for UpstreamSum and Attempts. v's derivable
// fields are not read.
func derive(v *Values, hasOvh bool) (d [NumFields]uint64) {
	others := v[Class1xx] + v[Class3xx] + v[Class4xx] + v[Class5xx] + v[ClassOther] + v[ClassNone]
	if v[Requests] >= others {
		d[Class2xx] = v[Requests] - others
	}
	if hasOvh {
		if v[LatencySum] >= v[OverheadSum] {
			d[UpstreamSum] = v[LatencySum] - v[OverheadSum]
		}
		d[Attempts] = v[Requests] + v[Retries]
	}
	return d
}

// appendHist encodes a histogram in whichever of two forms is shorter:
// sparse, header k<<1 then k (gap to the previous non-zero bucket, count)
// pairs; or dense, header span<<1|1, the first bucket, then span counts
// (zeros included). Busy histograms are contiguous, so dense halves them.
func appendHist(b []byte, d *denseHist, has bool) []byte {
	if !has {
		return append(b, 0)
	}
	lo, hi := d.span()
	if lo < 0 {
		return append(b, 0)
	}
	k, sparse, dense := 0, 0, 0
	prev := -1
	for i := lo; i <= hi; i++ {
		c := d[i]
		dense += uvarintLen(c)
		if c == 0 {
			continue
		}
		k++
		sparse += uvarintLen(uint64(i-prev-1)) + uvarintLen(c)
		prev = i
	}
	dense += uvarintLen(uint64(lo))
	if dense < sparse {
		b = binary.AppendUvarint(b, uint64(hi-lo+1)<<1|1)
		b = binary.AppendUvarint(b, uint64(lo))
		for i := lo; i <= hi; i++ {
			b = binary.AppendUvarint(b, d[i])
		}
		return b
	}
	b = binary.AppendUvarint(b, uint64(k)<<1)
	prev = -1
	for i := lo; i <= hi; i++ {
		if c := d[i]; c != 0 {
			b = binary.AppendUvarint(b, uint64(i-prev-1))
			b = binary.AppendUvarint(b, c)
			prev = i
		}
	}
	return b
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

var errCorrupt = errors.New("history: corrupt record")

// addRecord decodes one record and adds it to a.
func (a *accum) addRecord(b []byte) error {
	mask, n := binary.Uvarint(b)
	if n <= 0 {
		return errCorrupt
	}
	b = b[n:]
	var rec Values
	if mask>>uint(NumFields) != 0 {
		return errCorrupt
	}
	for f := 0; f < int(NumFields); f++ {
		if mask&(1<<uint(f)) == 0 {
			continue
		}
		x, n := binary.Uvarint(b)
		if n <= 0 {
			return errCorrupt
		}
		rec[f] = x
		b = b[n:]
	}
	var err error
	var hasLat, hasOvh bool
	if b, err = readHist(b, &a.lat, &hasLat); err != nil {
		return err
	}
	if _, err = readHist(b, &a.ovh, &hasOvh); err != nil {
		return err
	}
	a.hasLat = a.hasLat || hasLat
	a.hasOvh = a.hasOvh || hasOvh
	d := derive(&rec, hasOvh)
	for _, f := range derivedFields {
		if mask&(1<<uint(f)) == 0 {
			rec[f] = d[f]
		}
	}
	a.v.add(&rec)
	return nil
}

func readHist(b []byte, d *denseHist, has *bool) ([]byte, error) {
	hdr, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, errCorrupt
	}
	b = b[n:]
	if hdr == 0 {
		return b, nil
	}
	if hdr&1 == 1 { // dense
		span := hdr >> 1
		lo, n := binary.Uvarint(b)
		if n <= 0 || lo >= numSlots || span == 0 || span > numSlots-lo {
			return nil, errCorrupt
		}
		b = b[n:]
		for i := lo; i < lo+span; i++ {
			c, n := binary.Uvarint(b)
			if n <= 0 {
				return nil, errCorrupt
			}
			b = b[n:]
			d[i] += c
			*has = *has || c != 0
		}
		return b, nil
	}
	i := -1
	for k := hdr >> 1; k > 0; k-- {
		gap, n := binary.Uvarint(b)
		if n <= 0 || gap >= numSlots {
			return nil, errCorrupt
		}
		b = b[n:]
		c, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errCorrupt
		}
		b = b[n:]
		i += int(gap) + 1
		if i < 0 || i >= numSlots {
			return nil, errCorrupt
		}
		d[i] += c
		*has = *has || c != 0
	}
	return b, nil
}
