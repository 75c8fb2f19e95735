package aggregate_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/featured-dev/featured/aggregate"
)

// TestHashValueStable pins HashValue: it is part of the on-disk format.
// The golden values were cross-checked with an independent Python
// implementation of FNV-1a 64 over (kind tag, little-endian bytes) + fmix64.
func TestHashValueStable(t *testing.T) {
	tests := []struct {
		v    aggregate.Value
		want uint64
	}{
		{vI(0), 0xbfcb1a2fdd1fff6f},
		{vI(42), 0x640467e21fb54bb},
		{vF(1.5), 0x5497d5f720e48655},
		{vS(""), 0x9e1997e507d81f0d},
		{vS("merchant-1"), 0xb37b08d843f3f98f},
		{aggregate.Value{Kind: aggregate.KindBool, I: 1}, 0xdbaf48912ce66809},
	}
	for _, tc := range tests {
		if got := aggregate.HashValue(tc.v); got != tc.want {
			t.Errorf("HashValue(%+v) = %#x, want %#x", tc.v, got, tc.want)
		}
	}
	same := [][2]aggregate.Value{
		{vF(0), vF(math.Copysign(0, -1))},
		{vF(math.NaN()), vF(math.Float64frombits(0x7ff8dead00000001))},
		{aggregate.Value{Kind: aggregate.KindBool, I: 1}, aggregate.Value{Kind: aggregate.KindBool, I: 7}},
	}
	for _, p := range same {
		if aggregate.HashValue(p[0]) != aggregate.HashValue(p[1]) {
			t.Errorf("HashValue(%+v) != HashValue(%+v)", p[0], p[1])
		}
	}
	if aggregate.HashValue(vI(1)) == aggregate.HashValue(aggregate.Value{Kind: aggregate.KindBool, I: 1}) {
		t.Error("int64 1 and bool true hash the same")
	}
}

func distinctLayout(t *testing.T, window, hop int64, bound int) *aggregate.Layout {
	t.Helper()
	l, err := aggregate.NewLayout([]aggregate.Spec{{Op: aggregate.OpCountDistinct, Field: 0, FieldKind: aggregate.KindInt64, WindowMillis: window, HopMillis: hop, K: bound}}, 8*day)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestCountDistinctExactThenSketch checks the exact count up to the bound
// and the HyperLogLog error beyond it, over windows of many tiles.
func TestCountDistinctExactThenSketch(t *testing.T) {
	for _, n := range []int{1, 10, 999, 1000, 1001, 5000, 50_000, 300_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			l := distinctLayout(t, day, hour, 0)
			s := l.NewState()
			rng := rand.New(rand.NewPCG(uint64(n), 1))
			const t0 = 100 * day
			// Each distinct value twice, spread over 24 tiles, shuffled.
			vals := rng.Perm(2 * n)
			for i, x := range vals {
				l.Fold(s, t0+int64(i)*(day-1)/int64(len(vals)), []aggregate.Value{vI(int64(x % n))})
			}
			got := l.Read(s, 0, t0+day-1)
			if n <= aggregate.DefaultDistinctBound {
				if got.Value.I != int64(n) {
					t.Fatalf("count_distinct = %d, want exactly %d", got.Value.I, n)
				}
				return
			}
			t.Logf("n=%d estimate=%d", n, got.Value.I)
			// Standard error 1.6%: allow 4 sigma.
			if rel := math.Abs(float64(got.Value.I)-float64(n)) / float64(n); rel > 0.065 {
				t.Fatalf("count_distinct = %d, want %d within 6.5%% (off by %.1f%%)", got.Value.I, n, 100*rel)
			}
		})
	}
}

// TestCountDistinctIndependentOfTiles folds the same values into one tile
// and into many: the window's result is the same, bit for bit, and equals
// EstimateDistinct over the values' hashes.
func TestCountDistinctIndependentOfTiles(t *testing.T) {
	for _, n := range []int{5, 30, 31, 200} {
		const bound = 30
		one := distinctLayout(t, day, day, bound)
		many := distinctLayout(t, day, minute, bound)
		s1, s2 := one.NewState(), many.NewState()
		var hashes []uint64
		const t0 = 100 * day
		for i := 0; i < 3*n; i++ {
			v := []aggregate.Value{vI(int64(i % n))}
			if i < n {
				hashes = append(hashes, aggregate.HashValue(v[0]))
			}
			at := t0 + int64(i)*13*minute%day
			one.Fold(s1, at, v)
			many.Fold(s2, at, v)
		}
		r1 := one.Read(s1, 0, t0+day-1)
		r2 := many.Read(s2, 0, t0+day-1)
		want := int64(n)
		if n > bound {
			want = aggregate.EstimateDistinct(hashes)
		}
		if r1.Value.I != want || r2.Value.I != want {
			t.Errorf("n=%d: one tile %d, many tiles %d, want %d", n, r1.Value.I, r2.Value.I, want)
		}
	}
}

func TestEstimateDistinct(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 100, 3000, 20_000, 1_000_000} {
		hashes := make([]uint64, n)
		for i := range hashes {
			hashes[i] = aggregate.HashValue(vI(rng.Int64()))
		}
		got := aggregate.EstimateDistinct(hashes)
		if math.Abs(float64(got)-float64(n)) > 0.05*float64(n)+0.5 {
			t.Errorf("EstimateDistinct(%d hashes) = %d", n, got)
		}
		// Duplicates change nothing.
		if n > 0 {
			if again := aggregate.EstimateDistinct(append(hashes, hashes[:n/2]...)); again != got {
				t.Errorf("EstimateDistinct with duplicates = %d, without %d", again, got)
			}
		}
	}
}
