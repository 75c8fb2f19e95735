package offline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/ingest"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/registry"
)

// hookLog is the offline log with a hook that runs after Commit has
// written a batch's frame and before the store commits the batch.
type hookLog struct {
	*Log
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
	r := newRig(t, dir, base, Options{})
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
		r.log, err = Open(filepath.Join(dir, "offline"), Options{Now: r.now, SegmentAge: 365 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		log = &hookLog{Log: r.log}
		r.sampler = NewSampler(0)
		r.store, err = featurestore.Open(filepath.Join(dir, "store1"), featurestore.Options{
			Shards: 1, CommitInterval: time.Hour, GCInterval: -1, EventLog: log, Now: storeNow,
			ReadSampler: r.sampler.Record, ReadSampleEvery: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		r.pusher, err = ingest.NewPusher(r.reg, r.store, ingest.Options{Now: r.now, MaxFutureSkew: 15 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		r.x = NewExporter(r.reg, r.log)
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
		if err := r.log.Events(ctx, "tx", func(e Event) error {
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
	if _, err := r.x.Export(ctx, spine, "", Request{Features: allRefs(r.reg), Statuses: true, FullNames: true}, &m); err != nil {
		t.Fatal(err)
	}
	compare(t, &m, samples, true)
	rep, err := r.x.VerifySkew(ctx, r.sampler.Samples(), "")
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
	checkWAL(t, r.log, 0, len(visible))
	checkLog("reopened")
}

// checkWAL reads every frame of shard's WAL segments up to the committed
// position, where a checksum mismatch is corruption, and checks the row
// count.
func checkWAL(t *testing.T, l *Log, shard, wantRows int) {
	t.Helper()
	sl := l.shard(shard)
	sl.mu.Lock()
	cseg, coff := sl.mu.seg, sl.mu.off
	sl.mu.Unlock()
	segs, err := listSegments(sl.dir)
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, seg := range segs {
		limit := int64(-1)
		switch {
		case seg > cseg:
			t.Fatalf("segment %d past the committed %d", seg, cseg)
		case seg == cseg:
			limit = coff
		}
		err := readFrames(filepath.Join(sl.dir, segName(seg)), limit, func(fr *walFrame) error {
			rows += fr.nrows
			return nil
		})
		if err != nil {
			t.Fatalf("segment %d: %v", seg, err)
		}
	}
	if rows != wantRows {
		t.Fatalf("%d rows in the WAL, want %d", rows, wantRows)
	}
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
	err := s.Read(featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}, v.Layout, ent, feats, at, out)
	return sample{user: user, at: at, view: v, results: out}, err
}

// TestLogRestamp: Committed restamps the frame Commit wrote when the batch
// became visible later and the new time has the varint length of the old
// one; otherwise the frame keeps its stamp. Restamped frames pass their
// checksums after a reopen, in the WAL and once converted to Parquet.
func TestLogRestamp(t *testing.T) {
	const t0 = 1_800_000_000_000
	cases := []struct {
		name           string
		stamp, visible int64
		want           int64
	}{
		{name: "later", stamp: t0, visible: t0 + 7, want: t0 + 7},
		{name: "same millisecond", stamp: t0 + 10, visible: t0 + 10, want: t0 + 10},
		{name: "clock went back", stamp: t0 + 20, visible: t0 + 15, want: t0 + 20},
		{name: "longer varint", stamp: 63, visible: 64, want: 63},
		{name: "shorter varint", stamp: -65, visible: -64, want: -65},
		{name: "small, same length", stamp: 64, visible: 100, want: 100},
		{name: "after a failed commit", stamp: t0 + 30, visible: t0 + 31, want: t0 + 31},
	}
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Recover(0, nil); err != nil {
		t.Fatal(err)
	}
	var want []int64 // commit time by LSN
	var pos []byte
	for i, tc := range cases {
		if tc.name == "after a failed commit" {
			appendN(l, 0, 2, 900)
			commit(t, l, 0, tc.stamp-1)
			l.Committed(0, 0, fmt.Errorf("disk full"))
		}
		// Rows of varied sizes, so frames start at varied offsets.
		appendN(l, 0, 1+i%3, int64(100*i))
		pos = commit(t, l, 0, tc.stamp)
		l.Committed(0, tc.visible, nil)
		for range 1 + i%3 {
			want = append(want, tc.want)
		}
	}
	byLSN := func(when string) {
		t.Helper()
		got := make([]int64, len(want))
		if err := l.Events(context.Background(), "", func(e Event) error {
			got[e.LSN] = e.CommitMillis
			return nil
		}); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		for lsn := range want {
			if got[lsn] != want[lsn] {
				t.Errorf("%s: LSN %d (%s): commit time %d, want %d", when, lsn, caseOf(cases, lsn), got[lsn], want[lsn])
			}
		}
	}
	byLSN("live")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = Open(dir, Options{SegmentBytes: 4096, Retention: -1}) // ingest times in 1970
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Recover(0, pos); err != nil {
		t.Fatal(err)
	}
	checkWAL(t, l, 0, len(want))
	byLSN("reopened")

	// Many restamped frames through segment rotations into Parquet.
	stamp := int64(t0 + 1000)
	for i := 0; i < 200; i++ {
		appendN(l, 0, 1+i%5, stamp)
		commit(t, l, 0, stamp)
		l.Committed(0, stamp+3, nil)
		for range 1 + i%5 {
			want = append(want, stamp+3)
		}
		stamp += 5
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, err := listLogFiles(dir, "tx")
		if err != nil {
			t.Fatal(err)
		}
		if len(files) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %d Parquet files, want 3", len(files))
		}
		time.Sleep(10 * time.Millisecond)
	}
	byLSN("converted")
}

// caseOf names the case that wrote LSN lsn in TestLogRestamp's first part.
func caseOf(cases []struct {
	name           string
	stamp, visible int64
	want           int64
}, lsn int) string {
	n := 0
	for i, tc := range cases {
		n += 1 + i%3
		if lsn < n {
			return tc.name
		}
	}
	return "rotated"
}

// TestMarkerRestamp: a backfill marker committed in a batch that became
// visible later takes the visible time, live and after a reopen; a torn
// restamp line leaves the marker as stamped.
func TestMarkerRestamp(t *testing.T) {
	const (
		view = 7<<32 | 1
		t0   = 1_800_000_000_000
	)
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Recover(0, nil); err != nil {
		t.Fatal(err)
	}
	appendN(l, 0, 3, 100)
	commit(t, l, 0, t0)
	l.Committed(0, t0+2, nil)
	backfill := func(stamp, visible int64) []byte {
		l.shard(0).pendingMarker = &marker{View: view, LSN: l.shard(0).nextLSN}
		pos := commit(t, l, 0, stamp)
		l.Committed(0, visible, nil)
		return pos
	}
	backfill(t0+10, t0+14) // restamped
	backfill(t0+20, t0+20) // visible in the millisecond it was stamped
	appendN(l, 0, 1, 200)
	pos := commit(t, l, 0, t0+30)
	l.Committed(0, t0+31, nil)
	check := func(when string, want ...int64) {
		t.Helper()
		var got []int64
		for _, m := range l.markersOf(view)[0] {
			got = append(got, m.CommitMillis)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: markers at %v, want %v", when, got, want)
		}
	}
	check("live", t0+14, t0+20)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	reopen := func() {
		t.Helper()
		l, err = Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Recover(0, pos); err != nil {
			t.Fatal(err)
		}
	}
	reopen()
	check("reopened", t0+14, t0+20)

	// A restamp line of the second marker, torn by a crash.
	path := filepath.Join(dir, walDir, "shard-000", markersFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(f, `{"view":%d,"lsn":3,"commit_ms":%d,"Seg":1,"Off":`, view, t0+20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l.Close()
	reopen()
	defer l.Close()
	check("torn restamp", t0+14, t0+20)
}
