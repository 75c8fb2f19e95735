package featurestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/featured-dev/featured/aggregate"
)

// MigrateOptions configures MigrateStore.
type MigrateOptions struct {
	// Partitions is P, the new store's partition count: the Kafka
	// partition count of every source topic. Required.
	Partitions int
	// Place returns the partition, among n, of an entity of view version
	// vk by its encoded key (internal/keyenc.PartitionOf with the view's
	// entity), and false for a view version the registry no longer has:
	// its states are dropped, as the TTL scan would delete them. Required.
	Place func(vk ViewKey, entity []byte, n int) (partition int, ok bool)
	// PlaceSource returns the partition, among n, of an entity of source's
	// events by its encoded key: for the writes of pushes the old push
	// journal holds, which name their source. Nil: they are placed by Place
	// with their first target.
	PlaceSource func(source string, entity []byte, n int) (partition int, ok bool)
	// BeforeSwitch, when set, is called once the new store is complete,
	// before the renames that switch to it: featured migrate-store renames
	// the offline log's WAL directories there. It must be idempotent: a
	// run that crashes after it runs it again. Nil: not called.
	BeforeSwitch func() error
	// Logger receives Pebble's logs. The default value is slog.Default().
	Logger *slog.Logger
}

// MigrateStats says what MigrateStore did.
type MigrateStats struct {
	Shards, Partitions int
	// States and Quarantined are the state and quarantine keys rewritten;
	// Dropped the states of view versions Place did not know.
	States, Quarantined, Dropped int
	// Markers are the batch markers copied, each into every partition;
	// Offsets the (offset name, Kafka partition) offsets, likewise.
	Markers, Offsets int
	// DeadLetters are Kafka writes refused for corrupt state and not yet
	// published, moved to partition 0.
	DeadLetters int
	// Journaled are the atomic pushes the old journal held that some
	// shard had not applied: their unapplied writes are journaled in the
	// new store, which applies them when it opens.
	Journaled int
	// Old is where the old store now is: delete it once the new server
	// runs.
	Old string
}

// Suffixes of MigrateStore's directories beside the store's.
const (
	migrateNewSuffix = ".new"
	migrateOldSuffix = ".old"
)

