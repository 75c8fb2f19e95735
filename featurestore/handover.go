package featurestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// ErrNotEmpty is LoadPartition refusing a partition that already holds
// state or offsets: a checkpoint replaces nothing.
var ErrNotEmpty = errors.New("featurestore: partition is not empty")

// loadBatchBytes bounds one batch of LoadPartition's copy.
const loadBatchBytes = 4 << 20

// LoadStats is what LoadPartition copied.
type LoadStats struct {
	Keys  int64 `json:"keys"`
	Bytes int64 `json:"bytes"`
	// Offsets are the partition's restored next offsets, by offset name
	// and Kafka partition.
	Offsets map[string]map[int32]int64 `json:"offsets,omitempty"`
}

// CheckpointPartition writes a consistent copy of partition p to dst,
// which must not exist: only p's writer commits what it holds (synced) and
// pauses while Pebble checkpoints its DB (hard links), so the other
// partitions never wait. The offsets are in the same DB as the state, so
// the copy holds exactly the events up to the returned offsets.
func (s *Store) CheckpointPartition(ctx context.Context, p int, dst string) (*PartitionCheckpoint, error) {
	if p < 0 || p >= len(s.shards) {
		return nil, fmt.Errorf("featurestore: checkpoint partition %d: %w", p, ErrPartition)
	}
	resume := make(chan struct{})
	defer close(resume)
	reqs := make([]*request, len(s.shards))
	r := &request{kind: reqPause, sync: true, paused: make(chan error, 1), resume: resume}
	reqs[p] = r
	if err := s.send(ctx, reqs); err != nil {
		return nil, fmt.Errorf("featurestore: checkpoint partition %d: %w", p, err)
	}
	sh := s.shards[p]
	select {
	case err := <-r.paused:
		if err != nil {
			return nil, fmt.Errorf("featurestore: checkpoint partition %d: commit: %w", p, err)
		}
	case <-sh.donec:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := sh.db.Checkpoint(dst, pebble.WithFlushedWAL()); err != nil {
		return nil, fmt.Errorf("featurestore: checkpoint partition %d: %w", p, err)
	}
	pc := &PartitionCheckpoint{}
	sh.mu.Lock()
	for tp, off := range sh.mu.committed {
		if pc.Offsets == nil {
			pc.Offsets = map[string]map[int32]int64{}
		}
		if pc.Offsets[tp.topic] == nil {
			pc.Offsets[tp.topic] = map[int32]int64{}
		}
		pc.Offsets[tp.topic][tp.partition] = off
	}
	sh.mu.Unlock()
	return pc, nil
}

// LoadPartition fills partition p, which must hold no state and no offset
// of Kafka partition p (ErrNotEmpty), from the checkpoint of p under dir (CheckpointPartition,
// possibly another node's). The checkpoint is opened read-only as its own
// Pebble and refused unless its partition record names partition p of a
// store of this P. Every key but the partition record and the EventLog
// position (the checkpointing node's log, not ours) is copied through p's
// writer in batches of at most 4 MiB, the last synced; then the writer
// reloads its offsets, so a consumer started afterwards resumes where the
// checkpoint ends.
//
// Copying through the writer rather than swapping the DB directory keeps
// every reader's *pebble.DB valid and needs no close: reads of p during the
// load see a partial partition, so the caller must not route reads to p
// until it is caught up (cluster/replicas does not: p is not consumed yet).
//
// The other partitions are given p's restored offsets for the Kafka
// partition p where they have none: Offsets is the minimum over
// partitions, and without them the consumer of p would read p's topic from
// its start only to skip it. This is exact because a record of Kafka
// partition p is only ever applied to store partition p (a record in
// another partition is dead-lettered as wrong_partition, ingest.route).
func (s *Store) LoadPartition(ctx context.Context, p int, dir string) (LoadStats, error) {
	if p < 0 || p >= len(s.shards) {
		return LoadStats{}, fmt.Errorf("featurestore: load partition %d: %w", p, ErrPartition)
	}
	src, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, ErrorIfNotExists: true, Logger: pebbleLogger{l: s.opts.Logger.With("checkpoint", dir), part: "checkpoint " + dir, fatal: s.opts.Fatalf}})
	if err != nil {
		return LoadStats{}, fmt.Errorf("featurestore: load partition %d: open checkpoint: %w", p, err)
	}
	defer src.Close()
	if err := checkPartMeta(src, dir, p, len(s.shards)); err != nil {
		return LoadStats{}, fmt.Errorf("featurestore: load partition %d: %w", p, err)
	}
	r := &request{kind: reqLoad, load: &loadJob{src: src}, done: make(chan error, 1), ctx: ctx}
	reqs := make([]*request, len(s.shards))
	reqs[p] = r
	if err := s.send(ctx, reqs); err != nil {
		return LoadStats{}, fmt.Errorf("featurestore: load partition %d: %w", p, err)
	}
	st := r.load.stats
	// Where the other partitions have no offset for Kafka partition p,
	// they get p's (see above); recordMarks never lowers an offset.
	var marks []Position
	for name, parts := range st.Offsets {
		if off, ok := parts[int32(p)]; ok {
			marks = append(marks, Position{Topic: name, Partition: int32(p), Offset: off})
		}
	}
	if len(marks) > 0 {
		reqs := make([]*request, len(s.shards))
		for i := range reqs {
			if i != p {
				reqs[i] = &request{kind: reqWrite, marks: onlyMissing(s.shards[i], marks), sync: true, done: make(chan error, 1)}
			}
		}
		if err := s.send(ctx, reqs); err != nil {
			return st, fmt.Errorf("featurestore: load partition %d: record its offsets in the other partitions: %w", p, err)
		}
	}
	return st, nil
}

