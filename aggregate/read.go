package aggregate

import "math"

// Read returns feature's value as of atMillis.
//
// If s is empty or its latest event is older than the TTL
// (MaxEventMillis < atMillis - TTL) the result is StatusNotFound with a
// null value. Otherwise a windowed feature covers the tiles whose start is
// in [floor((atMillis - W)/hop)*hop, atMillis], at most W/hop + 1 tiles: the
// tail is rounded down to a tile edge and the head is exact for reads at or
// after the latest event (a read before it still sees the whole tile holding
// atMillis). A lifetime feature covers its accumulator. An empty window
// reads count = 0 and sum = 0 (StatusPresent; sum in the field's kind) and
// null with StatusNull for every other operator. Result.EventMillis is the
// chosen event's time for last and last_k (the newest of the list), the
// state's latest event time otherwise.
//
// Floating point combines tiles in ascending start order; within a tile
// values were folded in arrival order. The same tiles always give the same
// bits. Read panics if feature is out of range.
func (l *Layout) Read(s *State, feature int, atMillis int64) Result {
	var r Result
	l.ReadTo(s, feature, atMillis, &r)
	return r
}

// ReadTo stores Read(s, feature, atMillis) in *out, for callers that read
// many values into memory of their own (an export reads ten million): it
// saves copying each Result through the stack twice.
func (l *Layout) ReadTo(s *State, feature int, atMillis int64, out *Result) {
	f := &l.feats[feature]
	if !s.has || s.maxEventMillis < subSat(atMillis, l.ttlMillis) {
		*out = Result{Status: StatusNotFound}
		return
	}
	if len(s.feats) != len(l.feats) {
		panic("aggregate: State used with a Layout of another view version")
	}
	fs := &s.feats[feature]
	lo, hi := 0, len(fs.tiles)
	if f.hop > 0 && hi > 0 {
		top := floorDiv(atMillis, f.hop)
		if fs.tiles[hi-1].idx > top {
			hi = firstAtLeast(fs.tiles, addSat(top, 1))
		}
		if bottom := subSat(top, f.span); hi > 0 && fs.tiles[0].idx < bottom {
			lo = firstAtLeast(fs.tiles[:hi], bottom)
		}
	}
	switch f.code {
	case cLastK:
		*out = readLastK(f, fs.objs[lo:hi], s.maxEventMillis)
		return
	case cDistinct:
		if lo == hi {
			*out = Result{Status: StatusNull, EventMillis: s.maxEventMillis}
			return
		}
		*out = Result{Value: Value{Kind: KindInt64, I: s.readDistinct(fs.objs[lo:hi], f.k)}, EventMillis: s.maxEventMillis}
		return
	}
	var objs []tileObj
	if f.obj {
		objs = fs.objs[lo:hi]
	}
	c, str := combine(f, fs.tiles[lo:hi], objs)
	resultTo(f, &c, str, s.maxEventMillis, out)
}

// summarized reports whether the feature's tiles combine into one tile of
// the same shape (every operator but last_k and count_distinct). Encoded
// windowed sections of such features carry the combination of all their
// tiles, which is the read result whenever every tile is in the window.
func (f *feat) summarized() bool { return f.code != cLastK && f.code != cDistinct }

