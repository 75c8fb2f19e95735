package aggregate_test

import (
	"math"
	"testing"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
)

func vI(i int64) aggregate.Value   { return aggregate.Value{Kind: aggregate.KindInt64, I: i} }
func vF(f float64) aggregate.Value { return aggregate.Value{Kind: aggregate.KindFloat64, F: f} }
func vS(s string) aggregate.Value  { return aggregate.Value{Kind: aggregate.KindString, S: s} }
func vList(vs ...aggregate.Value) aggregate.Value {
	return aggregate.Value{Kind: aggregate.KindList, L: vs}
}

func present(v aggregate.Value, at int64) aggregate.Result {
	return aggregate.Result{Value: v, Status: aggregate.StatusPresent, EventMillis: at}
}

func null(at int64) aggregate.Result {
	return aggregate.Result{Status: aggregate.StatusNull, EventMillis: at}
}

var notFound = aggregate.Result{Status: aggregate.StatusNotFound}

// Fields of the edge-case view: 0 amount int64, 1 price float64, 2 merchant string.
const (
	fCount = iota
	fSumInt
	fSumFloat
	fMinFloat
	fLast
	fLastK
	fDistinct
	fAvgInt
	fStddev
	fVariance
	fLastLifetime
	fCountLifetime
	fCountField
	fMaxInt
)

