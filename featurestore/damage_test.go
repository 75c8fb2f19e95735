package featurestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/featured-dev/featured/aggregate"
)

// writeEntities writes one event for each of n entities into vk and closes
// nothing; it returns the entities by shard.
func writeEntities(t *testing.T, s *Store, l *aggregate.Layout, vk ViewKey, n int, now int64) map[int][][]byte {
	t.Helper()
	byShard := map[int][][]byte{}
	var ws []Write
	for i := 0; i < n; i++ {
		e := entityKey(i)
		byShard[partOf(e, s.Partitions())] = append(byShard[partOf(e, s.Partitions())], e)
		ws = append(ws, testWrite(l, vk, e, now-int64(i)))
	}
	if rej, err := s.Write(context.Background(), placed(ws, s.Partitions())); err != nil || len(rej) > 0 {
		t.Fatalf("write: %v, rejected %v", err, rej)
	}
	return byShard
}

func testWrite(l *aggregate.Layout, vk ViewKey, entity []byte, ms int64) Write {
	return Write{Entity: entity, EventMillis: ms, Targets: []Target{{Key: vk, Layout: l}}, Fields: []aggregate.Value{
		{Kind: aggregate.KindFloat64, F: 1.5}, {Kind: aggregate.KindString, S: "m"}, {Kind: aggregate.KindInt64, I: 2},
	}}
}

