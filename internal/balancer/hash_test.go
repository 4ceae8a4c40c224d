package balancer

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/vantage-gateway/vantage/internal/config"
	"github.com/vantage-gateway/vantage/internal/observe"
	"github.com/vantage-gateway/vantage/internal/upstream"
)

var byHeader = config.LoadBalancing{Policy: config.PolicyHash, Hash: &config.HashKey{Header: "X-User"}}

const numKeys = 10000

// mapKeys returns the host id each of numKeys keys is picked for.
func mapKeys(t *testing.T, p Picker) []string {
	t.Helper()
	r := req()
	out := make([]string, numKeys)
	for i := range out {
		r.Header.Set("X-User", "user-"+strconv.Itoa(i))
		h, err := p.Pick(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = h.URL.Hostname()
	}
	return out
}

func hostIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "h" + strconv.Itoa(i)
	}
	return ids
}

func TestHashIsStable(t *testing.T) {
	ids := hostIDs(5)
	first := mapKeys(t, newFixture(t, ids...).picker(t, byHeader))
	// Another picker over another pool with the same hosts (another replica,
	// or after a reload) maps every key the same.
	again := mapKeys(t, newFixture(t, ids...).picker(t, byHeader))
	for i := range first {
		if first[i] != again[i] {
			t.Fatalf("key %d: %s then %s", i, first[i], again[i])
		}
	}
	// Hosts listed in another order change nothing either.
	reversed := append([]string(nil), ids...)
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	shuffled := mapKeys(t, newFixture(t, reversed...).picker(t, byHeader))
	for i := range first {
		if first[i] != shuffled[i] {
			t.Fatalf("key %d: %s, then %s with hosts in another order", i, first[i], shuffled[i])
		}
	}
	// Golden values: the hash function and ring layout are part of the
	// contract (a change would move every session in a fleet).
	if got := hashString("alice"); got != 14254268223963220572 {
		t.Fatalf("hashString(\"alice\") = %d: the hash function changed", got)
	}
	for key, want := range map[int]string{0: "h1", 1: "h4", 2: "h0", 3: "h1", 9999: "h2"} {
		if first[key] != want {
			t.Fatalf("user-%d maps to %s, was %s: the ring layout changed", key, first[key], want)
		}
	}
	counts := map[string]int{}
	for _, id := range first {
		counts[id]++
	}
	for _, id := range ids {
		if c := counts[id]; c < numKeys/5*7/10 || c > numKeys/5*13/10 {
			t.Errorf("host %s got %d of %d keys, want about %d", id, c, numKeys, numKeys/5)
		}
	}
}

func TestHashRemovingAHostMovesOnlyItsKeys(t *testing.T) {
	const n = 8
	ids := hostIDs(n)
	all := newFixture(t, ids...)
	before := mapKeys(t, all.picker(t, byHeader))

	removed := "h3"
	var rest []string
	for _, id := range ids {
		if id != removed {
			rest = append(rest, id)
		}
	}
	after := mapKeys(t, newFixture(t, rest...).picker(t, byHeader))
	moved := 0
	for i := range before {
		if before[i] == after[i] {
			continue
		}
		moved++
		if before[i] != removed {
			t.Fatalf("key %d moved from %s to %s, but only %s was removed", i, before[i], after[i], removed)
		}
	}
	if lo, hi := numKeys/n/2, numKeys/n*3/2; moved < lo || moved > hi {
		t.Fatalf("%d of %d keys moved, want about 1/%d (%d..%d)", moved, numKeys, n, lo, hi)
	}

	// An ejected host is skipped exactly as if it were removed, and gets
	// its keys back when it returns.
	p := all.picker(t, byHeader)
	all.eject(t, removed)
	ejected := mapKeys(t, p)
	for i := range after {
		if ejected[i] != after[i] {
			t.Fatalf("key %d: %s with %s ejected, %s with it removed", i, ejected[i], removed, after[i])
		}
	}
	all.restoreAll()
	back := mapKeys(t, p)
	for i := range before {
		if back[i] != before[i] {
			t.Fatalf("key %d: %s after %s came back, %s before", i, back[i], removed, before[i])
		}
	}
}

func TestHashWeights(t *testing.T) {
	got := mapKeys(t, newFixture(t, "a:1", "b:3", "z:0").picker(t, byHeader))
	counts := map[string]int{}
	for _, id := range got {
		counts[id]++
	}
	if counts["z"] != 0 {
		t.Fatalf("weight 0 host got %d keys", counts["z"])
	}
	if b := counts["b"]; b < numKeys*65/100 || b > numKeys*85/100 {
		t.Fatalf("weight 3 of 4 got %d of %d keys, want about 75%%", b, numKeys)
	}
}