// MigrateStore rewrites the store under dir from the layout before
// partitions (store/SHARDS: N shards placed by FNV-1a of the encoded key)
// into P partitions placed by opts.Place. It runs on a stopped server:
//
//  1. The old shards are opened read-only. It refuses, changing nothing,
//     when for some (offset name, Kafka partition) the shards' offsets
//     differ or a rebuild's swap is unfinished: the old server's Open and
//     clean shutdown settle both, so the error says to start and stop it
//     once. The pushes the old journal holds (a crash left them applied
//     by some shards only) are applied first, in effect: their writes
//     that no old shard applied are journaled in the new store, placed,
//     and their markers kept out of the partitions those writes go to, so
//     the new store's Open applies exactly those, once.
//  2. Every state and quarantine key is written into dir.new/p-NNNN by
//     Place; batch markers and offsets into every partition (a push's
//     parts, and a Kafka partition's events, may now be in any partition;
//     the shards' offsets are equal); shard i's offline log position into
//     partition i; pending dead letters into partition 0; the journal.
//     Staging keys of
//     an unfinished rebuild are dropped, as Open would.
//  3. PARTITIONS is written last; then dir is renamed dir.old and dir.new
//     dir. A crash before leaves dir untouched and a dir.new the next run
//     removes; a crash between the renames is finished by the next run.
func MigrateStore(dir string, opts MigrateOptions) (MigrateStats, error) {
	st := MigrateStats{Partitions: opts.Partitions, Old: dir + migrateOldSuffix}
	if opts.Partitions < 1 || opts.Partitions > 4096 {
		return st, fmt.Errorf("featurestore: migrate: partitions: %d is not in [1, 4096]", opts.Partitions)
	}
	if opts.Place == nil {
		return st, errors.New("featurestore: migrate: no Place function")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	newDir, oldDir := dir+migrateNewSuffix, dir+migrateOldSuffix
	if done, err := finishMigration(dir, newDir, oldDir); done || err != nil {
		return st, err
	}
	if err := os.RemoveAll(newDir); err != nil {
		return st, fmt.Errorf("featurestore: migrate: remove an unfinished %s: %w", newDir, err)
	}
	n, ok, err := readLegacyShardCount(vfs.Default, dir)
	if err != nil {
		return st, fmt.Errorf("featurestore: migrate: %w", err)
	}
	if !ok {
		if p, err := readPartitionCount(vfs.Default, dir); err == nil && p > 0 {
			return st, fmt.Errorf("featurestore: migrate: %s already has the partition layout (%d partitions)", dir, p)
		}
		return st, fmt.Errorf("featurestore: migrate: %s holds no store of the old layout (no %s)", dir, legacyShardsFile)
	}
	st.Shards = n
	if _, err := os.Stat(oldDir); err == nil {
		return st, fmt.Errorf("featurestore: migrate: %s exists (an earlier migration's old store?): move or delete it first", oldDir)
	}
	shards := make([]*pebble.DB, n)
	defer func() {
		for _, db := range shards {
			if db != nil {
				db.Close()
			}
		}
	}()
	for i := range shards {
		db, err := pebble.Open(legacyShardDir(dir, i), &pebble.Options{ReadOnly: true, ErrorIfNotExists: true, Logger: pebbleLogger{l: opts.Logger.With("shard", i), part: fmt.Sprintf("shard %d", i), fatal: func(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }}})
		if err != nil {
			return st, fmt.Errorf("featurestore: migrate: open shard %d: %w", i, err)
		}
		shards[i] = db
	}
	offsets, err := equalOffsets(shards)
	if err != nil {
		return st, err
	}
	st.Offsets = len(offsets)
	pending, err := pendingPushes(dir, shards, opts)
	if err != nil {
		return st, err
	}
	st.Journaled = len(pending)
	if err := migrateInto(newDir, shards, offsets, pending, opts, &st); err != nil {
		os.RemoveAll(newDir)
		return st, err
	}
	// The old shards stay open read-only until here; closing them before
	// the rename releases their files.
	for i, db := range shards {
		if err := db.Close(); err != nil {
			return st, fmt.Errorf("featurestore: migrate: close shard %d: %w", i, err)
		}
		shards[i] = nil
	}
	if f := opts.BeforeSwitch; f != nil {
		if err := f(); err != nil {
			return st, fmt.Errorf("featurestore: migrate: %w", err)
		}
	}
	if err := os.Rename(dir, oldDir); err != nil {
		return st, fmt.Errorf("featurestore: migrate: %w", err)
	}
	if err := os.Rename(newDir, dir); err != nil {
		return st, fmt.Errorf("featurestore: migrate: %w (run it again to finish)", err)
	}
	if err := syncDir(vfs.Default, filepath.Dir(dir)); err != nil {
		return st, fmt.Errorf("featurestore: migrate: %w", err)
	}
	return st, nil
}

// finishMigration completes a migration that crashed between its two
// renames: dir is gone, dir.old is the old store and dir.new is complete
// (PARTITIONS, written last, is there).
func finishMigration(dir, newDir, oldDir string) (bool, error) {
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if _, err := os.Stat(oldDir); err != nil {
		return false, nil
	}
	if _, err := os.Stat(filepath.Join(newDir, partitionsFile)); err != nil {
		return false, nil
	}
	if err := os.Rename(newDir, dir); err != nil {
		return false, fmt.Errorf("featurestore: migrate: finish an interrupted migration: %w", err)
	}
	return true, syncDir(vfs.Default, filepath.Dir(dir))
}

// legacyShardDir is shard i of the old layout.
func legacyShardDir(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("shard-%03d", i))
}

