package aggregate

import (
	"math"
	"math/bits"
)

// floorDiv is floor(a/b) for b > 0, right for negative a too (Go's / rounds
// toward zero).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// addSat is a+b saturated to the int64 range, so that times near the ends
// of the range never wrap around (they compare as "very far" instead).
func addSat(a, b int64) int64 {
	c := a + b
	if (c > a) == (b > 0) {
		return c
	}
	if b > 0 {
		return math.MaxInt64
	}
	return math.MinInt64
}

// subSat is a-b saturated to the int64 range.
func subSat(a, b int64) int64 {
	c := a - b
	if (b > 0 && c > a) || (b < 0 && c < a) {
		if b > 0 {
			return math.MinInt64
		}
		return math.MaxInt64
	}
	return c
}

// i128 is a two's complement 128-bit integer: the exact sum of int64 values.
// Sums of int64 fields are kept at 128 bits per tile and across tiles, so the
// result is exact whatever the order, and saturates only when the true sum
// of the window does not fit in an int64.
type i128 struct {
	lo uint64
	hi int64
}

func (x i128) addInt64(v int64) i128 {
	lo, c := bits.Add64(x.lo, uint64(v), 0)
	return i128{lo: lo, hi: x.hi + int64(c) + v>>63}
}

func (x i128) add(y i128) i128 {
	lo, c := bits.Add64(x.lo, y.lo, 0)
	return i128{lo: lo, hi: x.hi + y.hi + int64(c)}
}

func (x i128) sub(y i128) i128 {
	lo, b := bits.Sub64(x.lo, y.lo, 0)
	return i128{lo: lo, hi: x.hi - y.hi - int64(b)}
}

// clamp returns x saturated to the int64 range.
func (x i128) clamp() int64 {
	if x.hi == int64(x.lo)>>63 {
		return int64(x.lo)
	}
	if x.hi < 0 {
		return math.MinInt64
	}
	return math.MaxInt64
}

// float returns x rounded to a float64.
func (x i128) float() float64 {
	if x.hi == int64(x.lo)>>63 {
		return float64(int64(x.lo))
	}
	return float64(x.hi)*0x1p64 + float64(x.lo)
}

func f2b(f float64) int64 { return int64(math.Float64bits(f)) }
func b2f(b int64) float64 { return math.Float64frombits(uint64(b)) }