func edgeLayout(t *testing.T) *aggregate.Layout {
	t.Helper()
	w := func(sp aggregate.Spec) aggregate.Spec {
		sp.WindowMillis, sp.HopMillis = hour, minute
		return sp
	}
	amount := aggregate.Spec{Field: 0, FieldKind: aggregate.KindInt64}
	price := aggregate.Spec{Field: 1, FieldKind: aggregate.KindFloat64}
	merchant := aggregate.Spec{Field: 2, FieldKind: aggregate.KindString}
	op := func(sp aggregate.Spec, o aggregate.Op) aggregate.Spec { sp.Op = o; return sp }
	specs := []aggregate.Spec{
		fCount:         w(aggregate.Spec{Op: aggregate.OpCount, Field: -1}),
		fSumInt:        w(op(amount, aggregate.OpSum)),
		fSumFloat:      w(op(price, aggregate.OpSum)),
		fMinFloat:      w(op(price, aggregate.OpMin)),
		fLast:          w(op(merchant, aggregate.OpLast)),
		fLastK:         func() aggregate.Spec { sp := w(op(merchant, aggregate.OpLastK)); sp.K = 2; return sp }(),
		fDistinct:      w(op(merchant, aggregate.OpCountDistinct)),
		fAvgInt:        w(op(amount, aggregate.OpAvg)),
		fStddev:        w(op(price, aggregate.OpStddev)),
		fVariance:      w(op(price, aggregate.OpVariance)),
		fLastLifetime:  op(merchant, aggregate.OpLast),
		fCountLifetime: {Op: aggregate.OpCount, Field: -1},
		fCountField:    w(op(amount, aggregate.OpCount)),
		fMaxInt:        w(op(amount, aggregate.OpMax)),
	}
	l, err := aggregate.NewLayout(specs, 2*hour)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type ev struct {
	t        int64
	amount   aggregate.Value
	price    aggregate.Value
	merchant aggregate.Value
}

// TestWindowEdges pins the window semantics on hand-computed cases: a 1h
// window with a 1m hop, TTL 2h.
func TestWindowEdges(t *testing.T) {
	l := edgeLayout(t)
	const t0 = 100 * day // a day boundary, so also an hour and minute edge
	tests := []struct {
		name    string
		events  []ev
		at      int64
		feature int
		want    aggregate.Result
		// refOK: the reference agrees (reads at or after the latest event).
		refOK bool
	}{
		{"empty window count", []ev{{t: t0, amount: vI(5)}}, t0 + hour + 2*minute, fCount, present(vI(0), t0), true},
		{"empty window int sum", []ev{{t: t0, amount: vI(5)}}, t0 + hour + 2*minute, fSumInt, present(vI(0), t0), true},
		{"empty window float sum", []ev{{t: t0, price: vF(5)}}, t0 + hour + 2*minute, fSumFloat, present(vF(0), t0), true},
		{"empty window min", []ev{{t: t0, price: vF(5)}}, t0 + hour + 2*minute, fMinFloat, null(t0), true},
		{"empty window last", []ev{{t: t0, merchant: vS("a")}}, t0 + hour + 2*minute, fLast, null(t0), true},
		{"empty window last_k", []ev{{t: t0, merchant: vS("a")}}, t0 + hour + 2*minute, fLastK, null(t0), true},
		{"empty window count_distinct", []ev{{t: t0, merchant: vS("a")}}, t0 + hour + 2*minute, fDistinct, null(t0), true},
		{"empty window avg", []ev{{t: t0, amount: vI(5)}}, t0 + hour + 2*minute, fAvgInt, null(t0), true},
		{"empty window stddev", []ev{{t: t0, price: vF(5)}}, t0 + hour + 2*minute, fStddev, null(t0), true},
		{"lifetime outlives its window", []ev{{t: t0, merchant: vS("a")}}, t0 + hour + 2*minute, fLastLifetime, present(vS("a"), t0), true},
		{"no events", nil, t0, fCount, notFound, true},

		// The tail: tiles with start >= floor((T - W)/h)*h.
		{"tail on tile edge, event on it", []ev{{t: t0}, {t: t0 + hour}}, t0 + hour, fCount, present(vI(2), t0+hour), true},
		{"tail on tile edge, event just before", []ev{{t: t0 - 1}, {t: t0 + hour}}, t0 + hour, fCount, present(vI(1), t0+hour), true},
		{"tail rounded down (sawtooth)", []ev{{t: t0}, {t: t0 + hour}}, t0 + hour + 59*second, fCount, present(vI(2), t0+hour), true},
		{"tail moves one hop later", []ev{{t: t0 + 59*second}, {t: t0 + hour}}, t0 + hour + minute, fCount, present(vI(1), t0+hour), true},
		// The head includes T itself.
		{"T exactly on an event", []ev{{t: t0, amount: vI(1)}, {t: t0 + 30*minute, amount: vI(2)}}, t0 + 30*minute, fSumInt, present(vI(3), t0+30*minute), true},
		{"head is exact to the tile before the latest event", []ev{{t: t0, amount: vI(1)}, {t: t0 + 30*second, amount: vI(2)}}, t0 + 10*second, fSumInt, present(vI(3), t0+30*second), false},
		{"tiles after T are not read", []ev{{t: t0, amount: vI(1)}, {t: t0 + 5*minute, amount: vI(2)}}, t0 + 10*second, fSumInt, present(vI(1), t0+5*minute), false},

		// last and last_k: latest event time, ties to the later arrival.
		{"last tie goes to later arrival", []ev{{t: t0, merchant: vS("a")}, {t: t0, merchant: vS("b")}}, t0, fLast, present(vS("b"), t0), true},
		{"last ignores a late event", []ev{{t: t0, merchant: vS("a")}, {t: t0 - 1, merchant: vS("b")}}, t0, fLast, present(vS("a"), t0), true},
		{"last skips nulls", []ev{{t: t0, merchant: vS("a")}, {t: t0 + 1}}, t0 + 1, fLast, present(vS("a"), t0), true},
		{"last_k newest first, ties later arrival first", []ev{{t: t0, merchant: vS("a")}, {t: t0 + 1, merchant: vS("b")}, {t: t0 + 1, merchant: vS("c")}}, t0 + 1, fLastK, present(vList(vS("c"), vS("b")), t0+1), true},
		{"last_k across tiles with a late event", []ev{{t: t0 + 2*minute, merchant: vS("a")}, {t: t0 + 3*minute, merchant: vS("b")}, {t: t0 + 2*minute + 1, merchant: vS("c")}}, t0 + 3*minute, fLastK, present(vList(vS("b"), vS("c")), t0+3*minute), true},
		{"last_k shorter than k", []ev{{t: t0, merchant: vS("a")}}, t0, fLastK, present(vList(vS("a")), t0), true},

		// count with and without a field, kinds.
		{"count over events counts null fields", []ev{{t: t0}, {t: t0, amount: vI(1)}}, t0, fCount, present(vI(2), t0), true},
		{"count of a field skips nulls", []ev{{t: t0}, {t: t0, amount: vI(1)}}, t0, fCountField, present(vI(1), t0), true},
		{"a value of the wrong kind counts as missing", []ev{{t: t0, amount: vF(1)}, {t: t0, amount: vI(2)}}, t0, fSumInt, present(vI(2), t0), true},
		{"count_distinct", []ev{{t: t0, merchant: vS("a")}, {t: t0 + 2*minute, merchant: vS("b")}, {t: t0 + 3*minute, merchant: vS("a")}}, t0 + 3*minute, fDistinct, present(vI(2), t0+3*minute), true},

		// avg, stddev, variance.
		{"avg over ints", []ev{{t: t0, amount: vI(1)}, {t: t0 + 2*minute, amount: vI(2)}}, t0 + 2*minute, fAvgInt, present(vF(1.5), t0+2*minute), true},
		{"variance is the sample variance", []ev{{t: t0, price: vF(1)}, {t: t0 + 2*minute, price: vF(3)}}, t0 + 2*minute, fVariance, present(vF(2), t0+2*minute), true},
		{"stddev", []ev{{t: t0, price: vF(1)}, {t: t0 + 2*minute, price: vF(3)}}, t0 + 2*minute, fStddev, present(vF(math.Sqrt2), t0+2*minute), true},
		{"stddev of one value is null", []ev{{t: t0, price: vF(1)}}, t0, fStddev, null(t0), true},

		// TTL.
		{"visible until latest + ttl", []ev{{t: t0}}, t0 + 2*hour, fCountLifetime, present(vI(1), t0), true},
		{"not found after latest + ttl", []ev{{t: t0}}, t0 + 2*hour + 1, fCountLifetime, notFound, true},
		{"gap of exactly ttl keeps state", []ev{{t: t0}, {t: t0 + 2*hour}}, t0 + 2*hour, fCountLifetime, present(vI(2), t0+2*hour), true},
		{"gap past ttl resets state", []ev{{t: t0}, {t: t0 + 2*hour + 1}}, t0 + 2*hour + 1, fCountLifetime, present(vI(1), t0+2*hour+1), true},
		{"late event after a reset", []ev{{t: t0, merchant: vS("a")}, {t: t0 + 3*hour, merchant: vS("b")}, {t: t0 + 2*hour, merchant: vS("c")}}, t0 + 3*hour, fLastLifetime, present(vS("b"), t0+3*hour), true},

		// Exact int64 sums: saturate only when the window's true sum overflows.
		{"int sum saturates high", []ev{{t: t0, amount: vI(math.MaxInt64)}, {t: t0, amount: vI(1)}}, t0, fSumInt, present(vI(math.MaxInt64), t0), true},
		{"int sum saturates low", []ev{{t: t0, amount: vI(math.MinInt64)}, {t: t0 + 2*minute, amount: vI(-1)}}, t0 + 2*minute, fSumInt, present(vI(math.MinInt64), t0+2*minute), true},
		{"int sum exact through overflow", []ev{{t: t0, amount: vI(math.MaxInt64)}, {t: t0, amount: vI(1)}, {t: t0 + 2*minute, amount: vI(-2)}}, t0 + 2*minute, fSumInt, present(vI(math.MaxInt64-1), t0+2*minute), true},
		{"int avg past int64", []ev{{t: t0, amount: vI(math.MaxInt64)}, {t: t0, amount: vI(math.MaxInt64)}}, t0, fAvgInt, present(vF(math.MaxInt64), t0), true},
		{"int max", []ev{{t: t0, amount: vI(-3)}, {t: t0 + 2*minute, amount: vI(-7)}}, t0 + 2*minute, fMaxInt, present(vI(-3), t0+2*minute), true},

		// IEEE specials never panic and follow IEEE.
		{"inf minus inf", []ev{{t: t0, price: vF(math.Inf(1))}, {t: t0 + 2*minute, price: vF(math.Inf(-1))}}, t0 + 2*minute, fSumFloat, present(vF(math.NaN()), t0+2*minute), true},
		{"min with NaN is NaN", []ev{{t: t0, price: vF(1)}, {t: t0 + 2*minute, price: vF(math.NaN())}}, t0 + 2*minute, fMinFloat, present(vF(math.NaN()), t0+2*minute), true},
		{"min of -0 and +0", []ev{{t: t0, price: vF(0)}, {t: t0 + 2*minute, price: vF(math.Copysign(0, -1))}}, t0 + 2*minute, fMinFloat, present(vF(math.Copysign(0, -1)), t0+2*minute), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := l.NewState()
			var raw []aggregatetest.Event
			for _, e := range tc.events {
				fields := []aggregate.Value{e.amount, e.price, e.merchant}
				l.Fold(s, e.t, fields)
				raw = append(raw, aggregatetest.Event{Millis: e.t, Fields: fields})
			}
			got := l.Read(s, tc.feature, tc.at)
			if !aggregatetest.Equal(got, tc.want, 1e-15) {
				t.Errorf("Read(feature %d, at %d)\n got %+v\nwant %+v", tc.feature, tc.at, got, tc.want)
			}
			// The same through an encode/decode round trip, bit for bit,
			// and for every feature through ReadEncoded.
			enc := l.AppendEncode(nil, s)
			s2 := l.NewState()
			if err := l.Decode(s2, enc); err != nil {
				t.Fatal(err)
			}
			if again := l.Read(s2, tc.feature, tc.at); !aggregatetest.Equal(again, got, 0) {
				t.Errorf("after decode: %+v, before %+v", again, got)
			}
			all := make([]int, len(l.Specs()))
			for i := range all {
				all[i] = i
			}
			out := make([]aggregate.Result, len(all))
			if err := l.ReadEncoded(l.NewState(), enc, all, tc.at, out); err != nil {
				t.Fatal(err)
			}
			for f := range all {
				if want := l.Read(s, f, tc.at); !aggregatetest.Equal(out[f], want, 0) {
					t.Errorf("feature %d: ReadEncoded %+v, Read %+v", f, out[f], want)
				}
			}
			if tc.refOK {
				ref := aggregatetest.Reference(l.Specs(), l.TTLMillis(), raw, tc.feature, tc.at)
				if !aggregatetest.Equal(ref, tc.want, 1e-15) {
					t.Errorf("Reference = %+v, want %+v", ref, tc.want)
				}
			}
		})
	}
}

