package harness

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WrkResult is what one `wrk --latency` run reports. Latencies are the
// percentiles of wrk's "Latency Distribution" section; a percentile wrk did
// not print is zero.
type WrkResult struct {
	// Requests is the number of completed requests ("N requests in ...").
	Requests int64
	// Elapsed is the measured window wrk reports ("... in 10.00s").
	Elapsed time.Duration
	// RequestsPerSec is wrk's "Requests/sec" line.
	RequestsPerSec float64
	// P50, P75, P90 and P99 are the latency percentiles.
	P50, P75, P90, P99 time.Duration
	// Non2xx counts responses with a status other than 2xx or 3xx.
	Non2xx int64
	// SocketErrors is the sum of connect, read, write and timeout errors.
	SocketErrors int64
}

// Errors is the number of failed requests: non-2xx/3xx responses plus
// socket errors.
func (r WrkResult) Errors() int64 { return r.Non2xx + r.SocketErrors }

// ParseWrk parses the standard output of `wrk --latency` (wrk 4.x). It
// requires the request count, the Requests/sec line and the 50% and 99%
// percentiles, and returns an error naming what is missing otherwise.
func ParseWrk(out string) (WrkResult, error) {
	var r WrkResult
	var haveReq, haveRPS bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		fields := strings.Fields(line)
		switch {
		case len(fields) == 2 && strings.HasSuffix(fields[0], "%"):
			d, err := ParseWrkDuration(fields[1])
			if err != nil {
				return r, fmt.Errorf("wrk percentile line %q: %w", line, err)
			}
			switch fields[0] {
			case "50%", "50.000%":
				r.P50 = d
			case "75%", "75.000%":
				r.P75 = d
			case "90%", "90.000%":
				r.P90 = d
			case "99%", "99.000%":
				r.P99 = d
			}
		case len(fields) >= 4 && fields[1] == "requests" && fields[2] == "in":
			n, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk request count %q: %w", line, err)
			}
			d, err := ParseWrkDuration(strings.TrimSuffix(fields[3], ","))
			if err != nil {
				return r, fmt.Errorf("wrk elapsed time %q: %w", line, err)
			}
			r.Requests, r.Elapsed, haveReq = n, d, true
		case strings.HasPrefix(line, "Requests/sec:") && len(fields) == 2:
			v, err := strconv.ParseFloat(fields[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk Requests/sec %q: %w", line, err)
			}
			r.RequestsPerSec, haveRPS = v, true
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(fields) == 5:
			n, err := strconv.ParseInt(fields[4], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk non-2xx count %q: %w", line, err)
			}
			r.Non2xx = n
		case strings.HasPrefix(line, "Socket errors:"):
			n, err := parseSocketErrors(strings.TrimPrefix(line, "Socket errors:"))
			if err != nil {
				return r, fmt.Errorf("wrk socket errors %q: %w", line, err)
			}
			r.SocketErrors = n
		}
	}
	if err := sc.Err(); err != nil {
		return r, fmt.Errorf("reading wrk output: %w", err)
	}
	var missing []string
	if !haveReq {
		missing = append(missing, `"N requests in T"`)
	}
	if !haveRPS {
		missing = append(missing, `"Requests/sec"`)
	}
	if r.P50 == 0 {
		missing = append(missing, "50% latency (was --latency given?)")
	}
	if r.P99 == 0 {
		missing = append(missing, "99% latency")
	}
	if len(missing) > 0 {
		return r, fmt.Errorf("wrk output lacks %s", strings.Join(missing, ", "))
	}
	return r, nil
}

// parseSocketErrors sums "connect 0, read 1, write 0, timeout 2".
func parseSocketErrors(s string) (int64, error) {
	var total int64
	for part := range strings.SplitSeq(s, ",") {
		f := strings.Fields(part)
		if len(f) != 2 {
			return 0, fmt.Errorf("unexpected part %q", part)
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("count of %s: %w", f[0], err)
		}
		total += n
	}
	return total, nil
}

// ParseWrkDuration parses a duration as wrk prints it: a decimal number
// followed by one of the units us, ms, s, m or h ("294.00us", "1.30ms",
// "10.00s", "1.00m").
func ParseWrkDuration(s string) (time.Duration, error) {
	i := strings.IndexFunc(s, func(c rune) bool { return (c < '0' || c > '9') && c != '.' })
	if i <= 0 {
		return 0, fmt.Errorf("duration %q: no number or no unit", s)
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, fmt.Errorf("duration %q: %w", s, err)
	}
	var unit time.Duration
	switch s[i:] {
	case "us":
		unit = time.Microsecond
	case "ms":
		unit = time.Millisecond
	case "s":
		unit = time.Second
	case "m":
		unit = time.Minute
	case "h":
		unit = time.Hour
	default:
		return 0, fmt.Errorf("duration %q: %w", s, errUnknownUnit)
	}
	return time.Duration(v * float64(unit)), nil
}

var errUnknownUnit = errors.New("unknown unit (want us, ms, s, m or h)")
