package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// formatVersion is the first byte of every encoded State. See format.md.
const formatVersion = 1

// headerLen is the version byte plus the fixed 8-byte maxEventMillis.
const headerLen = 9

// ErrCorrupt is the error (wrapped with what and where) for encoded state
// that is truncated, malformed or not of this layout.
var ErrCorrupt = errors.New("aggregate: corrupt encoded state")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// MaxEventMillis returns the latest event time of an encoded State without
// decoding it (it reads bytes 1 to 8), math.MinInt64 for an empty State.
func MaxEventMillis(data []byte) (int64, error) {
	if len(data) < headerLen {
		return 0, corruptf("%d bytes, want at least %d", len(data), headerLen)
	}
	if data[0] != formatVersion {
		return 0, corruptf("format version %d, want %d", data[0], formatVersion)
	}
	return int64(binary.LittleEndian.Uint64(data[1:])), nil
}

// AppendEncode appends the encoding of s (format.md) to dst and returns the
// extended buffer. The encoding is canonical: Decode then AppendEncode gives
// back the same bytes.
func (l *Layout) AppendEncode(dst []byte, s *State) []byte {
	l.fit(s)
	l.mustWhole(s, "AppendEncode")
	dst = append(dst, formatVersion)
	if !s.has {
		return binary.LittleEndian.AppendUint64(dst, 1<<63) // math.MinInt64
	}
	dst = binary.LittleEndian.AppendUint64(dst, uint64(s.maxEventMillis))
	dst = binary.AppendUvarint(dst, uint64(len(l.feats)))
	for i := range l.feats {
		start := len(dst)
		dst = appendFeature(dst, &l.feats[i], &s.feats[i])
		// Prefix the section with its length, so readers can skip it.
		n := len(dst) - start
		var tmp [binary.MaxVarintLen64]byte
		k := binary.PutUvarint(tmp[:], uint64(n))
		dst = append(dst, tmp[:k]...)
		copy(dst[start+k:], dst[start:start+n])
		copy(dst[start:], tmp[:k])
	}
	return dst
}

func appendFeature(dst []byte, f *feat, fs *featState) []byte {
	tiles := fs.tiles
	dst = binary.AppendUvarint(dst, uint64(len(tiles)))
	if len(tiles) == 0 {
		return dst
	}
	if f.hop > 0 {
		dst = binary.AppendVarint(dst, tiles[0].idx)
		dst = binary.AppendUvarint(dst, uint64(tiles[len(tiles)-1].idx-tiles[0].idx))
		if f.summarized() {
			c, str := combine(f, tiles, fs.objs)
			dst = appendPayload(dst, f, &c, str, nil)
		}
	}
	if words, fixed, ok := f.simple(); ok {
		return appendSimpleTiles(dst, tiles, words, fixed)
	}
	for j := range tiles {
		if j > 0 {
			dst = binary.AppendUvarint(dst, uint64(tiles[j].idx-tiles[j-1].idx))
		}
		var o *tileObj
		if f.obj {
			o = &fs.objs[j]
		}
		str := ""
		if f.code == cLast && o != nil {
			str = o.s
		}
		dst = appendPayload(dst, f, &tiles[j], str, o)
	}
	return dst
}

// appendSimpleTiles is the tile loop of appendFeature for simple features
// (see feat.simple): the same bytes as appendPayload, written into space
// grown once.
func appendSimpleTiles(dst []byte, tiles []tile, words int, fixed bool) []byte {
	const maxTile = 4 * binary.MaxVarintLen64 // delta, n, two words
	dst = slices.Grow(dst, len(tiles)*maxTile)
	b := dst[len(dst):cap(dst)]
	off := 0
	put := func(v uint64) {
		if v < 0x80 {
			b[off] = byte(v)
			off++
			return
		}
		off += binary.PutUvarint(b[off:], v)
	}
	zigzag := func(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }
	for j := range tiles {
		t := &tiles[j]
		if j > 0 {
			put(uint64(t.idx - tiles[j-1].idx))
		}
		put(uint64(t.n))
		switch {
		case words == 0:
		case fixed:
			binary.LittleEndian.PutUint64(b[off:], uint64(t.a))
			off += 8
			if words == 2 {
				binary.LittleEndian.PutUint64(b[off:], uint64(t.b))
				off += 8
			}
		default:
			put(zigzag(t.a))
			if words == 2 {
				put(zigzag(t.b))
			}
		}
	}
	return dst[:len(dst)+off]
}

