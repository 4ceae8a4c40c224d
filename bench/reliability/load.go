// Package reliability is the library behind the reliability harness
// (bench/cmd/reliability): a bounded load generator that counts every
// failure by kind, hostile clients (slowloris, slow bodies, slow readers),
// the resident memory of a process, and the Markdown report. The command
// starts the gateway and its upstreams and runs the scenarios.
//
// Everything here sends traffic only to the URLs and addresses it is given,
// and every loop is bounded in count and in time and stops by itself; the
// command only ever gives it 127.0.0.1 addresses.
package reliability

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// LoadOptions bound one load run.
type LoadOptions struct {
	// URL is requested with GET by every worker. URLFor, when set, is used
	// instead and gets the request's sequence number (for a flood of
	// distinct paths).
	URL    string
	URLFor func(seq int64) string
	// Conns is the number of workers, each with its own keep-alive
	// connection (default 16).
	Conns int
	// Duration bounds the run in time (required).
	Duration time.Duration
	// MaxRequests bounds the run in count (default 10 million).
	MaxRequests int64
	// Rate, when > 0, spaces requests to at most this many per second over
	// all workers; 0 sends as fast as the workers go.
	Rate float64
	// Timeout bounds one request (default 10 s).
	Timeout time.Duration
	// MaxSamples bounds the latencies kept for quantiles (default 1 million);
	// past it, later latencies replace earlier ones at random positions.
	MaxSamples int
}

// LoadResult counts what a load run got.
type LoadResult struct {
	Requests int64
	OK       int64 // 2xx
	Non2xx   map[int]int64
	Errors   int64 // transport errors (refused, reset, timeout)
	// Refused counts the transport errors that were refused connections
	// (nothing listening any more), a subset of Errors.
	Refused   int64
	FirstErr  string
	Elapsed   time.Duration
	latencies []time.Duration
}

// Failed is every request that did not get a 2xx.
func (r LoadResult) Failed() int64 {
	var n int64
	for _, c := range r.Non2xx {
		n += c
	}
	return n + r.Errors
}

// Quantile returns the q-quantile (0..1) of the latencies kept, 0 when none.
func (r LoadResult) Quantile(q float64) time.Duration {
	return Quantile(r.latencies, q)
}

// RPS is the completed requests per second.
func (r LoadResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Quantile returns the q-quantile of ds by the nearest-rank method; it
// sorts a copy, so ds is left as it is.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

// Load runs workers against o.URL until o.Duration passes, o.MaxRequests
// have been sent or ctx ends, whichever is first.
func Load(ctx context.Context, o LoadOptions) (LoadResult, error) {
	if o.URL == "" && o.URLFor == nil {
		return LoadResult{}, errors.New("load: URL or URLFor is required")
	}
	if o.Duration <= 0 {
		return LoadResult{}, errors.New("load: Duration is required")
	}
	if o.Conns <= 0 {
		o.Conns = 16
	}
	if o.MaxRequests <= 0 {
		o.MaxRequests = 10_000_000
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxSamples <= 0 {
		o.MaxSamples = 1_000_000
	}
	tr := &http.Transport{
		MaxIdleConnsPerHost: o.Conns,
		MaxConnsPerHost:     o.Conns,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: o.Timeout}

	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()

	var (
		seq     atomic.Int64
		mu      sync.Mutex
		res     = LoadResult{Non2xx: map[int]int64{}}
		samples = newReservoir(o.MaxSamples)
	)
	var tick <-chan time.Time
	if o.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
		defer t.Stop()
		tick = t.C
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range o.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if tick != nil {
					select {
					case <-ctx.Done():
						return
					case <-tick:
					}
				}
				n := seq.Add(1)
				if n > o.MaxRequests || ctx.Err() != nil {
					return
				}
				url := o.URL
				if o.URLFor != nil {
					url = o.URLFor(n)
				}
				t0 := time.Now()
				code, err := get(ctx, client, url)
				lat := time.Since(t0)
				if err != nil && ctx.Err() != nil {
					return // cut by the end of the run: not counted
				}
				mu.Lock()
				res.Requests++
				switch {
				case err != nil:
					res.Errors++
					if errors.Is(err, syscall.ECONNREFUSED) {
						res.Refused++
					} else if res.FirstErr == "" {
						res.FirstErr = err.Error()
					}
				case code >= 200 && code < 300:
					res.OK++
					samples.add(lat)
				default:
					res.Non2xx[code]++
					samples.add(lat)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.latencies = samples.items
	return res, nil
}

func get(ctx context.Context, client *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("reading body: %w", err)
	}
	return resp.StatusCode, nil
}

// reservoir keeps at most cap samples (Vitter's algorithm R with a cheap
// deterministic generator, so runs are comparable).
type reservoir struct {
	items []time.Duration
	cap   int
	seen  uint64
	x     uint64
}

func newReservoir(n int) *reservoir {
	return &reservoir{cap: n, x: 0x9e3779b97f4a7c15}
}

func (r *reservoir) add(d time.Duration) {
	r.seen++
	if len(r.items) < r.cap {
		r.items = append(r.items, d)
		return
	}
	r.x ^= r.x << 13
	r.x ^= r.x >> 7
	r.x ^= r.x << 17
	if j := r.x % r.seen; j < uint64(r.cap) {
		r.items[j] = d
	}
}
