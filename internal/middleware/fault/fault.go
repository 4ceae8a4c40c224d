// Package fault injects faults into a route's requests, to test how clients,
// retries, breakers and dashboards behave when a service is slow or failing:
// a delay before the request goes on, and an abort that answers with a
// status without sending it upstream, each applied to a percentage of
// requests. Applied faults are written to the request's observe.Record
// (Fault, and ErrorKind for aborts) and reported as EventFaultInjected.
package fault

import (
	"math"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/vantage-gateway/vantage/internal/clock"
	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/errorbody"
	"github.com/vantage-gateway/vantage/internal/middleware"
	"github.com/vantage-gateway/vantage/internal/observe"
)

// Fault names, the values of observe.Record.Fault (observe.FaultKind's
// labels, joined when a delayed request is then aborted).
const (
	Delay      = "delay"
	Abort      = "abort"
	DelayAbort = "delay,abort" // Record.Fault when a delayed request is then aborted
)

// perMillion is the resolution of percentages: 0.0001%.
const perMillion = 1_000_000

// threshold converts a percentage to a draw threshold out of perMillion.
func threshold(p *float64) uint64 {
	if p == nil {
		return perMillion
	}
	return uint64(math.Round(math.Min(math.Max(*p, 0), 100) * perMillion / 100))
}

type injector struct {
	route string
	obs   observe.Observer
	clk   clock.Clock
	rnd   func() uint64

	delay     time.Duration
	delayThr  uint64
	abort     bool
	abortThr  uint64
	abortCode int
}

// New returns the fault middleware of route for cfg, which must be defaulted
// and valid (see config.Fault), or nil (no middleware) when cfg is nil. obs
// receives EventFaultInjected (nil: none); clk stamps events (nil: the system
// clock); rnd draws the percentages and must be safe for concurrent use
// (nil: math/rand/v2.Uint64).
//
// A delayed request waits on a timer, never past its context: when the
// client goes away during the delay, the request ends there, recorded as
// observe.ErrClientCanceled, and is not sent on. An aborted request gets
// the configured status and the gateway's JSON error body, with error
// "fault_injected".
func New(route string, cfg *config.Fault, obs observe.Observer, clk clock.Clock, rnd func() uint64) middleware.Middleware {
	if cfg == nil || (cfg.Delay == nil && cfg.Abort == nil) {
		return nil
	}
	if obs == nil {
		obs = observe.Nop{}
	}
	if clk == nil {
		clk = clock.Real{}
	}
	if rnd == nil {
		rnd = rand.Uint64
	}
	in := &injector{route: route, obs: obs, clk: clk, rnd: rnd}
	if d := cfg.Delay; d != nil && d.Duration > 0 {
		in.delay = d.Duration.D()
		in.delayThr = threshold(d.Percent)
	}
	if a := cfg.Abort; a != nil {
		in.abort = true
		in.abortThr = threshold(a.Percent)
		in.abortCode = a.Status
		if in.abortCode < 400 || in.abortCode > 599 {
			in.abortCode = http.StatusServiceUnavailable
		}
	}
	return func(next http.Handler) http.Handler { return &handler{in: in, next: next} }
}

// hit draws whether a fault with threshold thr applies.
func (in *injector) hit(thr uint64) bool {
	switch thr {
	case 0:
		return false
	case perMillion:
		return true
	}
	return in.rnd()%perMillion < thr
}

func (in *injector) event(r *http.Request, rec *observe.Record, f observe.Fault) {
	in.obs.Observe(observe.Event{
		Kind:   observe.EventFaultInjected,
		Time:   in.clk.Now(),
		Ctx:    r.Context(),
		Record: rec,
		Route:  in.route,
		Fault:  f,
	})
}

type handler struct {
	in   *injector
	next http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	in := h.in
	rec := observe.FromContext(r.Context())
	delayed := false
	if in.delay > 0 && in.hit(in.delayThr) {
		delayed = true
		if rec != nil {
			rec.Fault = Delay
		}
		in.event(r, rec, observe.Fault{Kind: observe.FaultDelay, Delay: in.delay})
		if !clock.Sleep(r.Context(), in.delay) {
			if rec != nil {
				rec.ErrorKind = observe.ErrClientCanceled
				rec.Status = 499 // recorded, never sent: the client is gone
			}
			return
		}
	}
	if in.abort && in.hit(in.abortThr) {
		if rec != nil {
			rec.Fault = Abort
			if delayed {
				rec.Fault = DelayAbort
			}
			rec.ErrorKind = observe.ErrFaultInjected
		}
		in.event(r, rec, observe.Fault{Kind: observe.FaultAbort, Status: in.abortCode})
		errorbody.Write(w, rec, in.abortCode, "fault_injected", "fault injected")
		return
	}
	h.next.ServeHTTP(w, r)
}