// appendPayload appends one tile's payload (format.md).
func appendPayload(dst []byte, f *feat, t *tile, str string, o *tileObj) []byte {
	switch f.code {
	case cCount:
		dst = binary.AppendUvarint(dst, uint64(t.n))
	case cSumInt, cAvgInt:
		dst = binary.AppendUvarint(dst, uint64(t.n))
		dst = binary.AppendVarint(dst, t.a)
		dst = binary.AppendVarint(dst, t.b)
	case cSumFloat, cAvgFloat, cMinFloat, cMaxFloat:
		dst = binary.AppendUvarint(dst, uint64(t.n))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(t.a))
	case cMinInt, cMaxInt:
		dst = binary.AppendUvarint(dst, uint64(t.n))
		dst = binary.AppendVarint(dst, t.a)
	case cVarInt, cVarFloat:
		dst = binary.AppendUvarint(dst, uint64(t.n))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(t.a))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(t.b))
	case cLast:
		dst = binary.AppendVarint(dst, t.a)
		dst = appendValue(dst, f.kind, t.b, str)
	case cLastK:
		list := o.list
		dst = binary.AppendUvarint(dst, uint64(len(list)))
		for e := range list {
			if e == 0 {
				dst = binary.AppendVarint(dst, list[e].t)
			} else {
				dst = binary.AppendUvarint(dst, uint64(list[e-1].t-list[e].t))
			}
			dst = appendValue(dst, f.kind, list[e].bits, list[e].s)
		}
	case cDistinct:
		if o.sketch {
			dst = append(dst, 0)
			return append(dst, o.hll[:hllRegisters]...)
		}
		dst = binary.AppendUvarint(dst, uint64(len(o.set)))
		for _, h := range o.set {
			dst = binary.LittleEndian.AppendUint64(dst, h)
		}
	}
	return dst
}

// Decode replaces s's content with the State encoded in data, reusing s's
// memory (no allocation per tile once s has held a state of that size;
// strings are copied out of data, which the caller may then reuse). It
// rejects truncated, malformed or non-canonical input, and input encoded
// for a layout with another number of features, with an error wrapping
// ErrCorrupt; s is then empty. It never panics.
func (l *Layout) Decode(s *State, data []byte) error {
	s.Reset()
	l.fit(s)
	if err := l.decode(s, data); err != nil {
		s.Reset()
		return err
	}
	return nil
}

// decode fills s (empty, fitted) from data.
func (l *Layout) decode(s *State, data []byte) error {
	maxMillis, err := MaxEventMillis(data)
	if err != nil {
		return err
	}
	if len(data) == headerLen {
		if maxMillis != math.MinInt64 {
			return corruptf("no features after latest event time %d", maxMillis)
		}
		return nil
	}
	n, off := getUvarint(data, headerLen)
	if off < 0 {
		return corruptf("truncated feature count")
	}
	if n != uint64(len(l.feats)) {
		return corruptf("%d features encoded, layout has %d", n, len(l.feats))
	}
	for i := range l.feats {
		var secLen uint64
		secLen, off = getUvarint(data, off)
		if off < 0 || secLen > uint64(len(data)-off) {
			return corruptf("feature %d: section length: truncated", i)
		}
		sec := data[off : off+int(secLen)]
		off += int(secLen)
		if err := decodeFeature(&l.feats[i], &s.feats[i], sec, true); err != nil {
			return fmt.Errorf("feature %d: %w", i, err)
		}
	}
	if off != len(data) {
		return corruptf("%d trailing bytes", len(data)-off)
	}
	s.has = true
	s.maxEventMillis = maxMillis
	return nil
}

// sectionHead is the start of a feature's section: the tile count and,
// for a windowed feature with tiles, the first and last tile index and (for
// summarized features) the combination of all tiles.
type sectionHead struct {
	ntiles      int
	first, last int64
	sum         tile
	sumStr      string
	off         int // where the tiles start
}

