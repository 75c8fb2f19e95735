package offline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/internal/partition"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/registry"
)

// TestBackfillBounded backfills view "mirror" (a copy of "spend" applied
// mid-stream) over a log whose states far exceed the backfill's memory
// budget, holding the scan of shard 0 mid-way, and checks: (1) the peak of
// the backfill's accounted memory stays within the budget, and it spilled;
// (2) pushes into shard 0 (and 1) issued while the scan is held return
// before the backfill does: the writer is not paused for the scan; (3)
// afterwards mirror answers exactly what spend answers for every user
// (those pushes included: the tail folded them, once), and served exports
// equal the online answers, also after a restart.
func TestBackfillBounded(t *testing.T) {
	const budget = 256 << 10
	dir := t.TempDir()
	r := newRig(t, dir, 1_800_000_000_000, eventlog.Options{SegmentBytes: 16 << 10})
	defer r.close()
	ctx := context.Background()
	samples := r.streamTo(t, 41, 8, 30)

	// Many entities, each with a few events: far more state than budget.
	var users []string
	for u := 0; u < 800; u++ {
		users = append(users, fmt.Sprintf("bulk-%04d", u))
	}
	push := func(who []string, k int) {
		t.Helper()
		var evs []map[string]aggregate.Value
		for i, u := range who {
			r.clock.Add(1000)
			evs = append(evs, map[string]aggregate.Value{
				"user_id":  {Kind: aggregate.KindString, S: u},
				"ts":       {Kind: aggregate.KindInt64, I: r.clock.Load() - int64(i%7)*60_000},
				"amount":   {Kind: aggregate.KindFloat64, F: float64(k*31+i) / 8},
				"items":    {Kind: aggregate.KindInt64, I: int64(k + i)},
				"flag":     {Kind: aggregate.KindBool, I: int64((k + i) % 2)},
				"merchant": {Kind: aggregate.KindString, S: fmt.Sprintf("m%d", (k+i)%13)},
			})
		}
		res, err := r.pusher.PushValues(ctx, "tx", evs, ingest.PushOptions{})
		if err != nil || len(res.Rejected) > 0 {
			t.Fatalf("push: %+v, %v", res.Rejected, err)
		}
	}
	for k := 0; k < 4; k++ {
		for i := 0; i < len(users); i += 50 {
			push(users[i:i+50], k)
		}
	}

	spendDef := testDefs[strings.Index(testDefs, "  - name: spend"):strings.Index(testDefs, "  - name: short")]
	defs, err := registry.ParseYAML([]byte(testDefs + strings.Replace(spendDef, "name: spend", "name: mirror", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.reg.Apply(defs); err != nil {
		t.Fatal(err)
	}
	push(users[:100], 5)
	samples = append(samples, r.streamTo(t, 42, 8, 10)...)
	mirror, err := r.reg.Snapshot().View("mirror", 0)
	if err != nil {
		t.Fatal(err)
	}

	// One user per shard, pushed to while shard 0's scan is held.
	var during []string
	for _, shard := range []int{0, 1} {
		for _, u := range users {
			ent, _ := keyenc.AppendEntity(nil, aggregate.Value{Kind: aggregate.KindString, S: u})
			if partition.Of(ent, r.shards) == shard {
				during = append(during, u)
				break
			}
		}
	}
	held, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	rows := 0
	opts := BackfillOptions{MemoryBytes: budget, BatchBytes: 8 << 10, scanned: func(shard int) {
		if shard != 0 {
			return
		}
		if rows++; rows == 500 {
			once.Do(func() { close(held); <-resume })
		}
	}}
	type result struct {
		stats BackfillStats
		err   error
	}
	done := make(chan result, 1)
	go func() {
		st, err := BackfillWith(ctx, r.store, r.log, mirror, opts)
		done <- result{st, err}
	}()
	<-held
	for k := 0; k < 3; k++ {
		push(during, 10+k) // Write: returns once committed
	}
	select {
	case res := <-done:
		t.Fatalf("backfill ended (%+v, %v) while its scan was held", res.stats, res.err)
	default:
	}
	close(resume)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	st := res.stats
	t.Logf("backfill: %+v", st)
	if st.PeakMemoryBytes > budget {
		t.Errorf("peak memory %d bytes, over the budget of %d", st.PeakMemoryBytes, budget)
	}
	if st.Spills == 0 || st.Entities < len(users) {
		t.Errorf("stats %+v: want spills and at least %d entities (the log must exceed the budget)", st, len(users))
	}
	if st.TailEvents == 0 {
		t.Errorf("stats %+v: the pushes made during the scan were not folded by the tail", st)
	}
	r.clock.Add(1)
	samples = append(samples, r.streamTo(t, 43, 8, 10)...)

	spend, _ := r.reg.Snapshot().View("spend", 0)
	all := append([]string{"nobody"}, users...)
	for u := 0; u < 8; u++ {
		all = append(all, fmt.Sprintf("user-%03d", u))
	}
	equal := func(when string) {
		t.Helper()
		for _, u := range all {
			a, b := r.lookup(spend, u), r.lookup(mirror, u)
			for f := range a.results {
				if !aggregatetest.Equal(a.results[f], b.results[f], 0) {
					t.Fatalf("%s: %s %s: spend %+v, backfilled mirror %+v", when, u, spend.Features[f].Name, a.results[f], b.results[f])
				}
			}
		}
	}
	equal("after the backfill")

	spine := filepath.Join(dir, "spine.parquet")
	writeSpine(t, spine, samples)
	export1 := func(when string) {
		t.Helper()
		var m memSink
		if _, err := r.x.Export(ctx, spine, "", export.Request{Features: allRefs(r.reg), Statuses: true, FullNames: true}, &m); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		compare(t, &m, samples, true)
	}
	export1("after the backfill")
	r.close()
	r.open()
	equal("restarted")
	export1("restarted")
}
