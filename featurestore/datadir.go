package featurestore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrDamaged is a data directory that lacks something it must hold: a
// partition directory, the PARTITIONS file. Serving it would answer NOT_FOUND (or another
// shard's values) for entities that exist, so Open refuses it. Every
// *DamagedError matches it.
var ErrDamaged = errors.New("featurestore: damaged data dir")

// DamagedError names the missing or inconsistent file of a damaged data
// directory.
type DamagedError struct {
	Path    string // the file or directory that is missing or wrong
	Problem string
}

func (e *DamagedError) Error() string {
	return "featurestore: damaged data dir: " + e.Path + ": " + e.Problem
}

// Unwrap makes a DamagedError match ErrDamaged.
func (e *DamagedError) Unwrap() error { return ErrDamaged }

// partitionDir is partition i's Pebble under the store's dir.
func partitionDir(dir string, i int) string { return filepath.Join(dir, fmt.Sprintf("p-%04d", i)) }

// partitionDirs lists the p-NNNN directories under dir.
func partitionDirs(fs vfs.FS, dir string) ([]string, error) {
	names, err := fs.List(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range names {
		if !strings.HasPrefix(name, "p-") {
			continue
		}
		if fi, err := fs.Stat(filepath.Join(dir, name)); err == nil && fi.IsDir() {
			out = append(out, name)
		}
	}
	return out, nil
}

// readFile is os.ReadFile on fs.
func readFile(fs vfs.FS, path string) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// creatingFile marks a store whose first Open has not finished creating
// it (checkPartitionCount).
const creatingFile = partitionsFile + ".creating"

// writeFileSync creates dir/name on fs holding b, and syncs it and dir.
func writeFileSync(fs vfs.FS, dir, name string, b []byte) error {
	f, err := fs.Create(filepath.Join(dir, name), vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(fs, dir)
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// creating reports whether dir holds an unfinished creation:
// PARTITIONS.creating and no PARTITIONS.
func creating(fs vfs.FS, dir string) bool {
	_, err := fs.Stat(filepath.Join(dir, creatingFile))
	return err == nil
}

// HasState reports whether dir holds a store: a PARTITIONS file, a
// partition directory or the SHARDS file of the old layout. A data dir whose
// registry is gone must not be served when this is true.
func HasState(dir string) (bool, error) {
	for _, name := range []string{partitionsFile, legacyShardsFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return true, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("featurestore: %w", err)
		}
	}
	if creating(vfs.Default, dir) {
		return false, nil // no Open finished: nothing was stored
	}
	dirs, err := partitionDirs(vfs.Default, dir)
	if err != nil {
		return false, fmt.Errorf("featurestore: list %s: %w", dir, err)
	}
	if len(dirs) > 0 {
		return true, nil
	}
	// A journal alone still holds pushes acknowledged as journaled (unless
	// its creation did not finish).
	if _, err := os.Stat(journalDir(dir)); err == nil && !journalUnfinished(vfs.Default, dir) {
		return true, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("featurestore: %w", err)
	}
	return false, nil
}

// CheckDir reports whether Open would refuse dir as damaged (a
// *DamagedError), as another partition count, or as the old layout
// (ErrOldLayout), without opening anything; a dir that does not exist yet is
// fine. featured serve calls it before it opens the registry so that it can
// offer to start afresh.
func CheckDir(dir string, partitions int) error {
	if err := checkOldLayout(vfs.Default, dir, partitions); err != nil {
		return err
	}
	created, err := readPartitionCount(vfs.Default, dir)
	if err != nil {
		return err
	}
	if created == 0 {
		return nil
	}
	if created != partitions {
		return partitionCountError(dir, created, partitions)
	}
	for i := 0; i < created; i++ {
		if err := checkPartitionDir(vfs.Default, dir, i, created); err != nil {
			return err
		}
	}
	return checkJournalDir(vfs.Default, dir)
}

func partitionCountError(dir string, have, want int) error {
	return fmt.Errorf("featurestore: data dir %s has %d partitions, not %d: reopen with --partitions=%d (the count is fixed when the store is created)", dir, have, want, have)
}

// readPartitionCount returns the count PARTITIONS records, or 0 for a new
// store (also one whose creation did not finish: see checkPartitionCount).
// A missing PARTITIONS beside partition directories is otherwise damage:
// counting the directories would guess, and a wrong guess places every
// entity in another partition.
func readPartitionCount(fs vfs.FS, dir string) (int, error) {
	path := filepath.Join(dir, partitionsFile)
	b, err := readFile(fs, path)
	if errors.Is(err, os.ErrNotExist) {
		if creating(fs, dir) {
			return 0, nil
		}
		dirs, lerr := partitionDirs(fs, dir)
		if lerr != nil {
			return 0, fmt.Errorf("featurestore: list %s: %w", dir, lerr)
		}
		if len(dirs) > 0 {
			return 0, &DamagedError{Path: path, Problem: fmt.Sprintf("missing, but %d partition directories exist (%s...): the partition count cannot be known", len(dirs), dirs[0])}
		}
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("featurestore: read partition count: %w", err)
	}
	have, err := parsePartitionsFile(b)
	if err != nil {
		return 0, &DamagedError{Path: path, Problem: err.Error()}
	}
	return have, nil
}

// partitionsFileBody is PARTITIONS' content for a store of n partitions.
func partitionsFileBody(n int) []byte {
	return []byte("P=" + strconv.Itoa(n) + " partitioner=" + partitionerName + "\n")
}

// parsePartitionsFile reads "P=16 partitioner=murmur2": the count, after
// checking the partitioner is the one this binary places entities with.
func parsePartitionsFile(b []byte) (int, error) {
	n, partitioner := 0, ""
	for _, f := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "P":
			p, err := strconv.Atoi(v)
			if err != nil || p < 1 {
				return 0, fmt.Errorf("corrupt partition count %q", b)
			}
			n = p
		case "partitioner":
			partitioner = v
		}
	}
	switch {
	case n == 0:
		return 0, fmt.Errorf("corrupt partition count %q", b)
	case partitioner != partitionerName:
		return 0, fmt.Errorf("partitioner %q, but this featured places entities by %s", partitioner, partitionerName)
	}
	return n, nil
}

