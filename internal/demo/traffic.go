package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// UserAgent is the User-Agent of every request the traffic generator sends.
const UserAgent = "vantage-demo"

// Traffic limits.
const (
	// MaxRate is the highest rate a Traffic generator sends at.
	MaxRate = 200
	// defaultMaxInFlight bounds the generator's pending requests.
	defaultMaxInFlight = 16
	// orderBurst is how many orders a "double-clicking shopper" sends at
	// once, about once a minute, to show the rate limit at work.
	orderBurst = 6
)

// TrafficOptions configures a Traffic generator.
type TrafficOptions struct {
	// Target is the gateway's base URL, e.g. "http://127.0.0.1:8080".
	// Required.
	Target string
	// Rate is the mean number of requests per second, from just above 0 to
	// MaxRate (default 5). Intervals between requests vary by ±25%.
	Rate float64
	// MaxInFlight bounds the requests pending at once (default 16); a tick
	// that finds it reached sends nothing and is counted as Skipped.
	MaxInFlight int
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// Client sends the requests (default: a client of its own, never
	// http.DefaultClient). Its Timeout, if any, applies as well.
	Client *http.Client
	// Seed seeds the choice of requests (default 0: random).
	Seed uint64
}

// Traffic sends a gentle, realistic mix of shop requests to the gateway:
// home pages, product pages, catalog API calls, order lookups and a few
// orders, plus about once a minute a burst of orders that meets the rate
// limit. Its methods are safe for concurrent use.
type Traffic struct {
	o      TrafficOptions
	client *http.Client
	own    *http.Transport // closed when Run returns; nil with Options.Client
	rng    *rng
	sem    chan struct{}

	orders   atomic.Int64 // orders placed (201), to look up
	requests atomic.Uint64
	classes  [6]atomic.Uint64
	errors   atomic.Uint64
	skipped  atomic.Uint64
}

// TrafficStats counts what a generator has sent so far.
type TrafficStats struct {
	// Requests is the number of requests finished, answered or not.
	Requests uint64
	// Status counts answers by class: Status[2] is 2xx, ..., Status[5] is
	// 5xx (Status[0] is unused).
	Status [6]uint64
	// Errors is the number of requests that got no answer (connection
	// refused, timeout); canceled requests at shutdown are not counted.
	Errors uint64
	// Skipped is the number of requests not sent because MaxInFlight were
	// pending.
	Skipped uint64
}

// Sub returns s minus prev: what happened between two snapshots.
func (s TrafficStats) Sub(prev TrafficStats) TrafficStats {
	out := TrafficStats{Requests: s.Requests - prev.Requests, Errors: s.Errors - prev.Errors, Skipped: s.Skipped - prev.Skipped}
	for i := range s.Status {
		out.Status[i] = s.Status[i] - prev.Status[i]
	}
	return out
}

// String formats s on one line: "48 requests  2xx 45  4xx 1  5xx 2".
// Classes and counters that are zero are left out, except 2xx.
func (s TrafficStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests  2xx %d", s.Requests, s.Status[2])
	for _, c := range []int{1, 3, 4, 5} {
		if s.Status[c] > 0 {
			fmt.Fprintf(&b, "  %dxx %d", c, s.Status[c])
		}
	}
	if s.Errors > 0 {
		fmt.Fprintf(&b, "  no answer %d", s.Errors)
	}
	if s.Skipped > 0 {
		fmt.Fprintf(&b, "  skipped %d", s.Skipped)
	}
	return b.String()
}

