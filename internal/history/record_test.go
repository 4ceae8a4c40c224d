package history

import (
	"encoding/binary"
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

// TestDerivedFieldsAreNotStored checks that a record leaves out the fields
// its others imply (Class2xx, UpstreamSum, Attempts) and still decodes
// them exactly, for request series, attempt (host) series, and points
// where the implication does not hold.
func TestDerivedFieldsAreNotStored(t *testing.T) {
	mask := func(b []byte) uint64 {
		m, _ := binary.Uvarint(b)
		return m
	}
	derived := uint64(1)<<Class2xx | 1<<UpstreamSum | 1<<Attempts
	var route accum
	route.v[Requests], route.v[Class2xx], route.v[Class5xx] = 10, 9, 1
	route.v[LatencySum], route.v[OverheadSum], route.v[UpstreamSum] = 5000, 300, 4700
	route.v[Retries], route.v[Attempts] = 2, 12
	route.lat[100], route.ovh[40] = 10, 10
	route.hasLat, route.hasOvh = true, true
	var host accum
	host.v[Requests], host.v[Class2xx], host.v[ClassNone], host.v[LatencySum] = 4, 3, 1, 900
	host.lat[90] = 4
	host.hasLat = true
	odd := route
	odd.v[Attempts] = 9 // requests that never reached an upstream
	odd.v[UpstreamSum] = 0
	empty := route // an overhead histogram with no counts implies nothing
	empty.ovh = denseHist{}
	for name, tc := range map[string]struct {
		a      accum
		stored uint64
	}{
		"route": {route, 0}, "host": {host, 0},
		"odd":   {odd, 1<<Attempts | 1<<UpstreamSum},
		"empty": {empty, 1<<UpstreamSum | 1<<Attempts},
	} {
		b := tc.a.appendRecord(nil)
		if m := mask(b) & derived; m != tc.stored {
			t.Errorf("%s: derivable fields stored %b, want %b", name, m, tc.stored)
		}
		var got accum
		if err := got.addRecord(b); err != nil {
			t.Fatal(err)
		}
		want := tc.a
		if want.ovh.empty() {
			want.hasOvh = false
		}
		if got != want {
			t.Errorf("%s: round trip\n got %v\nwant %v", name, got.v, want.v)
		}
	}
}

// TestPackChunkRoundTrip packs chunks of realistic and random records and
// checks that unpacking restores them byte for byte.
func TestPackChunkRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for trial := 0; trial < 200; trial++ {
		var data []byte
		for i := r.IntN(slotsPerChunk + 1); i > 0; i-- {
			var rec []byte
			if r.IntN(2) == 0 {
				rec = syntheticRecord(r, r.IntN(300), r.IntN(3) == 0, r.IntN(2) == 0)
			} else {
				var a accum
				for f := range a.v {
					if r.IntN(3) == 0 {
						a.v[f] = r.Uint64() >> r.IntN(64)
					}
				}
				a.lat[r.IntN(numSlots)] = r.Uint64() >> r.IntN(64)
				a.hasLat = a.lat.hist().Counts != nil
				rec = a.appendRecord(nil)
			}
			data = binary.AppendUvarint(data, uint64(len(rec)))
			data = append(data, rec...)
		}
		p, err := packChunk(nil, data)
		if err != nil {
			t.Fatal(err)
		}
		back, err := unpackChunk(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		if string(back) != string(data) {
			t.Fatalf("trial %d: unpacking changed the chunk", trial)
		}
	}
	if _, err := packChunk(nil, []byte{5, 1}); err == nil {
		t.Fatal("a cut record packs")
	}
}

// FuzzUnpackChunk feeds arbitrary bytes to the chunk unpacker: it must
// refuse or unpack them, never panic; what it unpacks packs back to the
// same records.
func FuzzUnpackChunk(f *testing.F) {
	r := rand.New(rand.NewPCG(13, 14))
	var data []byte
	for i := 0; i < 5; i++ {
		rec := syntheticRecord(r, 1+i*7, i == 3, i == 2)
		data = binary.AppendUvarint(data, uint64(len(rec)))
		data = append(data, rec...)
	}
	p, err := packChunk(nil, data)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p)
	f.Add([]byte{0})
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := unpackChunk(nil, b)
		if err != nil {
			return
		}
		p, err := packChunk(nil, recs)
		if err != nil {
			t.Fatalf("unpacked records do not pack: %v", err)
		}
		again, err := unpackChunk(nil, p)
		if err != nil || string(again) != string(recs) {
			t.Fatalf("repacking changed the records: %v", err)
		}
	})
}
