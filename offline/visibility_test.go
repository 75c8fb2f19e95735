package offline

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/internal/partition"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/offline/export"
	"github.com/featured-dev/featured/offline/skew"
	"github.com/featured-dev/featured/registry"
)

// hookLog is the offline log with a hook that runs after Commit has
// written a batch's frame and before the store commits the batch.
type hookLog struct {
	*eventlog.Log
	afterCommit func()
}

var _ featurestore.EventLog = (*hookLog)(nil)

func (h *hookLog) Commit(shard int, sync bool, nowMillis int64) ([]byte, bool, error) {
	pos, force, err := h.Log.Commit(shard, sync, nowMillis)
	if h.afterCommit != nil {
		h.afterCommit()
	}
	return pos, force, err
}

// TestCommitTimeIsVisibility: a row's commit time is when its batch became
// visible to reads, not when the shard stamped the batch before committing
// it. The store's clock moves 5 ms at every reading, so the stamp T, a read
// made after the log wrote the frame but before the store committed the
// batch (at T+5, which does not see it), and the visible time V = T+10 are
// distinct. A served export at T+5 must answer what that read answered,
// verify-skew must find every sampled read consistent, the log must report
// V, and after a restart the restamped WAL must read back whole.
func TestCommitTimeIsVisibility(t *testing.T) {
	const base = 1_800_000_000_000
	dir := t.TempDir()
	r := newRig(t, dir, base, eventlog.Options{})
	r.close()
	storeNow := func() time.Time { return time.UnixMilli(r.clock.Add(5)) }
	views := r.reg.Snapshot().Views()

	var mu sync.Mutex
	var samples []sample
	read := func(at int64) { // as serving reads, at instant at
		for _, v := range views {
			s, err := lookupAt(r.store, v, "u", at)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			samples = append(samples, s)
			mu.Unlock()
		}
	}
	var log *hookLog
	open := func() {
		var err error
		// Segments never age out: the frames stay in the WAL for
		// checkWAL (TestLogRestamp converts restamped frames).
		r.log, err = eventlog.Open(filepath.Join(dir, "offline"), eventlog.Options{Now: r.now, SegmentAge: 365 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		log = &hookLog{Log: r.log}
		r.sampler = skew.NewSampler(0)
		r.store, err = featurestore.Open(filepath.Join(dir, "store1"), featurestore.Options{
			Partitions: 1, CommitInterval: time.Hour, GCInterval: -1, EventLog: log, Now: storeNow,
			ReadSampler: r.sampler.Record, ReadSampleEvery: 1,
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
	open()
	defer r.close()
	// The read between the frame and the batch, on the writer goroutine:
	// the batch is not visible yet, whatever the clock says.
	var beforeVisible []int64
	log.afterCommit = func() {
		at := storeNow().UnixMilli()
		beforeVisible = append(beforeVisible, at)
		read(at)
	}

	ctx := context.Background()
	var visible []int64 // per push: the store's clock when Write returned
	for i := 0; i < 8; i++ {
		r.clock.Add(7 * 60_000)
		ev := map[string]aggregate.Value{
			"user_id":  {Kind: aggregate.KindString, S: "u"},
			"ts":       {Kind: aggregate.KindInt64, I: r.clock.Load() - int64(i%3)*600_000},
			"amount":   {Kind: aggregate.KindFloat64, F: float64(i) + 0.5},
			"merchant": {Kind: aggregate.KindString, S: fmt.Sprintf("m%d", i%3)},
			"items":    {Kind: aggregate.KindInt64, I: int64(i)},
			"flag":     {Kind: aggregate.KindBool, I: int64(i % 2)},
		}
		if _, err := r.pusher.PushValues(ctx, "tx", []map[string]aggregate.Value{ev}, ingest.PushOptions{Atomic: true}); err != nil {
			t.Fatal(err)
		}
		// Nothing reads the store's clock between the visible time and
		// Write's return: the clock is still there.
		visible = append(visible, r.clock.Load())
		read(r.clock.Load())
	}
	if len(beforeVisible) != len(visible) {
		t.Fatalf("%d reads before visibility for %d pushes", len(beforeVisible), len(visible))
	}
	for i := range visible {
		if stamp := beforeVisible[i] - 5; visible[i] != stamp+10 {
			t.Fatalf("push %d: stamped %d, visible %d: the test's clock readings are not the expected ones", i, stamp, visible[i])
		}
	}

	checkLog := func(when string) {
		t.Helper()
		var got []int64
		if err := r.log.Events(ctx, "tx", func(e eventlog.Event) error {
			for int64(len(got)) <= e.LSN {
				got = append(got, 0)
			}
			got[e.LSN] = e.CommitMillis
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(visible) {
			t.Fatalf("%s: commit times by LSN %v, want the visible times %v (stamps were 10 ms earlier)", when, got, visible)
		}
	}
	checkLog("live")

	// A served export at the sampled instants answers what the store did,
	// including at T+5, where the batch was stamped but not yet visible.
	spine := filepath.Join(dir, "spine.parquet")
	writeSpine(t, spine, samples)
	var m memSink
	if _, err := r.x.Export(ctx, spine, "", export.Request{Features: allRefs(r.reg), Statuses: true, FullNames: true}, &m); err != nil {
		t.Fatal(err)
	}
	compare(t, &m, samples, true)
	rep, err := skew.Verify(ctx, r.x, r.sampler.Samples(), "")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Samples != len(samples) || rep.MatchRate != 100 || rep.ResolvedSameMillis != 0 {
		t.Fatalf("verify-skew: %d samples (want %d), %.3f%%, %d resolved in the same millisecond, mismatches %+v",
			rep.Samples, len(samples), rep.MatchRate, rep.ResolvedSameMillis, rep.Mismatches)
	}

	// After a restart the restamped frames pass their checksums up to the
	// committed position, and keep the visible times.
	r.close()
	open()
	if rows, err := r.log.CheckWAL(0); err != nil || rows != len(visible) {
		t.Fatalf("reopened WAL: %d rows, %v; want %d rows", rows, err, len(visible))
	}
	checkLog("reopened")
}

// lookupAt reads every feature of v for user at instant at, as serving
// does.
func lookupAt(s *featurestore.Store, v *registry.View, user string, at int64) (sample, error) {
	ent, _ := keyenc.AppendEntity(nil, aggregate.Value{Kind: aggregate.KindString, S: user})
	feats := make([]int, len(v.Features))
	for i := range feats {
		feats[i] = i
	}
	out := make([]aggregate.Result, len(feats))
	err := s.Read(featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}, v.Layout, partition.Of(ent, s.Partitions()), ent, feats, at, out)
	return sample{user: user, at: at, view: v, results: out}, err
}