// NewTraffic checks o and returns a generator; nothing is sent before Run.
func NewTraffic(o TrafficOptions) (*Traffic, error) {
	if !strings.HasPrefix(o.Target, "http://") && !strings.HasPrefix(o.Target, "https://") {
		return nil, fmt.Errorf("demo: traffic target must be an http(s) URL, got %q", o.Target)
	}
	o.Target = strings.TrimSuffix(o.Target, "/")
	if o.Rate == 0 {
		o.Rate = 5
	}
	if o.Rate < 0 || o.Rate > MaxRate {
		return nil, fmt.Errorf("demo: traffic rate must be between 0 and %d requests per second, got %g", MaxRate, o.Rate)
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = defaultMaxInFlight
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64()
	}
	t := &Traffic{o: o, client: o.Client, rng: newRNG(o.Seed, 0), sem: make(chan struct{}, o.MaxInFlight)}
	if t.client == nil {
		t.own = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: o.MaxInFlight,
			IdleConnTimeout:     30 * time.Second,
		}
		t.client = &http.Client{Transport: t.own}
	}
	return t, nil
}

// Run sends requests until ctx is done, then waits for the pending ones
// (which ctx cancels) and returns. Call it once.
func (t *Traffic) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		if t.own != nil {
			t.own.CloseIdleConnections()
		}
	}()
	mean := time.Duration(float64(time.Second) / t.o.Rate)
	nextBurst := t.burstGap()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		reqs := 1
		if nextBurst -= mean; nextBurst <= 0 {
			reqs, nextBurst = orderBurst, t.burstGap()
		}
		for range reqs {
			var method, path, body string
			if reqs > 1 {
				method, path, body = t.order()
			} else {
				method, path, body = t.pick()
			}
			select {
			case t.sem <- struct{}{}:
			default:
				t.skipped.Add(1)
				continue
			}
			wg.Add(1)
			go func() {
				defer func() { <-t.sem; wg.Done() }()
				t.send(ctx, method, path, body)
			}()
		}
		timer.Reset(time.Duration(float64(mean) * (0.75 + 0.5*t.rng.float())))
	}
}

// burstGap is the time to the next burst of orders: 40 to 80 s.
func (t *Traffic) burstGap() time.Duration {
	return 40*time.Second + time.Duration(t.rng.float()*float64(40*time.Second))
}

// Stats returns a snapshot of the counters.
func (t *Traffic) Stats() TrafficStats {
	s := TrafficStats{Requests: t.requests.Load(), Errors: t.errors.Load(), Skipped: t.skipped.Load()}
	for i := range t.classes {
		s.Status[i] = t.classes[i].Load()
	}
	return s
}

// pick draws the next request of the mix.
func (t *Traffic) pick() (method, path, body string) {
	f := t.rng.float()
	switch {
	case f < 0.25:
		return http.MethodGet, "/", ""
	case f < 0.60:
		id := 1 + t.rng.intN(120)
		if t.rng.float() < 0.03 {
			id = 9000 + t.rng.intN(1000) // a stale link: 404
		}
		return http.MethodGet, "/products/" + strconv.Itoa(id), ""
	case f < 0.72:
		return http.MethodGet, "/api/catalog/products", ""
	case f < 0.80:
		return http.MethodGet, "/api/catalog/products/" + strconv.Itoa(1+t.rng.intN(maxProductID)), ""
	case f < 0.92:
		return t.order()
	default:
		// Mostly orders placed earlier, now and then one that does not
		// exist yet (404).
		return http.MethodGet, "/api/orders/" + strconv.Itoa(1+t.rng.intN(int(t.orders.Load())+2)), ""
	}
}

func (t *Traffic) order() (method, path, body string) {
	return http.MethodPost, "/api/orders",
		fmt.Sprintf(`{"product_id": %d, "quantity": %d}`, 1+t.rng.intN(120), 1+t.rng.intN(3))
}

// send sends one request and counts its outcome.
func (t *Traffic) send(ctx context.Context, method, path, body string) {
	ctx, cancel := context.WithTimeout(ctx, t.o.Timeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.o.Target+path, rd)
	if err != nil {
		t.requests.Add(1)
		t.errors.Add(1)
		return
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "application/json")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := t.client.Do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return // the demo is stopping
		}
		t.requests.Add(1)
		t.errors.Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	t.requests.Add(1)
	if method == http.MethodPost && resp.StatusCode == http.StatusCreated {
		t.orders.Add(1)
	}
	if c := resp.StatusCode / 100; c >= 1 && c <= 5 {
		t.classes[c].Add(1)
	}
}
