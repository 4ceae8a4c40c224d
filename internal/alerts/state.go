package alerts

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vantage-gateway/vantage/internal/history"
)

// StateFile is the name of the file alerts.data_dir keeps the state in.
const StateFile = "alerts-state.json"

// stateVersion is the state file's format version.
const stateVersion = 1

// maxStateBytes bounds the state file read back.
const maxStateBytes = 64 << 20

// sloHours bounds the hourly counts kept per SLO series (31 days).
const sloHours = 31 * 24

// state is what the state file holds.
type state struct {
	Version int          `json:"version"`
	SavedAt time.Time    `json:"saved_at"`
	Alerts  []savedAlert `json:"alerts"`
	SLOs    []savedSLO   `json:"slos,omitempty"`
}

// savedAlert is one alert and what its state machine needs.
type savedAlert struct {
	Key       string    `json:"key"`
	Series    string    `json:"series"`
	Alert     Alert     `json:"alert"`
	KeepSince time.Time `json:"keep_since,omitzero"`
}

// savedSLO is the hourly request and bad-request counts of one SLO's
// series, oldest first: what the budget and the long burn windows read
// for the time before a restart.
type savedSLO struct {
	SLO    string     `json:"slo"`
	Scope  string     `json:"scope"`
	Series string     `json:"series"`
	Hours  []sloCount `json:"hours"`
}

// sloCount is one hour's counts.
type sloCount struct {
	Start    int64  `json:"start"` // unix seconds, on the hour
	Requests uint64 `json:"requests"`
	Bad      uint64 `json:"bad"`
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *State) UnmarshalText(b []byte) error {
	for _, x := range []State{StateInactive, StatePending, StateFiring, StateResolved} {
		if x.String() == string(b) {
			*s = x
			return nil
		}
	}
	return fmt.Errorf("unknown alert state %q", b)
}

// sloKey identifies an SLO's series.
type sloKey struct {
	slo   string
	scope history.Scope
	name  string
}

// snapshot returns the alerts' state.
func (e *Evaluator) snapshot() []savedAlert {
	out := make([]savedAlert, 0, len(e.alerts))
	for k, a := range e.alerts {
		out = append(out, savedAlert{Key: k.rule, Series: k.series, Alert: a.clone(), KeepSince: a.keepSince})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return out[i].Series < out[j].Series
	})
	return out
}

// restore puts saved alerts back, those of rules the ruleset still has.
// A restored alert keeps its state until its rule's window holds only
// data from after DataSince (the restart), unless its condition holds
// again before: the restart neither fires it again nor resolves it for
// want of data.
func (e *Evaluator) restore(saved []savedAlert) int {
	n := 0
	for _, s := range saved {
		r := e.rules.byKey[s.Key]
		if r == nil || s.Alert.State == StateInactive {
			continue
		}
		a := s.Alert
		a.Labels = e.labels(r, s.Series)
		a.fp = fingerprint(a.Labels)
		a.keepSince = s.KeepSince
		a.restored = true
		e.alerts[alertKey{s.Key, s.Series}] = &a
		n++
	}
	return n
}

// heldOver reports whether a restored alert of r is still held over the
// restart at t: its window reaches before the data the history holds.
func (e *Evaluator) heldOver(a *Alert, r *rule, t time.Time) bool {
	if !a.restored {
		return false
	}
	if e.DataSince.IsZero() || !t.Add(-r.window).Before(e.DataSince) {
		a.restored = false
		return false
	}
	return true
}

// sloCounts keeps the hourly counts of the SLOs' series, from the
// history and from the state file.
type sloCounts struct {
	hours map[sloKey][]sloCount
}

