package aggregate_test

import (
	"math"
	"testing"

	"github.com/featured-dev/featured/aggregate"
)

func TestSaturatingArithmetic(t *testing.T) {
	const maxI, minI = math.MaxInt64, math.MinInt64
	tests := []struct{ a, b, add, sub int64 }{
		{1, 2, 3, -1},
		{maxI, 1, maxI, maxI - 1},
		{maxI, -1, maxI - 1, maxI},
		{minI, -1, minI, minI + 1},
		{minI, 1, minI + 1, minI},
		{0, minI, minI, maxI},
		{-1, minI, minI, maxI},
		{maxI, maxI, maxI, 0},
		{minI, minI, minI, 0},
		{5, 0, 5, 5},
	}
	for _, tc := range tests {
		if got := aggregate.AddSat(tc.a, tc.b); got != tc.add {
			t.Errorf("addSat(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.add)
		}
		if got := aggregate.SubSat(tc.a, tc.b); got != tc.sub {
			t.Errorf("subSat(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.sub)
		}
	}
	for _, tc := range []struct{ a, b, want int64 }{
		{7, 3, 2}, {-7, 3, -3}, {-6, 3, -2}, {0, 3, 0}, {-1, 60_000, -1}, {minI, 1000, minI/1000 - 1}, {maxI, 1, maxI},
	} {
		if got := aggregate.FloorDiv(tc.a, tc.b); got != tc.want {
			t.Errorf("floorDiv(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