func readSectionHead(f *feat, sec []byte) (h sectionHead, err error) {
	n, off := getUvarint(sec, 0)
	switch {
	case off < 0:
		return h, corruptf("truncated tile count")
	case n > uint64(len(sec)):
		return h, corruptf("tile count %d in a %d-byte section", n, len(sec))
	case f.hop == 0 && n > 1:
		return h, corruptf("lifetime feature with %d tiles", n)
	}
	h.ntiles = int(n)
	if n > 0 && f.hop > 0 {
		var span uint64
		h.first, off = getVarint(sec, off)
		span, off = getUvarint(sec, off)
		h.last = h.first + int64(span)
		if off < 0 || int64(span) < 0 || h.last < h.first || (span == 0) != (n == 1) || span < n-1 {
			return h, corruptf("tile index range %d + %d for %d tiles", h.first, span, n)
		}
		if f.summarized() {
			if off, h.sumStr, err = getPayload(f, sec, off, &h.sum, nil); err != nil {
				return h, fmt.Errorf("summary: %w", err)
			}
		}
	}
	if off < 0 {
		return h, corruptf("truncated section head")
	}
	h.off = off
	return h, nil
}

// decodeFeature decodes one section into fs. With verify it also checks
// that the section's summary is the combination of its tiles (Decode does,
// so accepted input is canonical; ReadEncoded, which only reads, does not).
func decodeFeature(f *feat, fs *featState, sec []byte, verify bool) error {
	h, err := readSectionHead(f, sec)
	if err != nil {
		return err
	}
	n := h.ntiles
	if cap(fs.tiles) < n {
		fs.tiles = make([]tile, n, n+n/4)
	}
	fs.tiles = fs.tiles[:n]
	if f.obj {
		if cap(fs.objs) < n {
			fs.objs = append(fs.objs[:cap(fs.objs)], make([]tileObj, n-cap(fs.objs))...)
		}
		fs.objs = fs.objs[:n]
	} else {
		fs.objs = fs.objs[:0]
	}
	var off int
	var idx int64
	if words, fixed, ok := f.simple(); ok {
		off, idx, err = decodeSimpleTiles(fs.tiles, sec, h.off, h.first, words, fixed)
	} else {
		off, idx, err = decodeTiles(f, fs, sec, h.off, h.first)
	}
	if err != nil {
		return err
	}
	switch {
	case off != len(sec):
		return corruptf("%d trailing bytes in section", len(sec)-off)
	case n > 0 && idx != h.last:
		return corruptf("last tile index %d, head says %d", idx, h.last)
	}
	if verify && f.hop > 0 && f.summarized() && n > 0 {
		if c, str := combine(f, fs.tiles, fs.objs); c != h.sum || str != h.sumStr {
			return corruptf("summary does not match the tiles")
		}
	}
	return nil
}

// decodeTiles reads the tiles of any feature from off, the first at index
// first, into fs (sized). It returns the offset after them and the last
// tile's index.
func decodeTiles(f *feat, fs *featState, sec []byte, off int, first int64) (int, int64, error) {
	idx := first
	for j := range fs.tiles {
		if j > 0 {
			var d uint64
			d, off = getUvarint(sec, off)
			if off < 0 {
				return -1, 0, fmt.Errorf("tile %d: %w", j, corruptf("truncated or malformed"))
			}
			if d-1 >= uint64(math.MaxInt64-idx) {
				return -1, 0, corruptf("tile %d: index delta %d", j, d)
			}
			idx += int64(d)
		}
		t := &fs.tiles[j]
		t.idx = idx
		var o *tileObj
		if f.obj {
			o = &fs.objs[j]
			o.reset()
		}
		var str string
		var err error
		if off, str, err = getPayload(f, sec, off, t, o); err != nil {
			return -1, 0, fmt.Errorf("tile %d: %w", j, err)
		}
		if str != "" {
			o.s = str
		}
	}
	return off, idx, nil
}

// simple reports whether the feature's tile payload is n:uvarint followed by
// words (0 to 2) varints or, if fixed, fixed64s; decodeSimpleTiles reads
// those fast.
func (f *feat) simple() (words int, fixed, ok bool) {
	switch f.code {
	case cCount:
		return 0, false, true
	case cSumInt, cAvgInt:
		return 2, false, true
	case cMinInt, cMaxInt:
		return 1, false, true
	case cSumFloat, cAvgFloat, cMinFloat, cMaxFloat:
		return 1, true, true
	case cVarInt, cVarFloat:
		return 2, true, true
	}
	return 0, false, false
}

