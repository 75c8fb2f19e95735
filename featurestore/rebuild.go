package featurestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"

	"github.com/featured-dev/featured/aggregate"
)

// ErrRebuildRunning is returned by Rebuild of a view version that another
// Rebuild is building: both would build in the same staging keys.
var ErrRebuildRunning = errors.New("featurestore: a rebuild of the view version is running")

// RebuildOptions bounds a rebuild. The zero value is usable.
type RebuildOptions struct {
	// MemoryBytes bounds the decoded states a rebuild keeps in memory
	// (aggregate.State.MemBytes plus keys); one shard is rebuilt at a time,
	// so it is the rebuild's bound. Past three quarters of it, the states
	// are pruned and written out to the staging keys and dropped from
	// memory, so the fold that crosses that mark stays within the bound
	// unless one state alone grows by a quarter of it. The default value
	// is 256 MiB.
	MemoryBytes int64
	// BatchBytes is the most bytes of one Pebble batch the rebuild writes
	// (staging states, and the swap's copies). The default value is 4 MiB.
	BatchBytes int64
}

// EnsureDefaults fills zero fields with their defaults.
func (o *RebuildOptions) EnsureDefaults() {
	if o.MemoryBytes == 0 {
		o.MemoryBytes = 256 << 20
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = 4 << 20
	}
}

// Validate reports options that cannot work.
func (o *RebuildOptions) Validate() error {
	var errs []error
	if o.MemoryBytes < 64<<10 {
		errs = append(errs, fmt.Errorf("featurestore: rebuild memory bytes: %d is less than 64 KiB", o.MemoryBytes))
	}
	if o.BatchBytes < 4<<10 {
		errs = append(errs, fmt.Errorf("featurestore: rebuild batch bytes: %d is less than 4 KiB", o.BatchBytes))
	}
	return errors.Join(errs...)
}

// RebuildStats reports a Rebuild's work, summed over its shards.
type RebuildStats struct {
	// Entities is the number of states the rebuild switched to.
	Entities int
	// PeakMemoryBytes is the most memory the rebuild's states held at any
	// time (what RebuildOptions.MemoryBytes bounds).
	PeakMemoryBytes int64
	// Spills counts the times the states were written out to make room.
	Spills int
	// Batches counts the Pebble batches the rebuild committed.
	Batches int
	// TailEvents is the number of events folded while a shard was paused.
	TailEvents int
}

// RebuildFold folds one event into the rebuilt state of entity. fields is
// indexed like Write.Fields; neither entity nor fields is retained.
type RebuildFold func(entity []byte, eventMillis int64, fields []aggregate.Value) error

// RebuildSource produces the events a rebuild folds, in two steps per
// shard:
//
//  1. Scan runs on the goroutine that called Rebuild while the shard goes
//     on ingesting. It folds, in fold order, the events the shard had
//     committed when Scan began (a prefix of the shard's history), and
//     remembers where it stopped.
//  2. Tail runs on the shard's writer goroutine, with the writer paused
//     after it committed everything it held. It folds the events committed
//     after the point where Scan stopped, up to the shard's committed
//     position: Scan and Tail together fold exactly the shard's committed
//     history, each event once. The rebuild's batch is the shard's next
//     commit, so a record of the switch can be attached to it
//     (EventLog duty 6).
//
// Tail is called only after a Scan of the same shard returned nil.
type RebuildSource interface {
	Scan(ctx context.Context, shard int, fold RebuildFold) error
	Tail(ctx context.Context, shard int, fold RebuildFold) error
}

