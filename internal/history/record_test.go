package history

import (
	"math/rand/v2"
	"testing"
)

// TestRecordRoundTrip encodes random points (sparse and dense histograms,
// large and small values) and checks that decoding gives them back.
func TestRecordRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 500; trial++ {
		var a accum
		for f := range a.v {
			if r.IntN(3) == 0 {
				a.v[f] = r.Uint64() >> r.IntN(64)
			}
		}
		for _, d := range []*denseHist{&a.lat, &a.ovh} {
			lo := r.IntN(numSlots)
			for i := 0; i < r.IntN(200); i++ {
				j := lo + r.IntN(1+r.IntN(numSlots-lo))
				if j < numSlots {
					d[j] += uint64(1 + r.IntN(1<<r.IntN(30)))
				}
			}
		}
		a.hasLat, a.hasOvh = a.lat.hist().Counts != nil, a.ovh.hist().Counts != nil
		var got accum
		if err := got.addRecord(a.appendRecord(nil)); err != nil {
			t.Fatal(err)
		}
		if got != a {
			t.Fatalf("trial %d: round trip changed the point:\n%v\n%v", trial, a.v, got.v)
		}
	}
}

// FuzzRecord feeds arbitrary bytes to the record decoder: it must refuse
// or decode them, never panic or index out of range.
func FuzzRecord(f *testing.F) {
	var a accum
	a.v[Requests], a.v[Class2xx], a.v[LatencySum] = 3, 3, 12345
	a.lat[bucketIndex(2e6)] = 3
	a.hasLat = true
	f.Add(a.appendRecord(nil))
	for i := 0; i < 64; i++ {
		a.lat[i+100] = uint64(i)
	}
	f.Add(a.appendRecord(nil))
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var a accum
		if err := a.addRecord(b); err != nil {
			return
		}
		// A record that decodes re-encodes to one that decodes the same.
		var again accum
		if err := again.addRecord(a.appendRecord(nil)); err != nil || again != a {
			t.Fatalf("re-encoding %x changed it: %v", b, err)
		}
	})
}
