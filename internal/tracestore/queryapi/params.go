package queryapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vantage-gateway/vantage/internal/tracestore"
)

// Caps on a query.
const (
	// MaxRange is the widest time range a search covers; a wider one is
	// narrowed to its last MaxRange.
	MaxRange = 7 * 24 * time.Hour
	// DefaultLookback is the range of a search that gives no start.
	DefaultLookback = 48 * time.Hour
	// DefaultJaegerLimit is Jaeger's default number of traces per search.
	DefaultJaegerLimit = 100
	// DefaultDependencyLookback is the default range of /api/dependencies.
	DefaultDependencyLookback = 24 * time.Hour
	maxTags                   = 32
	maxTagLen                 = 1024
	maxTraceIDs               = 100
)

// Search is a parsed Jaeger search: a store query, or trace ids to fetch.
type Search struct {
	tracestore.Query
	TraceIDs []tracestore.TraceID
}

// parseQuery parses a raw query string. Values that are not valid
// percent-encoding (clients that send JSON or times unencoded) are taken
// as they are rather than refused.
func parseQuery(raw string) url.Values {
	v := url.Values{}
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, val, _ := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if uv, err := url.QueryUnescape(val); err == nil {
			val = uv
		}
		v[k] = append(v[k], val)
	}
	return v
}

func paramError(name string, err error) error {
	return fmt.Errorf("unable to parse param '%s': %w", name, err)
}

// parseMicros parses a time in microseconds since the epoch.
func parseUnix(v url.Values, name string, unit time.Duration) (time.Time, bool, error) {
	s := v.Get(name)
	if s == "" {
		return time.Time{}, false, nil
	}
	t, err := unixParser(unit)(s)
	if err != nil {
		return t, false, paramError(name, err)
	}
	return t, true, nil
}

// timeRange names a search's time range parameters and says how to read
// them; read applies the rules all three APIs share.
type timeRange struct {
	start, end string // the parameters' names
	// parse reads one parameter's value.
	parse func(s string) (time.Time, error)
	// wrap names the parameter in an error of parse.
	wrap func(name string, err error) error
	// lookback is the range's length when start is absent (called only
	// then).
	lookback func() (time.Duration, error)
	// backwards is the error when end is before start.
	backwards string
}

// read returns the range v gives at time now: end defaults to now, start
// to end minus the lookback; an end before the start is an error; a range
// longer than MaxRange keeps its last MaxRange.
func (r timeRange) read(v url.Values, now time.Time) (start, end time.Time, err error) {
	get := func(name string) (time.Time, bool, error) {
		s := v.Get(name)
		if s == "" {
			return time.Time{}, false, nil
		}
		t, err := r.parse(s)
		if err != nil {
			return t, false, r.wrap(name, err)
		}
		return t, true, nil
	}
	end, hasEnd, err := get(r.end)
	if err != nil {
		return start, end, err
	}
	if !hasEnd {
		end = now
	}
	start, hasStart, err := get(r.start)
	if err != nil {
		return start, end, err
	}
	if !hasStart {
		d, err := r.lookback()
		if err != nil {
			return start, end, err
		}
		start = end.Add(-d)
	}
	if end.Before(start) {
		return start, end, errors.New(r.backwards)
	}
	if end.Sub(start) > MaxRange {
		start = end.Add(-MaxRange)
	}
	return start, end, nil
}

// parseRFC3339 reads an RFC 3339 time (api_v3 and Vantage's API).
func parseRFC3339(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, fmt.Errorf("%q is not an RFC 3339 time", s)
	}
	return t, nil
}

// unixParser reads an integer count of unit since the epoch (Jaeger's
// API).
func unixParser(unit time.Duration) func(s string) (time.Time, error) {
	return func(s string) (time.Time, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not an integer", s)
		}
		if n < 0 || n > int64(1<<62)/int64(unit) {
			return time.Time{}, fmt.Errorf("%d is out of range", n)
		}
		return time.Unix(0, n*int64(unit)), nil
	}
}

// parseLookback parses a lookback such as "1h", "2d" or "custom" (no
// lookback).
func parseLookback(s string) (time.Duration, error) {
	if s == "" || s == "custom" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || n > 365 {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	dur, err := time.ParseDuration(s)
	if err != nil || dur <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration", s)
	}
	return dur, nil
}

func parseDurationParam(v url.Values, name string) (time.Duration, error) {
	s := v.Get(name)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, paramError(name, fmt.Errorf("%q is not a duration such as 250ms or 1.5s", s))
	}
	if d < 0 {
		return 0, paramError(name, errors.New("must not be negative"))
	}
	return d, nil
}

// parseDurationRange parses a minimum and a maximum duration; a maximum
// below the minimum is the error backwards.
func parseDurationRange(v url.Values, minName, maxName, backwards string) (lo, hi time.Duration, err error) {
	if lo, err = parseDurationParam(v, minName); err != nil {
		return 0, 0, err
	}
	if hi, err = parseDurationParam(v, maxName); err != nil {
		return 0, 0, err
	}
	if lo != 0 && hi != 0 && hi < lo {
		return 0, 0, errors.New(backwards)
	}
	return lo, hi, nil
}

