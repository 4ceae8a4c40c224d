package history

import (
	"encoding/binary"
	"sort"
	"unsafe"

	"github.com/klauspost/compress/zstd"

	"github.com/vantage-gateway/vantage/internal/memsize"
)

// codec compresses complete chunks (zstd: about 1.8 times for a minute of
// seconds, 2.5 times for an hour of minutes of real traffic). Its methods
// are safe for concurrent use.
type codec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func newCodec() (*codec, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(1<<16), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(2), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		return nil, err
	}
	return &codec{enc: enc, dec: dec}, nil
}

func (c *codec) close() {
	c.enc.Close()
	c.dec.Close()
}

// slotsPerChunk is the number of slots (seconds, or minutes) one chunk
// holds: a chunk of seconds is one minute, a chunk of minutes one hour.
const slotsPerChunk = 60

// chunk holds the records of slotsPerChunk consecutive slots of one
// series, in slot order, each prefixed by its length. Slots without data
// take no bytes.
type chunk struct {
	base int64  // slot number of the chunk's first slot
	mask uint64 // bit i: slot base+i has a record
	data []byte
	z    bool // data is zstd-compressed (the chunk is complete)
}

// chunkSize is what a chunk takes in a ring's table, its buffer aside.
var chunkSize = int(unsafe.Sizeof(chunk{}))

// ring is the retained history of one series at one resolution: its
// chunks that hold records, oldest first, within the last n chunk spans
// (n from numChunks: at least the retention). A chunk exists only once a
// record falls in it, and goes when the span passes or the byte budget
// drops it, so a series that is quiet most of the time keeps a short
// table. The rotator writes it and queries read it, both under the series
// lock.
type ring struct {
	chunks []chunk
}

// numChunks returns the chunks a ring needs to retain slots slots: whole
// chunks, plus the one being filled.
func numChunks(slots int) int { return (slots+slotsPerChunk-1)/slotsPerChunk + 1 }

func chunkBase(slot int64) int64 { return slot - mod(slot, slotsPerChunk) }

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// find returns the chunk starting at base, or nil.
func (r *ring) find(base int64) *chunk {
	i := sort.Search(len(r.chunks), func(i int) bool { return r.chunks[i].base >= base })
	if i < len(r.chunks) && r.chunks[i].base == base {
		return &r.chunks[i]
	}
	return nil
}

// drop removes the first k chunks and returns the change in retained
// bytes. The table is reallocated when it would otherwise keep more than
// twice the room it needs.
func (r *ring) drop(k int) int {
	if k <= 0 {
		return 0
	}
	delta := 0
	for i := 0; i < k; i++ {
		delta -= cap(r.chunks[i].data)
	}
	before := cap(r.chunks)
	n := copy(r.chunks, r.chunks[k:])
	clear(r.chunks[n:])
	r.chunks = r.chunks[:n]
	if n == 0 {
		r.chunks = nil
	} else if cap(r.chunks) > 2*n && cap(r.chunks) > 4 {
		r.chunks = append(make([]chunk, 0, n), r.chunks...)
	}
	return delta + tableBytes(cap(r.chunks)) - tableBytes(before)
}

// tableBytes is what a ring's table of n chunks takes.
func tableBytes(n int) int { return int(memsize.AllocPtr(int64(n * chunkSize))) }

// add appends the record of slot, which must be later than every slot
// added before it (an earlier one is ignored), keeping at most n chunk
// spans. It returns the change in retained bytes.
func (r *ring) add(n int, slot int64, rec []byte) int {
	base := chunkBase(slot)
	delta := 0
	k := len(r.chunks)
	if k > 0 && r.chunks[k-1].base > base {
		return 0
	}
	if k == 0 || r.chunks[k-1].base != base {
		// Chunks n spans or more older than this one have passed.
		old := 0
		for old < k && r.chunks[old].base <= base-int64(n)*slotsPerChunk {
			old++
		}
		delta += r.drop(old)
		before := cap(r.chunks)
		r.chunks = append(r.chunks, chunk{base: base})
		delta += tableBytes(cap(r.chunks)) - tableBytes(before)
	}
	c := &r.chunks[len(r.chunks)-1]
	if c.z { // a record after the chunk was sealed: only after clock trouble
		return delta
	}
	before := cap(c.data)
	c.mask |= 1 << uint(slot-base)
	c.data = binary.AppendUvarint(c.data, uint64(len(rec)))
	c.data = append(c.data, rec...)
	return delta + cap(c.data) - before
}

// seal packs (packChunk) and compresses the chunk holding slot once it is
// complete (or trims its
// spare capacity when compressing saves little), and returns the change in
// retained bytes.
func (r *ring) seal(cd *codec, slot int64) int {
	c := r.find(chunkBase(slot))
	if c == nil || c.z || len(c.data) == 0 {
		return 0
	}
	before := cap(c.data)
	packed, err := packChunk(make([]byte, 0, len(c.data)), c.data)
	if err != nil { // not a chunk of records: keep it as it is
		return 0
	}
	if z := cd.enc.EncodeAll(packed, make([]byte, 0, len(c.data)/2)); len(z) < len(c.data)*9/10 {
		c.data, c.z = append([]byte(nil), z...), true
	} else if cap(c.data) != len(c.data) {
		c.data = append([]byte(nil), c.data...)
	}
	return cap(c.data) - before
}

// each calls f with every record of the slots in [from, to) that are at
// or after oldest, in slot order, and stops at f's first error.
func (r *ring) each(cd *codec, oldest, from, to int64, f func(slot int64, rec []byte) error) error {
	if len(r.chunks) == 0 || from >= to {
		return nil
	}
	from = max(from, oldest)
	var scratch, packed []byte
	first := sort.Search(len(r.chunks), func(i int) bool { return r.chunks[i].base >= chunkBase(from) })
	for ci := first; ci < len(r.chunks) && r.chunks[ci].base < to; ci++ {
		c := &r.chunks[ci]
		base := c.base
		if c.mask == 0 {
			continue
		}
		b := c.data
		if c.z {
			var err error
			if packed, err = cd.dec.DecodeAll(c.data, packed[:0]); err != nil {
				return errCorrupt
			}
			if scratch, err = unpackChunk(scratch[:0], packed); err != nil {
				return err
			}
			b = scratch
		}
		for i := int64(0); i < slotsPerChunk && len(b) > 0; i++ {
			if c.mask&(1<<uint(i)) == 0 {
				continue
			}
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return errCorrupt
			}
			rec := b[n : n+int(l)]
			b = b[n+int(l):]
			if s := base + i; s >= from && s < to {
				if err := f(s, rec); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// bytes returns the bytes the ring retains (its table and the chunks'
// buffers).
func (r *ring) bytes() int {
	n := tableBytes(cap(r.chunks))
	for i := range r.chunks {
		n += cap(r.chunks[i].data)
	}
	return n
}

// dropBefore frees every chunk that ends at or before slot, and returns
// the change in retained bytes.
func (r *ring) dropBefore(slot int64) int {
	k := 0
	for k < len(r.chunks) && r.chunks[k].base+slotsPerChunk <= slot {
		k++
	}
	return r.drop(k)
}

// reset drops every record.
func (r *ring) reset() { r.chunks = nil }
