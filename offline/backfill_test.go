package offline

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/registry"
)

// TestBackfill applies views ("mirror" and "mirror_short", the same
// features and TTLs as "spend" and "short"; short's TTL is shorter than
// some events are late, and mirror_short adds a lifetime count, so which
// logged events the backfill admits shows) in the middle of a stream, backfills it from the log while pushes
// keep arriving, and checks: (1) afterwards mirror answers exactly what
// spend answers for every user, so the backfill missed nothing and counted
// nothing twice; (2) served-mode exports at instants before the apply, between
// apply and backfill (mirror held only live events) and after it equal the
// online answers, bit for bit.
func TestBackfill(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir, 1_800_000_000_000, eventlog.Options{SegmentBytes: 8192})
	defer r.close()
	ctx := context.Background()
	samples := r.streamTo(t, 21, 8, 60)

	i := strings.Index(testDefs, "  - name: short")
	spendDef := testDefs[strings.Index(testDefs, "  - name: spend"):i]
	shortDef := testDefs[i:]
	defs, err := registry.ParseYAML([]byte(testDefs + strings.Replace(spendDef, "name: spend", "name: mirror", 1) +
		strings.Replace(shortDef, "name: short", "name: mirror_short", 1) +
		"      - {name: cnt_life, aggregation: count}\n"))
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
	mirrorShort, err := r.reg.Snapshot().View("mirror_short", 0)
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
			if _, err := r.pusher.PushValues(ctx, "tx", []map[string]aggregate.Value{eventMap([]string{"user-001", "user-002", "late-comer"}[k%3], e)}, ingest.PushOptions{}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	n, err := Backfill(ctx, r.store, r.log, mirror)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := Backfill(ctx, r.store, r.log, mirrorShort); err != nil || m == 0 {
		t.Fatalf("backfill of mirror_short: %d entities, %v", m, err)
	}
	wg.Wait()
	if n == 0 {
		t.Fatal("backfill built no entity")
	}
	r.clock.Add(1)
	samples = append(samples, r.streamTo(t, 23, 8, 30)...)

	spend, _ := r.reg.Snapshot().View("spend", 0)
	short, _ := r.reg.Snapshot().View("short", 0)
	users := []string{"late-comer", "nobody"}
	for u := 0; u < 8; u++ {
		users = append(users, "user-00"+string(rune('0'+u)))
	}
	for _, pair := range [][2]*registry.View{{spend, mirror}, {short, mirrorShort}} {
		for _, u := range users {
			a, b := r.lookup(pair[0], u), r.lookup(pair[1], u)
			for f := range a.results { // mirror_short's extra feature is last
				if !aggregatetest.Equal(a.results[f], b.results[f], 0) {
					t.Errorf("%s %s: %s %+v, backfilled %s %+v", u, pair[0].Features[f].Name, pair[0].Name, a.results[f], pair[1].Name, b.results[f])
				}
			}
		}
	}
	if files, err := eventlog.ListFiles(r.log.Dir(), "tx"); err != nil || len(files) == 0 {
		t.Fatalf("no Parquet log files (%v): the export must read rows from files too", err)
	}

	spine := filepath.Join(dir, "spine.parquet")
	writeSpine(t, spine, samples)
	var m memSink
	if _, err := r.x.Export(ctx, spine, "", export.Request{Features: allRefs(r.reg), Statuses: true, FullNames: true}, &m); err != nil {
		t.Fatal(err)
	}
	compare(t, &m, samples, true)

	// The switch survives a restart: the marker is recovered with the log.
	r.close()
	r.open()
	var m2 memSink
	if _, err := r.x.Export(ctx, spine, "", export.Request{Features: allRefs(r.reg), Statuses: true, FullNames: true}, &m2); err != nil {
		t.Fatal(err)
	}
	compare(t, &m2, samples, true)
}