// pendingPush is an atomic push of the old journal, less the writes the
// old shards already applied (those holding its marker), placed anew;
// parts are the partitions that get the rest, which must not receive a
// copy of the push's marker: the new store's Open applies the rest to the
// partitions that lack it.
type pendingPush struct {
	entry *journalEntry
	parts map[int]bool
}

// pendingPushes reads the old store's push journal (pushes journaled
// before any shard applied them, deleted once every shard did): what a
// crash left there is carried into the new store's journal, its applied
// part dropped, so that the new store applies the rest once.
func pendingPushes(dir string, shards []*pebble.DB, opts MigrateOptions) (map[string]*pendingPush, error) {
	if _, err := os.Stat(journalDir(dir)); errors.Is(err, os.ErrNotExist) || journalUnfinished(vfs.Default, dir) {
		return nil, nil
	}
	db, err := pebble.Open(journalDir(dir), &pebble.Options{ReadOnly: true, ErrorIfNotExists: true})
	if err != nil {
		return nil, fmt.Errorf("featurestore: migrate: open push journal: %w", err)
	}
	defer db.Close()
	it, err := db.NewIter(nil)
	if err != nil {
		return nil, fmt.Errorf("featurestore: migrate: read push journal: %w", err)
	}
	defer it.Close()
	// Targets are carried by view key only: no write is folded here.
	var noLayout aggregate.Layout
	out := map[string]*pendingPush{}
	for it.First(); it.Valid(); it.Next() {
		id := string(it.Key())
		e, _, err := decodeEntry(id, it.Value(), func(ViewKey) *aggregate.Layout { return &noLayout })
		if err != nil {
			return nil, fmt.Errorf("featurestore: migrate: push journal: %w", err)
		}
		has := map[int]bool{}
		for i := range shards {
			if has[i], err = holdsMarker(shards[i], id); err != nil {
				return nil, fmt.Errorf("featurestore: migrate: shard %d: %w", i, err)
			}
		}
		pp := &pendingPush{entry: e, parts: map[int]bool{}}
		rest := e.writes[:0]
		for _, w := range e.writes {
			if has[legacyShardOf(w.Entity, len(shards))] {
				continue // applied by its old shard
			}
			part, ok := 0, false
			if opts.PlaceSource != nil && w.Schema != nil {
				part, ok = opts.PlaceSource(w.Schema.Source, w.Entity, opts.Partitions)
			}
			if !ok && len(w.Targets) > 0 {
				part, ok = opts.Place(w.Targets[0].Key, w.Entity, opts.Partitions)
			}
			if !ok {
				return nil, fmt.Errorf("featurestore: migrate: journaled push %q: cannot place a write of %s: its source and views are gone", id, sourceOf(&w))
			}
			w.Partition = part
			pp.parts[part] = true
			rest = append(rest, w)
		}
		e.writes = rest
		if len(rest) > 0 {
			out[id] = pp
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("featurestore: migrate: read push journal: %w", err)
	}
	return out, nil
}

func sourceOf(w *Write) string {
	if w.Schema == nil {
		return "an unknown source"
	}
	return "source " + w.Schema.Source
}

// holdsMarker reports whether db holds a batch marker of id, in any hour.
func holdsMarker(db *pebble.DB, id string) (bool, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixMarker}, UpperBound: []byte{prefixMarker + 1}})
	if err != nil {
		return false, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if k := it.Key(); len(k) >= 5 && string(k[5:]) == id {
			return true, nil
		}
	}
	return false, it.Error()
}

