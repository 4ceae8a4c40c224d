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
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false, paramError(name, fmt.Errorf("%q is not an integer", s))
	}
	if n < 0 || n > int64(1<<62)/int64(unit) {
		return time.Time{}, false, paramError(name, fmt.Errorf("%d is out of range", n))
	}
	return time.Unix(0, n*int64(unit)), true, nil
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

func parseTags(v url.Values) (map[string]string, error) {
	tags := map[string]string{}
	for _, t := range v["tag"] {
		k, val, ok := strings.Cut(t, ":")
		if !ok || k == "" {
			return nil, fmt.Errorf("malformed 'tag' parameter, expecting key:value, received: %s", t)
		}
		tags[k] = val
	}
	for _, js := range v["tags"] {
		var m map[string]string
		if err := json.Unmarshal([]byte(js), &m); err != nil {
			return nil, fmt.Errorf("malformed 'tags' parameter, expecting a JSON object of strings: %w", err)
		}
		for k, val := range m {
			tags[k] = val
		}
	}
	if len(tags) > maxTags {
		return nil, fmt.Errorf("too many tags: %d, at most %d", len(tags), maxTags)
	}
	for k, val := range tags {
		if len(k)+len(val) > maxTagLen {
			return nil, fmt.Errorf("tag %.32q is longer than %d bytes", k, maxTagLen)
		}
	}
	if len(tags) == 0 {
		return nil, nil
	}
	return tags, nil
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
	if s.MinDuration, err = parseDurationParam(v, "minDuration"); err != nil {
		return s, err
	}
	if s.MaxDuration, err = parseDurationParam(v, "maxDuration"); err != nil {
		return s, err
	}
	if s.MinDuration != 0 && s.MaxDuration != 0 && s.MaxDuration < s.MinDuration {
		return s, errors.New("'maxDuration' should be greater than 'minDuration'")
	}
	s.Limit = DefaultJaegerLimit
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return s, paramError("limit", fmt.Errorf("%q is not a non-negative integer", l))
		}
		if n > 0 {
			s.Limit = min(n, tracestore.MaxLimit)
		}
	}
	lookback, err := parseLookback(v.Get("lookback"))
	if err != nil {
		return s, paramError("lookback", err)
	}
	if lookback == 0 {
		lookback = DefaultLookback
	}
	end, hasEnd, err := parseUnix(v, "end", time.Microsecond)
	if err != nil {
		return s, err
	}
	if !hasEnd {
		end = now
	}
	start, hasStart, err := parseUnix(v, "start", time.Microsecond)
	if err != nil {
		return s, err
	}
	if !hasStart {
		start = end.Add(-lookback)
	}
	if end.Before(start) {
		return s, errors.New("'end' should not be before 'start'")
	}
	if end.Sub(start) > MaxRange {
		start = end.Add(-MaxRange)
	}
	s.StartMin, s.StartMax = start, end
	return s, nil
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
