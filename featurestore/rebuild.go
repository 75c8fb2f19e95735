package featurestore

import (
	"context"
	"fmt"

	"github.com/featured-dev/featured/aggregate"
)

// RebuildFunc produces the state of one view version for every entity of
// one shard, calling emit once per entity (emit encodes st at once; st may be
// reused after it returns). It runs on the shard's writer goroutine while the
// writer is paused, after everything the shard applied has been committed,
// so the EventLog's committed position is exactly the set of events the
// shard's states reflect: folding the log up to there and letting ingestion
// resume leaves no gap and counts nothing twice.
type RebuildFunc func(ctx context.Context, shard int, emit func(entity []byte, st *aggregate.State) error) error

// Rebuild replaces every entity's state of view version vk with what build
// produces, one shard at a time: the shard's writer commits what it holds,
// runs build, and commits the old state's deletion and the new states in one
// synced batch. Ingest into that shard waits meanwhile (its queue fills and
// Enqueue and Write block); the other shards go on. A shard whose build
// fails keeps its old state, and Rebuild returns the error.
func (s *Store) Rebuild(ctx context.Context, vk ViewKey, l *aggregate.Layout, build RebuildFunc) error {
	for i := range s.shards {
		r := &request{kind: reqRebuild, view: vk, layout: l, build: build, ctx: ctx, sync: true, done: make(chan error, 1)}
		reqs := make([]*request, len(s.shards))
		reqs[i] = r
		if err := s.send(ctx, reqs); err != nil {
			return fmt.Errorf("featurestore: rebuild view %d@v%d, shard %d: %w", vk.ID, vk.Version, i, err)
		}
	}
	return nil
}

// rebuild runs on the writer goroutine.
func (s *shard) rebuild(r *request) error {
	s.commit()
	s.dropView(r.view)
	err := r.build(r.ctx, s.id, func(entity []byte, st *aggregate.State) error {
		s.valBuf = r.layout.AppendEncode(s.valBuf[:0], st)
		s.keyBuf = appendStateKey(s.keyBuf[:0], r.view, entity)
		return s.batch.Set(s.keyBuf, s.valBuf, nil)
	})
	if err != nil {
		s.batch.Reset()
		return err
	}
	return nil
}
