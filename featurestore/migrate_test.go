package featurestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// legacyPlaced returns a copy of ws placed as the layout before
// partitions placed them.
func legacyPlaced(ws []Write, n int) []Write {
	out := append([]Write(nil), ws...)
	for i := range out {
		out[i].Partition = legacyShardOf(out[i].Entity, n)
	}
	return out
}

// writeLegacyStore writes ws (and marks) into dir in the layout before
// partitions: the writer is today's, placing each write by legacyShardOf
// into n shards, and the directory is then turned into the old layout
// (shard-NNN, SHARDS, no partition record), whose keys were the same.
func writeLegacyStore(t *testing.T, dir string, n int, ws []Write, marks []Position, o Options) {
	t.Helper()
	writeLegacyStoreWith(t, dir, n, o, func(s *Store) {
		if err := s.Enqueue(context.Background(), legacyPlaced(ws, n), marks); err != nil {
			t.Fatal(err)
		}
	})
}

// writeLegacyStoreWith is writeLegacyStore with the writes made by write,
// which places them by legacyShardOf.
func writeLegacyStoreWith(t *testing.T, dir string, n int, o Options, write func(s *Store)) {
	t.Helper()
	o.Partitions = n
	s := openStore(t, dir, o)
	write(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		db, err := pebble.Open(partitionDir(dir, i), &pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Delete(metaPartKey, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(partitionDir(dir, i), legacyShardDir(dir, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(dir, partitionsFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, legacyShardsFile), []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// rawStates returns every state key's value in the dirs' Pebbles.
func rawStates(t *testing.T, dirs []string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, d := range dirs {
		db, err := pebble.Open(d, &pebble.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		it, _ := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixState}, UpperBound: []byte{prefixState + 1}})
		for it.First(); it.Valid(); it.Next() {
			out[string(it.Key())] = append([]byte(nil), it.Value()...)
		}
		it.Close()
		db.Close()
	}
	return out
}

// TestMigrateStore writes a store in the old layout (4 shards by FNV-1a),
// checks that Open refuses it with the message that names migrate-store,
// migrates it to 16 partitions and checks every lookup answers as before,
// bit for bit, and every state's bytes are unchanged, each in its
// partition; offsets carry over.
func TestMigrateStore(t *testing.T) {
	now := int64(1_790_000_000_000)
	l := testLayout(t)
	vk := ViewKey{ID: 3, Version: 1}
	keys, events := stream(2000, 60, now)
	dir := filepath.Join(t.TempDir(), "store")
	const shards, parts = 4, 16
	o := Options{Now: newClock(now).Now, GCInterval: -1}
	writeLegacyStore(t, dir, shards, writesOf(l, vk, keys, events), []Position{{Topic: "src/t", Partition: 0, Offset: 500}, {Topic: "src/t", Partition: 1, Offset: 77}}, o)

	// The lookups before, read from the old shards.
	var oldDirs []string
	for i := 0; i < shards; i++ {
		oldDirs = append(oldDirs, legacyShardDir(dir, i))
	}
	before := rawStates(t, oldDirs)
	if len(before) != len(keys) {
		t.Fatalf("old layout holds %d states, want %d", len(before), len(keys))
	}

	o.Partitions = parts
	_, err := Open(dir, o)
	var old *OldLayoutError
	if !errors.As(err, &old) || !strings.Contains(err.Error(), "store/SHARDS, 4 shards") || !strings.Contains(err.Error(), `featured migrate-store --data-dir `+filepath.Dir(dir)+` --partitions 16`) {
		t.Fatalf("Open of the old layout: %v, want the migrate-store message", err)
	}

	place := func(vk ViewKey, entity []byte, n int) (int, bool) { return partOf(entity, n), vk.ID == 3 }
	st, err := MigrateStore(dir, MigrateOptions{Partitions: parts, Place: place})
	if err != nil {
		t.Fatal(err)
	}
	if st.Shards != shards || st.States != len(keys) || st.Offsets != 2 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir+".old", legacyShardsFile)); err != nil {
		t.Fatalf("the old store is not in store.old: %v", err)
	}
	var newDirs []string
	for i := 0; i < parts; i++ {
		newDirs = append(newDirs, partitionDir(dir, i))
	}
	after := rawStates(t, newDirs)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("states differ after the migration: %d before, %d after", len(before), len(after))
	}
	for i, d := range newDirs {
		for k := range rawStates(t, []string{d}) {
			_, ent, _ := parseStateKey([]byte(k))
			if p := partOf(ent, parts); p != i {
				t.Fatalf("entity %q in partition %d, placed in %d", ent, i, p)
			}
		}
	}

	s := openStore(t, dir, o)
	defer s.Close()
	checkAgainstReference(t, s, l, vk, keys, events, now)
	if offs := s.Offsets("src/t"); offs[0] != 500 || offs[1] != 77 || len(offs) != 2 {
		t.Fatalf("offsets after the migration: %v", offs)
	}
}

// TestMigrateStoreRefusesUnequalOffsets: shards that committed different
// offsets for one partition are refused, naming it, and the store is left
// as it was.
func TestMigrateStoreRefusesUnequalOffsets(t *testing.T) {
	now := int64(1_790_000_000_000)
	l := testLayout(t)
	vk := ViewKey{ID: 3, Version: 1}
	keys, events := stream(200, 20, now)
	dir := filepath.Join(t.TempDir(), "store")
	writeLegacyStore(t, dir, 2, writesOf(l, vk, keys, events), []Position{{Topic: "src/t", Partition: 3, Offset: 40}}, Options{Now: newClock(now).Now, GCInterval: -1})
	db, err := pebble.Open(legacyShardDir(dir, 1), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(offsetKey("src/t", 3), binary.BigEndian.AppendUint64(nil, 39), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := rawStates(t, []string{legacyShardDir(dir, 0), legacyShardDir(dir, 1)})

	_, err = MigrateStore(dir, MigrateOptions{Partitions: 4, Place: func(_ ViewKey, e []byte, n int) (int, bool) { return partOf(e, n), true }})
	if err == nil || !strings.Contains(err.Error(), "different offsets for src/t partition 3") || !strings.Contains(err.Error(), "start and stop the old server once") {
		t.Fatalf("migrate: %v, want a refusal naming src/t partition 3", err)
	}
	if _, err := os.Stat(dir + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("store.new left behind: %v", err)
	}
	if after := rawStates(t, []string{legacyShardDir(dir, 0), legacyShardDir(dir, 1)}); !reflect.DeepEqual(before, after) {
		t.Fatal("the refused migration changed the old store")
	}
}

// TestMigrateStoreRecovers: a store.new of a crashed run is removed and
// the migration redone; one that crashed between its renames is finished.
func TestMigrateStoreRecovers(t *testing.T) {
	now := int64(1_790_000_000_000)
	l := testLayout(t)
	vk := ViewKey{ID: 3, Version: 1}
	keys, events := stream(200, 20, now)
	dir := filepath.Join(t.TempDir(), "store")
	writeLegacyStore(t, dir, 2, writesOf(l, vk, keys, events), nil, Options{Now: newClock(now).Now, GCInterval: -1})
	if err := os.MkdirAll(filepath.Join(dir+".new", "p-0000"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir+".new", "p-0000", "junk"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := MigrateOptions{Partitions: 3, Place: func(_ ViewKey, e []byte, n int) (int, bool) { return partOf(e, n), true }}
	if _, err := MigrateStore(dir, opts); err != nil {
		t.Fatal(err)
	}
	// As if the second rename had not happened.
	if err := os.Rename(dir, dir+".new"); err != nil {
		t.Fatal(err)
	}
	if _, err := MigrateStore(dir, opts); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir, Options{Partitions: 3, Now: newClock(now).Now, GCInterval: -1})
	defer s.Close()
	checkAgainstReference(t, s, l, vk, keys, events, now)
	if _, err := MigrateStore(dir, opts); err == nil || !strings.Contains(err.Error(), "already has the partition layout") {
		t.Fatalf("migrating a migrated store: %v", err)
	}
}

// TestPartitionRecordChecked: a partition directory copied to another
// place, or into a store of another count, is refused by Open.
func TestPartitionRecordChecked(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Partitions: 2, GCInterval: -1})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Swap the two partitions.
	tmp := dir + "-swap"
	for _, mv := range [][2]string{{partitionDir(dir, 0), tmp}, {partitionDir(dir, 1), partitionDir(dir, 0)}, {tmp, partitionDir(dir, 1)}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Open(dir, Options{Partitions: 2, GCInterval: -1})
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "holds partition 1 of 2") {
		t.Fatalf("Open with swapped partitions: %v, want ErrDamaged naming the record", err)
	}
	if !bytes.Contains(partValue(1, 2), []byte(partitionerName)) {
		t.Fatal("the partition record does not name the partitioner")
	}
}

// TestMigrateStoreAppliesJournal: an atomic push that a crash left applied
// by one old shard only is finished by the migration: the new store applies
// the writes no old shard applied, once, and a retry of the push is a
// duplicate.
func TestMigrateStoreAppliesJournal(t *testing.T) {
	f := newBatchFixture(t)
	dir := filepath.Join(t.TempDir(), "store")
	const shards, parts = 3, 5
	o := Options{Now: newClock(f.now).Now, GCInterval: -1, Layouts: f.layouts}
	writeLegacyStoreWith(t, dir, shards, o, func(s *Store) {
		s.testPart = func(i int) bool { return i == 0 }
		if _, err := s.WriteBatch(context.Background(), Batch{ID: "pending", Atomic: true, Writes: legacyPlaced(f.ws, shards)}); !errors.Is(err, errTestCrash) {
			t.Fatalf("push: %v, want the test crash", err)
		}
	})
	place := func(_ ViewKey, e []byte, n int) (int, bool) { return partOf(e, n), true }
	st, err := MigrateStore(dir, MigrateOptions{Partitions: parts, Place: place})
	if err != nil {
		t.Fatal(err)
	}
	if st.Journaled != 1 || st.Markers != 1 {
		t.Fatalf("stats %+v: want one journaled push and shard 0's marker", st)
	}
	o.Partitions = parts
	s := openStore(t, dir, o)
	defer s.Close()
	if n := s.Pending(); n != 0 {
		t.Fatalf("%d journaled pushes pending after Open", n)
	}
	checkAgainstReference(t, s, f.l, f.vk, f.keys, f.events, f.now)
	res, err := s.WriteBatch(context.Background(), Batch{ID: "pending", Atomic: true, Writes: placed(f.ws, parts)})
	if err != nil || !res.Duplicate {
		t.Fatalf("retry of the push: %+v, %v; want a duplicate", res, err)
	}
	checkAgainstReference(t, s, f.l, f.vk, f.keys, f.events, f.now)
}