// onlyMissing returns the marks whose offset sh has not committed.
func onlyMissing(sh *shard, marks []Position) []Position {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var out []Position
	for _, m := range marks {
		if _, ok := sh.mu.committed[topicPartition{m.Topic, m.Partition}]; !ok {
			out = append(out, m)
		}
	}
	return out
}

// loadJob is a reqLoad's input and, once done is answered, its output.
type loadJob struct {
	src   *pebble.DB
	stats LoadStats
}

// load copies r.load.src into the shard; it runs on the writer goroutine,
// so no write interleaves with the copy.
func (s *shard) load(r *request) error {
	s.syncReq = true
	if err := s.commit(); err != nil {
		return fmt.Errorf("commit before load: %w", err)
	}
	if err := s.checkEmpty(); err != nil {
		return err
	}
	// The marker, synced before the first copied key, says the partition
	// is half loaded until the last batch deletes it with the offsets: an
	// Open that finds it (a crash) or a failed copy wipes the partition
	// back to empty, so it never holds state without its offsets.
	if err := s.db.Set(metaLoadKey, nil, pebble.Sync); err != nil {
		return fmt.Errorf("mark load: %w", err)
	}
	if err := s.copyFrom(r); err != nil {
		if werr := wipeLoad(s.db); werr != nil {
			s.opts.Logger.Error("featurestore: wipe a failed load; the next open wipes it", "partition", s.id, "err", werr)
		}
		return err
	}
	st := &r.load.stats
	// The writer's view of the partition is what it read at open: read it
	// again.
	clear(s.states)
	s.dirty = s.dirty[:0]
	s.cacheBytes = 0
	clear(s.applied)
	clear(s.changed)
	s.mu.Lock()
	clear(s.mu.committed)
	s.mu.Unlock()
	if err := s.loadOffsets(); err != nil {
		return err
	}
	if err := s.loadQuarantine(); err != nil {
		return err
	}
	if err := s.loadDeadLetterSeq(); err != nil {
		return err
	}
	s.mu.Lock()
	for tp, off := range s.mu.committed {
		if st.Offsets == nil {
			st.Offsets = map[string]map[int32]int64{}
		}
		if st.Offsets[tp.topic] == nil {
			st.Offsets[tp.topic] = map[int32]int64{}
		}
		st.Offsets[tp.topic][tp.partition] = off
	}
	s.mu.Unlock()
	return nil
}