// checkPartitionDir fails unless partition i of a store created with n
// partitions has its Pebble database (its CURRENT marker or, on Pebble's
// newer formats, a MANIFEST).
func checkPartitionDir(fs vfs.FS, dir string, i, n int) error {
	p := partitionDir(dir, i)
	names, err := fs.List(p)
	if errors.Is(err, os.ErrNotExist) {
		return &DamagedError{Path: p, Problem: fmt.Sprintf("missing (the store has %d partitions, recorded in %s)", n, partitionsFile)}
	}
	if err != nil {
		return fmt.Errorf("featurestore: %w", err)
	}
	if !holdsPebble(names) {
		return &DamagedError{Path: p, Problem: "holds no Pebble database (no MANIFEST)"}
	}
	return nil
}

// checkJournalDir fails if the push journal exists without its Pebble
// database. A missing journal is fine: stores made before it had none, and
// Open creates it. (A journal deleted by hand loses the atomic pushes that
// were journaled and not yet applied by every shard; nothing can tell.)
func checkJournalDir(fs vfs.FS, dir string) error {
	if journalUnfinished(fs, dir) {
		return nil // an unfinished creation: Open creates it again
	}
	p := journalDir(dir)
	names, err := fs.List(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("featurestore: %w", err)
	}
	if !holdsPebble(names) {
		return &DamagedError{Path: p, Problem: "holds no Pebble database (no MANIFEST): the push journal is damaged"}
	}
	return nil
}

// holdsPebble reports whether a directory's names include a Pebble
// database's CURRENT marker or, on Pebble's newer formats, a MANIFEST.
func holdsPebble(names []string) bool {
	for _, name := range names {
		if strings.HasPrefix(name, "MANIFEST-") || strings.HasPrefix(name, "marker.manifest") || name == "CURRENT" {
			return true
		}
	}
	return false
}
