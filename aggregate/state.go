package aggregate

import (
	"math"
	"unsafe"
)

// State is the aggregation state of one entity in one view version: the
// latest event time folded and, per feature, its non-empty tiles sorted by
// start. A State is not safe for concurrent use (Read too uses scratch
// memory inside it). A State belongs to the Layout that made it; a zero
// State may be used with any Layout.
type State struct {
	has            bool  // false: no state (nothing folded since creation or reset)
	maxEventMillis int64 // latest event time folded; meaningful when has
	// partial is set by ReadEncoded, which decodes only some features:
	// such a State can be read (those features) or decoded again, never
	// folded, pruned or encoded.
	partial bool
	feats   []featState

	// Scratch for Read of count_distinct.
	hashes []uint64
	regs   []uint8
	// Scratch for ReadEncoded: the sections of the features asked for.
	secs [][]byte
}

// featState is one feature's tiles. A lifetime feature has at most one
// tile, with index 0.
type featState struct {
	tiles []tile
	// objs is parallel to tiles (same length) for features whose tiles need
	// more than four words (last over strings, last_k, count_distinct), nil
	// otherwise. Slots past len(objs) keep their memory for reuse; every
	// backing array belongs to exactly one slot (insertions and removals
	// swap slots, never copy them).
	objs []tileObj
}

// tile is one partial aggregate. What a, b and n hold depends on the
// feature's code:
//
//	count          n = values
//	sum/avg int64  n = values, a = low 64 bits, b = high 64 bits of the exact sum
//	sum/avg float  n = values, a = bits of the float64 sum
//	min/max        n = values, a = value (float64 bits for floats)
//	stddev/var     n = values, a = bits of the mean, b = bits of M2 (Welford)
//	last           n = 1, a = event time, b = value (int64/bool, or float64 bits; strings in tileObj.s)
//	last_k         n = 1; entries in tileObj.list
//	count_distinct n = 1; hashes in tileObj.set or registers in tileObj.hll
type tile struct {
	idx  int64 // tile index: start / hop (start = idx * hop)
	n    int64
	a, b int64
}

type tileObj struct {
	s      string   // last over strings
	list   []entry  // last_k: newest first, at most K
	set    []uint64 // count_distinct exact: sorted distinct hashes, at most the bound
	hll    []uint8  // count_distinct sketch registers (hllRegisters) when sketch
	sketch bool     // count_distinct: hll is in use, set is not
}

// entry is one last_k value: event time, value bits (int64/bool, or float64
// bits) and string.
type entry struct {
	t    int64
	bits int64
	s    string
}

func (o *tileObj) reset() {
	o.s = ""
	o.list = o.list[:0]
	o.set = o.set[:0]
	o.sketch = false
}

// Empty reports whether s holds no state: nothing folded since it was made
// or reset (by the TTL rule, or Reset).
func (s *State) Empty() bool { return !s.has }

// MaxEventMillis returns the latest event time folded into s, and false
// when s is empty.
func (s *State) MaxEventMillis() (int64, bool) { return s.maxEventMillis, s.has }

// Reset empties s, keeping its memory for reuse.
func (s *State) Reset() {
	s.has = false
	s.maxEventMillis = 0
	s.partial = false
	for i := range s.feats {
		fs := &s.feats[i]
		fs.tiles = fs.tiles[:0]
		fs.objs = fs.objs[:0]
	}
}

// fit makes s usable with l: a zero (or empty) State is sized for l; a
// non-empty State of another layout is a programming error.
func (l *Layout) fit(s *State) {
	if len(s.feats) == len(l.feats) {
		return
	}
	if s.has {
		panic("aggregate: State used with a Layout of another view version")
	}
	if cap(s.feats) >= len(l.feats) {
		s.feats = s.feats[:len(l.feats)]
	} else {
		s.feats = make([]featState, len(l.feats))
	}
	for i := range s.feats {
		s.feats[i].tiles = s.feats[i].tiles[:0]
		s.feats[i].objs = s.feats[i].objs[:0]
	}
}

func (l *Layout) mustWhole(s *State, what string) {
	if s.partial {
		panic("aggregate: " + what + " of a State filled by ReadEncoded (only some features were decoded)")
	}
}