// legacyShardOf is the placement of the layout before partitions:
// FNV-1a 64 of the encoded key modulo the shard count.
func legacyShardOf(entity []byte, n int) int {
	h := uint64(14695981039346656037)
	for _, c := range entity {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return int(h % uint64(n))
}

// equalOffsets returns the offsets every shard holds, refusing when the
// shards differ on one: the old store's per-shard skip rule cannot be
// carried into offsets shared by every partition without applying some
// events twice or never.
func equalOffsets(shards []*pebble.DB) (map[string]int64, error) {
	per := make([]map[string]int64, len(shards))
	all := map[string]bool{}
	for i, db := range shards {
		per[i] = map[string]int64{}
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixOffset}, UpperBound: []byte{prefixOffset + 1}})
		if err != nil {
			return nil, fmt.Errorf("featurestore: migrate: read offsets of shard %d: %w", i, err)
		}
		for it.First(); it.Valid(); it.Next() {
			if len(it.Value()) != 8 {
				it.Close()
				return nil, fmt.Errorf("featurestore: migrate: shard %d: corrupt offset %x", i, it.Key())
			}
			per[i][string(it.Key())] = int64(binary.BigEndian.Uint64(it.Value()))
			all[string(it.Key())] = true
		}
		if err := it.Close(); err != nil {
			return nil, fmt.Errorf("featurestore: migrate: read offsets of shard %d: %w", i, err)
		}
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]int64{}
	for _, k := range keys {
		first, ok0 := per[0][k]
		for i := 1; i < len(per); i++ {
			v, ok := per[i][k]
			if ok != ok0 || v != first {
				name, p, _ := parseOffsetKey([]byte(k))
				return nil, fmt.Errorf("featurestore: migrate: the shards hold different offsets for %s partition %d (shard 0: %s, shard %d: %s): "+
					"start and stop the old server once (a clean shutdown commits the last batch's marks on every shard, which equalises them), then migrate",
					name, p, offsetText(first, ok0), i, offsetText(v, ok))
			}
		}
		out[k] = first
	}
	return out, nil
}

func offsetText(v int64, ok bool) string {
	if !ok {
		return "none"
	}
	return fmt.Sprint(v)
}

// migrateBatchBytes is the size at which a partition's batch is committed.
const migrateBatchBytes = 4 << 20

