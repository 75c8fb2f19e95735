package aggregatetest_test

import (
	"math"
	"reflect"
	"testing"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
)

const (
	minute = int64(60_000)
	hour   = 60 * minute
	day    = 24 * hour
)

func vI(i int64) aggregate.Value   { return aggregate.Value{Kind: aggregate.KindInt64, I: i} }
func vF(f float64) aggregate.Value { return aggregate.Value{Kind: aggregate.KindFloat64, F: f} }
func vS(s string) aggregate.Value  { return aggregate.Value{Kind: aggregate.KindString, S: s} }

// TestReference checks the reference itself on hand-computed cases, so that
// it is not only ever compared with the implementation it judges.
func TestReference(t *testing.T) {
	const ttl = 2 * hour
	win := func(op aggregate.Op, field int, kind aggregate.Kind) aggregate.Spec {
		return aggregate.Spec{Op: op, Field: field, FieldKind: kind, WindowMillis: hour, HopMillis: 10 * minute}
	}
	specs := []aggregate.Spec{
		0: win(aggregate.OpCount, -1, aggregate.KindNull),
		1: win(aggregate.OpSum, 0, aggregate.KindInt64),
		2: {Op: aggregate.OpCount, Field: -1},
		3: {Op: aggregate.OpLastK, Field: 1, FieldKind: aggregate.KindString, K: 3},
		4: {Op: aggregate.OpCountDistinct, Field: 1, FieldKind: aggregate.KindString, K: 2},
		5: win(aggregate.OpVariance, 2, aggregate.KindFloat64),
		6: win(aggregate.OpLast, 1, aggregate.KindString),
	}
	const t0 = 1000 * day
	ev := func(at int64, amount int64, merchant string, price float64) aggregatetest.Event {
		return aggregatetest.Event{Millis: at, Fields: []aggregate.Value{vI(amount), vS(merchant), vF(price)}}
	}
	events := []aggregatetest.Event{
		ev(t0, 1, "a", 1),
		ev(t0+15*minute, 2, "b", 2),
		ev(t0+15*minute, 4, "c", 4), // tie with the previous one
		ev(t0+5*minute, 8, "a", 8),  // late
		ev(t0+70*minute, 16, "d", 16),
	}
	present := func(v aggregate.Value, at int64) aggregate.Result {
		return aggregate.Result{Value: v, Status: aggregate.StatusPresent, EventMillis: at}
	}
	latest := t0 + 70*minute
	tests := []struct {
		name    string
		events  []aggregatetest.Event
		feature int
		at      int64
		want    aggregate.Result
	}{
		// At 1h10m the window starts at floor((1h10m - 1h)/10m)*10m = 10m.
		{"window count", events, 0, latest, present(vI(3), latest)},
		{"window sum", events, 1, latest, present(vI(22), latest)},
		// At 1h5m the tail rounds down to 0: all but the event at 1h10m.
		{"sawtooth tail", events, 1, t0 + 65*minute, present(vI(15), latest)},
		{"lifetime count", events, 2, latest, present(vI(5), latest)},
		{"last_k ties: later arrival first", events, 3, latest, present(aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{vS("d"), vS("c"), vS("b")}}, latest)},
		{"count_distinct past the bound", events, 4, latest, present(vI(aggregate.EstimateDistinct([]uint64{
			aggregate.HashValue(vS("a")), aggregate.HashValue(vS("b")), aggregate.HashValue(vS("c")), aggregate.HashValue(vS("d")),
		})), latest)},
		// prices 2, 4, 16 in the window: mean 22/3, sample variance 57.333...
		{"sample variance", events, 5, latest, present(vF(((2-22.0/3)*(2-22.0/3)+(4-22.0/3)*(4-22.0/3)+(16-22.0/3)*(16-22.0/3))/2), latest)},
		{"last", events[:3], 6, t0 + 15*minute, present(vS("c"), t0+15*minute)},
		{"expired", events, 0, latest + ttl + 1, aggregate.Result{Status: aggregate.StatusNotFound}},
		{"reset by a gap past ttl", append(events[:2:2], ev(t0+15*minute+ttl+1, 1, "z", 1)), 2, t0 + 15*minute + ttl + 1, present(vI(1), t0+15*minute+ttl+1)},
		{"no events", nil, 0, t0, aggregate.Result{Status: aggregate.StatusNotFound}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := aggregatetest.Reference(specs, ttl, tc.events, tc.feature, tc.at)
			if !aggregatetest.Equal(got, tc.want, 1e-12) {
				t.Errorf("Reference = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestEqual(t *testing.T) {
	p := func(v aggregate.Value) aggregate.Result {
		return aggregate.Result{Value: v, EventMillis: 7}
	}
	nan := math.NaN()
	tests := []struct {
		name      string
		got, want aggregate.Result
		tol       float64
		equal     bool
	}{
		{"same int", p(vI(3)), p(vI(3)), 0, true},
		{"other int", p(vI(3)), p(vI(4)), 1, false},
		{"kinds differ", p(vI(3)), p(vF(3)), 1, false},
		{"float within tolerance", p(vF(1e6)), p(vF(1e6 + 1e-4)), 1e-9, true},
		{"float outside tolerance", p(vF(1e6)), p(vF(1e6 + 1e-2)), 1e-9, false},
		{"near zero compares absolutely", p(vF(1e-20)), p(vF(-1e-20)), 1e-9, true},
		{"tolerance 0 is bitwise", p(vF(0)), p(vF(math.Copysign(0, -1))), 0, false},
		{"NaN equals NaN", p(vF(nan)), p(vF(nan)), 1e-9, true},
		{"NaN is not a number", p(vF(nan)), p(vF(1)), 1e-9, false},
		{"lists", p(aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{vS("a"), vS("b")}}), p(aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{vS("a"), vS("b")}}), 0, true},
		{"list order", p(aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{vS("a"), vS("b")}}), p(aggregate.Value{Kind: aggregate.KindList, L: []aggregate.Value{vS("b"), vS("a")}}), 0, false},
		{"status", p(vI(1)), aggregate.Result{Value: vI(1), Status: aggregate.StatusNull, EventMillis: 7}, 0, false},
		{"event time", p(vI(1)), aggregate.Result{Value: vI(1), EventMillis: 8}, 0, false},
	}
	for _, tc := range tests {
		if got := aggregatetest.Equal(tc.got, tc.want, tc.tol); got != tc.equal {
			t.Errorf("%s: Equal(%+v, %+v, %g) = %v", tc.name, tc.got, tc.want, tc.tol, got)
		}
	}
}