// decodeSimpleTiles is decodeTiles for simple features (the common case,
// hence the hand-inlined one-byte varints).
func decodeSimpleTiles(tiles []tile, b []byte, off int, idx int64, words int, fixed bool) (int, int64, error) {
	for j := range tiles {
		if j > 0 {
			d, next := uint64(0), -1
			if uint(off) < uint(len(b)) {
				if c := b[off]; c < 0x80 {
					d, next = uint64(c), off+1
				}
			}
			if next < 0 {
				d, next = getUvarintSlow(b, off)
			}
			if next < 0 {
				return -1, 0, fmt.Errorf("tile %d: %w", j, corruptf("truncated or malformed"))
			}
			if d-1 >= uint64(math.MaxInt64-idx) {
				return -1, 0, corruptf("tile %d: index delta %d", j, d)
			}
			off = next
			idx += int64(d)
		}
		t := &tiles[j]
		t.idx = idx
		n, next := uint64(0), -1
		if uint(off) < uint(len(b)) {
			if c := b[off]; c < 0x80 {
				n, next = uint64(c), off+1
			}
		}
		if next < 0 {
			n, next = getUvarintSlow(b, off)
		}
		if next < 0 || n-1 >= math.MaxInt64 {
			return -1, 0, fmt.Errorf("tile %d: %w", j, corruptf("truncated or malformed"))
		}
		off = next
		t.n = int64(n)
		t.a, t.b = 0, 0
		switch {
		case words == 0:
		case fixed:
			if len(b)-off < 8*words {
				return -1, 0, fmt.Errorf("tile %d: %w", j, corruptf("truncated or malformed"))
			}
			t.a = int64(binary.LittleEndian.Uint64(b[off:]))
			if words == 2 {
				t.b = int64(binary.LittleEndian.Uint64(b[off+8:]))
			}
			off += 8 * words
		default:
			t.a, off = getVarint(b, off)
			if words == 2 {
				t.b, off = getVarint(b, off)
			}
			if off < 0 {
				return -1, 0, fmt.Errorf("tile %d: %w", j, corruptf("truncated or malformed"))
			}
		}
	}
	return off, idx, nil
}

// getPayload reads one tile payload (format.md) at off into t and, for
// last_k and count_distinct, o. It returns the next offset and last's
// string value.
func getPayload(f *feat, b []byte, off int, t *tile, o *tileObj) (int, string, error) {
	t.n, t.a, t.b = 1, 0, 0
	var str string
	switch f.code {
	case cCount:
		t.n, off = getCount(b, off)
	case cSumInt, cAvgInt:
		t.n, off = getCount(b, off)
		t.a, off = getVarint(b, off)
		t.b, off = getVarint(b, off)
	case cSumFloat, cAvgFloat, cMinFloat, cMaxFloat:
		t.n, off = getCount(b, off)
		t.a, off = getFixed64(b, off)
	case cMinInt, cMaxInt:
		t.n, off = getCount(b, off)
		t.a, off = getVarint(b, off)
	case cVarInt, cVarFloat:
		t.n, off = getCount(b, off)
		t.a, off = getFixed64(b, off)
		t.b, off = getFixed64(b, off)
	case cLast:
		t.a, off = getVarint(b, off)
		t.b, str, off = getValue(f.kind, b, off)
	case cLastK:
		var c uint64
		c, off = getUvarint(b, off)
		if off < 0 || c == 0 || c > uint64(f.k) {
			return -1, "", corruptf("%d last_k values, want 1 to %d", c, f.k)
		}
		var et int64
		for e := 0; e < int(c) && off >= 0; e++ {
			if e == 0 {
				et, off = getVarint(b, off)
			} else {
				var d uint64
				d, off = getUvarint(b, off)
				next := et - int64(d)
				if int64(d) < 0 || next > et {
					return -1, "", corruptf("last_k time delta %d", d)
				}
				et = next
			}
			var bits int64
			var s string
			bits, s, off = getValue(f.kind, b, off)
			o.list = append(o.list, entry{t: et, bits: bits, s: s})
		}
	case cDistinct:
		var c uint64
		c, off = getUvarint(b, off)
		if off < 0 {
			break
		}
		if c == 0 {
			if len(b)-off < hllRegisters {
				return -1, "", corruptf("truncated sketch")
			}
			o.hll = hllReset(o.hll)
			for i, x := range b[off : off+hllRegisters] {
				if x > hllMaxRank {
					return -1, "", corruptf("register %d is %d, max %d", i, x, hllMaxRank)
				}
				o.hll[i] = x
			}
			o.sketch = true
			off += hllRegisters
			break
		}
		if c > uint64(f.k) || c > uint64(len(b)-off)/8 {
			return -1, "", corruptf("%d distinct hashes (bound %d, %d bytes left)", c, f.k, len(b)-off)
		}
		var prev uint64
		for e := 0; e < int(c); e++ {
			h := binary.LittleEndian.Uint64(b[off:])
			off += 8
			if e > 0 && h <= prev {
				return -1, "", corruptf("distinct hashes not strictly ascending")
			}
			prev = h
			o.set = append(o.set, h)
		}
	}
	if off < 0 {
		return -1, "", corruptf("truncated or malformed")
	}
	return off, str, nil
}

