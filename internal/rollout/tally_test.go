package rollout

import (
	"context"
	"testing"
	"time"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
)

func tallyFor(t *testing.T, r *config.Rollout) *Tally {
	t.Helper()
	tl := &Tally{}
	tl.Update(&config.Config{Rollouts: []config.Rollout{*r}})
	return tl
}

// rescuedRecord is a request the split sent to web-v2 that ended at end:
// its canary attempt failed with kind (or status), and web served it.
func rescuedRecord(end time.Time, kind observe.ErrorKind, status int) *observe.Record {
	rec := observe.GetRecord()
	rec.Route, rec.Split.Service, rec.Service, rec.End = "web", "web-v2", "web", end
	rec.Trace = observe.TraceContext{TraceID: [16]byte{0xcd, 2}, Valid: true}
	rec.AddAttempt(observe.Attempt{Service: "web-v2", ErrorKind: kind, Status: status})
	rec.AddAttempt(observe.Attempt{Service: "web", Status: 200, RetryReason: "x"})
	return rec
}

func TestTallyCountsRescuedCanaryRequests(t *testing.T) {
	r := testRollout(t, "")
	tl := tallyFor(t, r)
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	add := func(rec *observe.Record) { tl.ReadRecord(rec); observe.PutRecord(rec) }
	for i := range 10 {
		add(rescuedRecord(t0.Add(time.Duration(i)*time.Second+500*time.Millisecond), observe.ErrUpstreamConnect, 0))
	}
	add(rescuedRecord(t0.Add(3*time.Second), observe.ErrNone, 503))
	// Not counted: the canary served it; another route; the stable's own.
	for _, rec := range []*observe.Record{rescuedRecord(t0, 0, 0), rescuedRecord(t0, 0, 0), rescuedRecord(t0, 0, 0)} {
		rec.Service = "web-v2"
		add(rec)
	}
	other := rescuedRecord(t0, observe.ErrUpstreamConnect, 0)
	other.Route = "other"
	add(other)
	own := rescuedRecord(t0, observe.ErrUpstreamConnect, 0)
	own.Split.Service = "web"
	add(own)

	got := tl.Window(r.Name, t0, t0.Add(10*time.Second))
	if got.Requests != 11 || got.Errors != 11 || got.Kinds[observe.ErrUpstreamConnect] != 10 || len(got.Exemplars) == 0 {
		t.Fatalf("window: %+v", got)
	}
	if got := tl.Window(r.Name, t0.Add(3*time.Second), t0.Add(4*time.Second)); got.Requests != 2 {
		t.Fatalf("one second: %+v", got)
	}
	// A second the ring has reused since is not reported as the old one.
	add(rescuedRecord(t0.Add(time.Duration(len(tl.ring(r.Name)))*time.Second), observe.ErrUpstreamConnect, 0))
	if got := tl.Window(r.Name, t0, t0.Add(1*time.Second)); got.Requests != 0 {
		t.Fatalf("reused slot reported as old: %+v", got)
	}
	// A reload with the same rollout keeps the counts; another legs' not.
	tl.Update(&config.Config{Rollouts: []config.Rollout{*r}})
	if got := tl.Window(r.Name, t0.Add(3*time.Second), t0.Add(4*time.Second)); got.Requests != 2 {
		t.Fatalf("after a reload: %+v", got)
	}
	r2 := *r
	r2.Canary = "web-v3"
	tl.Update(&config.Config{Rollouts: []config.Rollout{r2}})
	if got := tl.Window(r.Name, t0, t0.Add(10*time.Second)); got.Requests != 0 {
		t.Fatalf("after a change of legs: %+v", got)
	}
}

// TestAnalyzeCountsRescuedRequestsAgainstTheCanary: a canary whose every
// request failed and was served by the stable is judged by those
// failures, though the history saw none on the canary's leg.
func TestAnalyzeCountsRescuedRequestsAgainstTheCanary(t *testing.T) {
	r := testRollout(t, "")
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	src := &fakeSource{}
	tl := tallyFor(t, r)
	for i := range 10 {
		sec := t0.Add(time.Duration(i) * time.Second)
		src.put("web/web", sec, leg(1000, 0, 20*time.Millisecond))
		for range 30 {
			rec := rescuedRecord(sec.Add(100*time.Millisecond), observe.ErrUpstreamConnect, 0)
			tl.ReadRecord(rec)
			observe.PutRecord(rec)
		}
	}
	ctx := context.Background()
	end := t0.Add(10 * time.Second)
	if _, err := Analyze(ctx, src, r, end); err == nil {
		t.Fatal("without the tally the canary's leg has no series, want an error")
	}
	a, err := AnalyzeWith(ctx, src, tl, r, end)
	if err != nil {
		t.Fatal(err)
	}
	if a.Verdict != Fail || a.Canary.Requests != 300 || a.Canary.Errors != 300 || a.Canary.Rescued != 300 || len(a.Exemplars) == 0 {
		t.Fatalf("analysis: %s %s canary %+v exemplars %v", a.Verdict, a.Reason, a.Canary, a.Exemplars)
	}
	// With the canary's own leg too (some requests it served), both add up.
	src.put("web/web-v2", t0, leg(100, 0, 20*time.Millisecond))
	if a, _ = AnalyzeWith(ctx, src, tl, r, end); a.Canary.Requests != 400 || a.Canary.Errors != 300 {
		t.Fatalf("with the canary's own requests: %+v", a.Canary)
	}
	var kind bool
	for _, c := range a.Checks {
		if c.Name == "error_kind:upstream_reset" && c.Canary != 0 {
			t.Fatalf("connect errors counted as resets: %+v", c)
		}
		kind = kind || c.Name == "error_ratio" && c.Verdict == Fail
	}
	if !kind {
		t.Fatalf("checks %+v", a.Checks)
	}
}

// BenchmarkTallyReadRecord is the rollouts' bookkeeping per request on a
// rollout's route: a request the canary served (the common case), a
// request of another route, a tester's (override) request, and one the
// stable served after the canary failed.
func BenchmarkTallyReadRecord(b *testing.B) {
	r := testRollout(&testing.T{}, "")
	tl := &Tally{}
	tl.Update(&config.Config{Rollouts: []config.Rollout{*r}})
	end := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	served := rescuedRecord(end, 0, 0)
	served.Service = "web-v2"
	rescued := rescuedRecord(end, observe.ErrUpstreamConnect, 0)
	b.Run("served", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tl.ReadRecord(served)
		}
	})
	other := rescuedRecord(end, 0, 0)
	other.Route = "other"
	b.Run("other_route", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tl.ReadRecord(other)
		}
	})
	tester := testerRecord(end, "web-v2", 200, 20*time.Millisecond)
	b.Run("tester", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tl.ReadRecord(tester)
		}
	})
	b.Run("rescued", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tl.ReadRecord(rescued)
		}
	})
}