// withShardDB opens shard i of a closed store with Pebble directly.
func withShardDB(t *testing.T, dir string, i int, f func(db *pebble.DB)) {
	t.Helper()
	db, err := pebble.Open(partitionDir(dir, i), &pebble.Options{DisableAutomaticCompactions: true})
	if err != nil {
		t.Fatal(err)
	}
	f(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptBlockIsAnError damages a data block of one shard's sstable on
// disk. Before, Pebble's default corruption handler called Logger.Fatalf
// and the first lookup of an affected key ended the test binary. Now that
// lookup gets ErrCorrupt naming the shard, keys on the other shard still
// read, the shard's counters move and Ready names it.
func TestCorruptBlockIsAnError(t *testing.T) {
	dir := t.TempDir()
	now := 100 * day
	l := testLayout(t)
	vk := ViewKey{ID: 1, Version: 1}
	o := Options{Partitions: 2, GCInterval: -1, Now: newClock(now).Now}
	s := openStore(t, dir, o)
	byShard := writeEntities(t, s, l, vk, 40, now)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Move shard 0's states into an sstable, then flip bytes inside its
	// first data block (data blocks start at offset 0).
	// The partition record ('mpart') would share that block with the
	// states and fail the Open: it is moved to an sstable of its own,
	// written after the damaged ones are listed.
	var ssts []string
	withShardDB(t, dir, 0, func(db *pebble.DB) {
		rec, closer, err := db.Get(metaPartKey)
		if err != nil {
			t.Fatal(err)
		}
		rec = append([]byte(nil), rec...)
		closer.Close()
		if err := db.Delete(metaPartKey, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := db.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
			t.Fatal(err)
		}
		levels, err := db.SSTables()
		if err != nil {
			t.Fatal(err)
		}
		for _, level := range levels {
			for _, f := range level {
				ssts = append(ssts, filepath.Join(partitionDir(dir, 0), fmt.Sprintf("%06d.sst", f.FileNum)))
			}
		}
		if err := db.Set(metaPartKey, rec, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	})
	if len(ssts) == 0 {
		t.Fatal("no sstable in shard 0 after compaction")
	}
	for _, p := range ssts {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := 16; i < 48 && i < len(b); i++ {
			b[i] ^= 0xff
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	s = openStore(t, dir, o)
	defer s.Close()
	if err := s.Ready(); err != nil {
		t.Fatalf("ready before any read of the damaged block: %v", err)
	}
	out := make([]aggregate.Result, len(testSpecs))
	err := s.Read(vk, l, partOf(byShard[0][0], s.Partitions()), byShard[0][0], allFeatures(len(testSpecs)), now, out)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "shard 0") {
		t.Fatalf("read of a key in the damaged block: %v, want ErrCorrupt naming shard 0", err)
	}
	if err := s.Read(vk, l, partOf(byShard[1][0], s.Partitions()), byShard[1][0], allFeatures(len(testSpecs)), now, out); err != nil {
		t.Fatalf("read of a key on shard 1: %v", err)
	}
	if out[1].Status != aggregate.StatusPresent || out[1].Value.I != 1 {
		t.Fatalf("shard 1 count: %+v, want 1", out[1])
	}
	st := s.Stats()
	if st[0].CorruptionReports == 0 || st[0].CorruptReads != 1 || st[0].Damaged == "" {
		t.Fatalf("shard 0 stats %+v: want corruption counted", st[0])
	}
	if st[1].CorruptionReports != 0 || st[1].CorruptReads != 0 {
		t.Fatalf("shard 1 stats %+v: want no corruption", st[1])
	}
	if err := s.Ready(); err == nil || !strings.Contains(err.Error(), "shard 0") || strings.Contains(err.Error(), "shard 1") {
		t.Fatalf("Ready: %v, want an error naming shard 0 only", err)
	}
	// A write to an entity in the damaged block is refused, not folded
	// into an empty state.
	rej, err := s.Write(context.Background(), placed([]Write{testWrite(l, vk, byShard[0][0], now)}, s.Partitions()))
	if err != nil || len(rej) != 1 || !errors.Is(rej[0].Err, ErrCorrupt) {
		t.Fatalf("write to a damaged key: %v, rejected %v", err, rej)
	}
}

// TestUndecodableStateIsQuarantined stores garbage under a state key. Before,
// the writer logged "skip event for corrupt state" and dropped the event
// while its offset advanced. Now the state is copied aside and counted, a
// pushed write to it is rejected, a Kafka write becomes a durable dead
// letter, neither counts as applied, and dropping the view lifts the
// quarantine.
func TestUndecodableStateIsQuarantined(t *testing.T) {
	dir := t.TempDir()
	now := 100 * day
	l := testLayout(t)
	vk := ViewKey{ID: 1, Version: 1}
	o := Options{Partitions: 2, GCInterval: -1, Now: newClock(now).Now}
	s := openStore(t, dir, o)
	bad, good := []byte("bad"), []byte("good")
	writeEntities(t, s, l, vk, 1, now)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	garbage := []byte{0x7f, 1, 2, 3}
	withShardDB(t, dir, partOf(bad, 2), func(db *pebble.DB) {
		if err := db.Set(appendStateKey(nil, vk, bad), garbage, pebble.Sync); err != nil {
			t.Fatal(err)
		}
	})

	s = openStore(t, dir, o)
	out := make([]aggregate.Result, len(testSpecs))
	if err := s.Read(vk, l, partOf(bad, s.Partitions()), bad, allFeatures(len(testSpecs)), now, out); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of the garbage state: %v, want ErrCorrupt", err)
	}
	before := s.Stats()
	rej, err := s.Write(context.Background(), placed([]Write{testWrite(l, vk, good, now), testWrite(l, vk, bad, now)}, s.Partitions()))
	if err != nil || len(rej) != 1 || rej[0].Index != 1 || !errors.Is(rej[0].Err, ErrQuarantined) {
		t.Fatalf("push: %v, rejected %+v; want write 1 rejected as quarantined", err, rej)
	}
	// A Kafka event for it: dead-lettered in the batch that moves the
	// offset on.
	pos := Position{Topic: "src/t", Partition: 0, Offset: 5}
	kw := testWrite(l, vk, bad, now)
	kw.Position = &pos
	kw.Schema = &Schema{Source: "src"}
	if err := s.Enqueue(context.Background(), placed([]Write{kw}, s.Partitions()), []Position{{Topic: "src/t", Partition: 0, Offset: 6}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.DeadLetterNotify():
	default:
		t.Fatal("no dead-letter notification after the commit")
	}
	if got := s.Offsets("src/t")[0]; got != 6 {
		t.Fatalf("offset %d, want 6", got)
	}
	dls, err := s.DeadLetters(10)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %+v, %v; want 1", dls, err)
	}
	if d := dls[0]; d.Position != pos || d.Source != "src" || !bytes.Equal(d.Entity, bad) || d.Reason != ReasonCorruptState || !strings.Contains(d.Err, "quarantined") {
		t.Fatalf("dead letter %+v", d)
	}
	sum := func(st []ShardStats) (applied, rejected uint64, quarantined int) {
		for _, x := range st {
			applied += x.WritesApplied
			rejected += x.WritesRejected
			quarantined += x.QuarantinedStates
		}
		return
	}
	b, _, _ := sum(before)
	applied, rejected, quarantined := sum(s.Stats())
	if applied-b != 1 || rejected != 2 || quarantined != 1 {
		t.Fatalf("applied %d rejected %d quarantined %d; want 1, 2, 1", applied-b, rejected, quarantined)
	}
	if err := s.DeleteDeadLetters(dls); err != nil {
		t.Fatal(err)
	}
	if dls, _ := s.DeadLetters(10); len(dls) != 0 {
		t.Fatalf("dead letters after delete: %+v", dls)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The raw bytes were copied aside, and the quarantine survives a
	// restart.
	withShardDB(t, dir, partOf(bad, 2), func(db *pebble.DB) {
		v, closer, err := db.Get(quarantineKey(appendStateKey(nil, vk, bad)))
		if err != nil {
			t.Fatalf("quarantined copy: %v", err)
		}
		defer closer.Close()
		if !bytes.Equal(v, garbage) {
			t.Fatalf("quarantined copy %x, want %x", v, garbage)
		}
	})
	s = openStore(t, dir, o)
	defer s.Close()
	if _, _, q := sum(s.Stats()); q != 1 {
		t.Fatalf("quarantined after reopen: %d, want 1", q)
	}
	if rej, err := s.Write(context.Background(), placed([]Write{testWrite(l, vk, bad, now)}, s.Partitions())); err != nil || len(rej) != 1 {
		t.Fatalf("push after reopen: %v, rejected %+v; want rejected", err, rej)
	}
	// Dropping the view (or rebuilding it) lifts the quarantine.
	if err := s.DropView(context.Background(), vk); err != nil {
		t.Fatal(err)
	}
	if rej, err := s.Write(context.Background(), placed([]Write{testWrite(l, vk, bad, now)}, s.Partitions())); err != nil || len(rej) != 0 {
		t.Fatalf("push after drop: %v, rejected %+v; want applied", err, rej)
	}
	if _, _, q := sum(s.Stats()); q != 0 {
		t.Fatalf("quarantined after drop: %d, want 0", q)
	}
}
