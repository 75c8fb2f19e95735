package offline

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
	"github.com/featured-dev/featured/registry"
)

// TestBackfill applies a view ("mirror", the same features and TTL as
// "spend") in the middle of a stream, backfills it from the log while pushes
// keep arriving, and checks: (1) afterwards mirror answers exactly what
// spend answers for every user, so the backfill missed nothing and counted
// nothing twice; (2) served-mode exports at instants before the apply, between
// apply and backfill (mirror held only live events) and after it equal the
// online answers, bit for bit.
func TestBackfill(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, 1_800_000_000_000, Options{SegmentBytes: 8192})
	defer r.close()
	ctx := context.Background()
	samples := r.streamTo(t, 21, 8, 60)

	i := strings.Index(testDefs, "  - name: short")
	spendDef := testDefs[strings.Index(testDefs, "  - name: spend"):i]
	defs, err := registry.ParseYAML([]byte(testDefs + strings.Replace(spendDef, "name: spend", "name: mirror", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.reg.Apply(defs); err != nil {
		t.Fatal(err)
	}
	samples = append(samples, r.streamTo(t, 22, 8, 30)...)

	mirror, err := r.reg.Snapshot().View("mirror", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Pushes go on while the backfill runs.
	var wg sync.WaitGroup
	wg.Go(func() {
		ev := aggregatetest.Stream(5, aggregatetest.StreamOptions{Events: 200, StartMillis: r.clock.Load(), MeanGapMillis: 60_000,
			Fields: []aggregate.Kind{aggregate.KindFloat64, aggregate.KindBool, aggregate.KindInt64, aggregate.KindString}, GapFraction: -1, MaxLateMillis: 600_000})
		for k, e := range ev {
			r.clock.Store(max(r.clock.Load()+1, e.Millis))
			if _, err := r.pusher.PushValues(ctx, "tx", []map[string]aggregate.Value{eventMap([]string{"user-001", "user-002", "late-comer"}[k%3], e)}, false); err != nil {
				t.Error(err)
				return
			}
		}
	})
	n, err := Backfill(ctx, r.store, r.log, mirror)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n == 0 {
		t.Fatal("backfill built no entity")
	}
	r.clock.Add(1)
	samples = append(samples, r.streamTo(t, 23, 8, 30)...)

	spend, _ := r.reg.Snapshot().View("spend", 0)
	users := []string{"late-comer", "nobody"}
	for u := 0; u < 8; u++ {
		users = append(users, "user-00"+string(rune('0'+u)))
	}
	for _, u := range users {
		a, b := r.lookup(spend, u), r.lookup(mirror, u)
		for f := range a.results {
			if !aggregatetest.Equal(a.results[f], b.results[f], 0) {
				t.Errorf("%s %s: spend %+v, backfilled mirror %+v", u, spend.Features[f].Name, a.results[f], b.results[f])
			}
		}
	}

	spine := filepath.Join(dir, "spine.parquet")
	writeSpine(t, spine, samples)
	var m memSink
	if _, err := r.x.Export(ctx, spine, "", Request{Features: allRefs(r.reg), Statuses: true, FullNames: true}, &m); err != nil {
		t.Fatal(err)
	}
	compare(t, &m, samples, true)

	// The switch survives a restart: the marker is recovered with the log.
	r.close()
	r.open()
	var m2 memSink
	if _, err := r.x.Export(ctx, spine, "", Request{Features: allRefs(r.reg), Statuses: true, FullNames: true}, &m2); err != nil {
		t.Fatal(err)
	}
	compare(t, &m2, samples, true)
}