// combine folds the tiles of a summarized feature, in ascending order, into
// one tile (idx 0), and returns last's string. Read is result(combine(tiles
// in the window)); the same tiles always combine to the same bits.
func combine(f *feat, tiles []tile, objs []tileObj) (c tile, str string) {
	if len(tiles) == 0 {
		return c, ""
	}
	switch f.code {
	case cCount:
		for i := range tiles {
			c.n += tiles[i].n
		}
	case cSumInt, cAvgInt:
		var x i128
		for i := range tiles {
			c.n += tiles[i].n
			x = x.add(i128{lo: uint64(tiles[i].a), hi: tiles[i].b})
		}
		c.a, c.b = int64(x.lo), x.hi
	case cSumFloat, cAvgFloat:
		sum := 0.0
		for i := range tiles {
			c.n += tiles[i].n
			sum += b2f(tiles[i].a)
		}
		c.a = f2b(sum)
	case cMinInt:
		c.a = tiles[0].a
		for i := range tiles {
			c.n += tiles[i].n
			c.a = min(c.a, tiles[i].a)
		}
	case cMaxInt:
		c.a = tiles[0].a
		for i := range tiles {
			c.n += tiles[i].n
			c.a = max(c.a, tiles[i].a)
		}
	case cMinFloat:
		v := b2f(tiles[0].a)
		for i := range tiles {
			c.n += tiles[i].n
			v = math.Min(v, b2f(tiles[i].a))
		}
		c.a = f2b(v)
	case cMaxFloat:
		v := b2f(tiles[0].a)
		for i := range tiles {
			c.n += tiles[i].n
			v = math.Max(v, b2f(tiles[i].a))
		}
		c.a = f2b(v)
	case cVarInt, cVarFloat:
		// Chan et al.'s parallel formula, ascending.
		var n int64
		var mean, m2 float64
		for i := range tiles {
			t := &tiles[i]
			if n == 0 {
				n, mean, m2 = t.n, b2f(t.a), b2f(t.b)
				continue
			}
			nb := t.n
			nt := n + nb
			d := b2f(t.a) - mean
			mean += d * float64(nb) / float64(nt)
			m2 = m2 + b2f(t.b) + d*d*float64(n)*float64(nb)/float64(nt)
			n = nt
		}
		c.n, c.a, c.b = n, f2b(mean), f2b(m2)
	case cLast:
		// Tiles partition time: the newest tile holds the latest event.
		c = tiles[len(tiles)-1]
		c.idx = 0
		if f.obj {
			str = objs[len(objs)-1].s
		}
	}
	return c, str
}

// result turns a combined tile of a summarized feature into a Result.
func result(f *feat, c *tile, str string, maxEventMillis int64) Result {
	var r Result
	resultTo(f, c, str, maxEventMillis, &r)
	return r
}

// resultTo is result into *r.
func resultTo(f *feat, c *tile, str string, maxEventMillis int64, r *Result) {
	*r = Result{Status: StatusPresent, EventMillis: maxEventMillis}
	switch f.code {
	case cCount:
		r.Value = Value{Kind: KindInt64, I: c.n}
		return
	case cSumInt:
		r.Value = Value{Kind: KindInt64, I: i128{lo: uint64(c.a), hi: c.b}.clamp()}
		return
	case cSumFloat:
		r.Value = Value{Kind: KindFloat64, F: b2f(c.a)}
		return
	}
	if c.n == 0 {
		r.Status = StatusNull
		return
	}
	switch f.code {
	case cMinInt, cMaxInt:
		r.Value = Value{Kind: KindInt64, I: c.a}
	case cMinFloat, cMaxFloat:
		r.Value = Value{Kind: KindFloat64, F: b2f(c.a)}
	case cAvgInt:
		r.Value = Value{Kind: KindFloat64, F: i128{lo: uint64(c.a), hi: c.b}.float() / float64(c.n)}
	case cAvgFloat:
		r.Value = Value{Kind: KindFloat64, F: b2f(c.a) / float64(c.n)}
	case cVarInt, cVarFloat:
		if c.n < 2 {
			r.Status = StatusNull
			return
		}
		v := b2f(c.b) / float64(c.n-1)
		if f.op == OpStddev {
			v = math.Sqrt(v)
		}
		r.Value = Value{Kind: KindFloat64, F: v}
	case cLast:
		r.Value = makeValue(f.kind, c.b, str)
		r.EventMillis = c.a
	}
}

// readLastK merges the newest-first lists of tiles (ascending), newest
// tile first, keeping up to K values.
func readLastK(f *feat, objs []tileObj, maxEventMillis int64) Result {
	n := 0
	for i := range objs {
		n += len(objs[i].list)
	}
	if n == 0 {
		return Result{Status: StatusNull, EventMillis: maxEventMillis}
	}
	n = min(n, f.k)
	list := make([]Value, 0, n)
	for i := len(objs) - 1; i >= 0 && len(list) < n; i-- {
		for _, e := range objs[i].list {
			if len(list) == n {
				break
			}
			list = append(list, makeValue(f.kind, e.bits, e.s))
		}
	}
	return Result{Value: Value{Kind: KindList, L: list}, Status: StatusPresent, EventMillis: objs[len(objs)-1].list[0].t}
}

func makeValue(k Kind, bits int64, s string) Value {
	switch k {
	case KindFloat64:
		return Value{Kind: k, F: b2f(bits)}
	case KindString:
		return Value{Kind: k, S: s}
	}
	return Value{Kind: k, I: bits}
}