// The get functions read one item at off and return it with the next
// offset. A negative offset means truncated or malformed input; it stays
// negative through later reads, so callers check once.

func getUvarint(b []byte, off int) (uint64, int) {
	if uint(off) < uint(len(b)) {
		if c := b[off]; c < 0x80 {
			return uint64(c), off + 1
		}
	}
	return getUvarintSlow(b, off)
}

// getUvarintSlow reads a multi-byte uvarint, rejecting overlong
// (non-minimal) and overflowing encodings so that accepted input is
// canonical.
func getUvarintSlow(b []byte, off int) (uint64, int) {
	if off < 0 {
		return 0, -1
	}
	var x uint64
	var shift uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if off >= len(b) {
			return 0, -1
		}
		c := b[off]
		off++
		if c < 0x80 {
			if (i > 0 && c == 0) || (i == binary.MaxVarintLen64-1 && c > 1) {
				return 0, -1
			}
			return x | uint64(c)<<shift, off
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, -1
}

func getVarint(b []byte, off int) (int64, int) {
	ux, off := getUvarint(b, off)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, off
}

// getCount reads a tile's value count, which is >= 1.
func getCount(b []byte, off int) (int64, int) {
	n, off := getUvarint(b, off)
	if n == 0 || int64(n) < 0 {
		return 0, -1
	}
	return int64(n), off
}

func getFixed64(b []byte, off int) (int64, int) {
	if off < 0 || len(b)-off < 8 {
		return 0, -1
	}
	return int64(binary.LittleEndian.Uint64(b[off:])), off + 8
}

func getValue(k Kind, b []byte, off int) (int64, string, int) {
	switch k {
	case KindFloat64:
		v, off := getFixed64(b, off)
		return v, "", off
	case KindString:
		n, off := getUvarint(b, off)
		if off < 0 || n > uint64(len(b)-off) {
			return 0, "", -1
		}
		return 0, string(b[off : off+int(n)]), off + int(n)
	}
	v, off := getVarint(b, off)
	return v, "", off
}

// ReadEncoded reads features of an encoded State as of atMillis into out
// (out[i] for features[i]): the fast path of an online lookup. It decodes
// only the features asked for, and of a windowed feature whose tiles all
// lie in the window at atMillis (the usual case for reads soon after the
// last write, since the store prunes before it writes) it reads only the
// section's head, which carries the combination of all tiles. s is scratch
// memory: afterwards it holds only some features and may be passed to
// ReadEncoded or Decode again, but Fold, Prune and AppendEncode panic on it
// until then. For input Decode accepts, the results are those of Decode
// then Read, bit for bit; ReadEncoded checks only what it reads.
func (l *Layout) ReadEncoded(s *State, data []byte, features []int, atMillis int64, out []Result) error {
	if len(out) < len(features) {
		return fmt.Errorf("aggregate: read: %d results for %d features", len(out), len(features))
	}
	maxMillis, err := MaxEventMillis(data)
	if err != nil {
		return err
	}
	for _, f := range features {
		if f < 0 || f >= len(l.feats) {
			return fmt.Errorf("aggregate: read: feature %d out of range [0, %d)", f, len(l.feats))
		}
	}
	if len(data) == headerLen || maxMillis < subSat(atMillis, l.ttlMillis) {
		for i := range features {
			out[i] = Result{Status: StatusNotFound}
		}
		return nil
	}
	s.Reset()
	l.fit(s)
	s.partial = true
	if cap(s.secs) < len(l.feats) {
		s.secs = make([][]byte, len(l.feats))
	}
	secs := s.secs[:len(l.feats)]
	clear(secs)
	defer clear(secs) // do not keep the caller's buffer
	last := -1
	for _, f := range features {
		secs[f] = data[:0] // wanted: not nil
		last = max(last, f)
	}
	n, off := getUvarint(data, headerLen)
	if off < 0 || n != uint64(len(l.feats)) {
		return corruptf("%d features encoded, layout has %d", n, len(l.feats))
	}
	for i := 0; i <= last; i++ {
		var secLen uint64
		secLen, off = getUvarint(data, off)
		if off < 0 || secLen > uint64(len(data)-off) {
			return corruptf("feature %d: truncated section", i)
		}
		if secs[i] != nil {
			secs[i] = data[off : off+int(secLen)]
		}
		off += int(secLen)
	}
	s.has = true
	s.maxEventMillis = maxMillis
	for i, fi := range features {
		f := &l.feats[fi]
		sec := secs[fi]
		h, err := readSectionHead(f, sec)
		if err != nil {
			return fmt.Errorf("feature %d: %w", fi, err)
		}
		if f.summarized() && (h.ntiles == 0 || f.hop > 0) {
			if h.ntiles == 0 {
				out[i] = result(f, &tile{}, "", maxMillis)
				continue
			}
			top := floorDiv(atMillis, f.hop)
			bottom := subSat(top, f.span)
			if h.last <= top && h.first >= bottom {
				out[i] = result(f, &h.sum, h.sumStr, maxMillis)
				continue
			}
			if h.last <= top && f.exact() {
				if c, ok := subtractPrefix(f, &h, sec, bottom); ok {
					out[i] = result(f, &c, "", maxMillis)
					continue
				}
			}
		}
		fs := &s.feats[fi]
		if err := decodeFeature(f, fs, sec, false); err != nil {
			fs.tiles = fs.tiles[:0]
			fs.objs = fs.objs[:0]
			return fmt.Errorf("feature %d: %w", fi, err)
		}
		out[i] = l.Read(s, fi, atMillis)
	}
	return nil
}

func appendValue(dst []byte, k Kind, bits int64, s string) []byte {
	switch k {
	case KindFloat64:
		return binary.LittleEndian.AppendUint64(dst, uint64(bits))
	case KindString:
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		return append(dst, s...)
	}
	return binary.AppendVarint(dst, bits)
}

// exact reports whether the feature's combination is exact integer
// arithmetic (count, and sum and avg over int64), so that removing tiles
// from a combination gives the bits of combining the rest.
func (f *feat) exact() bool {
	return f.code == cCount || f.code == cSumInt || f.code == cAvgInt
}

// subtractPrefix returns the combination of the section's tiles with index
// >= bottom for an exact feature: the summary minus the tiles below bottom,
// reading only those. ok is false on malformed input (the caller then
// decodes the section, which reports it).
func subtractPrefix(f *feat, h *sectionHead, sec []byte, bottom int64) (c tile, ok bool) {
	c = h.sum
	off := h.off
	idx := h.first
	for j := 0; j < h.ntiles; j++ {
		if j > 0 {
			var d uint64
			d, off = getUvarint(sec, off)
			if off < 0 || d-1 >= uint64(math.MaxInt64-idx) {
				return c, false
			}
			idx += int64(d)
		}
		if idx >= bottom {
			return c, true
		}
		var n int64
		n, off = getCount(sec, off)
		c.n -= n
		if f.code != cCount {
			var lo, hi int64
			lo, off = getVarint(sec, off)
			hi, off = getVarint(sec, off)
			x := i128{lo: uint64(c.a), hi: c.b}.sub(i128{lo: uint64(lo), hi: hi})
			c.a, c.b = int64(x.lo), x.hi
		}
		if off < 0 {
			return c, false
		}
	}
	return c, true
}
