package featurestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// A store is P partitions, one Pebble each (p-0000, p-0001, ...), and the
// caller places every entity: Write.Partition and Read's partition are
// Kafka's default partitioner over the entity's record-key bytes
// (internal/keyenc.Partition), so the store's partition of an entity is the
// Kafka partition its events arrive on. The store never hashes a key itself.
const (
	partitionsFile = "PARTITIONS"
	// partitionerName names the placement function in PARTITIONS and in
	// every partition's meta key: a store placed by another cannot be read.
	partitionerName = "murmur2"
	// legacyShardsFile marks the layout before partitions: N shards placed
	// by FNV-1a of the encoded key. Open refuses it (ErrOldLayout);
	// MigrateStore rewrites it.
	legacyShardsFile = "SHARDS"
)

// ErrOldLayout is a store directory in the layout before partitions
// (store/SHARDS). Every *OldLayoutError matches it.
var ErrOldLayout = errors.New("featurestore: data dir has the single-node layout")

// OldLayoutError is Open's and CheckDir's refusal of a store directory with
// store/SHARDS: its entities are placed by another function, so a lookup
// would not find them. It says how to migrate.
type OldLayoutError struct {
	DataDir    string // the data dir the store directory is in
	Shards     int    // the old store's shard count
	Partitions int    // the count Open was asked for
}

func (e *OldLayoutError) Error() string {
	p := "P"
	if e.Partitions > 0 {
		p = strconv.Itoa(e.Partitions)
	}
	return fmt.Sprintf("store: data dir has the single-node layout of featured <= 0.x (store/SHARDS, %d shards); "+
		"run \"featured migrate-store --data-dir %s --partitions %s\" once, or start on an empty data dir "+
		"(in a cluster the node then warms up from the partitions' checkpoints)", e.Shards, e.DataDir, p)
}

// Unwrap makes an OldLayoutError match ErrOldLayout.
func (e *OldLayoutError) Unwrap() error { return ErrOldLayout }

// checkOldLayout refuses a store directory holding store/SHARDS.
func checkOldLayout(fs vfs.FS, dir string, partitions int) error {
	n, ok, err := readLegacyShardCount(fs, dir)
	if err != nil || !ok {
		return err
	}
	return &OldLayoutError{DataDir: filepath.Dir(filepath.Clean(dir)), Shards: n, Partitions: partitions}
}

// readLegacyShardCount reads the old layout's SHARDS file: ok is false
// when there is none.
func readLegacyShardCount(fs vfs.FS, dir string) (n int, ok bool, err error) {
	b, err := readFile(fs, filepath.Join(dir, legacyShardsFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("featurestore: read %s: %w", legacyShardsFile, err)
	}
	n, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 {
		return 0, false, &DamagedError{Path: filepath.Join(dir, legacyShardsFile), Problem: fmt.Sprintf("corrupt shard count %q", b)}
	}
	return n, true, nil
}

// metaPartKey -> partition (4 bytes) | P (4 bytes) | partitioner name:
// which partition of which store a Pebble is, written when the partition
// is created and checked on every Open, so a directory copied or restored
// to the wrong place is refused rather than served.
var metaPartKey = []byte{prefixMeta, 'p', 'a', 'r', 't'}

func partValue(partition, n int) []byte {
	v := binary.BigEndian.AppendUint32(nil, uint32(partition))
	v = binary.BigEndian.AppendUint32(v, uint32(n))
	return append(v, partitionerName...)
}

// checkPartMeta fails unless db is partition i of a store of n partitions,
// placed by this binary's partitioner.
func checkPartMeta(db *pebble.DB, path string, i, n int) error {
	v, closer, err := db.Get(metaPartKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return &DamagedError{Path: path, Problem: "has no partition record ('mpart'): not a partition of this store"}
	}
	if pebble.IsCorruptionError(err) {
		// A damaged block is the damage listener's (damage.go): the
		// partition serves its intact keys and fails Ready. The record
		// cannot be checked until the data is repaired.
		return nil
	}
	if err != nil {
		return fmt.Errorf("featurestore: read partition record of %s: %w", path, err)
	}
	defer closer.Close()
	if len(v) < 8 {
		return &DamagedError{Path: path, Problem: fmt.Sprintf("corrupt partition record %x", v)}
	}
	gotI, gotN, gotName := int(binary.BigEndian.Uint32(v)), int(binary.BigEndian.Uint32(v[4:])), string(v[8:])
	if gotI != i || gotN != n || gotName != partitionerName {
		return &DamagedError{Path: path, Problem: fmt.Sprintf("holds partition %d of %d (%s), not partition %d of %d (%s): a directory copied to the wrong place",
			gotI, gotN, gotName, i, n, partitionerName)}
	}
	return nil
}

// StoredPartitions returns the partition count of the store under dir, for
// the offline commands that open a stopped server's store with the count
// it was created with. A store of the old layout is an *OldLayoutError.
func StoredPartitions(dir string) (int, error) {
	if err := checkOldLayout(vfs.Default, dir, 0); err != nil {
		return 0, err
	}
	n, err := readPartitionCount(vfs.Default, dir)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("featurestore: %s holds no store", dir)
	}
	return n, nil
}