// record adds, for every SLO series judged, the complete hours the
// history holds that are not counted yet (at most the last sloHours).
// It reads at most one hour per series per call.
func (c *sloCounts) record(ec *evalCtx, e *Evaluator) error {
	if c.hours == nil {
		c.hours = map[sloKey][]sloCount{}
	}
	hour := ec.end.Truncate(time.Hour).Unix() // the current hour's start
	var errs []error
	seen := map[sloKey]bool{}
	for _, r := range e.rules.rules {
		if r.slo == nil {
			continue
		}
		names, err := e.seriesOf(ec, r)
		if err != nil {
			continue
		}
		for _, n := range names {
			k := sloKey{r.slo.name, r.scope, n}
			if seen[k] {
				continue
			}
			seen[k] = true
			hs := c.hours[k]
			// The next hour to count: after the last counted, or the first
			// wholly after the data starts; at most sloHours back.
			next := hour - 3600
			if len(hs) > 0 {
				next = hs[len(hs)-1].Start + 3600
			}
			if !e.DataSince.IsZero() && (len(hs) == 0 || next < e.DataSince.Unix()) {
				next = e.DataSince.Add(time.Hour - time.Nanosecond).Truncate(time.Hour).Unix()
			}
			next = max(next, hour-sloHours*3600)
			if next+3600 > hour {
				continue
			}
			p, err := history.Window(ec.ctx, ec.src, r.scope, n, time.Unix(next+3600, 0), time.Hour)
			if errors.Is(err, history.ErrNotFound) {
				p, err = history.Point{}, nil
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			hs = append(hs, sloCount{Start: next, Requests: p.V[history.Requests], Bad: badRequests(&p, r.slo.latency)})
			if len(hs) > sloHours {
				hs = append(hs[:0], hs[len(hs)-sloHours:]...)
			}
			c.hours[k] = hs
		}
	}
	return errors.Join(errs...)
}

// before returns the requests and bad requests of the hours wholly inside
// [from, to), as kept.
func (c *sloCounts) before(k sloKey, from, to time.Time) (req, bad uint64, hours int) {
	for _, h := range c.hours[k] {
		if h.Start >= from.Unix() && h.Start+3600 <= to.Unix() {
			req += h.Requests
			bad += h.Bad
			hours++
		}
	}
	return req, bad, hours
}

func (c *sloCounts) save() []savedSLO {
	out := make([]savedSLO, 0, len(c.hours))
	for k, hs := range c.hours {
		out = append(out, savedSLO{SLO: k.slo, Scope: k.scope.String(), Series: k.name, Hours: hs})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].SLO+"\x00"+out[i].Scope+"\x00"+out[i].Series < out[j].SLO+"\x00"+out[j].Scope+"\x00"+out[j].Series
	})
	return out
}

func (c *sloCounts) load(saved []savedSLO) {
	c.hours = map[sloKey][]sloCount{}
	for _, s := range saved {
		sc, err := history.ParseScope(s.Scope)
		if err != nil {
			continue
		}
		hs := s.Hours
		if len(hs) > sloHours {
			hs = hs[len(hs)-sloHours:]
		}
		c.hours[sloKey{s.SLO, sc, s.Series}] = hs
	}
}

// readState reads the state file of dir; a missing file is no state.
func readState(dir string) (*state, error) {
	f, err := os.Open(filepath.Join(dir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st state
	dec := json.NewDecoder(&limitedReader{f: f, n: maxStateBytes})
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, StateFile), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", filepath.Join(dir, StateFile), st.Version, stateVersion)
	}
	return &st, nil
}

// writeState writes st to dir atomically (a temporary file renamed over
// the old one).
func writeState(dir string, st *state) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, StateFile+".*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, StateFile)); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

type limitedReader struct {
	f *os.File
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("the state file is larger than 64 MiB")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}

// stateSig summarises what the state file must follow: a change of it
// (a transition, keep_firing_for starting or ending, an SLO hour
// counted) is saved. It costs no copy of the alerts.
func (e *Evaluator) stateSig() string {
	keys := make([]alertKey, 0, len(e.alerts))
	for k := range e.alerts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].rule != keys[j].rule {
			return keys[i].rule < keys[j].rule
		}
		return keys[i].series < keys[j].series
	})
	var b strings.Builder
	for _, k := range keys {
		a := e.alerts[k]
		fmt.Fprintf(&b, "%s\x00%s\x00%d\x00%d\x00", k.rule, k.series, a.State, a.keepSince.Unix())
	}
	n := 0
	for _, hs := range e.slo.hours {
		n += len(hs)
		if len(hs) > 0 {
			n += int(hs[len(hs)-1].Start % 1000003)
		}
	}
	fmt.Fprintf(&b, "%d", n)
	return b.String()
}
