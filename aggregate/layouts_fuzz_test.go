package aggregate_test

import (
	"bytes"
	"math"
	"testing"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
)

// fuzzLayouts are small layouts whose encodings differ most: FuzzDecode
// mixes every operator in one layout, so each of these gives the fuzzer a
// format it can reach quickly. Fields index the stream's int64, float64,
// string, bool.
func fuzzLayouts(tb testing.TB) []*aggregate.Layout {
	specs := [][]aggregate.Spec{
		// last_k of strings over a window, and lifetime.
		{{Op: aggregate.OpLastK, Field: 2, FieldKind: aggregate.KindString, WindowMillis: day, HopMillis: hour, K: 3},
			{Op: aggregate.OpLastK, Field: 0, FieldKind: aggregate.KindInt64, K: 2}},
		// count_distinct with a tiny exact bound, so sketches appear.
		{{Op: aggregate.OpCountDistinct, Field: 2, FieldKind: aggregate.KindString, WindowMillis: day, HopMillis: hour, K: 2},
			{Op: aggregate.OpCountDistinct, Field: 0, FieldKind: aggregate.KindInt64, K: 4}},
		// the push/Kafka views of the soak: counts and sums over hopping windows.
		{{Op: aggregate.OpCount, Field: -1, WindowMillis: hour, HopMillis: 5 * minute},
			{Op: aggregate.OpSum, Field: 0, FieldKind: aggregate.KindInt64, WindowMillis: day, HopMillis: hour},
			{Op: aggregate.OpSum, Field: 1, FieldKind: aggregate.KindFloat64}},
		// moments and extremes, lifetime and windowed.
		{{Op: aggregate.OpStddev, Field: 1, FieldKind: aggregate.KindFloat64, WindowMillis: day, HopMillis: hour},
			{Op: aggregate.OpAvg, Field: 0, FieldKind: aggregate.KindInt64},
			{Op: aggregate.OpMin, Field: 1, FieldKind: aggregate.KindFloat64, WindowMillis: hour, HopMillis: hour},
			{Op: aggregate.OpLast, Field: 3, FieldKind: aggregate.KindBool}},
	}
	var out []*aggregate.Layout
	for _, s := range specs {
		l, err := aggregate.NewLayout(s, 8*day)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// FuzzDecodeLayouts is FuzzDecode for each of fuzzLayouts (which picks
// one): Decode never panics, what it accepts encodes back to the same
// bytes, ReadEncoded accepts it and reads what Read reads, and it folds and
// prunes.
func FuzzDecodeLayouts(f *testing.F) {
	layouts := fuzzLayouts(f)
	for li, l := range layouts {
		f.Add(uint8(li), l.AppendEncode(nil, l.NewState()))
		for seed := uint64(1); seed <= 3; seed++ {
			s := l.NewState()
			for i, e := range aggregatetest.Stream(seed, aggregatetest.StreamOptions{Events: int(4 * seed * seed)}) {
				l.Fold(s, e.Millis, e.Fields)
				if i%7 == 3 {
					f.Add(uint8(li), l.AppendEncode(nil, s))
				}
			}
			f.Add(uint8(li), l.AppendEncode(nil, s))
		}
	}
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), []byte{2, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		if len(data) > 1<<16 {
			return // cap: stored states are far smaller
		}
		l := layouts[int(which)%len(layouts)]
		all := make([]int, len(l.Specs()))
		for i := range all {
			all[i] = i
		}
		s, scratch := l.NewState(), l.NewState()
		out := make([]aggregate.Result, len(all))
		readErr := l.ReadEncoded(scratch, data, all, 0, out)
		if err := l.Decode(s, data); err != nil {
			return
		}
		if enc := l.AppendEncode(nil, s); !bytes.Equal(enc, data) {
			t.Fatalf("layout %d: decode then encode changed the bytes:\n in %x\nout %x", which, data, enc)
		}
		latest, has := s.MaxEventMillis()
		want := latest
		if !has {
			want = math.MinInt64 // an empty state's marker
		}
		if m, err := aggregate.MaxEventMillis(data); err != nil || m != want {
			t.Fatalf("layout %d: MaxEventMillis %d, %v; the decoded state says %d (%v)", which, m, err, latest, has)
		}
		for _, at := range []int64{latest, latest + hour, latest + day, 0} {
			if err := l.ReadEncoded(scratch, data, all, at, out); err != nil {
				t.Fatalf("layout %d: Decode accepted what ReadEncoded rejects: %v (first read: %v)", which, err, readErr)
			}
			for i := range all {
				if got := l.Read(s, i, at); !aggregatetest.Equal(got, out[i], 0) {
					t.Fatalf("layout %d feature %d at %d: Read %+v, ReadEncoded %+v", which, i, at, got, out[i])
				}
			}
		}
		l.Fold(s, latest, []aggregate.Value{vI(1), vF(2), vS("x"), {Kind: aggregate.KindBool, I: 1}})
		l.Prune(s, latest)
		back := l.NewState()
		if err := l.Decode(back, l.AppendEncode(nil, s)); err != nil {
			t.Fatalf("layout %d: a folded state does not decode: %v", which, err)
		}
	})
}
