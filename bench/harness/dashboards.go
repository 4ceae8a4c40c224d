package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxDashboards bounds the dashboards one variant may open.
const MaxDashboards = 32

// ParseVariant splits a Vantage variant name into its template and the
// number of live dashboards to hold open against it: "full+dash5" is the
// template full with 5 dashboards streaming, "full" has none.
func ParseVariant(v string) (template string, dashboards int, err error) {
	base, suffix, ok := strings.Cut(v, "+")
	if !ok {
		return v, 0, nil
	}
	ns, isDash := strings.CutPrefix(suffix, "dash")
	n, err := strconv.Atoi(ns)
	if !isDash || err != nil || base == "" || ns == "" || ns[0] == '+' || ns[0] == '-' {
		return "", 0, fmt.Errorf("variant %q: the suffix must be +dashN (N live dashboards), got +%s", v, suffix)
	}
	if n < 1 || n > MaxDashboards {
		return "", 0, fmt.Errorf("variant %q: dashboards must be 1..%d, got %d", v, MaxDashboards, n)
	}
	return base, n, nil
}

// Dashboards holds live dashboard streams open against a gateway's admin
// listener, as browsers on its dashboard would: each reads the server-sent
// events of GET /api/dashboard/stream and counts them. They stop when
// Close is called or their context ends.
type Dashboards struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events atomic.Int64
	errMu  sync.Mutex
	err    error
}

// OpenDashboards opens n streams to http://admin/api/dashboard/stream and
// waits (at most ready) until each has received its first event.
func OpenDashboards(ctx context.Context, admin string, n int, ready time.Duration) (*Dashboards, error) {
	ctx, cancel := context.WithCancel(ctx)
	d := &Dashboards{cancel: cancel}
	first := make(chan error, n)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxConnsPerHost: n}}
	for i := 0; i < n; i++ {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.stream(ctx, client, "http://"+admin+"/api/dashboard/stream", first)
		}()
	}
	timer := time.NewTimer(ready)
	defer timer.Stop()
	for i := 0; i < n; i++ {
		select {
		case err := <-first:
			if err != nil {
				d.Close()
				return nil, err
			}
		case <-timer.C:
			d.Close()
			return nil, fmt.Errorf("dashboards: %d of %d streams sent no event within %s", n-i, n, ready)
		}
	}
	return d, nil
}

func (d *Dashboards) stream(ctx context.Context, c *http.Client, url string, first chan<- error) {
	sent := false
	report := func(err error) {
		if !sent {
			sent = true
			first <- err
		} else if err != nil && ctx.Err() == nil {
			d.errMu.Lock()
			if d.err == nil {
				d.err = err
			}
			d.errMu.Unlock()
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		report(fmt.Errorf("dashboard stream: %w", err))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		report(fmt.Errorf("dashboard stream: %s", resp.Status))
		return
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: ") {
			d.events.Add(1)
			report(nil)
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		report(fmt.Errorf("dashboard stream: %w", err))
		return
	}
	report(errors.New("dashboard stream ended"))
}

// Events returns the events received so far by all streams.
func (d *Dashboards) Events() int64 { return d.events.Load() }

// Err returns the first error a stream met after its first event.
func (d *Dashboards) Err() error {
	d.errMu.Lock()
	defer d.errMu.Unlock()
	return d.err
}

// Close ends every stream and waits for them. It is safe to call more than
// once.
func (d *Dashboards) Close() {
	d.cancel()
	d.wg.Wait()
}
