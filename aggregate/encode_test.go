package aggregate_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
)

// TestEncodeGolden pins the format (format.md) on a small state worked out
// by hand.
func TestEncodeGolden(t *testing.T) {
	l, err := aggregate.NewLayout([]aggregate.Spec{
		{Op: aggregate.OpCount, Field: -1, WindowMillis: hour, HopMillis: minute},
		{Op: aggregate.OpLast, Field: 0, FieldKind: aggregate.KindString},
	}, day)
	if err != nil {
		t.Fatal(err)
	}
	s := l.NewState()
	l.Fold(s, 2*minute, []aggregate.Value{vS("a")})
	l.Fold(s, 3*minute, []aggregate.Value{vS("b")})
	got := hex.EncodeToString(l.AppendEncode(nil, s))
	want := "01" + "20bf020000000000" + // version, maxEventMillis 180000
		"02" + // two features
		"07" + "02" + "04" + "01" + // count: 7 bytes, 2 tiles, first index 2 (zigzag 4), last = first + 1
		"02" + // summary: n 2 over all tiles
		"01" + "01" + "01" + // tile 2: n 1; delta 1, tile 3: n 1
		"06" + "01" + "c0fc15" + "01" + "62" // last, lifetime: 6 bytes, 1 tile: time 180000 (zigzag), "b"
	if got != want {
		t.Errorf("encoding\n got %s\nwant %s", got, want)
	}
	if empty := hex.EncodeToString(l.AppendEncode(nil, l.NewState())); empty != "010000000000000080" {
		t.Errorf("empty state encodes as %s", empty)
	}
}

func TestMaxEventMillis(t *testing.T) {
	l := edgeLayout(t)
	s := l.NewState()
	l.Fold(s, 12345, nil)
	l.Fold(s, -5, nil)
	if got, err := aggregate.MaxEventMillis(l.AppendEncode(nil, s)); got != 12345 || err != nil {
		t.Errorf("MaxEventMillis = %d, %v; want 12345", got, err)
	}
	if got, err := aggregate.MaxEventMillis(l.AppendEncode(nil, l.NewState())); got != math.MinInt64 || err != nil {
		t.Errorf("MaxEventMillis(empty) = %d, %v; want MinInt64", got, err)
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, {2, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := aggregate.MaxEventMillis(bad); !errors.Is(err, aggregate.ErrCorrupt) {
			t.Errorf("MaxEventMillis(%x) error = %v, want ErrCorrupt", bad, err)
		}
	}
	if max, ok := s.MaxEventMillis(); max != 12345 || !ok || s.Empty() {
		t.Errorf("State.MaxEventMillis() = %d, %v", max, ok)
	}
}

// richState folds a random stream through a layout with every operator.
func richState(t testing.TB, seed uint64, events int) (*aggregate.Layout, *aggregate.State) {
	t.Helper()
	opts := aggregatetest.StreamOptions{Events: events, Cardinality: 50, GapFraction: -1}
	opts.EnsureDefaults()
	l, err := aggregate.NewLayout(aggregatetest.RandomSpecs(seed, opts.Fields, 8*day), 8*day)
	if err != nil {
		t.Fatal(err)
	}
	s := l.NewState()
	for _, e := range aggregatetest.Stream(seed, opts) {
		l.Fold(s, e.Millis, e.Fields)
	}
	return l, s
}

func TestDecodeRejects(t *testing.T) {
	l, s := richState(t, 5, 200)
	good := l.AppendEncode(nil, s)
	// Every strict prefix is an error, never a panic (every length up to 1
	// KiB, then a spread).
	for n := 0; n < len(good); n += 1 + n/1024 {
		if err := l.Decode(l.NewState(), good[:n]); !errors.Is(err, aggregate.ErrCorrupt) {
			t.Fatalf("prefix of %d/%d bytes: error %v, want ErrCorrupt", n, len(good), err)
		}
	}
	// Hand-made corruptions of the golden layout's encoding.
	small, err := aggregate.NewLayout([]aggregate.Spec{
		{Op: aggregate.OpCount, Field: -1, WindowMillis: hour, HopMillis: minute},
		{Op: aggregate.OpLast, Field: 0, FieldKind: aggregate.KindString},
	}, day)
	if err != nil {
		t.Fatal(err)
	}
	const head = "01" + "20bf020000000000"
	tests := []struct {
		name, hex, want string
	}{
		{"valid", head + "02" + "0702040102010101" + "0601c0fc150162", ""},
		{"version", "02" + head[2:] + "02" + "0702040102010101" + "0601c0fc150162", "format version 2"},
		{"empty with a time", head, "no features after"},
		{"feature count", head + "03" + "0702040102010101" + "0601c0fc150162", "3 features encoded, layout has 2"},
		{"trailing bytes", head + "02" + "0702040102010101" + "0601c0fc150162" + "00", "1 trailing bytes"},
		{"section too long", head + "02" + "7f02040102010101" + "0601c0fc150162", "feature 0: section length"},
		{"zero tile delta", head + "02" + "0702040102010001" + "0601c0fc150162", "tile 1: index delta 0"},
		{"zero count", head + "02" + "0702040102000101" + "0601c0fc150162", "tile 0: aggregate: corrupt encoded state: truncated or malformed"},
		{"overlong varint", head + "02" + "080204010281000101" + "0601c0fc150162", "tile 0: aggregate: corrupt encoded state: truncated or malformed"},
		{"summary mismatch", head + "02" + "0702040103010101" + "0601c0fc150162", "summary does not match the tiles"},
		{"index range mismatch", head + "02" + "0702040202010101" + "0601c0fc150162", "last tile index 3, head says 4"},
		{"index range too short", head + "02" + "0702040002010101" + "0601c0fc150162", "tile index range 2 + 0 for 2 tiles"},
		{"lifetime with two tiles", head + "02" + "0702040102010101" + "0b02c0fc150162c0fc150162", "lifetime feature with 2 tiles"},
		{"string past the section", head + "02" + "0702040102010101" + "0601c0fc150562", "feature 1: tile 0: aggregate: corrupt encoded state: truncated or malformed"},
		{"bytes left in section", head + "02" + "080204010201010100" + "0601c0fc150162", "1 trailing bytes in section"},
		{"huge tile count", head + "02" + "05ffffff7f01" + "0601c0fc150162", "tile count"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := hex.DecodeString(tc.hex)
			if err != nil {
				t.Fatal(err)
			}
			st := small.NewState()
			small.Fold(st, 1, nil) // Decode must replace this.
			err = small.Decode(st, data)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if !bytes.Equal(small.AppendEncode(nil, st), data) {
					t.Fatal("round trip changed the bytes")
				}
				return
			}
			if !errors.Is(err, aggregate.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode error %v, want ErrCorrupt containing %q", err, tc.want)
			}
			if !st.Empty() {
				t.Error("state not empty after a failed Decode")
			}
		})
	}
}

