package aggregate_test

import (
	"bytes"
	"testing"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
)

// FuzzDecode feeds arbitrary bytes to Decode and ReadEncoded of a layout
// with every operator. Decode must never panic; what it accepts must encode
// back to the same bytes, read, fold and prune without panicking, and read
// the same through ReadEncoded.
func FuzzDecode(f *testing.F) {
	fields := []aggregate.Kind{aggregate.KindInt64, aggregate.KindFloat64, aggregate.KindString, aggregate.KindBool}
	specs := aggregatetest.RandomSpecs(1, fields, 8*day)
	for i := range specs {
		switch specs[i].Op {
		case aggregate.OpCountDistinct:
			specs[i].K = 4 // sketches with few events
		case aggregate.OpLastK:
			specs[i].K = 2
		}
	}
	l, err := aggregate.NewLayout(specs, 8*day)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(l.AppendEncode(nil, l.NewState()))
	for seed := uint64(1); seed <= 4; seed++ {
		s := l.NewState()
		for i, e := range aggregatetest.Stream(seed, aggregatetest.StreamOptions{Events: int(3 * seed * seed)}) {
			l.Fold(s, e.Millis, e.Fields)
			if i%5 == 4 {
				f.Add(l.AppendEncode(nil, s))
			}
		}
		f.Add(l.AppendEncode(nil, s))
	}
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, byte(len(specs))})
	all := make([]int, len(specs))
	for i := range all {
		all[i] = i
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return // cap: big inputs only slow the fuzzer down
		}
		s := l.NewState()
		scratch := l.NewState()
		out := make([]aggregate.Result, len(all))
		readErr := l.ReadEncoded(scratch, data, all, 0, out)
		if err := l.Decode(s, data); err != nil {
			return
		}
		if enc := l.AppendEncode(nil, s); !bytes.Equal(enc, data) {
			t.Fatalf("decode then encode changed the bytes:\n in %x\nout %x", data, enc)
		}
		latest, _ := s.MaxEventMillis()
		for _, at := range []int64{latest, latest + day, 0} {
			if err := l.ReadEncoded(scratch, data, all, at, out); err != nil {
				t.Fatalf("Decode accepted what ReadEncoded rejects: %v (first read: %v)", err, readErr)
			}
			for i := range all {
				if got := l.Read(s, i, at); !aggregatetest.Equal(got, out[i], 0) {
					t.Fatalf("feature %d at %d: Read %+v, ReadEncoded %+v", i, at, got, out[i])
				}
			}
		}
		l.Fold(s, latest, []aggregate.Value{vI(1), vF(2), vS("x"), {Kind: aggregate.KindBool, I: 1}})
		l.Prune(s, latest)
		_ = l.AppendEncode(nil, s)
	})
}