// Rebuild replaces every entity's state of view version vk with the fold,
// by l, of the events src produces, one shard at a time, with bounded
// memory and batches (opts). Per shard:
//
//   - The bulk is folded by src.Scan while ingest goes on, into a map of
//     states bounded by opts.MemoryBytes that spills to the shard's staging
//     keys (a key space of its own: nothing reads it, and the writer's
//     ingest into vk's live states does not touch it).
//   - Then the writer pauses: it commits what it holds, src.Tail folds the
//     events committed since Scan's starting point, the remaining states
//     are written to staging, and one synced batch (the rebuild's: it
//     carries the EventLog's record of the switch) records that vk's
//     staging replaces its live states. That batch is the switch's commit
//     point. Before the EventLog is told it committed, and before the
//     writer goes on, the staging states are copied over the live ones in
//     batches of opts.BatchBytes, live states with no staged one are
//     deleted, and the staging keys dropped. A reader in between sees, per
//     entity, the old state or the new one. A crash after the commit point
//     is finished by Open, before the writer starts; one before it leaves
//     the old state and staging keys Open drops.
//
// Ingest into a shard waits only for the tail, the last spill and the
// copy; the other shards go on. A shard whose build fails keeps its old
// state, and Rebuild returns the error; the shards before it keep the new.
func (s *Store) Rebuild(ctx context.Context, vk ViewKey, l *aggregate.Layout, opts RebuildOptions, src RebuildSource) (RebuildStats, error) {
	opts.EnsureDefaults()
	var stats RebuildStats
	if err := opts.Validate(); err != nil {
		return stats, err
	}
	s.rebuildMu.Lock()
	if s.rebuilding[vk] {
		s.rebuildMu.Unlock()
		return stats, fmt.Errorf("featurestore: rebuild view %d@v%d: %w", vk.ID, vk.Version, ErrRebuildRunning)
	}
	s.rebuilding[vk] = true
	s.rebuildMu.Unlock()
	defer func() {
		s.rebuildMu.Lock()
		delete(s.rebuilding, vk)
		s.rebuildMu.Unlock()
	}()
	for i, sh := range s.shards {
		if err := s.rebuildShard(ctx, sh, vk, l, &opts, src, &stats); err != nil {
			return stats, fmt.Errorf("featurestore: rebuild view %d@v%d, shard %d: %w", vk.ID, vk.Version, i, err)
		}
	}
	return stats, nil
}

func (s *Store) rebuildShard(ctx context.Context, sh *shard, vk ViewKey, l *aggregate.Layout, opts *RebuildOptions, src RebuildSource, stats *RebuildStats) error {
	b := &builder{db: sh.db, vk: vk, layout: l, opts: opts, states: map[string]*builtState{}, stats: stats,
		horizon: func() int64 { return s.opts.Now().Add(-s.opts.PruneSlack).UnixMilli() }}
	if err := b.dropStaging(); err != nil {
		return err
	}
	if err := src.Scan(ctx, sh.id, b.fold); err != nil {
		return errors.Join(err, b.dropStaging())
	}
	r := &request{kind: reqRebuild, view: vk, layout: l, builder: b, src: src, ctx: ctx, sync: true, done: make(chan error, 1)}
	reqs := make([]*request, len(s.shards))
	reqs[sh.id] = r
	if err := s.send(ctx, reqs); err != nil {
		// The writer drops the staging keys itself when it ran the
		// request; a request it never ran leaves them to the next
		// rebuild of vk or the next Open.
		return err
	}
	return nil
}

// builtState is one entity's state in a rebuild's memory.
type builtState struct {
	st    *aggregate.State
	bytes int64 // memBytes when last measured
}

// builtStateOverhead is the accounted cost of a map entry beyond the
// state and the key (held twice: the map's and the Get's scratch).
const builtStateOverhead = int64(unsafe.Sizeof(builtState{})) + 64

// builder folds a rebuild's states of one shard, with bounded memory. The
// Scan's goroutine owns it, then the shard's writer (handed over through
// the request's channel).
type builder struct {
	db      *pebble.DB
	vk      ViewKey
	layout  *aggregate.Layout
	opts    *RebuildOptions
	horizon func() int64
	stats   *RebuildStats

	states   map[string]*builtState
	memBytes int64
	// spilled says states were written to staging: a state not in memory
	// must then be looked up there.
	spilled bool
	keyBuf  []byte
	valBuf  []byte
}