func TestStream(t *testing.T) {
	a := aggregatetest.Stream(1, aggregatetest.StreamOptions{})
	if b := aggregatetest.Stream(1, aggregatetest.StreamOptions{}); !reflect.DeepEqual(a, b) {
		t.Error("same seed, different streams")
	}
	if c := aggregatetest.Stream(2, aggregatetest.StreamOptions{}); reflect.DeepEqual(a, c) {
		t.Error("different seeds, same stream")
	}
	if len(a) != 300 || len(a[0].Fields) != 4 {
		t.Fatalf("default stream: %d events of %d fields", len(a), len(a[0].Fields))
	}
	var late, nulls, dups int
	for i, e := range a {
		if i > 0 && e.Millis < a[i-1].Millis {
			late++
		}
		if i > 0 && e.Millis == a[i-1].Millis {
			dups++
		}
		for f, v := range e.Fields {
			if v.Kind == aggregate.KindNull {
				nulls++
			} else if want := []aggregate.Kind{aggregate.KindInt64, aggregate.KindFloat64, aggregate.KindString, aggregate.KindBool}[f]; v.Kind != want {
				t.Fatalf("event %d field %d of kind %s, want %s", i, f, v.Kind, want)
			}
		}
	}
	if late == 0 || nulls == 0 || dups == 0 {
		t.Errorf("default stream has %d late events, %d nulls, %d duplicate times; want some of each", late, nulls, dups)
	}
	ordered := aggregatetest.Stream(3, aggregatetest.StreamOptions{LateFraction: -1, GapFraction: -1, NullFraction: -1, AlignFraction: -1})
	for i, e := range ordered {
		if i > 0 && (e.Millis < ordered[i-1].Millis || e.Millis-ordered[i-1].Millis > 20*minute) {
			t.Fatalf("event %d at %d after %d: late or gap with both disabled", i, e.Millis, ordered[i-1].Millis)
		}
		for _, v := range e.Fields {
			if v.Kind == aggregate.KindNull {
				t.Fatalf("event %d has a null with NullFraction -1", i)
			}
		}
	}
}

func TestRandomSpecs(t *testing.T) {
	fields := []aggregate.Kind{aggregate.KindInt64, aggregate.KindFloat64, aggregate.KindString, aggregate.KindBool}
	for seed := uint64(0); seed < 20; seed++ {
		ttl := []int64{hour, 8 * day}[seed%2]
		specs := aggregatetest.RandomSpecs(seed, fields, ttl)
		if _, err := aggregate.NewLayout(specs, ttl); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		ops := map[aggregate.Op]bool{}
		for _, sp := range specs {
			ops[sp.Op] = true
		}
		if len(ops) != int(aggregate.OpVariance) {
			t.Errorf("seed %d: %d operators, want all %d", seed, len(ops), aggregate.OpVariance)
		}
	}
}