// TestNegativeTimes checks the floor division of tile indices before 1970.
func TestNegativeTimes(t *testing.T) {
	l := edgeLayout(t)
	s := l.NewState()
	for _, at := range []int64{-2*minute - 1, -2 * minute, -minute - 1, -1, 0} {
		l.Fold(s, at, nil)
	}
	// T = -1: window [floor((-1 - 1h)/1m)*1m, -1] = [-61m, -1].
	if got, want := l.Read(s, fCount, -1), present(vI(4), 0); !aggregatetest.Equal(got, want, 0) {
		t.Errorf("count at -1 = %+v, want %+v", got, want)
	}
	// T = 1h - 2m: tail floor((-2m)/1m)*1m = -2m: the events at -2m, -1m-1, -1, 0.
	if got, want := l.Read(s, fCount, hour-2*minute), present(vI(4), 0); !aggregatetest.Equal(got, want, 0) {
		t.Errorf("count at 58m = %+v, want %+v", got, want)
	}
	// T = 1h - 2m + 1ms... still tail -2m; T = 1h - 1m: tail -1m: the events at -1 and 0.
	if got, want := l.Read(s, fCount, hour-minute), present(vI(2), 0); !aggregatetest.Equal(got, want, 0) {
		t.Errorf("count at 59m = %+v, want %+v", got, want)
	}
}

