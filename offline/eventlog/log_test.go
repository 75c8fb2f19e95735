package eventlog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
)

var testSchema = &featurestore.Schema{Source: "tx", KeyKinds: []aggregate.Kind{aggregate.KindString}, Names: []string{"amount"}, Kinds: []aggregate.Kind{aggregate.KindFloat64}}

func appendN(l *Log, shard, n int, first int64) {
	for i := 0; i < n; i++ {
		l.Append(shard, &featurestore.Write{
			Entity: []byte("u"), EventMillis: first + int64(i), IngestMillis: first + int64(i), Schema: testSchema,
			Fields: []aggregate.Value{{Kind: aggregate.KindFloat64, F: float64(first) + float64(i)}},
		}, []featurestore.ViewKey{{ID: 1, Version: 1}})
	}
}

func commit(t *testing.T, l *Log, shard int, now int64) []byte {
	t.Helper()
	pos, _, err := l.Commit(shard, true, now)
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

// eventTimes returns the event times of the log's rows by LSN, failing on a
// repeated LSN that carries another event.
func eventTimes(t *testing.T, l *Log) []int64 {
	t.Helper()
	byLSN := map[int64]int64{}
	maxLSN := int64(-1)
	err := l.Events(context.Background(), "", func(e Event) error {
		if prev, ok := byLSN[e.LSN]; ok && prev != e.EventMillis {
			t.Fatalf("LSN %d is event %d and %d", e.LSN, prev, e.EventMillis)
		}
		byLSN[e.LSN] = e.EventMillis
		maxLSN = max(maxLSN, e.LSN)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, 0, len(byLSN))
	for i := int64(0); i <= maxLSN; i++ {
		v, ok := byLSN[i]
		if !ok {
			t.Fatalf("LSN %d missing (LSNs up to %d)", i, maxLSN)
		}
		out = append(out, v)
	}
	return out
}

// TestLogRecover: rows past the position the store committed are dropped on
// open (a crash between the WAL write and the store's commit), so is a torn
// frame, and a failed commit's rows go at once; LSNs stay dense.
func TestLogRecover(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Recover(0, nil); err != nil {
		t.Fatal(err)
	}
	appendN(l, 0, 3, 100)
	pos1 := commit(t, l, 0, 1)
	l.Committed(0, 1, nil)

	appendN(l, 0, 2, 200) // the store's batch fails
	commit(t, l, 0, 2)
	l.Committed(0, 0, errors.New("disk full"))
	appendN(l, 0, 2, 300)
	pos2 := commit(t, l, 0, 3)
	l.Committed(0, 3, nil)
	if got := eventTimes(t, l); len(got) != 5 || got[3] != 300 {
		t.Fatalf("after a failed commit: %v, want 100 101 102 300 301", got)
	}

	appendN(l, 0, 4, 400) // written to the WAL, then the process dies
	commit(t, l, 0, 4)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, walDir, "p-0000", segName(1))
	f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3}) // and a torn frame after that
	f.Close()

	l, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Recover(0, pos2); err != nil {
		t.Fatal(err)
	}
	if got := eventTimes(t, l); len(got) != 5 || got[4] != 301 {
		t.Fatalf("after recovery to the committed position: %v", got)
	}
	appendN(l, 0, 1, 500)
	commit(t, l, 0, 5)
	l.Committed(0, 5, nil)
	if got := eventTimes(t, l); len(got) != 6 || got[5] != 500 {
		t.Fatalf("appending after recovery: %v", got)
	}
	_ = pos1
}

// TestLogConvertAndRetain: sealed segments become Parquet files that the
// scan reads instead of the WAL; a crash before conversion converts on the
// next open; days older than the retention are deleted.
func TestLogConvertAndRetain(t *testing.T) {
	dir := t.TempDir()
	now := time.UnixMilli(1_800_000_000_000)
	old := filepath.Join(dir, "tx", "2020-01-01")
	os.MkdirAll(old, 0o755)
	os.WriteFile(filepath.Join(old, "s000-00000000000000000000.parquet"), []byte("x"), 0o644)
	l, err := Open(dir, Options{SegmentBytes: 4096, Retention: 24 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Recover(0, nil); err != nil {
		t.Fatal(err)
	}
	var pos []byte
	for i := 0; i < 40; i++ {
		appendN(l, 0, 20, now.UnixMilli()+int64(i*20))
		pos = commit(t, l, 0, now.UnixMilli())
		l.Committed(0, now.UnixMilli(), nil)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := ListFiles(dir, "tx")
		if len(files) >= 5 {
			if _, err := os.Stat(old); os.IsNotExist(err) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %d Parquet files, old day dir still there: %v", len(files), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := eventTimes(t, l); len(got) != 800 {
		t.Fatalf("%d rows, want 800", len(got))
	}
	l.Close()
	// Reopen with the position: everything still there once.
	l, err = Open(dir, Options{SegmentBytes: 4096, Retention: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Recover(0, pos); err != nil {
		t.Fatal(err)
	}
	if got := eventTimes(t, l); len(got) != 800 || got[799] != now.UnixMilli()+799 {
		t.Fatalf("after reopen: %d rows", len(got))
	}
}
