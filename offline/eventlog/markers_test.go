package eventlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/featured-dev/featured/featurestore"
)

// checkWAL checks shard's WAL up to the committed position (CheckWAL) and
// its row count.
func checkWAL(t *testing.T, l *Log, shard, wantRows int) {
	t.Helper()
	rows, err := l.CheckWAL(shard)
	if err != nil {
		t.Fatal(err)
	}
	if rows != wantRows {
		t.Fatalf("%d rows in the WAL, want %d", rows, wantRows)
	}
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
		files, err := ListFiles(dir, "tx")
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
		l.MarkRebuild(0, featurestore.ViewKey{ID: 7, Version: 1}) // view
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
		for _, m := range l.Markers(view)[0] {
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
	path := filepath.Join(dir, walDir, "p-0000", markersFile)
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

// TestMarkerRecover: at the Log's level, a backfill marker is kept only if
// the store committed its batch: one committed stays, live and after a
// reopen; one whose batch failed goes at once; one whose process died
// before the store committed goes on recovery to the previous position,
// also when that commit sealed a segment.
func TestMarkerRecover(t *testing.T) {
	const (
		view = 7<<32 | 1
		t0   = 1_800_000_000_000
	)
	dir := t.TempDir()
	now := time.UnixMilli(t0)
	// Retention: the rows' ingest times are in 1970.
	opts := Options{SegmentBytes: 4096, Retention: -1, Now: func() time.Time { return now }}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	if err := l.Recover(0, nil); err != nil {
		t.Fatal(err)
	}
	backfill := func(stamp int64) []byte {
		t.Helper()
		l.MarkRebuild(0, featurestore.ViewKey{ID: 7, Version: 1}) // view
		return commit(t, l, 0, stamp)
	}
	check := func(when string, want ...int64) {
		t.Helper()
		var got []int64
		for _, m := range l.Markers(view)[0] {
			got = append(got, m.CommitMillis)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: markers at %v, want %v", when, got, want)
		}
	}
	reopen := func(pos []byte) {
		t.Helper()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if l, err = Open(dir, opts); err != nil {
			t.Fatal(err)
		}
		if err := l.Recover(0, pos); err != nil {
			t.Fatal(err)
		}
	}

	appendN(l, 0, 3, 100)
	commit(t, l, 0, t0)
	l.Committed(0, t0, nil)
	pos := backfill(t0 + 10)
	l.Committed(0, t0+10, nil)
	check("committed", t0+10)

	backfill(t0 + 20) // the store's batch fails
	l.Committed(0, 0, errors.New("disk full"))
	check("failed", t0+10)
	reopen(pos)
	check("failed, reopened", t0+10)

	backfill(t0 + 30) // the process dies before the store commits
	reopen(pos)
	check("crashed, reopened", t0+10)

	// Enough rows to seal the segment at the next commit, then a backfill
	// whose commit seals it and whose process dies.
	for i := 0; i < 100 && l.shard(0).size < opts.SegmentBytes; i++ {
		appendN(l, 0, 10, 200+int64(10*i))
		pos = commit(t, l, 0, t0+40)
		l.Committed(0, t0+40, nil)
	}
	seg := l.shard(0).seg
	backfill(t0 + 50)
	if l.shard(0).seg == seg {
		t.Fatalf("the backfill's commit did not seal segment %d", seg)
	}
	reopen(pos)
	check("crashed in a rotation, reopened", t0+10)

	pos = backfill(t0 + 60)
	l.Committed(0, t0+61, nil)
	reopen(pos)
	check("committed again, reopened", t0+10, t0+61)
	if got := eventTimes(t, l); len(got) < 4 || got[3] != 200 {
		t.Fatalf("rows after the markers: %v", got[:min(len(got), 5)])
	}
}
