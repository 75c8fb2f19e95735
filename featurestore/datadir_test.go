package featurestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestDamagedDirRefused removes, in turn, each thing a store's directory must
// hold and checks that CheckDir and Open refuse it, naming the file, instead
// of serving the store as empty.
func TestDamagedDirRefused(t *testing.T) {
	now := int64(1_790_000_000_000)
	l := testLayout(t)
	vk := ViewKey{ID: 1, Version: 1}
	keys, events := stream(200, 10, now)
	ws := writesOf(l, vk, keys, events)
	populated := func(t *testing.T) string {
		dir := t.TempDir()
		s := openStore(t, dir, Options{Partitions: 3, GCInterval: -1, Now: newClock(now).Now})
		if _, err := s.Write(context.Background(), placed(ws, s.Partitions())); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, tc := range []struct {
		name   string
		damage func(dir string) error
		shards int
		names  string
	}{
		{"shard dir deleted", func(dir string) error { return os.RemoveAll(partitionDir(dir, 1)) }, 3, "p-0001"},
		{"shard dir emptied", func(dir string) error {
			if err := os.RemoveAll(partitionDir(dir, 2)); err != nil {
				return err
			}
			return os.Mkdir(partitionDir(dir, 2), 0o755)
		}, 3, "p-0002"},
		{"SHARDS deleted, same count", func(dir string) error { return os.Remove(filepath.Join(dir, partitionsFile)) }, 3, partitionsFile},
		{"SHARDS deleted, other count", func(dir string) error { return os.Remove(filepath.Join(dir, partitionsFile)) }, 5, partitionsFile},
		{"journal emptied", func(dir string) error {
			if err := os.RemoveAll(journalDir(dir)); err != nil {
				return err
			}
			return os.Mkdir(journalDir(dir), 0o755)
		}, 3, journalDirName},
		{"SHARDS garbage", func(dir string) error { return os.WriteFile(filepath.Join(dir, partitionsFile), []byte("x\n"), 0o644) }, 3, partitionsFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := populated(t)
			if err := tc.damage(dir); err != nil {
				t.Fatal(err)
			}
			err := CheckDir(dir, tc.shards)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), tc.names) {
				t.Fatalf("CheckDir: %v, want ErrDamaged naming %s", err, tc.names)
			}
			s, err := Open(dir, Options{Partitions: tc.shards, GCInterval: -1})
			if err == nil {
				s.Close()
				t.Fatal("Open of a damaged dir succeeded")
			}
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), tc.names) {
				t.Fatalf("Open: %v, want ErrDamaged naming %s", err, tc.names)
			}
			// Refusing changed nothing: no shard was re-created, SHARDS not rewritten.
			if _, err := os.Stat(partitionDir(dir, 3)); !os.IsNotExist(err) {
				t.Fatalf("Open created p-0003 in a damaged dir: %v", err)
			}
		})
	}

	t.Run("intact", func(t *testing.T) {
		dir := populated(t)
		if ok, err := HasState(dir); !ok || err != nil {
			t.Fatalf("HasState of a store: %v, %v", ok, err)
		}
		if err := CheckDir(dir, 3); err != nil {
			t.Fatal(err)
		}
		s := openStore(t, dir, Options{Partitions: 3, GCInterval: -1, Now: newClock(now).Now})
		defer s.Close()
		checkAgainstReference(t, s, l, vk, keys, events, now)
	})
	t.Run("new", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "store")
		if ok, err := HasState(dir); ok || err != nil {
			t.Fatalf("HasState of nothing: %v, %v", ok, err)
		}
		if err := CheckDir(dir, 3); err != nil {
			t.Fatalf("CheckDir of a new dir: %v", err)
		}
	})
}

// TestUnfinishedCreation: a first Open that fails halfway through creating
// the shards (here: a failed write in the second shard) leaves shard
// directories and no SHARDS. That is not a damaged store: the next Open
// creates it again, and it holds no state until then.
func TestUnfinishedCreation(t *testing.T) {
	dir := t.TempDir()
	failing := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpCreate && strings.Contains(op.Path, "p-0001") {
			return errorfs.ErrInjected
		}
		return nil
	}))
	if _, err := Open(dir, Options{Partitions: 2, FS: failing}); !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("open on a failing disk: %v, want the injected error", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "p-0000")); err != nil {
		t.Fatalf("the failed open created no p-0000 (%v): the test no longer fails halfway", err)
	}
	if has, err := HasState(dir); err != nil || has {
		t.Fatalf("HasState after an unfinished creation: %v, %v; want false", has, err)
	}
	if err := CheckDir(dir, 3); err != nil {
		t.Fatalf("CheckDir after an unfinished creation: %v", err)
	}
	s, err := Open(dir, Options{Partitions: 3})
	if err != nil {
		t.Fatalf("open after an unfinished creation: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(dir, 3); err != nil {
		t.Fatalf("CheckDir of the created store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, creatingFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s left after the creation finished: %v", creatingFile, err)
	}
}

// TestUnfinishedJournalCreation: an Open that fails while it creates the
// push journal (here: its MANIFEST cannot be created) leaves no journal
// without its database, which would be refused as damaged for good: the
// next Open creates the journal again.
func TestUnfinishedJournalCreation(t *testing.T) {
	dir := t.TempDir()
	failing := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpCreate && strings.Contains(op.Path, journalDirName) && strings.Contains(op.Path, "MANIFEST") {
			return errorfs.ErrInjected
		}
		return nil
	}))
	if _, err := Open(dir, Options{Partitions: 2, FS: failing}); !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("open with the journal's MANIFEST failing: %v, want the injected error", err)
	}
	if err := CheckDir(dir, 2); err != nil {
		t.Fatalf("CheckDir after an unfinished journal creation: %v", err)
	}
	s, err := Open(dir, Options{Partitions: 2})
	if err != nil {
		t.Fatalf("open after an unfinished journal creation: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(dir, 2); err != nil {
		t.Fatalf("CheckDir of the created store: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, journalCreating)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s left after the journal was created: %v", journalCreating, err)
	}
}
