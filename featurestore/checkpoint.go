package featurestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
)

// CheckpointInfo is what a checkpoint holds besides its files: the commit
// point every partition was paused at, by partition.
type CheckpointInfo struct {
	Partitions []PartitionCheckpoint `json:"partitions"`
}

// PartitionCheckpoint is one partition's commit point in a checkpoint.
type PartitionCheckpoint struct {
	// Offsets are the next Kafka offsets to read, by topic and partition,
	// that the shard's checkpoint holds the state of.
	Offsets map[string]map[int32]int64 `json:"offsets,omitempty"`
	// LogPosition is the EventLog position the shard's checkpoint holds
	// (nil when the store has no EventLog or never committed one).
	LogPosition []byte `json:"log_position,omitempty"`
}

// Checkpoint writes a consistent copy of the store to dst, which must not
// exist: every shard at one commit point. It is a store-wide barrier: each
// writer commits what it holds (synced) and pauses, then every shard and the
// push journal are checkpointed (Pebble hard-links the sstables, so this
// takes milliseconds, not a copy of the data), during runs, and the writers
// resume. Reads go on throughout; writes wait for the pause to end.
//
// during runs while no shard can commit: the caller copies there whatever
// must agree with the shards' state (the registry, the EventLog up to the
// positions in the returned info). It must not call the Store's writing
// methods, which would wait for the paused writers. A nil during is fine.
//
// dst should be on the store's file system, or the sstables are copied.
func (s *Store) Checkpoint(ctx context.Context, dst string, during func() error) (*CheckpointInfo, error) {
	resume := make(chan struct{})
	reqs := make([]*request, len(s.shards))
	for i := range reqs {
		reqs[i] = &request{kind: reqPause, sync: true, paused: make(chan error, 1), resume: resume}
	}
	// Queued requests hold the writers until resume is closed, whatever
	// happens below: close it on every path.
	defer close(resume)
	if err := s.send(ctx, reqs); err != nil {
		return nil, fmt.Errorf("featurestore: checkpoint: %w", err)
	}
	for i, r := range reqs {
		select {
		case err := <-r.paused:
			if err != nil {
				return nil, fmt.Errorf("featurestore: checkpoint: commit shard %d: %w", i, err)
			}
		case <-s.shards[i].donec:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	info, err := s.checkpointPaused(dst)
	if err != nil {
		return nil, err
	}
	if during != nil {
		if err := during(); err != nil {
			return nil, err
		}
	}
	return info, nil
}

// checkpointPaused checkpoints every shard and the journal; the writers
// are paused.
func (s *Store) checkpointPaused(dst string) (*CheckpointInfo, error) {
	if _, err := os.Stat(dst); err == nil {
		return nil, fmt.Errorf("featurestore: checkpoint: %s exists", dst)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, fmt.Errorf("featurestore: checkpoint: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dst, partitionsFile), partitionsFileBody(len(s.shards)), 0o644); err != nil {
		return nil, fmt.Errorf("featurestore: checkpoint: record partition count: %w", err)
	}
	info := &CheckpointInfo{Partitions: make([]PartitionCheckpoint, len(s.shards))}
	for i, sh := range s.shards {
		if err := sh.db.Checkpoint(partitionDir(dst, i), pebble.WithFlushedWAL()); err != nil {
			return nil, fmt.Errorf("featurestore: checkpoint partition %d: %w", i, err)
		}
		sc := &info.Partitions[i]
		sh.mu.Lock()
		for tp, off := range sh.mu.committed {
			if sc.Offsets == nil {
				sc.Offsets = map[string]map[int32]int64{}
			}
			if sc.Offsets[tp.topic] == nil {
				sc.Offsets[tp.topic] = map[int32]int64{}
			}
			sc.Offsets[tp.topic][tp.partition] = off
		}
		sh.mu.Unlock()
		v, closer, err := sh.db.Get(metaLogKey)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("featurestore: checkpoint partition %d: read event log position: %w", i, err)
		default:
			sc.LogPosition = append([]byte(nil), v...)
			closer.Close()
		}
	}
	// After the shards: an atomic push journaled meanwhile is either in
	// a shard's checkpoint (its marker; the restored store skips it) or
	// not (the restored store applies it), never half.
	if err := s.journal.checkpoint(journalDir(dst)); err != nil {
		return nil, fmt.Errorf("featurestore: checkpoint push journal: %w", err)
	}
	return info, nil
}

// pause commits what the writer holds, synced, reports the outcome on
// r.paused and waits for r.resume; it runs on the writer goroutine.
func (s *shard) pause(r *request) {
	s.syncReq = true
	err := s.commit()
	r.paused <- err
	<-r.resume
}

func (j *journal) checkpoint(dst string) error {
	j.dbMu.RLock()
	defer j.dbMu.RUnlock()
	if j.dbClosed {
		return ErrClosed
	}
	return j.db.Checkpoint(dst, pebble.WithFlushedWAL())
}
