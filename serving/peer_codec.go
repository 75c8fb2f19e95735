package serving

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/featured-dev/featured/aggregate"
)

// This file holds the encoding of PeerService.Read's results
// (ReadResponse.results, described in api/featured/peer/v1/peer.proto) and
// of its request's units: append-style, no reflection, one pass. The
// results are a few bytes a value where Feast's protobuf would be tens, and
// decoding them allocates nothing but what a list needs: strings point into
// the response's buffer, which no one writes after it is decoded.

// errPeerEncoding is a ReadResponse or ReadRequest whose bytes do not
// follow the encoding: a peer of another version, or a bug.
var errPeerEncoding = errors.New("serving: malformed peer encoding")

// maxPeerListLen bounds a decoded list: last_k's k is far below it.
const maxPeerListLen = 1 << 16

func appendPeerResult(b []byte, r *aggregate.Result) []byte {
	b = append(b, byte(r.Status))
	if r.Status == aggregate.StatusNotFound {
		return b
	}
	b = binary.AppendVarint(b, r.EventMillis)
	if r.Status == aggregate.StatusPresent {
		b = appendPeerValue(b, &r.Value)
	}
	return b
}

func appendPeerValue(b []byte, v *aggregate.Value) []byte {
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
		for i := range v.L {
			b = appendPeerValue(b, &v.L[i])
		}
	}
	return b
}

// decodePeerResult decodes one result at b[off:] into r, returning the
// offset after it. Strings alias b.
func decodePeerResult(b []byte, off int, r *aggregate.Result) (int, error) {
	if off >= len(b) {
		return 0, errPeerEncoding
	}
	st := aggregate.Status(b[off])
	off++
	*r = aggregate.Result{Status: st}
	switch st {
	case aggregate.StatusNotFound:
		return off, nil
	case aggregate.StatusPresent, aggregate.StatusNull:
	default:
		return 0, errPeerEncoding
	}
	ms, n := binary.Varint(b[off:])
	if n <= 0 {
		return 0, errPeerEncoding
	}
	r.EventMillis = ms
	off += n
	if st == aggregate.StatusNull {
		return off, nil
	}
	return decodePeerValue(b, off, &r.Value, 0)
}

func decodePeerValue(b []byte, off int, v *aggregate.Value, depth int) (int, error) {
	if off >= len(b) {
		return 0, errPeerEncoding
	}
	k := aggregate.Kind(b[off])
	off++
	*v = aggregate.Value{Kind: k}
	switch k {
	case aggregate.KindNull:
	case aggregate.KindInt64, aggregate.KindBool:
		i, n := binary.Varint(b[off:])
		if n <= 0 {
			return 0, errPeerEncoding
		}
		v.I, off = i, off+n
	case aggregate.KindFloat64:
		if len(b)-off < 8 {
			return 0, errPeerEncoding
		}
		v.F, off = math.Float64frombits(binary.LittleEndian.Uint64(b[off:])), off+8
	case aggregate.KindString:
		l, n := binary.Uvarint(b[off:])
		if n <= 0 || l > uint64(len(b)-off-n) {
			return 0, errPeerEncoding
		}
		off += n
		v.S, off = unsafeString(b[off:off+int(l)]), off+int(l)
	case aggregate.KindList:
		l, n := binary.Uvarint(b[off:])
		// Lists hold scalars (last_k); each element takes at least a byte.
		if n <= 0 || depth > 0 || l > maxPeerListLen || l > uint64(len(b)-off-n) {
			return 0, errPeerEncoding
		}
		off += n
		v.L = make([]aggregate.Value, l)
		for i := range v.L {
			var err error
			if off, err = decodePeerValue(b, off, &v.L[i], depth+1); err != nil {
				return 0, err
			}
		}
	default:
		return 0, errPeerEncoding
	}
	return off, nil
}

// appendPeerUnit appends one unit of a ReadRequest: the index of its join
// key, its partition and its entity key's bytes.
func appendPeerUnit(b []byte, key, part int, ent []byte) []byte {
	b = binary.AppendUvarint(b, uint64(key))
	b = binary.AppendUvarint(b, uint64(part))
	b = binary.AppendUvarint(b, uint64(len(ent)))
	return append(b, ent...)
}

// nextPeerUnit decodes the unit at b[off:], returning the offset after it.
func nextPeerUnit(b []byte, off int) (key, part int, ent []byte, next int, err error) {
	var vals [3]uint64
	for i := range vals {
		v, n := binary.Uvarint(b[off:])
		if n <= 0 || v > math.MaxInt32 {
			return 0, 0, nil, 0, errPeerEncoding
		}
		vals[i], off = v, off+n
	}
	if vals[2] > uint64(len(b)-off) {
		return 0, 0, nil, 0, errPeerEncoding
	}
	end := off + int(vals[2])
	return int(vals[0]), int(vals[1]), b[off:end:end], end, nil
}
