package history

import (
	"encoding/binary"
	"math/bits"
)

// A complete chunk is compressed column by column (packChunk): zstd finds
// far more to share between the same field of adjacent records than
// between the fields of one record. The packed form is:
//
//	n                        uvarint: the records
//	mask × n                 uvarint: each record's field mask
//	per field f, in order:   for each record storing f, zigzag(value -
//	                         the previous record's value of f) as uvarint
//	len(H), len(B)           uvarint: the lengths of the next two streams
//	H: per histogram         the n latency histograms, then the n overhead
//	                         ones: uvarint span (0: empty), then zigzag(first
//	                         bucket - the previous histogram's first bucket)
//	B: per histogram         a bitmap of the span's non-zero buckets
//	C: per non-zero bucket   uvarint(count - 1)
//
// Occupancy bitmaps and counts mostly 1 or 2 cost a fraction of the (gap,
// count) pairs of a record's sparse form once compressed. unpackChunk
// restores the chunk's records ([length][record]…) exactly.

// packChunk appends the packed form of a chunk's records to dst.
func packChunk(dst, data []byte) ([]byte, error) {
	type recView struct {
		mask     uint64
		vals     []byte // the stored values
		lat, ovh []byte
	}
	var views [slotsPerChunk]recView
	n := 0
	for b := data; len(b) > 0; n++ {
		if n == slotsPerChunk {
			return nil, errCorrupt
		}
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, errCorrupt
		}
		rec := b[k : k+int(l)]
		b = b[k+int(l):]
		v := &views[n]
		mask, k := binary.Uvarint(rec)
		if k <= 0 || mask>>uint(NumFields) != 0 {
			return nil, errCorrupt
		}
		v.mask = mask
		rest := rec[k:]
		for i := bits.OnesCount64(mask); i > 0; i-- {
			_, k := binary.Uvarint(rest)
			if k <= 0 {
				return nil, errCorrupt
			}
			rest = rest[k:]
		}
		v.vals = rec[k : len(rec)-len(rest)]
		hl, err := histLen(rest)
		if err != nil {
			return nil, err
		}
		v.lat, rest = rest[:hl], rest[hl:]
		if hl, err = histLen(rest); err != nil || hl != len(rest) {
			return nil, errCorrupt
		}
		v.ovh = rest
	}
	dst = binary.AppendUvarint(dst, uint64(n))
	for i := 0; i < n; i++ {
		dst = binary.AppendUvarint(dst, views[i].mask)
	}
	for f := 0; f < int(NumFields); f++ {
		var prev uint64
		for i := 0; i < n; i++ {
			v := &views[i]
			if v.mask&(1<<uint(f)) == 0 {
				continue
			}
			x, k := binary.Uvarint(v.vals)
			v.vals = v.vals[k:]
			dst = binary.AppendUvarint(dst, zigzag(x-prev))
			prev = x
		}
	}
	var hp histPacker
	for i := 0; i < n; i++ {
		if err := hp.add(views[i].lat); err != nil {
			return nil, err
		}
	}
	for i := 0; i < n; i++ {
		if err := hp.add(views[i].ovh); err != nil {
			return nil, err
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(hp.h)))
	dst = binary.AppendUvarint(dst, uint64(len(hp.b)))
	dst = append(dst, hp.h...)
	dst = append(dst, hp.b...)
	dst = append(dst, hp.c...)
	return dst, nil
}

// unpackChunk appends the records of a packed chunk to dst, each prefixed
// by its length, as the chunk held them before packChunk.
func unpackChunk(dst, p []byte) ([]byte, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > slotsPerChunk {
		return nil, errCorrupt
	}
	p = p[k:]
	var masks [slotsPerChunk]uint64
	var vals [slotsPerChunk][NumFields]uint64
	for i := 0; i < int(n); i++ {
		m, k := binary.Uvarint(p)
		if k <= 0 || m>>uint(NumFields) != 0 {
			return nil, errCorrupt
		}
		masks[i], p = m, p[k:]
	}
	for f := 0; f < int(NumFields); f++ {
		var prev uint64
		for i := 0; i < int(n); i++ {
			if masks[i]&(1<<uint(f)) == 0 {
				continue
			}
			z, k := binary.Uvarint(p)
			if k <= 0 {
				return nil, errCorrupt
			}
			p = p[k:]
			prev += unzigzag(z)
			vals[i][f] = prev
		}
	}
	hl, k := binary.Uvarint(p)
	if k <= 0 {
		return nil, errCorrupt
	}
	p = p[k:]
	bl, k := binary.Uvarint(p)
	if k <= 0 || hl > uint64(len(p)-k) || bl > uint64(len(p)-k)-hl {
		return nil, errCorrupt
	}
	p = p[k:]
	hu := histUnpacker{h: p[:hl], b: p[hl : hl+bl], c: p[hl+bl:]}
	var lat [slotsPerChunk][]byte
	var hists []byte
	for i := 0; i < int(n); i++ {
		start := len(hists)
		var err error
		if hists, err = hu.next(hists); err != nil {
			return nil, err
		}
		lat[i] = hists[start:]
	}
	var rec []byte
	for i := 0; i < int(n); i++ {
		rec = binary.AppendUvarint(rec[:0], masks[i])
		for f := 0; f < int(NumFields); f++ {
			if masks[i]&(1<<uint(f)) != 0 {
				rec = binary.AppendUvarint(rec, vals[i][f])
			}
		}
		rec = append(rec, lat[i]...)
		var err error
		if rec, err = hu.next(rec); err != nil {
			return nil, err
		}
		dst = binary.AppendUvarint(dst, uint64(len(rec)))
		dst = append(dst, rec...)
	}
	if len(hu.h) != 0 || len(hu.b) != 0 || len(hu.c) != 0 {
		return nil, errCorrupt
	}
	return dst, nil
}

