package observe

import (
	"testing"
	"time"
)

func TestRecordTimingsAndAttempts(t *testing.T) {
	r := GetRecord()
	defer PutRecord(r)
	start := time.Unix(100, 0)
	r.Start = start
	for i := 0; i < MaxInlineAttempts+2; i++ {
		a := r.AddAttempt(Attempt{Upstream: "h", Duration: 10 * time.Millisecond})
		a.BodyDuration = 5 * time.Millisecond
	}
	r.Finish(start.Add(200 * time.Millisecond))
	if r.Status != 200 || r.Retries() != MaxInlineAttempts+1 {
		t.Fatalf("status %d retries %d", r.Status, r.Retries())
	}
	if got := r.UpstreamTime(); got != 90*time.Millisecond {
		t.Fatalf("upstream time %v", got)
	}
	if got := r.Overhead(); got != 110*time.Millisecond {
		t.Fatalf("overhead %v", got)
	}
	r.Finish(start.Add(time.Hour)) // the first Finish wins
	if r.Total() != 200*time.Millisecond {
		t.Fatalf("total %v", r.Total())
	}
	r.Reset()
	if len(r.Attempts) != 0 || r.GRPCStatus != -1 || !r.End.IsZero() {
		t.Fatalf("reset left %+v", r)
	}
}

func TestAddAttemptDoesNotAllocateInline(t *testing.T) {
	r := GetRecord()
	defer PutRecord(r)
	allocs := testing.AllocsPerRun(100, func() {
		r.Attempts = r.Attempts[:0]
		for i := 0; i < MaxInlineAttempts; i++ {
			r.AddAttempt(Attempt{})
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations for inline attempts", allocs)
	}
}

func TestJoinAndKinds(t *testing.T) {
	n := 0
	f := ObserverFunc(func(Event) { n++ })
	if _, ok := Join().(Nop); !ok {
		t.Fatal("empty Join is not Nop")
	}
	Join(nil, f, Nop{}, Observers{f}).Observe(Event{Kind: EventRetry})
	if n != 2 {
		t.Fatalf("observed %d times, want 2", n)
	}
	if EventRetry.String() != "retry" || ErrUpstreamConnect.String() != "upstream_connect" || ErrNone.String() != "" {
		t.Fatal("names")
	}
	if len(ErrorKinds()) != int(numErrorKinds)-1 || !ErrUpstreamReset.IsUpstreamFailure() || ErrClientCanceled.IsUpstreamFailure() {
		t.Fatal("kinds")
	}
}