func TestDecodeRejectsDistinctAndLastK(t *testing.T) {
	l, err := aggregate.NewLayout([]aggregate.Spec{
		{Op: aggregate.OpCountDistinct, Field: 0, FieldKind: aggregate.KindInt64, K: 2},
		{Op: aggregate.OpLastK, Field: 0, FieldKind: aggregate.KindInt64, K: 2},
	}, day)
	if err != nil {
		t.Fatal(err)
	}
	s := l.NewState()
	l.Fold(s, 10, []aggregate.Value{vI(1)})
	l.Fold(s, 11, []aggregate.Value{vI(2)})
	good := l.AppendEncode(nil, s)
	// Layout: header(9) nfeat(1) | len(1) ntiles(1) c(1) h1(8) h2(8) | len(1) ntiles(1) c(1) t(1) v(1) d(1) v(1)
	distinct := 9 + 1 + 1 + 1 // offset of the hash count
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"unsorted hashes", mutate(func(b []byte) []byte {
			copy(b[distinct+1:distinct+9], good[distinct+9:distinct+17])
			copy(b[distinct+9:distinct+17], good[distinct+1:distinct+9])
			return b
		}), "not strictly ascending"},
		{"more hashes than the bound", mutate(func(b []byte) []byte {
			b[distinct] = 3
			return b
		}), "3 distinct hashes (bound 2"},
		{"last_k longer than k", mutate(func(b []byte) []byte {
			b[distinct+17+2] = 3
			return b
		}), "3 last_k values"},
	}
	for _, tc := range tests {
		if err := l.Decode(l.NewState(), tc.data); !errors.Is(err, aggregate.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	// A sketch register above 53.
	for i := 0; i < 3; i++ {
		l.Fold(s, 12, []aggregate.Value{vI(int64(100 + i))})
	}
	sk := l.AppendEncode(nil, s)
	// Registers start after header, nfeat, 2-byte section length, ntiles
	// and the 0 that marks a sketch.
	at := 9 + 1 + 2 + 1 + 1
	if sk[at-1] != 0 {
		t.Fatalf("no sketch marker at %d: % x", at-1, sk[:at+4])
	}
	sk[at+7] = 54
	if err := l.Decode(l.NewState(), sk); !errors.Is(err, aggregate.ErrCorrupt) || !strings.Contains(err.Error(), "register 7 is 54") {
		t.Errorf("register 54: error %v", err)
	}
}

// TestDecodeReplacesAndReuses checks that Decode replaces whatever the
// State held and allocates nothing per tile once warm.
func TestDecodeReplacesAndReuses(t *testing.T) {
	l, s := richState(t, 9, 400)
	enc := l.AppendEncode(nil, s)
	_, other := richState(t, 9, 50)
	if err := l.Decode(other, enc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(l.AppendEncode(nil, other), enc) {
		t.Fatal("Decode into a used state did not replace it")
	}
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	// Strings are the only allocations: count them in the encoding's
	// string values by decoding a layout without string fields.
	numeric, err := aggregate.NewLayout([]aggregate.Spec{
		{Op: aggregate.OpSum, Field: 0, FieldKind: aggregate.KindFloat64, WindowMillis: 7 * day, HopMillis: hour},
		{Op: aggregate.OpCountDistinct, Field: 1, FieldKind: aggregate.KindInt64, WindowMillis: day, HopMillis: 5 * minute},
		{Op: aggregate.OpLastK, Field: 1, FieldKind: aggregate.KindInt64, WindowMillis: day, HopMillis: hour, K: 3},
		{Op: aggregate.OpStddev, Field: 0, FieldKind: aggregate.KindFloat64},
	}, 8*day)
	if err != nil {
		t.Fatal(err)
	}
	ns := numeric.NewState()
	for i := int64(0); i < 7*24*4; i++ {
		numeric.Fold(ns, 100*day+i*15*minute, []aggregate.Value{vF(float64(i)), vI(i % 7)})
	}
	data := numeric.AppendEncode(nil, ns)
	dst := numeric.NewState()
	if allocs := testing.AllocsPerRun(20, func() {
		if err := numeric.Decode(dst, data); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("Decode into a warm state: %v allocations, want 0", allocs)
	}
}

// TestFoldAllocs checks in-order Fold allocates nothing in steady state:
// tiles dropped by Prune are reused for new ones.
func TestFoldAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	l := benchLayout(t)
	s := l.NewState()
	at := int64(100 * day)
	fields := []aggregate.Value{vF(12.5), vS("merchant-7")}
	step := func() {
		at += 7 * second
		l.Fold(s, at, fields)
		if at%hour < 7*second {
			l.Prune(s, at)
		}
	}
	for i := 0; i < 200_000; i++ { // warm: more than 7 days of events
		step()
	}
	if allocs := testing.AllocsPerRun(50_000, step); allocs != 0 {
		t.Errorf("Fold: %v allocations per event, want 0", allocs)
	}
}

func TestReadEncoded(t *testing.T) {
	l, s := richState(t, 11, 300)
	enc := l.AppendEncode(nil, s)
	latest, _ := s.MaxEventMillis()
	scratch := l.NewState()
	features := []int{7, 2, 7, len(l.Specs()) - 1}
	out := make([]aggregate.Result, len(features))
	for _, at := range []int64{latest, latest + hour, latest + 8*day + 1} {
		if err := l.ReadEncoded(scratch, enc, features, at, out); err != nil {
			t.Fatal(err)
		}
		for i, f := range features {
			if want := l.Read(s, f, at); !aggregatetest.Equal(out[i], want, 0) {
				t.Errorf("feature %d at %d: ReadEncoded %+v, Read %+v", f, at, out[i], want)
			}
		}
	}
	if err := l.ReadEncoded(scratch, enc, []int{len(l.Specs())}, latest, out); err == nil {
		t.Error("ReadEncoded accepted a feature out of range")
	}
	if err := l.ReadEncoded(scratch, enc[:len(enc)-1], []int{len(l.Specs()) - 1}, latest, out); !errors.Is(err, aggregate.ErrCorrupt) {
		t.Errorf("ReadEncoded of a truncated state: %v", err)
	}
	if err := l.ReadEncoded(scratch, enc, features, latest, out); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Fold on a ReadEncoded state did not panic")
		}
	}()
	l.Fold(scratch, latest, nil)
}

func TestZeroState(t *testing.T) {
	l := edgeLayout(t)
	var s aggregate.State
	if got := l.Read(&s, fCount, 0); got.Status != aggregate.StatusNotFound {
		t.Errorf("Read of a zero State = %+v", got)
	}
	l.Fold(&s, 5, nil)
	if got := l.Read(&s, fCount, 5); got.Value.I != 1 {
		t.Errorf("count after one fold into a zero State = %+v", got)
	}
	s.Reset()
	if !s.Empty() {
		t.Error("not empty after Reset")
	}
}
