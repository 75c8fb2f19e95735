package aggregate_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/featured-dev/featured/aggregate"
)

func TestNewLayoutRejects(t *testing.T) {
	const ttl = 8 * day
	sumAmount := aggregate.Spec{Op: aggregate.OpSum, Field: 0, FieldKind: aggregate.KindFloat64, WindowMillis: 7 * day, HopMillis: hour}
	with := func(f func(*aggregate.Spec)) aggregate.Spec {
		sp := sumAmount
		f(&sp)
		return sp
	}
	tests := []struct {
		name  string
		spec  aggregate.Spec
		ttl   int64
		field string
		want  string // substring of the error
	}{
		{"zero ttl", sumAmount, 0, "ttl_millis", "ttl_millis: must be > 0"},
		{"unknown op", with(func(s *aggregate.Spec) { s.Op = 99 }), ttl, "op", "unknown operator 99"},
		{"sum over strings", with(func(s *aggregate.Spec) { s.FieldKind = aggregate.KindString }), ttl, "field_kind", "sum does not accept string fields"},
		{"avg over bools", with(func(s *aggregate.Spec) { s.Op = aggregate.OpAvg; s.FieldKind = aggregate.KindBool }), ttl, "field_kind", "avg does not accept bool"},
		{"sum without field", with(func(s *aggregate.Spec) { s.Field = -1; s.FieldKind = aggregate.KindNull }), ttl, "field", "sum needs a field"},
		{"count -1 with kind", aggregate.Spec{Op: aggregate.OpCount, Field: -1, FieldKind: aggregate.KindInt64}, ttl, "field_kind", "must be null when field is -1"},
		{"field without kind", with(func(s *aggregate.Spec) { s.FieldKind = aggregate.KindNull }), ttl, "field_kind", "field 0 has no kind"},
		{"field -2", with(func(s *aggregate.Spec) { s.Field = -2 }), ttl, "field", "got -2"},
		{"window without hop", with(func(s *aggregate.Spec) { s.HopMillis = 0 }), ttl, "hop_millis", "must be > 0 for window 7d"},
		{"window not multiple", with(func(s *aggregate.Spec) { s.HopMillis = 11 * minute }), ttl, "hop_millis", "window 7d is not a multiple of hop 11m"},
		{"window over ttl", with(func(s *aggregate.Spec) { s.WindowMillis = 30 * day }), ttl, "window_millis", "30d exceeds ttl 8d"},
		{"negative window", with(func(s *aggregate.Spec) { s.WindowMillis = -1 }), ttl, "window_millis", "must be >= 0"},
		{"lifetime with hop", with(func(s *aggregate.Spec) { s.WindowMillis = 0 }), ttl, "hop_millis", "must be 0 for a lifetime feature, got 1h"},
		{"last_k k 0", with(func(s *aggregate.Spec) { s.Op = aggregate.OpLastK }), ttl, "k", "last_k needs 1 <= k <= 1000, got 0"},
		{"last_k k huge", with(func(s *aggregate.Spec) { s.Op = aggregate.OpLastK; s.K = 1001 }), ttl, "k", "got 1001"},
		{"distinct negative bound", with(func(s *aggregate.Spec) { s.Op = aggregate.OpCountDistinct; s.K = -1 }), ttl, "k", "count_distinct bound"},
		{"sum with k", with(func(s *aggregate.Spec) { s.K = 3 }), ttl, "k", "sum takes no k, got 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok := aggregate.Spec{Op: aggregate.OpCount, Field: -1}
			_, err := aggregate.NewLayout([]aggregate.Spec{ok, tc.spec}, tc.ttl)
			if err == nil {
				t.Fatalf("NewLayout(%+v, ttl %d) = nil error", tc.spec, tc.ttl)
			}
			if !errors.Is(err, aggregate.ErrInvalidSpec) {
				t.Errorf("error %v does not match ErrInvalidSpec", err)
			}
			var se *aggregate.SpecError
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not a *SpecError", err)
			}
			wantFeature := 1
			if tc.field == "ttl_millis" {
				wantFeature = -1
			}
			if se.Feature != wantFeature || se.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q (feature %d, field %q), want feature %d, field %q, containing %q", err, se.Feature, se.Field, wantFeature, tc.field, tc.want)
			}
		})
	}
}

func TestNewLayoutAccepts(t *testing.T) {
	specs := []aggregate.Spec{
		{Op: aggregate.OpCount, Field: -1, WindowMillis: hour, HopMillis: minute},
		{Op: aggregate.OpCount, Field: 2, FieldKind: aggregate.KindString},
		{Op: aggregate.OpSum, Field: 0, FieldKind: aggregate.KindInt64, WindowMillis: 8 * day, HopMillis: 8 * day},
		{Op: aggregate.OpLastK, Field: 2, FieldKind: aggregate.KindString, K: 1000},
		{Op: aggregate.OpCountDistinct, Field: 3, FieldKind: aggregate.KindBool, K: aggregate.MaxDistinctBound},
		{Op: aggregate.OpVariance, Field: 1, FieldKind: aggregate.KindFloat64, WindowMillis: day, HopMillis: 5 * minute},
	}
	l, err := aggregate.NewLayout(specs, 8*day)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Specs(); len(got) != len(specs) || got[2] != specs[2] || l.TTLMillis() != 8*day {
		t.Errorf("Specs() = %+v, TTLMillis() = %d", got, l.TTLMillis())
	}
	specs[0].WindowMillis = 5 // NewLayout copied the specs
	if l.Specs()[0].WindowMillis != hour {
		t.Error("Layout shares the caller's specs slice")
	}
}

