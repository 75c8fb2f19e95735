package aggregate_test

import (
	"fmt"

	"github.com/featured-dev/featured/aggregate"
)

// A view with three features over the fields amount (float64) and merchant
// (string): spend over 7 days, transactions in the last hour, last merchant.
func Example() {
	const hour, day = int64(3_600_000), int64(86_400_000)
	l, err := aggregate.NewLayout([]aggregate.Spec{
		{Op: aggregate.OpSum, Field: 0, FieldKind: aggregate.KindFloat64, WindowMillis: 7 * day, HopMillis: aggregate.DefaultHopMillis(7 * day)},
		{Op: aggregate.OpCount, Field: -1, WindowMillis: hour, HopMillis: aggregate.DefaultHopMillis(hour)},
		{Op: aggregate.OpLast, Field: 1, FieldKind: aggregate.KindString},
	}, 8*day)
	if err != nil {
		panic(err)
	}
	s := l.NewState()
	now := int64(1_764_000_000_000)
	for _, e := range []struct {
		ago      int64
		amount   float64
		merchant string
	}{{3 * day, 12.5, "grocer"}, {2 * hour, 40, "airline"}, {10 * 60_000, 3.25, "cafe"}} {
		if err := aggregate.Admit(now-e.ago, now, l.TTLMillis(), 5*60_000); err != nil {
			panic(err)
		}
		l.Fold(s, now-e.ago, []aggregate.Value{
			{Kind: aggregate.KindFloat64, F: e.amount},
			{Kind: aggregate.KindString, S: e.merchant},
		})
	}
	// What the store keeps, and a lookup from those bytes.
	data := l.AppendEncode(nil, s)
	out := make([]aggregate.Result, 3)
	if err := l.ReadEncoded(l.NewState(), data, []int{0, 1, 2}, now, out); err != nil {
		panic(err)
	}
	fmt.Println("spend_7d:", out[0].Value.F)
	fmt.Println("txn_count_1h:", out[1].Value.I)
	fmt.Println("last_merchant:", out[2].Value.S)
	// Nine days later the state has expired.
	fmt.Println(l.Read(s, 0, now+9*day).Status == aggregate.StatusNotFound)
	// Output:
	// spend_7d: 55.75
	// txn_count_1h: 1
	// last_merchant: cafe
	// true
}
