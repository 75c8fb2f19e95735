package aggregatetest

import (
	"math"

	"github.com/featured-dev/featured/aggregate"
)

// Equal reports whether got and want are the same result: same status,
// event time and value kind; ints, bools and strings (and list elements)
// exactly equal; floats within floatTol relative to max(1, |got|, |want|)
// (so tiny values near zero compare absolutely), NaN equal to NaN, and
// floatTol 0 meaning bit-for-bit identical.
func Equal(got, want aggregate.Result, floatTol float64) bool {
	return got.Status == want.Status && got.EventMillis == want.EventMillis && equalValue(got.Value, want.Value, floatTol)
}

func equalValue(a, b aggregate.Value, tol float64) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case aggregate.KindNull:
		return true
	case aggregate.KindInt64, aggregate.KindBool:
		return a.I == b.I
	case aggregate.KindString:
		return a.S == b.S
	case aggregate.KindFloat64:
		return closeFloat(a.F, b.F, tol)
	case aggregate.KindList:
		if len(a.L) != len(b.L) {
			return false
		}
		for i := range a.L {
			if !equalValue(a.L[i], b.L[i], tol) {
				return false
			}
		}
		return true
	}
	return false
}

func closeFloat(a, b, tol float64) bool {
	if tol == 0 {
		return math.Float64bits(a) == math.Float64bits(b)
	}
	if a == b || (a != a && b != b) {
		return true
	}
	scale := max(1, math.Abs(a), math.Abs(b))
	return math.Abs(a-b) <= tol*scale
}
