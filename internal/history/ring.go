package history

import (
	"encoding/binary"

	"github.com/klauspost/compress/zstd"
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
	base int64  // slot number of the chunk's first slot; -1 when unused
	mask uint64 // bit i: slot base+i has a record
	data []byte
	z    bool // data is zstd-compressed (the chunk is complete)
}

// ring is the retained history of one series at one resolution: a ring of
// chunks covering at least the retention, allocated at the first record.
// The rotator writes it and queries read it, both under the series lock.
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

// add appends the record of slot, which must be later than every slot
// added before it. It returns the change in retained bytes.
func (r *ring) add(n int, slot int64, rec []byte) int {
	delta := 0
	if r.chunks == nil {
		r.chunks = make([]chunk, n)
		for i := range r.chunks {
			r.chunks[i].base = -1
		}
		delta += n * chunkHeader
	}
	base := chunkBase(slot)
	c := &r.chunks[mod(base/slotsPerChunk, int64(len(r.chunks)))]
	if c.base != base {
		delta -= cap(c.data)
		c.base, c.mask, c.data = base, 0, c.data[:0]
		if cap(c.data) > 4096 || c.z {
			c.data = nil // do not keep a busy hour's buffer for a quiet one
		}
		c.z = false
		delta += cap(c.data)
	}
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
	if r.chunks == nil {
		return 0
	}
	base := chunkBase(slot)
	c := &r.chunks[mod(base/slotsPerChunk, int64(len(r.chunks)))]
	if c.base != base || c.z || len(c.data) == 0 {
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
	if r.chunks == nil || from >= to {
		return nil
	}
	from = max(from, oldest)
	var scratch, packed []byte
	for base := chunkBase(from); base < to; base += slotsPerChunk {
		c := &r.chunks[mod(base/slotsPerChunk, int64(len(r.chunks)))]
		if c.base != base || c.mask == 0 {
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

// chunkHeader is the size of a chunk without its buffer.
const chunkHeader = 40

// bytes returns the bytes the ring retains (chunk headers and buffers).
func (r *ring) bytes() int {
	n := 0
	for i := range r.chunks {
		n += chunkHeader + cap(r.chunks[i].data)
	}
	return n
}

// dropBefore frees every chunk that ends at or before slot, and returns
// the change in retained bytes.
func (r *ring) dropBefore(slot int64) int {
	delta := 0
	for i := range r.chunks {
		c := &r.chunks[i]
		if c.base >= 0 && c.base+slotsPerChunk <= slot {
			delta -= cap(c.data)
			c.base, c.mask, c.data, c.z = -1, 0, nil, false
		}
	}
	return delta
}

// reset drops every record.
func (r *ring) reset() { r.chunks = nil }