// checkEmpty fails with ErrNotEmpty when the shard holds a state or an
// offset of its own Kafka partition. Offsets of other Kafka partitions do
// not count: every shard records them (the marks of Offsets' minimum
// rule), and a load gives them to the other shards (LoadPartition).
func (s *shard) checkEmpty() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixState}, UpperBound: []byte{prefixState + 1}})
	if err != nil {
		return fmt.Errorf("check empty: %w", err)
	}
	found := it.First()
	if err := it.Close(); err != nil {
		return fmt.Errorf("check empty: %w", err)
	}
	if found {
		return fmt.Errorf("%w: partition %d holds states", ErrNotEmpty, s.id)
	}
	it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixOffset}, UpperBound: []byte{prefixOffset + 1}})
	if err != nil {
		return fmt.Errorf("check empty: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if topic, part, ok := parseOffsetKey(it.Key()); ok && int(part) == s.id {
			return fmt.Errorf("%w: partition %d holds the offset of %s/%d", ErrNotEmpty, s.id, topic, part)
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("check empty: %w", err)
	}
	return nil
}

// copyFrom copies the checkpoint's keys into the shard, in batches of at
// most loadBatchBytes; the offsets go last, in the synced batch that
// deletes the load marker.
func (s *shard) copyFrom(r *request) error {
	st := &r.load.stats
	b := s.db.NewBatch()
	defer func() { b.Close() }()
	copyRange := func(lower, upper []byte) error {
		it, err := r.load.src.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return fmt.Errorf("read checkpoint: %w", err)
		}
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			k := it.Key()
			if k[0] == prefixOffset && lower[0] != prefixOffset {
				continue
			}
			if bytes.Equal(k, metaPartKey) || bytes.Equal(k, metaLogKey) || bytes.Equal(k, metaLoadKey) {
				continue
			}
			v, err := it.ValueAndErr()
			if err != nil {
				return fmt.Errorf("read checkpoint: %w", err)
			}
			if err := b.Set(k, v, nil); err != nil {
				return fmt.Errorf("copy: %w", err)
			}
			st.Keys++
			st.Bytes += int64(len(k) + len(v))
			if b.Len() >= loadBatchBytes && lower[0] != prefixOffset {
				if err := r.ctx.Err(); err != nil {
					return err
				}
				if err := s.db.Apply(b, pebble.NoSync); err != nil {
					return fmt.Errorf("copy: %w", err)
				}
				b.Close()
				b = s.db.NewBatch()
			}
		}
		if err := it.Error(); err != nil {
			return fmt.Errorf("read checkpoint: %w", err)
		}
		return nil
	}
	if err := copyRange([]byte{0}, []byte{0xff}); err != nil {
		return err
	}
	if err := copyRange([]byte{prefixOffset}, []byte{prefixOffset + 1}); err != nil {
		return err
	}
	if err := b.Delete(metaLoadKey, nil); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	if err := s.db.Apply(b, pebble.Sync); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	return nil
}

// metaLoadKey marks a partition LoadPartition is filling (see load).
var metaLoadKey = []byte{prefixMeta, 'l', 'o', 'a', 'd'}

// wipeLoad empties a partition whose load did not finish: every key but
// its partition record and EventLog position.
func wipeLoad(db *pebble.DB) error {
	keep := [][]byte{metaLogKey, metaPartKey} // in key order
	b := db.NewBatch()
	defer b.Close()
	lower := []byte{0}
	for _, k := range keep {
		if err := b.DeleteRange(lower, k, nil); err != nil {
			return err
		}
		lower = append(append([]byte(nil), k...), 0)
	}
	if err := b.DeleteRange(lower, []byte{0xff}, nil); err != nil {
		return err
	}
	return db.Apply(b, pebble.Sync)
}

// recoverLoad wipes the partition when a load was cut short (a crash
// between its first and last batch).
func (s *shard) recoverLoad() error {
	_, closer, err := s.db.Get(metaLoadKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("shard %d: read load marker: %w", s.id, err)
	}
	closer.Close()
	s.opts.Logger.Warn("featurestore: partition was half loaded from a checkpoint; emptied", "partition", s.id)
	if err := wipeLoad(s.db); err != nil {
		return fmt.Errorf("shard %d: wipe a half load: %w", s.id, err)
	}
	return nil
}

// PartitionEmpty reports whether partition p holds no state and no
// offsets: whether LoadPartition may fill it.
func (s *Store) PartitionEmpty(p int) (bool, error) {
	if p < 0 || p >= len(s.shards) {
		return false, fmt.Errorf("featurestore: partition %d: %w", p, ErrPartition)
	}
	err := s.shards[p].checkEmpty()
	if errors.Is(err, ErrNotEmpty) {
		return false, nil
	}
	return err == nil, err
}
