package codec

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/featured-dev/featured/aggregate"
)

// ErrShort is Decoder.Err after a read ran past the input or met a bad
// kind or count. Callers wrap their own corruption error around the place.
var ErrShort = errors.New("codec: truncated or malformed encoding")

// AppendValue encodes one value: a kind byte, then int64/bool as varint,
// float64 as 8 bytes, string as uvarint length and bytes, list as uvarint
// count and values.
func AppendValue(b []byte, v aggregate.Value) []byte {
	b = append(b, byte(v.Kind))
	switch v.Kind {
	case aggregate.KindInt64, aggregate.KindBool:
		b = binary.AppendVarint(b, v.I)
	case aggregate.KindFloat64:
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.F))
	case aggregate.KindString:
		b = binary.AppendUvarint(b, uint64(len(v.S)))
		b = append(b, v.S...)
	case aggregate.KindList:
		b = binary.AppendUvarint(b, uint64(len(v.L)))
		for _, e := range v.L {
			b = AppendValue(b, e)
		}
	}
	return b
}

// Decoder reads the encodings above (and Go's varints) from a buffer,
// remembering the first failure: after it every read returns a zero value
// and Err reports it, so callers check once, after a run of reads, and
// wrap the failure with what they were decoding.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder returns a Decoder reading b.
func NewDecoder(b []byte) Decoder { return Decoder{b: b} }

// Err returns ErrShort once a read failed, else nil.
func (d *Decoder) Err() error { return d.err }

// Rest returns the bytes not read yet.
func (d *Decoder) Rest() []byte { return d.b }

// Len returns how many bytes are left.
func (d *Decoder) Len() int { return len(d.b) }

// Fail marks the input bad (a count larger than what is left, say): what a
// failed read does.
func (d *Decoder) Fail() {
	if d.err == nil {
		d.err = ErrShort
	}
	d.b = nil
}

func (d *Decoder) Uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.Fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *Decoder) Varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.Fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *Decoder) Byte() byte {
	if len(d.b) < 1 {
		d.Fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *Decoder) Bytes() []byte {
	n := d.Uvarint()
	if uint64(len(d.b)) < n {
		d.Fail()
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

// Value decodes what AppendValue wrote; depth is 0 for a top-level value (a
// list may not hold lists).
func (d *Decoder) Value(depth int) aggregate.Value {
	k := aggregate.Kind(d.Byte())
	switch k {
	case aggregate.KindNull:
		return aggregate.Value{}
	case aggregate.KindInt64, aggregate.KindBool:
		return aggregate.Value{Kind: k, I: d.Varint()}
	case aggregate.KindFloat64:
		if len(d.b) < 8 {
			d.Fail()
			return aggregate.Value{}
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
		d.b = d.b[8:]
		return aggregate.Value{Kind: k, F: f}
	case aggregate.KindString:
		return aggregate.Value{Kind: k, S: string(d.Bytes())}
	case aggregate.KindList:
		n := d.Uvarint()
		if depth > 0 || n > uint64(len(d.b)) {
			d.Fail()
			return aggregate.Value{}
		}
		l := make([]aggregate.Value, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			l = append(l, d.Value(depth+1))
		}
		return aggregate.Value{Kind: k, L: l}
	}
	d.Fail()
	return aggregate.Value{}
}