func TestHashExcludeWalksOn(t *testing.T) {
	f := newFixture(t, hostIDs(6)...)
	p := f.picker(t, byHeader)
	r := req()
	for i := range 200 {
		r.Header.Set("X-User", "user-"+strconv.Itoa(i))
		home, _ := p.Pick(r, nil)
		next, _ := p.Pick(r, home)
		if next == home {
			t.Fatalf("key %d: exclude ignored", i)
		}
		// Excluding is the same as the home host being ejected.
		f.eject(t, home.URL.Hostname())
		if h, _ := p.Pick(r, nil); h != next {
			t.Fatalf("key %d: %s when excluded, %s when ejected", i, next.URL.Hostname(), h.URL.Hostname())
		}
		f.restoreAll()
	}
}

func TestHashKeys(t *testing.T) {
	f := newFixture(t, hostIDs(6)...)
	rec := observe.GetRecord()
	defer observe.PutRecord(rec)
	rec.ClientAddr = "198.51.100.9"

	tests := []struct {
		name   string
		key    config.HashKey
		req    func() *http.Request
		sameAs string // the key whose header pick this must equal; "" for fallback
	}{
		{"header canonicalised", config.HashKey{Header: "x-user"}, func() *http.Request {
			r := req()
			r.Header.Set("X-User", "alice")
			return r
		}, "alice"},
		{"cookie", config.HashKey{Cookie: "session"}, func() *http.Request {
			r := req()
			r.Header.Add("Cookie", "theme=dark")
			r.Header.Add("Cookie", "a=1;session=alice; b=2")
			return r
		}, "alice"},
		{"quoted cookie", config.HashKey{Cookie: "session"}, func() *http.Request {
			r := req()
			r.Header.Set("Cookie", `session="alice"`)
			return r
		}, "alice"},
		{"client ip from remote addr", config.HashKey{ClientIP: true}, func() *http.Request {
			r := req()
			r.RemoteAddr = "192.0.2.7:51234"
			return r
		}, "192.0.2.7"},
		{"client ip from ipv6 remote addr", config.HashKey{ClientIP: true}, func() *http.Request {
			r := req()
			r.RemoteAddr = "[2001:db8::1]:443"
			return r
		}, "2001:db8::1"},
		{"client ip from the record", config.HashKey{ClientIP: true}, func() *http.Request {
			r := req()
			r.RemoteAddr = "192.0.2.7:51234"
			return r.WithContext(observe.NewContext(r.Context(), rec))
		}, "198.51.100.9"},
	}
	ref := f.picker(t, byHeader)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := f.picker(t, config.LoadBalancing{Policy: config.PolicyHash, Hash: &tt.key})
			r := req()
			r.Header.Set("X-User", tt.sameAs)
			want, _ := ref.Pick(r, nil)
			for range 5 {
				if got, _ := p.Pick(tt.req(), nil); got != want {
					t.Fatalf("picked %s, want %s (the host of key %q)", got.URL.Hostname(), want.URL.Hostname(), tt.sameAs)
				}
			}
		})
	}
}

func TestHashWithoutKeyFallsBackToRoundRobin(t *testing.T) {
	for _, key := range []config.HashKey{{Header: "X-User"}, {Cookie: "session"}} {
		f := newFixture(t, "a:5", "b:1", "c:1")
		p := f.picker(t, config.LoadBalancing{Policy: config.PolicyHash, Hash: &key})
		r := req()
		r.Header.Set("Cookie", "other=1; session=") // empty value: no key
		if got := picks(t, p, r, nil, 7); got != "aabacaa" {
			t.Fatalf("%+v: picks without the key = %s, want round robin aabacaa", key, got)
		}
	}
}

func TestCookieValue(t *testing.T) {
	h := http.Header{"Cookie": {` a=1 ;  b = two ;c="3"; d; e=`, `b=second`}}
	for name, want := range map[string]string{"a": "1", "b": "two", "c": "3", "d": "", "e": "", "f": ""} {
		if got := cookieValue(h, name); got != want {
			t.Errorf("cookieValue(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestHashRingWalkWithManyHosts(t *testing.T) {
	// More than 64 hosts: the walk cannot track them in a bitmask and goes
	// around the whole ring; it must still find the one available host.
	ids := hostIDs(70)
	f := newFixture(t, ids...)
	p := f.picker(t, byHeader)
	for _, id := range ids[:69] {
		f.eject(t, id)
	}
	r := req()
	r.Header.Set("X-User", "alice")
	for _, ex := range []*upstream.Host{nil, f.host("h69")} {
		if h, err := p.Pick(r, ex); err != nil || h != f.host("h69") {
			t.Fatalf("Pick = %v, %v, want h69", h, err)
		}
	}
}
