package harness

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ConnsPath is the bench upstream's counter of accepted connections: a GET
// answers the count so far as a decimal number.
const ConnsPath = "/_harness/conns"

// ConnsPerRequest is the connections the upstream accepted during the run
// divided by the requests wrk completed: the target's dials per request
// (NaN when unknown or without requests).
func (s Sample) ConnsPerRequest() float64 {
	if !s.HasUpstreamConns || s.Wrk.Requests <= 0 {
		return math.NaN()
	}
	return float64(s.UpstreamConns) / float64(s.Wrk.Requests)
}

// UpstreamConns reads the bench upstream's count of accepted connections
// at addr (host:port) with client, within 5 s.
func UpstreamConns(ctx context.Context, client *http.Client, addr string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+ConnsPath, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("reading the upstream's connection count: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	if err != nil {
		return 0, fmt.Errorf("reading the upstream's connection count: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("upstream connection count: status %d", resp.StatusCode)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("upstream connection count %q: %w", b, err)
	}
	return n, nil
}

// ConnsTable renders, for each target (in order) with counted runs, the
// median over rounds of the upstream connections opened per request. A
// proxy that reuses its upstream connections shows about 0; one that dials
// for every request, 1. The direct row counts wrk's own connections.
func ConnsTable(samples []Sample, targets []string) string {
	var b strings.Builder
	for _, t := range targets {
		var xs []float64
		var conns int64
		for _, s := range samples {
			if s.Target == t && s.HasUpstreamConns {
				xs = append(xs, s.ConnsPerRequest())
				conns += s.UpstreamConns
			}
		}
		if len(xs) == 0 {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("| target | upstream connections / request (median) | connections opened (all rounds) |\n|---|---:|---:|\n")
		}
		m := Median(xs)
		v := "–"
		if !math.IsNaN(m) {
			v = fmt.Sprintf("%.4f", m)
		}
		fmt.Fprintf(&b, "| %s | %s | %d |\n", t, v, conns)
	}
	return b.String()
}
