package split

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/observe/observetest"
)

// events records decision events.
type events = observetest.Recorder

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func legs(ws ...any) []config.SplitService {
	var out []config.SplitService
	for i := 0; i < len(ws); i += 2 {
		out = append(out, config.SplitService{Service: ws[i].(string), Weight: ws[i+1].(int)})
	}
	return out
}

func mustNew(t testing.TB, cfg *config.Split, prev *Splitter, obs observe.Observer) *Splitter {
	t.Helper()
	s, err := New("checkout", cfg, prev, obs)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func req(header ...string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	for i := 0; i < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return r
}

// sequence picks n times without a key and returns the legs' names joined.
func sequence(s *Splitter, n int) string {
	r := req()
	var b strings.Builder
	for i := 0; i < n; i++ {
		leg, reason := s.Pick(r, nil)
		if reason != ReasonWeight {
			panic("reason " + reason.String())
		}
		b.WriteString(s.Services()[leg])
	}
	return b.String()
}

func TestSmoothWeightedSequence(t *testing.T) {
	cases := []struct {
		name  string
		split []config.SplitService
		n     int
		want  string
	}{
		// nginx's documented example: weights 5, 1, 1.
		{"nginx 5/1/1", legs("a", 5, "b", 1, "c", 1), 14, "aabacaa" + "aabacaa"},
		{"9/1 spreads the canary", legs("a", 9, "b", 1), 20, "aaaaabaaaa" + "aaaaabaaaa"},
		{"90/10 is 9/1", legs("a", 90, "b", 10), 20, "aaaaabaaaa" + "aaaaabaaaa"},
		{"2/1", legs("a", 2, "b", 1), 6, "abaaba"},
		{"zero weight never picked", legs("a", 1, "b", 0, "c", 1), 6, "acacac"},
		{"blue-green", legs("blue", 100, "green", 0), 3, "blueblueblue"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustNew(t, &config.Split{Services: tc.split}, nil, nil)
			if got := sequence(s, tc.n); got != tc.want {
				t.Errorf("sequence = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestExactRatioOverWindow(t *testing.T) {
	s := mustNew(t, &config.Split{Services: legs("checkout", 90, "checkout-v2", 10)}, nil, nil)
	r := req()
	for window := 0; window < 3; window++ {
		canary := 0
		last := -100
		for i := 0; i < 100; i++ {
			if leg, _ := s.Pick(r, nil); leg == 1 {
				canary++
				if i-last < 10 {
					t.Fatalf("window %d: canary picks %d and %d are bunched", window, last, i)
				}
				last = i
			}
		}
		if canary != 10 {
			t.Fatalf("window %d: canary got %d of 100, want exactly 10", window, canary)
		}
	}
}

func TestConcurrentPicksKeepExactRatio(t *testing.T) {
	s := mustNew(t, &config.Split{Services: legs("a", 3, "b", 1)}, nil, nil)
	var counts [2]atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := req()
			for i := 0; i < 400; i++ {
				leg, _ := s.Pick(r, nil)
				counts[leg].Add(1)
			}
		}()
	}
	wg.Wait()
	if a, b := counts[0].Load(), counts[1].Load(); a != 2400 || b != 800 {
		t.Errorf("counts = %d/%d, want 2400/800", a, b)
	}
}

func TestSticky(t *testing.T) {
	cases := []struct {
		name   string
		sticky *config.HashKey
		keyed  func(key string) (*http.Request, *observe.Record)
	}{
		{"header", &config.HashKey{Header: "x-user-id"}, func(k string) (*http.Request, *observe.Record) {
			return req("X-User-Id", k), nil
		}},
		{"cookie", &config.HashKey{Cookie: "session"}, func(k string) (*http.Request, *observe.Record) {
			return req("Cookie", "theme=dark; session="+k), nil
		}},
		{"client ip", &config.HashKey{ClientIP: true}, func(k string) (*http.Request, *observe.Record) {
			rec := observe.GetRecord()
			rec.ClientAddr = k
			return req(), rec
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustNew(t, &config.Split{Services: legs("stable", 90, "canary", 10), Sticky: tc.sticky}, nil, nil)
			canary := 0
			for i := 0; i < 2000; i++ {
				key := fmt.Sprintf("10.0.%d.%d", i/256, i%256)
				r, rec := tc.keyed(key)
				first, reason := s.Pick(r, rec)
				if reason != ReasonSticky {
					t.Fatalf("reason = %q, want sticky", reason)
				}
				for j := 0; j < 5; j++ {
					if leg, _ := s.Pick(r, rec); leg != first {
						t.Fatalf("key %q moved from leg %d to %d", key, first, leg)
					}
				}
				if first == 1 {
					canary++
				}
				if rec != nil {
					observe.PutRecord(rec)
				}
			}
			// The hash is deterministic, so this is not a flaky bound: it
			// checks the keys spread in proportion to the weights.
			if canary < 140 || canary > 260 {
				t.Errorf("canary got %d of 2000 sticky keys, want about 200", canary)
			}
		})
	}
}

func TestStickyWithoutKeyFallsBackToWeight(t *testing.T) {
	s := mustNew(t, &config.Split{Services: legs("a", 1, "b", 1), Sticky: &config.HashKey{Header: "X-User"}}, nil, nil)
	if _, reason := s.Pick(req(), nil); reason != ReasonWeight {
		t.Errorf("reason = %q, want weight", reason)
	}
	rec := observe.GetRecord()
	defer observe.PutRecord(rec)
	s = mustNew(t, &config.Split{Services: legs("a", 1, "b", 1), Sticky: &config.HashKey{ClientIP: true}}, nil, nil)
	if _, reason := s.Pick(req(), rec); reason != ReasonWeight {
		t.Errorf("client_ip without address: reason = %q, want weight", reason)
	}
}

// stickyAssignments returns the leg of each of n keys.
func stickyAssignments(s *Splitter, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i], _ = s.Pick(req("X-User", fmt.Sprint("user-", i)), nil)
	}
	return out
}

func TestStickyWhenWeightsChange(t *testing.T) {
	s := mustNew(t, &config.Split{Services: legs("stable", 90, "canary", 10), Sticky: &config.HashKey{Header: "X-User"}}, nil, nil)
	before := stickyAssignments(s, 1000)

	// Scaling every weight by the same factor moves nobody.
	if err := s.SetWeights(map[string]int{"stable": 9, "canary": 1}, observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	if got := stickyAssignments(s, 1000); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatal("scaling the weights moved sticky clients")
	}

	// Raising the canary only moves clients into it, never out of it.
	if err := s.SetWeights(map[string]int{"stable": 70, "canary": 30}, observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	after := stickyAssignments(s, 1000)
	moved := 0
	for i := range before {
		if before[i] == 1 && after[i] != 1 {
			t.Fatalf("user-%d left the canary when its weight rose", i)
		}
		if before[i] != after[i] {
			moved++
		}
	}
	if moved == 0 {
		t.Error("no client moved to the canary when its weight tripled")
	}
}

func TestOverride(t *testing.T) {
	cfg := &config.Split{
		Services: legs("checkout", 100, "checkout-v2", 0),
		Override: &config.SplitOverride{Header: "x-canary", Values: map[string]string{"always": "checkout-v2", "never": "checkout"}},
		Sticky:   &config.HashKey{Header: "X-User"},
	}
	s := mustNew(t, cfg, nil, nil)
	cases := []struct {
		header     []string
		leg        int
		wantReason observe.SplitReason
	}{
		{[]string{"X-Canary", "always"}, 1, ReasonOverride},
		{[]string{"X-Canary", "always", "X-User", "u1"}, 1, ReasonOverride},
		{[]string{"X-Canary", "never"}, 0, ReasonOverride},
		{[]string{"X-Canary", "sometimes"}, 0, ReasonWeight},
		{[]string{"X-User", "u1"}, 0, ReasonSticky},
		{nil, 0, ReasonWeight},
	}
	for _, tc := range cases {
		leg, reason := s.Pick(req(tc.header...), nil)
		if leg != tc.leg || reason != tc.wantReason {
			t.Errorf("%v: got leg %d (%s), want %d (%s)", tc.header, leg, reason, tc.leg, tc.wantReason)
		}
	}

	cookie := mustNew(t, &config.Split{
		Services: legs("checkout", 100, "checkout-v2", 0),
		Override: &config.SplitOverride{Cookie: "canary", Values: map[string]string{"1": "checkout-v2"}},
	}, nil, nil)
	if leg, reason := cookie.Pick(req("Cookie", "a=b; canary=1"), nil); leg != 1 || reason != ReasonOverride {
		t.Errorf("cookie override: got %d (%s)", leg, reason)
	}
}

func TestPickLeavesRecordAlone(t *testing.T) {
	ev := &events{}
	s := mustNew(t, &config.Split{Services: legs("a", 1, "b", 1)}, nil, ev)
	rec := observe.GetRecord()
	defer observe.PutRecord(rec)
	s.Pick(req(), rec)
	if rec.Split != (observe.SplitChoice{}) || rec.Service != "" {
		t.Errorf("Pick wrote the record: %+v / %q; the proxy owns it", rec.Split, rec.Service)
	}
	if n := len(ev.Events()); n != 0 {
		t.Errorf("Pick emitted %d events; the proxy emits EventSplitChosen", n)
	}
}

func TestSetWeights(t *testing.T) {
	ev := &events{}
	s := mustNew(t, &config.Split{Services: legs("blue", 100, "green", 0)}, nil, ev)
	if got := sequence(s, 2); got != "blueblue" {
		t.Fatalf("before flip: %q", got)
	}
	if err := s.SetWeights(map[string]int{"blue": 0, "green": 100}, observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	if got := sequence(s, 2); got != "greengreen" {
		t.Fatalf("after flip: %q", got)
	}
	if got := s.Weights(); fmt.Sprint(got) != "[{blue 0} {green 100}]" {
		t.Errorf("Weights = %v", got)
	}
	up := ev.Of(observe.EventSplitUpdated)
	if len(up) != 1 || up[0].Route != "checkout" || fmt.Sprint(up[0].PrevWeights) != "[{blue 100} {green 0}]" ||
		fmt.Sprint(up[0].Weights) != "[{blue 0} {green 100}]" || up[0].Source != observe.SourceAPI || up[0].Detail != "blue=0,green=100" {
		t.Errorf("EventSplitUpdated = %+v", up)
	}

	for _, bad := range []map[string]int{
		{"purple": 1},
		{"green": -1},
		{"green": 0},
	} {
		err := s.SetWeights(bad, observe.SourceAPI)
		if !errors.Is(err, ErrInvalidWeights) {
			t.Errorf("SetWeights(%v) = %v, want ErrInvalidWeights", bad, err)
		}
	}
	if got := s.Weights(); fmt.Sprint(got) != "[{blue 0} {green 100}]" {
		t.Errorf("a rejected change altered the weights: %v", got)
	}
	if n := len(ev.Of(observe.EventSplitUpdated)); n != 1 {
		t.Errorf("rejected changes emitted events: %d", n)
	}
}

func TestSetWeightsRestartsTheWindow(t *testing.T) {
	s := mustNew(t, &config.Split{Services: legs("a", 1, "b", 1)}, nil, nil)
	sequence(s, 1) // mid-window
	if err := s.SetWeights(map[string]int{"a": 9, "b": 1}, observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	if got := sequence(s, 10); got != "aaaaabaaaa" {
		t.Errorf("after SetWeights: %q", got)
	}
}

func TestReload(t *testing.T) {
	cfg := &config.Split{Services: legs("a", 2, "b", 1)}
	continuous := mustNew(t, cfg, nil, nil)
	want := sequence(continuous, 6)

	// Same legs and weights: the position carries over, so the sequence
	// continues as if there had been no reload.
	old := mustNew(t, cfg, nil, nil)
	got := sequence(old, 2)
	reloaded := mustNew(t, &config.Split{Services: legs("a", 2, "b", 1)}, old, nil)
	got += sequence(reloaded, 4)
	if got != want {
		t.Errorf("across reload: %q, want %q", got, want)
	}

	// Runtime weights do not survive a reload: the file's weights win and
	// the window restarts.
	if err := reloaded.SetWeights(map[string]int{"a": 1, "b": 9}, observe.SourceAPI); err != nil {
		t.Fatal(err)
	}
	again := mustNew(t, &config.Split{Services: legs("a", 2, "b", 1)}, reloaded, nil)
	if got := sequence(again, 3); got != "aba" {
		t.Errorf("after reload over runtime weights: %q, want the file's aba", got)
	}
	if w := again.Weights(); fmt.Sprint(w) != "[{a 2} {b 1}]" {
		t.Errorf("weights after reload = %v", w)
	}

	// Different legs: nothing carries over.
	other := mustNew(t, &config.Split{Services: legs("b", 2, "a", 1)}, again, nil)
	if got := sequence(other, 3); got != "bab" {
		t.Errorf("new legs: %q", got)
	}
}

func TestNewRejectsInvalid(t *testing.T) {
	for _, cfg := range []*config.Split{
		nil,
		{},
		{Services: legs("a", 0)},
		{Services: legs("a", -1, "b", 2)},
		{Services: legs("a", 1), Override: &config.SplitOverride{Header: "X", Values: map[string]string{"v": "b"}}},
	} {
		if _, err := New("r", cfg, nil, nil); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestCookieValue(t *testing.T) {
	cases := []struct {
		cookies []string
		name    string
		want    string
		ok      bool
	}{
		{[]string{"a=1; b=2"}, "b", "2", true},
		{[]string{"a=1", "b=2"}, "b", "2", true},
		{[]string{"a=1;b=2"}, "a", "1", true},
		{[]string{`b="quoted"`}, "b", "quoted", true},
		{[]string{"ab=1"}, "b", "", false},
		{[]string{"b="}, "b", "", false},
		{[]string{"b"}, "b", "", false},
		{nil, "b", "", false},
		{[]string{" b = 1"}, "b", "", false},
	}
	for _, tc := range cases {
		h := http.Header{"Cookie": tc.cookies}
		got, ok := CookieValue(h, tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("CookieValue(%q, %q) = %q, %v; want %q, %v", tc.cookies, tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzCookieValue(f *testing.F) {
	f.Add("a=1; b=2", "b")
	f.Add(`x="y"`, "x")
	f.Fuzz(func(t *testing.T, line, name string) {
		v, ok := CookieValue(http.Header{"Cookie": {line}}, name) // must not panic
		if ok && (v == "" || !strings.Contains(line, v)) {
			t.Fatalf("CookieValue(%q, %q) = %q", line, name, v)
		}
	})
}

// TestSplitOverRealUpstreams sends requests through a minimal proxy that
// uses the Splitter to choose between two real upstream servers.
func TestSplitOverRealUpstreams(t *testing.T) {
	var hits [2]atomic.Int64
	var upstreams [2]*httptest.Server
	for i := range upstreams {
		upstreams[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			io.WriteString(w, fmt.Sprint(i))
		}))
		defer upstreams[i].Close()
	}
	s := mustNew(t, &config.Split{
		Services: legs("stable", 90, "canary", 10),
		Override: &config.SplitOverride{Header: "X-Canary", Values: map[string]string{"always": "canary"}},
	}, nil, nil)
	client := upstreams[0].Client()
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.GetRecord()
		defer observe.PutRecord(rec)
		leg, reason := s.Pick(r, rec)
		resp, err := client.Get(upstreams[leg].URL)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("X-Split-Reason", reason.String())
		io.Copy(w, resp.Body)
	}))
	defer gateway.Close()

	for i := 0; i < 100; i++ {
		resp, err := client.Get(gateway.URL)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if a, b := hits[0].Load(), hits[1].Load(); a != 90 || b != 10 {
		t.Fatalf("stable/canary hits = %d/%d, want 90/10", a, b)
	}
	r, _ := http.NewRequest("GET", gateway.URL, nil)
	r.Header.Set("X-Canary", "always")
	resp, err := client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "1" || resp.Header.Get("X-Split-Reason") != "override" {
		t.Errorf("override: body %q reason %q", body, resp.Header.Get("X-Split-Reason"))
	}
	client.CloseIdleConnections()
}

func BenchmarkPick(b *testing.B) {
	rec := observe.GetRecord()
	rec.ClientAddr = "203.0.113.7"
	cases := []struct {
		name string
		cfg  *config.Split
		r    *http.Request
	}{
		{"weight", &config.Split{Services: legs("a", 90, "b", 10)}, req()},
		{"sticky-header", &config.Split{Services: legs("a", 90, "b", 10), Sticky: &config.HashKey{Header: "X-User"}}, req("X-User", "user-12345")},
		{"sticky-cookie", &config.Split{Services: legs("a", 90, "b", 10), Sticky: &config.HashKey{Cookie: "sid"}}, req("Cookie", "theme=dark; sid=abcdef0123456789")},
		{"sticky-client-ip", &config.Split{Services: legs("a", 90, "b", 10), Sticky: &config.HashKey{ClientIP: true}}, req()},
		{"override", &config.Split{Services: legs("a", 90, "b", 10), Override: &config.SplitOverride{Header: "X-Canary", Values: map[string]string{"always": "b"}}}, req("X-Canary", "always")},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			s := mustNew(b, bc.cfg, nil, observe.Nop{})
			b.ReportAllocs()
			for b.Loop() {
				s.Pick(bc.r, rec)
			}
		})
	}
	b.Run("weight-parallel", func(b *testing.B) {
		s := mustNew(b, &config.Split{Services: legs("a", 90, "b", 10)}, nil, observe.Nop{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := req()
			for pb.Next() {
				s.Pick(r, nil)
			}
		})
	})
}

func FuzzPick(f *testing.F) {
	f.Add("user-1", "always", "sid=abc", 3, 0, 1)
	f.Add("", "", "", 1, 1, 0)
	f.Fuzz(func(t *testing.T, user, canary, cookie string, w0, w1, w2 int) {
		ws := []int{w0 & 0xff, w1 & 0xff, w2 & 0xff}
		if ws[0]+ws[1]+ws[2] == 0 {
			ws[0] = 1
		}
		s, err := New("r", &config.Split{
			Services: legs("a", ws[0], "b", ws[1], "c", ws[2]),
			Sticky:   &config.HashKey{Header: "X-User"},
			Override: &config.SplitOverride{Cookie: "canary", Values: map[string]string{"always": "c"}},
		}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := req("X-User", user, "X-Canary", canary)
		r.Header["Cookie"] = []string{cookie}
		leg, reason := s.Pick(r, nil) // must not panic
		if leg < 0 || leg > 2 {
			t.Fatalf("leg %d out of range", leg)
		}
		if reason != ReasonOverride && ws[leg] == 0 {
			t.Fatalf("leg %d of weight 0 picked by %s", leg, reason)
		}
	})
}

func TestSetLabels(t *testing.T) {
	s, err := New("web", &config.Split{Services: []config.SplitService{{Service: "a", Weight: 1}, {Service: "b", Weight: 1}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Label(0) != "" || s.Label(5) != "" {
		t.Fatal("labels before any were set")
	}
	if err := s.SetLabels(map[string]string{"b": "rollout=x leg=canary"}); err != nil {
		t.Fatal(err)
	}
	if s.Label(0) != "" || s.Label(1) != "rollout=x leg=canary" || s.Label(-1) != "" {
		t.Fatalf("labels %q %q", s.Label(0), s.Label(1))
	}
	if err := s.SetLabels(map[string]string{"c": "x"}); err == nil || s.Label(1) == "" {
		t.Fatalf("unknown leg: %v, labels kept %q", err, s.Label(1))
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = s.Label(1) }); allocs != 0 {
		t.Fatalf("Label allocates %v", allocs)
	}
	if err := s.SetLabels(nil); err != nil || s.Label(1) != "" {
		t.Fatalf("cleared: %v %q", err, s.Label(1))
	}
}