// tileFor returns the position of the tile with index idx, creating it
// (sorted) when missing. In-order events hit the last tile or append.
func (fs *featState) tileFor(idx int64, withObj bool) int {
	n := len(fs.tiles)
	if n > 0 {
		last := fs.tiles[n-1].idx
		if last == idx {
			return n - 1
		}
		if last > idx {
			// Late event: binary search for the first tile >= idx.
			lo, hi := 0, n-1
			for lo < hi {
				m := int(uint(lo+hi) >> 1)
				if fs.tiles[m].idx < idx {
					lo = m + 1
				} else {
					hi = m
				}
			}
			if fs.tiles[lo].idx == idx {
				return lo
			}
			fs.push(idx, withObj)
			fs.moveLast(lo, withObj)
			return lo
		}
	}
	fs.push(idx, withObj)
	return n
}

// push appends an empty tile (and obj slot, reusing its memory).
func (fs *featState) push(idx int64, withObj bool) {
	fs.tiles = append(fs.tiles, tile{idx: idx})
	if withObj {
		if n := len(fs.objs); n < cap(fs.objs) {
			fs.objs = fs.objs[:n+1]
			fs.objs[n].reset()
		} else {
			fs.objs = append(fs.objs, tileObj{})
		}
	}
}

// moveLast moves the last tile to position p, shifting the ones after it.
func (fs *featState) moveLast(p int, withObj bool) {
	n := len(fs.tiles) - 1
	t := fs.tiles[n]
	copy(fs.tiles[p+1:], fs.tiles[p:n])
	fs.tiles[p] = t
	if withObj {
		for j := n; j > p; j-- {
			fs.objs[j], fs.objs[j-1] = fs.objs[j-1], fs.objs[j]
		}
	}
}

// dropFront removes the first k tiles.
func (fs *featState) dropFront(k int, withObj bool) {
	if k <= 0 {
		return
	}
	n := len(fs.tiles)
	copy(fs.tiles, fs.tiles[k:])
	fs.tiles = fs.tiles[:n-k]
	if withObj {
		for j := 0; j < n-k; j++ {
			fs.objs[j], fs.objs[j+k] = fs.objs[j+k], fs.objs[j]
		}
		for j := n - k; j < n; j++ {
			fs.objs[j].s = "" // let the strings go
		}
		fs.objs = fs.objs[:n-k]
	}
}

// Fold adds one event at eventMillis to s. fields is indexed by Spec.Field;
// a feature whose field is missing (index past len(fields)), KindNull, or of
// another kind than Spec.FieldKind skips the event (producing values of the
// declared kind is the decoder's job). count with Field -1 counts every
// event.
//
// The TTL rule comes first: if s is not empty and eventMillis >
// MaxEventMillis + TTL, s is cleared before folding (the state of an entity
// not updated for TTL is gone), so results never depend on when the store
// deletes expired state. Fold never allocates for an in-order event once the
// tiles it needs exist (new tiles reuse pruned ones' memory).
func (l *Layout) Fold(s *State, eventMillis int64, fields []Value) {
	l.fit(s)
	l.mustWhole(s, "Fold")
	if s.has && eventMillis > addSat(s.maxEventMillis, l.ttlMillis) {
		s.Reset()
	}
	for i := range l.feats {
		f := &l.feats[i]
		var v *Value
		if f.field >= 0 {
			if f.field >= len(fields) {
				continue
			}
			v = &fields[f.field]
			if v.Kind != f.kind {
				continue
			}
		}
		var idx int64
		if f.hop > 0 {
			idx = floorDiv(eventMillis, f.hop)
		}
		fs := &s.feats[i]
		j := fs.tileFor(idx, f.obj)
		t := &fs.tiles[j]
		switch f.code {
		case cCount:
			t.n++
		case cSumInt, cAvgInt:
			t.n++
			x := i128{lo: uint64(t.a), hi: t.b}.addInt64(v.I)
			t.a, t.b = int64(x.lo), x.hi
		case cSumFloat, cAvgFloat:
			t.n++
			t.a = f2b(b2f(t.a) + v.F)
		case cMinInt:
			if t.n == 0 || v.I < t.a {
				t.a = v.I
			}
			t.n++
		case cMaxInt:
			if t.n == 0 || v.I > t.a {
				t.a = v.I
			}
			t.n++
		case cMinFloat:
			if t.n == 0 {
				t.a = f2b(v.F)
			} else {
				t.a = f2b(math.Min(b2f(t.a), v.F))
			}
			t.n++
		case cMaxFloat:
			if t.n == 0 {
				t.a = f2b(v.F)
			} else {
				t.a = f2b(math.Max(b2f(t.a), v.F))
			}
			t.n++
		case cVarInt:
			welford(t, float64(v.I))
		case cVarFloat:
			welford(t, v.F)
		case cLast:
			// >=: on equal event times the later arrival wins.
			if t.n == 0 || eventMillis >= t.a {
				t.n = 1
				t.a = eventMillis
				t.b = valueBits(v)
				if f.obj {
					fs.objs[j].s = v.S
				}
			}
		case cLastK:
			t.n = 1
			foldLastK(&fs.objs[j], f.k, entry{t: eventMillis, bits: valueBits(v), s: v.S})
		case cDistinct:
			t.n = 1
			foldDistinct(&fs.objs[j], f.k, HashValue(*v))
		}
	}
	if !s.has || eventMillis > s.maxEventMillis {
		s.maxEventMillis = eventMillis
	}
	s.has = true
}