// histPacker splits histograms into the H, B and C streams.
type histPacker struct {
	h, b, c []byte
	prevLo  int
	d       denseHist
}

func (p *histPacker) add(hb []byte) error {
	// p.d is all zeros between calls: each call clears what it read.
	var has bool
	if _, err := readHist(hb, &p.d, &has); err != nil {
		p.d = denseHist{}
		return err
	}
	lo, hi := p.d.span()
	if lo < 0 {
		p.h = append(p.h, 0)
		return nil
	}
	p.h = binary.AppendUvarint(p.h, uint64(hi-lo+1))
	p.h = binary.AppendUvarint(p.h, zigzag(uint64(lo-p.prevLo)))
	p.prevLo = lo
	for j := lo; j <= hi; j += 8 {
		var bm byte
		for k := 0; k < 8 && j+k <= hi; k++ {
			if c := p.d[j+k]; c != 0 {
				bm |= 1 << uint(k)
				p.c = binary.AppendUvarint(p.c, c-1)
			}
		}
		p.b = append(p.b, bm)
	}
	clear(p.d[lo : hi+1])
	return nil
}

// histUnpacker reads histograms back from the H, B and C streams.
type histUnpacker struct {
	h, b, c []byte
	prevLo  int
	d       denseHist
}

// next appends the next histogram, as appendHist writes it, to dst.
func (u *histUnpacker) next(dst []byte) ([]byte, error) {
	span, k := binary.Uvarint(u.h)
	if k <= 0 || span > numSlots {
		return nil, errCorrupt
	}
	u.h = u.h[k:]
	if span == 0 {
		return append(dst, 0), nil
	}
	z, k := binary.Uvarint(u.h)
	if k <= 0 {
		return nil, errCorrupt
	}
	u.h = u.h[k:]
	lo := u.prevLo + int(int64(unzigzag(z)))
	if lo < 0 || lo >= numSlots || uint64(numSlots-lo) < span {
		return nil, errCorrupt
	}
	u.prevLo = lo
	nb := (int(span) + 7) / 8
	if len(u.b) < nb {
		return nil, errCorrupt
	}
	u.d = denseHist{}
	for j := 0; j < int(span); j++ {
		if u.b[j/8]&(1<<uint(j%8)) == 0 {
			continue
		}
		c, k := binary.Uvarint(u.c)
		if k <= 0 || c == ^uint64(0) {
			return nil, errCorrupt
		}
		u.c = u.c[k:]
		u.d[lo+j] = c + 1
	}
	u.b = u.b[nb:]
	// The span's ends are non-zero, as packing wrote them.
	if u.d[lo] == 0 || u.d[lo+int(span)-1] == 0 {
		return nil, errCorrupt
	}
	return appendHist(dst, &u.d, true), nil
}

func zigzag(d uint64) uint64   { return d<<1 ^ uint64(int64(d)>>63) }
func unzigzag(z uint64) uint64 { return z>>1 ^ -(z & 1) }

// histLen returns the length of the histogram appendHist wrote at the
// start of b.
func histLen(b []byte) (int, error) {
	hdr, k := binary.Uvarint(b)
	if k <= 0 {
		return 0, errCorrupt
	}
	off := k
	var items uint64
	switch {
	case hdr == 0:
		return off, nil
	case hdr&1 == 1: // dense: first bucket, then span counts
		items = 1 + hdr>>1
	default: // sparse: k (gap, count) pairs
		items = 2 * (hdr >> 1)
	}
	if items > 2*numSlots {
		return 0, errCorrupt
	}
	for ; items > 0; items-- {
		_, k := binary.Uvarint(b[off:])
		if k <= 0 {
			return 0, errCorrupt
		}
		off += k
	}
	return off, nil
}