// parseLimit parses a result limit: absent or 0 is def, more than
// tracestore.MaxLimit is MaxLimit; wrap names the parameter in an error.
func parseLimit(v url.Values, name string, def int, wrap func(string, error) error) (int, error) {
	l := v.Get(name)
	if l == "" {
		return def, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 0 {
		return 0, wrap(name, fmt.Errorf("%q is not a non-negative integer", l))
	}
	if n == 0 {
		return def, nil
	}
	return min(n, tracestore.MaxLimit), nil
}

func parseTags(v url.Values) (map[string]string, error) {
	tags := map[string]string{}
	for _, t := range v["tag"] {
		k, val, ok := strings.Cut(t, ":")
		if !ok || k == "" {
			return nil, fmt.Errorf("malformed 'tag' parameter, expecting key:value, received: %s", t)
		}
		tags[k] = val
	}
	if err := addJSONTags(tags, v["tags"], "'tags' parameter", "tag"); err != nil {
		return nil, err
	}
	if len(tags) == 0 {
		return nil, nil
	}
	return tags, nil
}

// addJSONTags adds to tags the JSON objects of strings in values (the
// parameter named param) and checks the bounds on tags: at most maxTags,
// each key and value at most maxTagLen bytes. noun names one tag in
// errors.
func addJSONTags(tags map[string]string, values []string, param, noun string) error {
	for _, js := range values {
		var m map[string]string
		if err := json.Unmarshal([]byte(js), &m); err != nil {
			return fmt.Errorf("malformed %s, expecting a JSON object of strings: %w", param, err)
		}
		for k, val := range m {
			tags[k] = val
		}
	}
	if len(tags) > maxTags {
		return fmt.Errorf("too many %ss: %d, at most %d", noun, len(tags), maxTags)
	}
	for k, val := range tags {
		if len(k)+len(val) > maxTagLen {
			return fmt.Errorf("%s %.32q is longer than %d bytes", noun, k, maxTagLen)
		}
	}
	return nil
}

// ParseSearch parses the query string of Jaeger's GET /api/traces at time
// now: service (required unless traceID is given), operation, tags (a
// JSON object), tag (key:value, repeated), minDuration and maxDuration
// (Go durations), limit (default 100, at most tracestore.MaxLimit), start
// and end (microseconds since the epoch; default the last 48 hours, or
// lookback), lookback ("1h", "2d", "custom") and traceID (repeated).
func ParseSearch(raw string, now time.Time) (Search, error) {
	v := parseQuery(raw)
	var s Search
	for _, id := range v["traceID"] {
		tid, err := tracestore.ParseTraceID(id)
		if err != nil {
			return s, paramError("traceID", fmt.Errorf("%q: %w", id, err))
		}
		s.TraceIDs = append(s.TraceIDs, tid)
	}
	if len(s.TraceIDs) > maxTraceIDs {
		return s, paramError("traceID", fmt.Errorf("at most %d trace ids", maxTraceIDs))
	}
	s.Service = v.Get("service")
	s.Operation = v.Get("operation")
	if s.Service == "" && len(s.TraceIDs) == 0 {
		return s, errors.New("parameter 'service' is required")
	}
	var err error
	if s.Tags, err = parseTags(v); err != nil {
		return s, err
	}
	if s.MinDuration, s.MaxDuration, err = parseDurationRange(v, "minDuration", "maxDuration", "'maxDuration' should be greater than 'minDuration'"); err != nil {
		return s, err
	}
	if s.Limit, err = parseLimit(v, "limit", DefaultJaegerLimit, paramError); err != nil {
		return s, err
	}
	lookback, err := parseLookback(v.Get("lookback"))
	if err != nil {
		return s, paramError("lookback", err)
	}
	if lookback == 0 {
		lookback = DefaultLookback
	}
	s.StartMin, s.StartMax, err = timeRange{
		start: "start", end: "end", parse: unixParser(time.Microsecond), wrap: paramError,
		lookback:  func() (time.Duration, error) { return lookback, nil },
		backwards: "'end' should not be before 'start'",
	}.read(v, now)
	return s, err
}

// ParseDependencies parses the query string of GET /api/dependencies:
// endTs (milliseconds since the epoch, default now) and lookback
// (milliseconds, default 24 hours).
func ParseDependencies(raw string, now time.Time) (end time.Time, lookback time.Duration, err error) {
	v := parseQuery(raw)
	end, has, err := parseUnix(v, "endTs", time.Millisecond)
	if err != nil {
		return end, 0, err
	}
	if !has {
		end = now
	}
	lookback = DefaultDependencyLookback
	if s := v.Get("lookback"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return end, 0, paramError("lookback", fmt.Errorf("%q is not a positive number of milliseconds", s))
		}
		lookback = MaxRange
		if n < int64(MaxRange/time.Millisecond) {
			lookback = time.Duration(n) * time.Millisecond
		}
	}
	return end, lookback, nil
}
