package offline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/registry"
)

var errCrashed = errors.New("offline test: crashed before the store committed")

// crashLog is the offline log of a store whose rebuild of one shard never
// commits: Commit of that shard's rebuild batch (the one carrying a
// backfill marker) runs in full, marker included, and then fails, so the
// store does not commit the batch. With die, the process is taken to have
// died at that instant: nothing reaches the log any more (every later
// Commit fails before it, and no Committed is passed on), and what is on
// disk is what a kill -9 would leave. Without die, the store goes on after
// a failed commit, as it does when Pebble fails one.
type crashLog struct {
	*eventlog.Log
	shard int
	die   bool
	dead  atomic.Bool
	// marked is set by MarkRebuild of shard and cleared by the Commit that
	// writes the marker; both run on shard's writer goroutine.
	marked bool
}

var _ BackfillLog = (*crashLog)(nil)

// MarkRebuild notes the rebuild of c.shard: its next Commit is the one
// carrying the marker.
func (c *crashLog) MarkRebuild(shard int, view featurestore.ViewKey) {
	if shard == c.shard {
		c.marked = true
	}
	c.Log.MarkRebuild(shard, view)
}

var _ featurestore.EventLog = (*crashLog)(nil)

// Commit runs on shard's writer goroutine, which also ran MarkRebuild.
func (c *crashLog) Commit(shard int, sync bool, nowMillis int64) ([]byte, bool, error) {
	if c.dead.Load() {
		return nil, false, errCrashed
	}
	rebuild := shard == c.shard && c.marked
	if rebuild {
		c.marked = false
	}
	pos, force, err := c.Log.Commit(shard, sync, nowMillis)
	if err != nil || !rebuild {
		return pos, force, err
	}
	if c.die {
		c.dead.Store(true)
	}
	return nil, false, errCrashed
}

func (c *crashLog) Committed(shard int, visibleMillis int64, err error) {
	if c.dead.Load() {
		return
	}
	c.Log.Committed(shard, visibleMillis, err)
}

// openWithLog opens r as rig.open does, with the store's EventLog wrapped.
func openWithLog(r *rig, wrap func(*eventlog.Log) featurestore.EventLog) {
	t := r.t
	t.Helper()
	lo := r.logOpt
	lo.Now = r.now
	var err error
	r.log, err = eventlog.Open(filepath.Join(r.dir, "offline"), lo)
	if err != nil {
		t.Fatal(err)
	}
	r.store, err = featurestore.Open(filepath.Join(r.dir, "store"), featurestore.Options{
		Partitions: r.shards, CommitInterval: time.Millisecond, GCInterval: -1, EventLog: wrap(r.log), Now: r.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.pusher, err = ingest.NewPusher(r.reg, r.store, ingest.Options{Now: r.now, MaxFutureSkew: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r.x = export.NewExporter(r.reg, r.log)
}

// TestBackfillMarkerNeedsCommit: a backfill marker counts only if the
// store committed the rebuild's batch. The backfill of view "mirror" (a
// copy of "spend" applied mid-stream, so it holds only live events until
// backfilled) commits on shard 0, and on shard 1 its marker reaches the
// markers file but the store's batch never commits: the process dies
// there ("crash", then a restart), or the commit fails and the process
// goes on ("failed commit"). Shard 1 must then have no marker, live and
// after restarts, and served exports after the would-be switch must answer
// what the store answers (shard 1 still holds the live-only state). A
// second backfill then commits on both shards: its markers are kept, next
// to shard 0's first, and exports follow the store through a restart.
func TestBackfillMarkerNeedsCommit(t *testing.T) {
	for _, tc := range []struct {
		name string
		die  bool
	}{
		{name: "crash", die: true},
		{name: "failed commit", die: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := newRig(t, dir, 1_800_000_000_000, eventlog.Options{SegmentBytes: 8192})
			defer r.close()
			ctx := context.Background()
			samples := r.streamTo(t, 31, 8, 40)

			spendDef := testDefs[strings.Index(testDefs, "  - name: spend"):strings.Index(testDefs, "  - name: short")]
			defs, err := registry.ParseYAML([]byte(testDefs + strings.Replace(spendDef, "name: spend", "name: mirror", 1)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.reg.Apply(defs); err != nil {
				t.Fatal(err)
			}
			mirror, err := r.reg.Snapshot().View("mirror", 0)
			if err != nil {
				t.Fatal(err)
			}
			vk := eventlog.ViewKeyInt(featurestore.ViewKey{ID: mirror.ID, Version: uint32(mirror.Version)})
			samples = append(samples, r.streamTo(t, 32, 8, 20)...)

			r.close()
			crash := &crashLog{shard: 1, die: tc.die}
			openWithLog(r, func(l *eventlog.Log) featurestore.EventLog { crash.Log = l; return crash })
			r.clock.Add(1)
			if _, err := Backfill(ctx, r.store, crash, mirror); !errors.Is(err, errCrashed) {
				t.Fatalf("backfill: %v, want the crash on shard 1", err)
			}
			if tc.die {
				// The marker reached the disk before the "crash".
				b, err := os.ReadFile(filepath.Join(dir, "offline", "wal", "p-0001", "markers"))
				if err != nil || !strings.Contains(string(b), fmt.Sprintf(`"view":%d,`, vk)) {
					t.Fatalf("shard 1's markers file before the restart: %q, %v; want the marker", b, err)
				}
				r.close()
				r.open()
			}

			markers := func(when string, want ...int) {
				t.Helper()
				ms := r.log.Markers(vk)
				for shard, n := range want {
					if got := len(ms[int32(shard)]); got != n {
						t.Fatalf("%s: shard %d has %d markers of mirror, want %d: %+v", when, shard, got, n, ms)
					}
				}
			}
			check := func(when string) {
				t.Helper()
				spine := filepath.Join(dir, "spine.parquet")
				writeSpine(t, spine, samples)
				var m memSink
				if _, err := r.x.Export(ctx, spine, "", export.Request{Features: allRefs(r.reg), Statuses: true, FullNames: true}, &m); err != nil {
					t.Fatalf("%s: %v", when, err)
				}
				compare(t, &m, samples, true)
			}
			markers("after the failed backfill", 1, 0)
			r.clock.Add(1)
			samples = append(samples, r.streamTo(t, 33, 8, 20)...)
			check("after the failed backfill")
			r.close()
			r.open()
			markers("restarted after the failed backfill", 1, 0)
			check("restarted after the failed backfill")

			// Done again, the backfill commits everywhere.
			r.clock.Add(1)
			if n, err := Backfill(ctx, r.store, r.log, mirror); err != nil || n == 0 {
				t.Fatalf("second backfill: %d entities, %v", n, err)
			}
			markers("after the second backfill", 2, 1)
			r.clock.Add(1)
			samples = append(samples, r.streamTo(t, 34, 8, 20)...)
			check("after the second backfill")
			r.close()
			r.open()
			markers("restarted after the second backfill", 2, 1)
			check("restarted after the second backfill")
		})
	}
}
