package aggregate_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/featured-dev/featured/aggregate"
)

// TestMemBytes: the estimate caches bound themselves by stays within a
// factor of two of what the heap holds for states of every kind of tile
// (plain, strings, last_k lists, count_distinct sets), and grows with them.
func TestMemBytes(t *testing.T) {
	const hour, day = int64(3_600_000), int64(86_400_000)
	l, err := aggregate.NewLayout([]aggregate.Spec{
		{Op: aggregate.OpSum, Field: 0, FieldKind: aggregate.KindFloat64, WindowMillis: 7 * day, HopMillis: aggregate.DefaultHopMillis(7 * day)},
		{Op: aggregate.OpLast, Field: 1, FieldKind: aggregate.KindString},
		{Op: aggregate.OpLastK, Field: 1, FieldKind: aggregate.KindString, K: 50},
		{Op: aggregate.OpCountDistinct, Field: 1, FieldKind: aggregate.KindString, WindowMillis: day, HopMillis: hour, K: 2000},
	}, 8*day)
	if err != nil {
		t.Fatal(err)
	}
	now := int64(1_764_000_000_000)
	const n = 200
	states := make([]*aggregate.State, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range states {
		s := l.NewState()
		for e := 0; e < 300; e++ {
			at := now - int64(e)*10*60_000
			l.Fold(s, at, []aggregate.Value{
				{Kind: aggregate.KindFloat64, F: float64(e)},
				{Kind: aggregate.KindString, S: fmt.Sprintf("merchant-%d-%d-%s", i, e, "padding-padding")},
			})
		}
		states[i] = s
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int(after.HeapAlloc - before.HeapAlloc)
	est := 0
	for _, s := range states {
		est += s.MemBytes()
	}
	runtime.KeepAlive(states)
	if est < heap/2 || est > heap*2 {
		t.Fatalf("MemBytes of %d states: %d, the heap grew by %d", n, est, heap)
	}
	if small := l.NewState().MemBytes(); small <= 0 || small*20 > est/n {
		t.Fatalf("an empty state is %d bytes, a full one %d", small, est/n)
	}
}