// fold is the RebuildFold of b.
func (b *builder) fold(entity []byte, eventMillis int64, fields []aggregate.Value) error {
	e := b.states[string(entity)]
	if e == nil {
		e = &builtState{st: b.layout.NewState()}
		if b.spilled {
			b.keyBuf = appendStagingKey(b.keyBuf[:0], b.vk, entity)
			v, closer, err := b.db.Get(b.keyBuf)
			switch {
			case errors.Is(err, pebble.ErrNotFound):
			case err != nil:
				return fmt.Errorf("get staged state: %w", err)
			default:
				err = b.layout.Decode(e.st, v)
				closer.Close()
				if err != nil {
					return fmt.Errorf("decode staged state: %w", err)
				}
			}
		}
		b.states[string(entity)] = e
	}
	b.layout.Fold(e.st, eventMillis, fields)
	n := int64(e.st.MemBytes()) + 2*int64(len(entity)) + builtStateOverhead
	b.memBytes += n - e.bytes
	e.bytes = n
	b.stats.PeakMemoryBytes = max(b.stats.PeakMemoryBytes, b.memBytes)
	if b.memBytes > b.opts.MemoryBytes/4*3 {
		return b.spill()
	}
	return nil
}

// spill prunes every state in memory, writes it to staging in batches of
// at most BatchBytes, and drops it from memory. Pruning at the store's
// horizon is what a live commit does: it changes no read the store can
// still serve.
func (b *builder) spill() error {
	if len(b.states) == 0 {
		return nil
	}
	horizon := b.horizon()
	batch := b.db.NewBatch()
	defer func() { batch.Close() }()
	for k, e := range b.states {
		b.layout.Prune(e.st, horizon)
		b.valBuf = b.layout.AppendEncode(b.valBuf[:0], e.st)
		b.keyBuf = appendStagingKey(b.keyBuf[:0], b.vk, []byte(k))
		if err := batch.Set(b.keyBuf, b.valBuf, nil); err != nil {
			return fmt.Errorf("stage state: %w", err)
		}
		if int64(batch.Len()) >= b.opts.BatchBytes {
			if err := b.commit(batch); err != nil {
				return err
			}
			batch.Close()
			batch = b.db.NewBatch()
		}
	}
	if err := b.commit(batch); err != nil {
		return err
	}
	clear(b.states)
	b.memBytes = 0
	b.spilled = true
	b.stats.Spills++
	return nil
}

// commit commits a staging batch unsynced: the synced commit point of the
// switch comes after it in the same WAL.
func (b *builder) commit(batch *pebble.Batch) error {
	if batch.Empty() {
		return nil
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("commit staged states: %w", err)
	}
	b.stats.Batches++
	return nil
}

// dropStaging deletes vk's staging keys.
func (b *builder) dropStaging() error {
	start, end := stagingBounds(b.vk)
	if err := b.db.DeleteRange(start, end, pebble.NoSync); err != nil {
		return fmt.Errorf("drop staged states: %w", err)
	}
	return nil
}

// rebuild runs a rebuild's paused part on the writer goroutine: commit
// what the shard holds, fold the tail, stage every state, and commit the
// switch, whose commit point is the batch carrying swapKey (and the
// EventLog's record); commit runs the copy (swap) right after that batch
// is durable.
func (s *shard) rebuild(r *request) error {
	if err := s.commit(); err != nil {
		return errors.Join(err, r.builder.dropStaging())
	}
	b := r.builder
	tail := 0
	err := r.src.Tail(r.ctx, s.id, func(entity []byte, eventMillis int64, fields []aggregate.Value) error {
		tail++
		return b.fold(entity, eventMillis, fields)
	})
	b.stats.TailEvents += tail
	if err == nil {
		err = b.spill()
	}
	if err != nil {
		s.batch.Reset()
		return errors.Join(err, b.dropStaging())
	}
	// The view's cached states are clean (committed above, nothing folded
	// since): drop them, so writes after the switch load the new states.
	for k, cs := range s.states {
		if got, _, _ := parseStateKey(cs.key); got == r.view {
			s.uncache(k, cs)
		}
	}
	s.unquarantineView(r.view)
	if err := s.batch.Set(swapKey(r.view), nil, nil); err != nil {
		s.batch.Reset()
		return errors.Join(fmt.Errorf("set swap record: %w", err), b.dropStaging())
	}
	s.syncReq = true
	s.afterCommit = func() {
		n, err := swapStaged(s.db, r.view, b.opts.BatchBytes, &b.stats.Batches)
		if err != nil {
			// The switch is committed; Open finishes it. Going on would
			// fold writes into states the copy has not replaced yet.
			s.opts.Fatalf("shard %d: rebuild view %d@v%d: swap staged states: %v", s.id, r.view.ID, r.view.Version, err)
		}
		b.stats.Entities += n
	}
	err = s.commit()
	s.afterCommit = nil
	if err != nil {
		return errors.Join(err, b.dropStaging())
	}
	return nil
}