// migrateInto writes the new store into newDir.
func migrateInto(newDir string, shards []*pebble.DB, offsets map[string]int64, pending map[string]*pendingPush, opts MigrateOptions, st *MigrateStats) error {
	if err := os.MkdirAll(newDir, 0o755); err != nil {
		return fmt.Errorf("featurestore: migrate: %w", err)
	}
	sopts := Options{Partitions: opts.Partitions, Logger: opts.Logger}
	sopts.EnsureDefaults()
	cache := pebble.NewCache(sopts.CacheBytes)
	defer cache.Unref()
	fileCache := pebble.NewFileCache(1, pebble.FileCacheSize(1000))
	defer fileCache.Unref()
	p := opts.Partitions
	dbs := make([]*pebble.DB, p)
	batches := make([]*pebble.Batch, p)
	defer func() {
		for _, db := range dbs {
			if db != nil {
				db.Close()
			}
		}
	}()
	for i := range dbs {
		db, err := pebble.Open(partitionDir(newDir, i), partitionOptions(&sopts, i, cache, fileCache, newDamage(i, opts.Logger), false))
		if err != nil {
			return fmt.Errorf("featurestore: migrate: create partition %d: %w", i, err)
		}
		dbs[i] = db
		batches[i] = db.NewBatch()
		if err := batches[i].Set(metaPartKey, partValue(i, p), nil); err != nil {
			return err
		}
		for k, v := range offsets {
			if err := batches[i].Set([]byte(k), binary.BigEndian.AppendUint64(nil, uint64(v)), nil); err != nil {
				return err
			}
		}
	}
	set := func(i int, k, v []byte) error {
		b := batches[i]
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
		if b.Len() >= migrateBatchBytes {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("featurestore: migrate: write partition %d: %w", i, err)
			}
			b.Reset()
		}
		return nil
	}
	var deadSeq uint64
	for si, db := range shards {
		it, err := db.NewIter(nil)
		if err != nil {
			return fmt.Errorf("featurestore: migrate: read shard %d: %w", si, err)
		}
		for it.First(); it.Valid(); it.Next() {
			k, v := it.Key(), it.Value()
			var err error
			switch k[0] {
			case prefixState, prefixQuarantine:
				sk := k
				if k[0] == prefixQuarantine {
					sk = k[1:]
				}
				vk, entity, ok := parseStateKey(sk)
				if !ok {
					err = fmt.Errorf("corrupt state key %x", k)
					break
				}
				part, ok := opts.Place(vk, entity, p)
				if !ok {
					st.Dropped++
					break
				}
				if part < 0 || part >= p {
					err = fmt.Errorf("view %d@v%d: Place put an entity in partition %d of %d", vk.ID, vk.Version, part, p)
					break
				}
				if k[0] == prefixState {
					st.States++
				} else {
					st.Quarantined++
				}
				err = set(part, k, v)
			case prefixMarker:
				st.Markers++
				var skip map[int]bool
				if len(k) >= 5 && pending[string(k[5:])] != nil {
					skip = pending[string(k[5:])].parts
				}
				for i := range batches {
					if skip[i] {
						continue // the new store applies the push's rest here
					}
					if err = set(i, k, v); err != nil {
						break
					}
				}
			case prefixOffset, prefixStaging:
				// Offsets are written above, equal in every partition;
				// staging keys without a swap are dropped, as Open would.
			case prefixDeadLetter:
				st.DeadLetters++
				err = set(0, deadLetterKey(deadSeq), v)
				deadSeq++
			case prefixMeta:
				switch {
				case string(k) == string(metaLogKey) && si < p:
					err = set(si, k, v)
				case string(k) == string(metaLogKey):
					err = fmt.Errorf("shard %d has an offline log position, and the store would have only %d partitions: migrate to at least %d (the offline log keeps a log per shard, continued by the partition of the same number)", si, p, len(shards))
				case len(k) >= len(swapKeyPrefix) && string(k[:len(swapKeyPrefix)]) == string(swapKeyPrefix):
					err = errors.New("a rebuild's swap is unfinished: start and stop the old server once (its start finishes it), then migrate")
				default:
					err = fmt.Errorf("unknown meta key %q", k)
				}
			default:
				err = fmt.Errorf("unknown key %x", k)
			}
			if err != nil {
				it.Close()
				return fmt.Errorf("featurestore: migrate: shard %d: %w", si, err)
			}
		}
		if err := it.Close(); err != nil {
			return fmt.Errorf("featurestore: migrate: read shard %d: %w", si, err)
		}
	}
	for i, b := range batches {
		if err := b.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("featurestore: migrate: write partition %d: %w", i, err)
		}
		b.Close()
		if err := dbs[i].Flush(); err != nil {
			return fmt.Errorf("featurestore: migrate: flush partition %d: %w", i, err)
		}
		if err := dbs[i].Close(); err != nil {
			dbs[i] = nil
			return fmt.Errorf("featurestore: migrate: close partition %d: %w", i, err)
		}
		dbs[i] = nil
	}
	if len(pending) > 0 {
		if err := writeJournal(newDir, pending); err != nil {
			return err
		}
	}
	// Last: PARTITIONS makes newDir a store.
	if err := writeFileSync(vfs.Default, newDir, partitionsFile, partitionsFileBody(p)); err != nil {
		return fmt.Errorf("featurestore: migrate: record partition count: %w", err)
	}
	return nil
}

// writeJournal writes the new store's push journal: the pending pushes'
// unapplied writes, placed, which its Open applies.
func writeJournal(newDir string, pending map[string]*pendingPush) error {
	db, err := pebble.Open(journalDir(newDir), &pebble.Options{})
	if err != nil {
		return fmt.Errorf("featurestore: migrate: create push journal: %w", err)
	}
	for id, pp := range pending {
		v, err := appendEntry(nil, pp.entry)
		if err == nil {
			err = db.Set([]byte(id), v, pebble.Sync)
		}
		if err != nil {
			db.Close()
			return fmt.Errorf("featurestore: migrate: journal push %q: %w", id, err)
		}
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("featurestore: migrate: create push journal: %w", err)
	}
	return nil
}