// welford folds x into the tile's (n, mean, M2), in arrival order.
func welford(t *tile, x float64) {
	t.n++
	mean := b2f(t.a)
	d := x - mean
	mean += d / float64(t.n)
	t.a = f2b(mean)
	t.b = f2b(b2f(t.b) + d*(x-mean))
}

// valueBits is the int64 word of a value: I for int64 and bool, the bits of
// F for float64, 0 for strings.
func valueBits(v *Value) int64 {
	if v.Kind == KindFloat64 {
		return f2b(v.F)
	}
	return v.I
}

// foldLastK inserts e into the newest-first list, before every entry with
// an event time <= e.t (ties: the later arrival first), keeping at most k.
func foldLastK(o *tileObj, k int, e entry) {
	p := 0
	for p < len(o.list) && o.list[p].t > e.t {
		p++
	}
	if p >= k {
		return
	}
	if len(o.list) < k {
		o.list = append(o.list, entry{})
	}
	copy(o.list[p+1:], o.list[p:len(o.list)-1])
	o.list[p] = e
}

// Prune drops the tiles that no Read at a time >= horizonMillis can need:
// for each windowed feature, tiles with start < floor((horizon - W)/hop)*hop.
// It never changes the result of a Read at T >= horizonMillis. Lifetime
// features and the latest event time are kept. The store calls it with its
// clock minus the largest admitted future skew.
func (l *Layout) Prune(s *State, horizonMillis int64) {
	l.fit(s)
	l.mustWhole(s, "Prune")
	for i := range l.feats {
		f := &l.feats[i]
		if f.hop == 0 {
			continue
		}
		fs := &s.feats[i]
		if len(fs.tiles) == 0 {
			continue
		}
		bottom := subSat(floorDiv(horizonMillis, f.hop), f.span)
		if fs.tiles[0].idx >= bottom {
			continue
		}
		fs.dropFront(firstAtLeast(fs.tiles, bottom), f.obj)
	}
}

// firstAtLeast returns the position of the first tile with idx >= x.
func firstAtLeast(tiles []tile, x int64) int {
	lo, hi := 0, len(tiles)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if tiles[m].idx < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// MemBytes is about how much memory s holds: its struct and the capacity of
// every slice and string it owns, scratch included. Caches that keep
// decoded states bound themselves by it, as a state's encoded size says
// little about its decoded one (a count_distinct set, last_k strings).
func (s *State) MemBytes() int {
	n := int(unsafe.Sizeof(*s)) + cap(s.feats)*int(unsafe.Sizeof(featState{})) +
		cap(s.hashes)*8 + cap(s.regs) + cap(s.secs)*int(unsafe.Sizeof([]byte(nil)))
	for i := range s.feats {
		f := &s.feats[i]
		n += cap(f.tiles)*int(unsafe.Sizeof(tile{})) + cap(f.objs)*int(unsafe.Sizeof(tileObj{}))
		for j := range f.objs[:cap(f.objs)] {
			o := &f.objs[:cap(f.objs)][j]
			n += len(o.s) + cap(o.list)*int(unsafe.Sizeof(entry{})) + cap(o.set)*8 + cap(o.hll)
			for _, e := range o.list[:cap(o.list)] {
				n += len(e.s) // slots past len keep their strings until reused
			}
		}
	}
	return n
}