// swapStaged makes vk's staged states its live ones: it copies each over
// the live state, deletes the live states with no staged one, then drops
// the staging keys and the swap record, in batches of at most batchBytes
// (the last one synced). It is idempotent: Open runs it again for a swap
// record it finds. It returns the number of states copied.
func swapStaged(db *pebble.DB, vk ViewKey, batchBytes int64, batches *int) (int, error) {
	batch := db.NewBatch()
	defer func() { batch.Close() }()
	flush := func() error {
		if int64(batch.Len()) < batchBytes {
			return nil
		}
		if err := batch.Commit(pebble.NoSync); err != nil {
			return err
		}
		*batches++
		batch.Close()
		batch = db.NewBatch()
		return nil
	}
	sstart, send := stagingBounds(vk)
	staged, err := db.NewIter(&pebble.IterOptions{LowerBound: sstart, UpperBound: send})
	if err != nil {
		return 0, err
	}
	defer staged.Close()
	var key []byte
	n := 0
	for staged.First(); staged.Valid(); staged.Next() {
		key = appendStateKey(key[:0], vk, staged.Key()[stateKeyLen:])
		if err := batch.Set(key, staged.Value(), nil); err != nil {
			return n, err
		}
		n++
		if err := flush(); err != nil {
			return n, err
		}
	}
	if err := staged.Error(); err != nil {
		return n, err
	}
	// Live states of entities the rebuild has no state for (their events
	// are no longer in the log) go: walk both ranges in step.
	lstart, lend := viewBounds(vk)
	live, err := db.NewIter(&pebble.IterOptions{LowerBound: lstart, UpperBound: lend})
	if err != nil {
		return n, err
	}
	defer live.Close()
	staged.First()
	for live.First(); live.Valid(); live.Next() {
		entity := live.Key()[stateKeyLen:]
		key = appendStagingKey(key[:0], vk, entity)
		if staged.Valid() && string(staged.Key()) < string(key) {
			staged.SeekGE(key)
		}
		if staged.Valid() && string(staged.Key()) == string(key) {
			continue
		}
		if err := batch.Delete(live.Key(), nil); err != nil {
			return n, err
		}
		if err := flush(); err != nil {
			return n, err
		}
	}
	if err := errors.Join(live.Error(), staged.Error()); err != nil {
		return n, err
	}
	if err := batch.DeleteRange(sstart, send, nil); err != nil {
		return n, err
	}
	if err := batch.Delete(swapKey(vk), nil); err != nil {
		return n, err
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		return n, err
	}
	*batches++
	return n, nil
}

// recoverRebuilds finishes the swaps whose commit point was committed and
// drops the staging keys of rebuilds that never reached theirs. Open runs
// it before the shard's writer starts.
func (s *shard) recoverRebuilds() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: swapKeyPrefix, UpperBound: append(swapKeyPrefix[:len(swapKeyPrefix):len(swapKeyPrefix)], 0xff)})
	if err != nil {
		return fmt.Errorf("shard %d: read swap records: %w", s.id, err)
	}
	var views []ViewKey
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(swapKeyPrefix):]
		if len(k) != 8 {
			it.Close()
			return fmt.Errorf("shard %d: corrupt swap record %q", s.id, it.Key())
		}
		views = append(views, ViewKey{ID: binary.BigEndian.Uint32(k), Version: binary.BigEndian.Uint32(k[4:])})
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("shard %d: read swap records: %w", s.id, err)
	}
	var batches int
	for _, vk := range views {
		s.opts.Logger.Info("finishing a rebuild's swap", "shard", s.id, "view", vk.ID, "version", vk.Version)
		if _, err := swapStaged(s.db, vk, 4<<20, &batches); err != nil {
			return fmt.Errorf("shard %d: finish rebuild of view %d@v%d: %w", s.id, vk.ID, vk.Version, err)
		}
	}
	if err := s.db.DeleteRange([]byte{prefixStaging}, []byte{prefixStaging + 1}, pebble.Sync); err != nil {
		return fmt.Errorf("shard %d: drop staged states: %w", s.id, err)
	}
	return nil
}
