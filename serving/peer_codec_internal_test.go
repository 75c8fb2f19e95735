package serving

import (
	"bytes"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/featured-dev/featured/aggregate"
)

// peerResults are results of every status and kind, edge values included.
var peerResults = []aggregate.Result{
	{Status: aggregate.StatusNotFound},
	{Status: aggregate.StatusNull, EventMillis: -1},
	{Status: aggregate.StatusPresent, EventMillis: 1_700_000_000_000, Value: aggregate.Value{Kind: aggregate.KindInt64, I: math.MinInt64}},
	{Status: aggregate.StatusPresent, EventMillis: math.MaxInt64, Value: aggregate.Value{Kind: aggregate.KindFloat64, F: -0.0}},
	{Status: aggregate.StatusPresent, Value: aggregate.Value{Kind: aggregate.KindFloat64, F: math.Inf(1)}},
	{Status: aggregate.StatusPresent, Value: aggregate.Value{Kind: aggregate.KindString, S: ""}},
	{Status: aggregate.StatusPresent, Value: aggregate.Value{Kind: aggregate.KindString, S: "m\x00é"}},
	{Status: aggregate.StatusPresent, Value: aggregate.Value{Kind: aggregate.KindBool, I: 1}},
	{Status: aggregate.StatusPresent, Value: aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{
		{Kind: aggregate.KindString, S: "a"}, {Kind: aggregate.KindNull}, {Kind: aggregate.KindInt64, I: 7},
	}}},
	{Status: aggregate.StatusPresent, Value: aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{}}},
}

// TestPeerResultRoundTrip: every result decodes to itself, bit for bit
// (NaN and -0 included), and a truncated encoding is an error, never a
// panic or a wrong value.
func TestPeerResultRoundTrip(t *testing.T) {
	rs := append(peerResults, aggregate.Result{Status: aggregate.StatusPresent, Value: aggregate.Value{Kind: aggregate.KindFloat64, F: math.NaN()}})
	var b []byte
	for i := range rs {
		b = appendPeerResult(b, &rs[i])
	}
	off := 0
	for i := range rs {
		var got aggregate.Result
		var err error
		if off, err = decodePeerResult(b, off, &got); err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
		want := rs[i]
		if want.Value.Kind == aggregate.KindFloat64 {
			if math.Float64bits(got.Value.F) != math.Float64bits(want.Value.F) {
				t.Fatalf("result %d: float bits %x, want %x", i, math.Float64bits(got.Value.F), math.Float64bits(want.Value.F))
			}
			got.Value.F, want.Value.F = 0, 0
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("result %d (-want +got):\n%s", i, d)
		}
	}
	if off != len(b) {
		t.Fatalf("decoded %d of %d bytes", off, len(b))
	}
	for n := range len(b) {
		off := 0
		var r aggregate.Result
		var err error
		for off < n && err == nil {
			off, err = decodePeerResult(b[:n], off, &r)
		}
		if err == nil && off != n {
			t.Fatalf("prefix of %d bytes: stopped at %d without an error", n, off)
		}
	}
}

// TestPeerUnitRoundTrip: units decode to what was appended.
func TestPeerUnitRoundTrip(t *testing.T) {
	var b []byte
	b = appendPeerUnit(b, 0, 7, []byte("u1"))
	b = appendPeerUnit(b, 1, 300, []byte{0x80, 0, 0, 0, 0, 0, 0, 42})
	key, part, ent, off, err := nextPeerUnit(b, 0)
	if err != nil || key != 0 || part != 7 || string(ent) != "u1" {
		t.Fatalf("unit 0: %d %d %q %v", key, part, ent, err)
	}
	key, part, ent, off, err = nextPeerUnit(b, off)
	if err != nil || key != 1 || part != 300 || !bytes.Equal(ent, []byte{0x80, 0, 0, 0, 0, 0, 0, 42}) || off != len(b) {
		t.Fatalf("unit 1: %d %d %x %d %v", key, part, ent, off, err)
	}
	if _, _, _, _, err := nextPeerUnit(b[:len(b)-1], 3+len("u1")); err == nil {
		t.Fatal("truncated unit decoded")
	}
}

// FuzzPeerResults: any bytes decode to results or an error, never a
// panic; what decodes re-encodes to bytes that decode to the same results
// (varints may arrive overlong, so the bytes themselves may differ).
func FuzzPeerResults(f *testing.F) {
	var b []byte
	for i := range peerResults {
		b = appendPeerResult(b, &peerResults[i])
	}
	f.Add(b)
	f.Add([]byte{0, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		for off := 0; off < len(data); {
			var r, again aggregate.Result
			next, err := decodePeerResult(data, off, &r)
			if err != nil {
				return
			}
			enc := appendPeerResult(nil, &r)
			if n, err := decodePeerResult(enc, 0, &again); err != nil || n != len(enc) {
				t.Fatalf("re-encoded %x of %x: %d, %v", enc, data[off:next], n, err)
			}
			if !bytes.Equal(appendPeerResult(nil, &again), enc) {
				t.Fatalf("%x decodes to %+v, re-encoded to %+v", data[off:next], r, again)
			}
			off = next
		}
	})
}
