package upstream

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
)

// DefaultMaxProbesInFlight is how many health-check probes one Checker runs
// at once when NewChecker is given no limit.
const DefaultMaxProbesInFlight = 64

// intervalJitter is the fraction of a health check's interval by which each
// next probe of a host is moved earlier or later at random, so hosts that
// started together drift apart instead of probing in lockstep.
const intervalJitter = 0.1

// Checker runs the active health checks of many pools from one scheduling
// goroutine: a queue ordered by due time, at most a fixed number of probes
// in flight, one short-lived goroutine per probe. Each host's first probe
// comes after a random delay in [0, interval); each next one interval later,
// moved by up to ±10% at random. A probe that would start while the host's
// previous probe is still running is skipped. When the limit of probes in
// flight is reached, due probes wait for a slot and start late rather than
// all at once.
//
// A gateway shares one Checker between all its pools, so 10,000 hosts cost
// one sleeping goroutine, not 10,000, and at most the limit of connections
// to upstreams at any moment. The random numbers come from a generator
// seeded by the caller, so a test with a fake clock sees a fixed schedule.
// Its methods are safe for concurrent use.
type Checker struct {
	clk   clock.Clock
	limit int
	sem   chan struct{}
	wake  chan struct{}

	mu    sync.Mutex
	rng   *rand.Rand
	queue checkQueue
	// clients are the probe clients shared by pools with the same
	// settings (Pool.probeClient); guarded by mu.
	clients map[probeKey]*probeClient

	// probe runs one probe; tests replace it.
	probe func(ctx context.Context, c *check)

	runMu   sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// check is one host in a Checker's queue.
type check struct {
	pool   *Pool
	host   *Host
	target string
	due    time.Time
	busy   bool // a probe of the host is running; guarded by Checker.mu
	index  int
}

// NewChecker returns a Checker reading the time from clk (nil means
// clock.Real), running at most limit probes at once (limit <= 0 means
// DefaultMaxProbesInFlight) and drawing its jitter from a generator seeded
// with seed. Call Start to begin probing and Close to stop.
func NewChecker(clk clock.Clock, limit int, seed uint64) *Checker {
	if clk == nil {
		clk = clock.Real{}
	}
	if limit <= 0 {
		limit = DefaultMaxProbesInFlight
	}
	c := &Checker{
		clk:   clk,
		limit: limit,
		sem:   make(chan struct{}, limit),
		wake:  make(chan struct{}, 1),
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	c.probe = func(ctx context.Context, k *check) { k.pool.probe(ctx, k.host, k.target) }
	return c
}

// probeClient is a shared probe client and its transport.
type probeClient struct {
	client *http.Client
	tr     *http.Transport
}

// probeClient returns the probe client for key, built on first use; nil
// when the TLS settings cannot be built (the pool then builds its own and
// its probes report the error).
func (c *Checker) probeClient(key probeKey) *http.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pc := c.clients[key]; pc != nil {
		return pc.client
	}
	tlsConf, err := probeTLS(key)
	if err != nil {
		return nil
	}
	if c.clients == nil {
		c.clients = map[probeKey]*probeClient{}
	}
	pc := &probeClient{}
	pc.client, pc.tr = newProbeClient(key.timeout, tlsConf)
	c.clients[key] = pc
	return pc.client
}

// Limit returns the most probes the Checker runs at once.
func (c *Checker) Limit() int { return c.limit }

// Start starts the scheduling goroutine. It does nothing when already
// started or after Close.
func (c *Checker) Start() {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	if c.started || c.closed {
		return
	}
	c.started = true
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Go(func() { c.run(ctx) })
}

// Close stops the scheduling goroutine and waits for it and for every probe
// in flight to return (probes in flight are cancelled). Pools still
// registered stop being probed. It is safe to call more than once.
func (c *Checker) Close() {
	c.runMu.Lock()
	c.closed = true
	cancel := c.cancel
	c.runMu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.wg.Wait()
}

// add queues every host of p, each due after its own random delay in
// [0, interval) from now.
func (c *Checker) add(p *Pool) {
	now := c.clk.Now()
	c.mu.Lock()
	for _, h := range p.hosts {
		heap.Push(&c.queue, &check{
			pool:   p,
			host:   h,
			target: probeURL(h, p.hc.path),
			due:    now.Add(c.jitterLocked(p.hc.interval)),
		})
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// jitterLocked returns a random duration in [0, d). c.mu must be held.
func (c *Checker) jitterLocked(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(c.rng.Int64N(int64(d)))
}

// take removes from the queue the checks due at now, requeues each for its
// next probe, and returns those to probe now, marked busy. Checks of stopped
// pools are dropped; checks whose previous probe still runs are skipped
// this round.
func (c *Checker) take(now time.Time) []*check {
	var due []*check
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) > 0 && !c.queue[0].due.After(now) {
		k := c.queue[0]
		if k.pool.checksStopped() {
			heap.Pop(&c.queue)
			continue
		}
		iv := k.pool.hc.interval
		spread := time.Duration(float64(iv) * intervalJitter)
		next := k.due.Add(iv - spread + c.jitterLocked(2*spread+1))
		if !next.After(now) {
			// Fell behind (the probe limit was reached for longer than an
			// interval): start again from now rather than catch up.
			next = now.Add(c.jitterLocked(iv))
		}
		k.due = next
		heap.Fix(&c.queue, 0)
		if k.busy {
			continue
		}
		k.busy = true
		due = append(due, k)
	}
	return due
}

// nextDue returns the due time of the earliest check, false when the queue
// is empty.
func (c *Checker) nextDue() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return time.Time{}, false
	}
	return c.queue[0].due, true
}

// dispatch starts a probe for each of due, waiting for a free slot whenever
// limit probes are in flight. It returns early when ctx is done; the checks
// not started are released.
func (c *Checker) dispatch(ctx context.Context, due []*check) {
	for i, k := range due {
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			c.release(due[i:]...)
			return
		}
		if !k.pool.beginProbe() {
			<-c.sem
			c.release(k)
			continue
		}
		c.wg.Go(func() {
			defer func() {
				c.release(k)
				<-c.sem
				k.pool.endProbe()
			}()
			// The probe stops when its pool stops or the Checker closes.
			pctx, cancel := context.WithCancel(k.pool.probeCtx)
			stop := context.AfterFunc(ctx, cancel)
			defer func() { stop(); cancel() }()
			c.probe(pctx, k)
		})
	}
}

func (c *Checker) release(ks ...*check) {
	c.mu.Lock()
	for _, k := range ks {
		k.busy = false
	}
	c.mu.Unlock()
}

// run sleeps until the earliest check is due, then dispatches every due
// check, until ctx is done.
func (c *Checker) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := time.Hour
		if due, ok := c.nextDue(); ok {
			wait = due.Sub(c.clk.Now())
		}
		if wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-c.wake:
				timer.Stop()
				continue
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		c.dispatch(ctx, c.take(c.clk.Now()))
	}
}

// checkQueue is a min-heap of checks by due time.
type checkQueue []*check

func (q checkQueue) Len() int           { return len(q) }
func (q checkQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q checkQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}
func (q *checkQueue) Push(x any) {
	k := x.(*check)
	k.index = len(*q)
	*q = append(*q, k)
}
func (q *checkQueue) Pop() any {
	old := *q
	n := len(old)
	k := old[n-1]
	old[n-1] = nil
	*q = old[:n-1]
	return k
}