func TestDefaultHopMillis(t *testing.T) {
	tests := []struct{ window, want int64 }{
		{0, 0},
		{-5, 0},
		{1, 1},
		{500, 1},
		{second, second},
		{30 * second, second},
		{minute, second},
		{90 * second, second},
		{1500, 1},
		{2 * minute, minute},
		{hour, minute},
		{hour + 30*second, second},
		{2 * hour, 5 * minute},
		{90 * minute, 5 * minute},
		{day, 5 * minute},
		{36*hour + 30*minute, 5 * minute},
		{25 * hour, hour},
		{7 * day, hour},
		{30 * day, hour},
		{day + minute, minute},
	}
	for _, tc := range tests {
		got := aggregate.DefaultHopMillis(tc.window)
		if got != tc.want {
			t.Errorf("DefaultHopMillis(%d) = %d, want %d", tc.window, got, tc.want)
		}
		if tc.window > 0 && tc.window%got != 0 {
			t.Errorf("DefaultHopMillis(%d) = %d does not divide the window", tc.window, got)
		}
	}
}

func TestAdmit(t *testing.T) {
	const now, ttl, future = 1_000 * day, 8 * day, 5 * minute
	tests := []struct {
		event int64
		want  error
	}{
		{now, nil},
		{now - ttl, nil},
		{now - ttl - 1, aggregate.ErrTooLate},
		{now + future, nil},
		{now + future + 1, aggregate.ErrTooFarInFuture},
		{-1 << 63, aggregate.ErrTooLate},
		{1<<63 - 1, aggregate.ErrTooFarInFuture},
	}
	for _, tc := range tests {
		err := aggregate.Admit(tc.event, now, ttl, future)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("Admit(%d) = %v, want %v", tc.event, err, tc.want)
		}
	}
	err := aggregate.Admit(now-ttl-hour, now, ttl, future)
	if want := "aggregate: event older than ttl: event at 85705200000 is 193h before now 86400000000 (ttl 8d)"; err == nil || err.Error() != want {
		t.Errorf("Admit error %q, want %q", err, want)
	}
}

func TestNames(t *testing.T) {
	for op := aggregate.OpCount; op <= aggregate.OpVariance; op++ {
		got, err := aggregate.ParseOp(op.String())
		if err != nil || got != op {
			t.Errorf("ParseOp(%q) = %v, %v", op.String(), got, err)
		}
	}
	if _, err := aggregate.ParseOp("median"); !errors.Is(err, aggregate.ErrUnknownOp) || !strings.Contains(err.Error(), `"median"`) {
		t.Errorf("ParseOp(median) error = %v", err)
	}
	for k := aggregate.KindInt64; k <= aggregate.KindBool; k++ {
		got, err := aggregate.ParseKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k.String(), got, err)
		}
	}
	if _, err := aggregate.ParseKind("list"); !errors.Is(err, aggregate.ErrUnknownKind) {
		t.Errorf("ParseKind(list) error = %v", err)
	}
	if s := aggregate.Op(42).String(); s != "Op(42)" {
		t.Errorf("Op(42).String() = %q", s)
	}
	if s := aggregate.KindList.String(); s != "list" {
		t.Errorf("KindList.String() = %q", s)
	}
}

func TestAcceptsAndResultKind(t *testing.T) {
	const (
		N = aggregate.KindNull
		I = aggregate.KindInt64
		F = aggregate.KindFloat64
		S = aggregate.KindString
		B = aggregate.KindBool
		L = aggregate.KindList
	)
	kinds := []aggregate.Kind{N, I, F, S, B, L}
	// result kind per field kind in kinds' order; N = not accepted.
	tests := []struct {
		op   aggregate.Op
		want [6]aggregate.Kind
	}{
		{aggregate.OpCount, [6]aggregate.Kind{I, I, I, I, I, N}},
		{aggregate.OpSum, [6]aggregate.Kind{N, I, F, N, N, N}},
		{aggregate.OpMin, [6]aggregate.Kind{N, I, F, N, N, N}},
		{aggregate.OpMax, [6]aggregate.Kind{N, I, F, N, N, N}},
		{aggregate.OpAvg, [6]aggregate.Kind{N, F, F, N, N, N}},
		{aggregate.OpLast, [6]aggregate.Kind{N, I, F, S, B, N}},
		{aggregate.OpLastK, [6]aggregate.Kind{N, L, L, L, L, N}},
		{aggregate.OpCountDistinct, [6]aggregate.Kind{N, I, I, I, I, N}},
		{aggregate.OpStddev, [6]aggregate.Kind{N, F, F, N, N, N}},
		{aggregate.OpVariance, [6]aggregate.Kind{N, F, F, N, N, N}},
	}
	for _, tc := range tests {
		for i, k := range kinds {
			accepted := tc.want[i] != N
			if got := tc.op.Accepts(k); got != accepted {
				t.Errorf("%s.Accepts(%s) = %v, want %v", tc.op, k, got, accepted)
			}
			if accepted {
				if got := tc.op.ResultKind(k); got != tc.want[i] {
					t.Errorf("%s.ResultKind(%s) = %s, want %s", tc.op, k, got, tc.want[i])
				}
			}
		}
	}
}

func TestFormatMillis(t *testing.T) {
	for ms, want := range map[int64]string{0: "0ms", 1500: "1500ms", 2000: "2s", 90 * second: "90s", 5 * minute: "5m", 8 * day: "8d", 36 * hour: "36h"} {
		if got := aggregate.FormatMillis(ms); got != want {
			t.Errorf("FormatMillis(%d) = %q, want %q", ms, got, want)
		}
	}
}