// TestExtremeTimes folds and reads at the ends of the int64 range: nothing
// panics and nothing wraps around.
func TestExtremeTimes(t *testing.T) {
	l := edgeLayout(t)
	for _, at := range []int64{math.MinInt64, math.MinInt64 + 1, math.MaxInt64 - 1, math.MaxInt64} {
		s := l.NewState()
		l.Fold(s, at, []aggregate.Value{vI(1), vF(1), vS("a")})
		for f := range l.Specs() {
			r := l.Read(s, f, at)
			if r.Status == aggregate.StatusNotFound {
				t.Errorf("feature %d at %d: not found right after folding", f, at)
			}
		}
		l.Prune(s, at)
		s2 := l.NewState()
		if err := l.Decode(s2, l.AppendEncode(nil, s)); err != nil {
			t.Fatalf("at %d: %v", at, err)
		}
		if got := l.Read(s2, fCount, at); got.Value.I != 1 {
			t.Errorf("count at %d after prune and round trip = %+v", at, got)
		}
	}
}

// TestPruneKeepsReads checks Prune drops old tiles without changing reads
// at or after the horizon.
func TestPruneKeepsReads(t *testing.T) {
	l := edgeLayout(t)
	s := l.NewState()
	const t0 = 100 * day
	for i := int64(0); i < 120; i++ {
		l.Fold(s, t0+i*minute, []aggregate.Value{vI(i), vF(float64(i)), vS("m")})
	}
	horizon := t0 + 119*minute
	before := make([]aggregate.Result, len(l.Specs()))
	for f := range before {
		before[f] = l.Read(s, f, horizon)
	}
	sizeBefore := len(l.AppendEncode(nil, s))
	l.Prune(s, horizon)
	for f := range before {
		if got := l.Read(s, f, horizon); !aggregatetest.Equal(got, before[f], 0) {
			t.Errorf("feature %d: %+v after prune, %+v before", f, got, before[f])
		}
	}
	// The window at horizon covers tiles 59m..119m: 61 of the 120.
	if got := l.Read(s, fCount, horizon); got.Value.I != 61 {
		t.Errorf("count = %+v, want 61", got)
	}
	if sizeAfter := len(l.AppendEncode(nil, s)); sizeAfter >= sizeBefore {
		t.Errorf("encoded size %d after prune, %d before: nothing pruned", sizeAfter, sizeBefore)
	}
}
