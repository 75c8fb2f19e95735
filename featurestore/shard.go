package featurestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"

	"github.com/featured-dev/featured/aggregate"
)

type requestKind uint8

const (
	reqWrite requestKind = iota
	reqFlush
	reqDrop
	reqGC
	reqRebuild
	reqPause // Store.Checkpoint, Store.CheckpointPartition
	reqLoad  // Store.LoadPartition
)

// request is one unit of work for a shard's writer.
type request struct {
	kind   requestKind
	writes []Write
	// marks are offsets the shard records as applied once writes are folded:
	// the next offset to read per partition of the consumer's batch. Every
	// shard receives them, including shards that got no event of the batch, so
	// that the minimum over shards always advances.
	marks []Position
	// fence, when set (EnqueueFenced), is the fence of the one partition
	// of writes and marks: the request is dropped if a failed commit has
	// moved it.
	fence *Fence
	sync  bool
	done  chan error
	// index is, for a Write split over shards, each write's index in the
	// caller's slice; nil when writes is that slice. rejected lists the
	// pushed writes the writer refused; the caller reads it after done.
	index    []int
	rejected []Rejection
	view     ViewKey  // reqDrop
	keys     [][]byte // reqGC: candidate state keys
	// reqRebuild
	layout  *aggregate.Layout
	builder *builder
	src     RebuildSource
	ctx     context.Context
	// mark, when set on a reqWrite, makes the writes one part of a push
	// with a batch ID (dedupe.go).
	mark *batchMark
	// reqPause: the writer reports its commit on paused, then waits for
	// resume to be closed.
	paused chan error
	resume chan struct{}
	// reqLoad: the checkpoint to copy, and what was copied.
	load *loadJob
}

type topicPartition struct {
	topic     string
	partition int32
}

// cachedState is a decoded state owned by a shard's writer.
type cachedState struct {
	key    []byte
	layout *aggregate.Layout
	state  *aggregate.State
	dirty  bool
	bytes  int // memBytes when last measured (load and commit)
}

// memBytes is what a cached state costs the writer: the decoded state, its
// key twice (the entry's own and the map's) and the map entry.
func (cs *cachedState) memBytes() int {
	return cs.state.MemBytes() + 2*len(cs.key) + int(unsafe.Sizeof(*cs)) + 64
}

// shard is one Pebble database and its writer goroutine.
type shard struct {
	id     int
	db     *pebble.DB
	opts   *Options
	damage *damage
	deadc  chan struct{} // Store.deadc
	fences *fences       // the Store's; moved by commit when it fails
	reqs   chan *request
	stopc  chan struct{}
	donec  chan struct{}

	// Owned by the writer goroutine.
	batch   *pebble.Batch
	pending int
	syncReq bool
	// unsynced: a commit since the last synced one was not synced, so a
	// sync request with nothing pending still has to sync (Flush).
	unsynced bool
	waiters  []chan error
	states   map[string]*cachedState
	dirty    []*cachedState
	// cacheBytes is the sum of the cached states' bytes (see evict).
	cacheBytes int64
	applied    map[topicPartition]int64 // next offset, including uncommitted
	changed    map[topicPartition]bool  // offsets to write in the next commit
	keyBuf     []byte
	valBuf     []byte
	folded     []ViewKey      // scratch for EventLog.Append
	loaded     []*cachedState // scratch: a write's target states
	// quarantined holds the state keys whose stored bytes do not decode
	// (damage.go); loaded at open from their copies.
	quarantined map[string]struct{}
	deadSeq     uint64 // next dead letter's key
	deadPending bool   // dead letters recorded since the last commit
	// pendingMarks are the batch markers in s.batch, by batch ID; cleared
	// by every commit, whatever its outcome (dedupe.go).
	pendingMarks  map[string]marker
	markersGCHour uint32 // markers of buckets before it are deleted
	// afterCommit, when set, runs once the next batch is committed and
	// before the EventLog hears of it (Committed) and the waiters are
	// answered: a rebuild's swap (rebuild.go).
	afterCommit func()

	mu struct {
		sync.Mutex
		// committed holds the offsets of the last successful commit, for
		// Offsets. Written by the writer, read by anyone.
		committed map[topicPartition]int64
		stats     ShardStats
	}
}

// ShardStats counts a shard's work since Open.
type ShardStats struct {
	Commits       uint64 `json:"commits"`
	WritesApplied uint64 `json:"writes_applied"`
	WritesSkipped uint64 `json:"writes_skipped"` // Kafka events at offsets the shard had already applied
	// CommitsFailed counts commits that failed; their uncommitted state was
	// dropped and the fences of its partitions moved (see Fence).
	CommitsFailed uint64 `json:"commits_failed"`
	// WritesFenced counts Kafka events dropped unapplied because a failed
	// commit had moved their partition's fence; the consumer reads them again.
	WritesFenced  uint64 `json:"writes_fenced"`
	StatesDeleted uint64 `json:"states_deleted"` // by the TTL scan
	// TTLScans counts the TTL sweep's completed scans of the shard,
	// TTLStatesScanned the states they read, and TTLLastScanMillis is when
	// the last one ended (0: none yet): the sweep's progress.
	TTLScans          uint64 `json:"ttl_scans"`
	TTLStatesScanned  uint64 `json:"ttl_states_scanned"`
	TTLLastScanMillis int64  `json:"ttl_last_scan_millis"`
	// WritesRejected counts writes refused because a target state is
	// corrupt: pushes report them per event, Kafka dead-letters them.
	WritesRejected uint64 `json:"writes_rejected"`
	// QuarantinedStates is the number of states set aside because they do
	// not decode, including those found before this Open (damage.go).
	QuarantinedStates int `json:"quarantined_states"`
	// CorruptionReports counts Pebble's reports of on-disk corruption
	// (block checksum mismatches, found by lookups or compactions);
	// Damaged is the first. A shard with a report fails Store.Ready.
	CorruptionReports uint64 `json:"corruption_reports"`
	Damaged           string `json:"damaged,omitempty"`
	// CorruptReads counts Reads answered with ErrCorrupt.
	CorruptReads uint64 `json:"corrupt_reads"`
	CachedStates int    `json:"cached_states"`
	// CachedStateBytes is the writer cache's memory (Options.CachedStateBytes).
	CachedStateBytes int64 `json:"cached_state_bytes"`
	// WriteStalls counts Pebble's write stalls (memtables or L0 full).
	WriteStalls uint64 `json:"write_stalls"`
	// QueueDepth is the number of requests waiting for the shard's writer
	// when Stats was called.
	QueueDepth int `json:"queue_depth"`
}

func newShard(id int, db *pebble.DB, opts *Options, dmg *damage, deadc chan struct{}, fs *fences) (*shard, error) {
	s := &shard{
		id:          id,
		db:          db,
		opts:        opts,
		damage:      dmg,
		deadc:       deadc,
		fences:      fs,
		quarantined: make(map[string]struct{}),
		reqs:        make(chan *request, opts.QueueLength),
		stopc:       make(chan struct{}),
		donec:       make(chan struct{}),
		batch:       db.NewBatch(),
		states:      make(map[string]*cachedState),
		applied:     make(map[topicPartition]int64),
		changed:     make(map[topicPartition]bool),
	}
	s.mu.committed = make(map[topicPartition]int64)
	if err := s.recoverLoad(); err != nil {
		return nil, err
	}
	if err := s.loadOffsets(); err != nil {
		return nil, err
	}
	if err := s.loadQuarantine(); err != nil {
		return nil, err
	}
	if err := s.loadDeadLetterSeq(); err != nil {
		return nil, err
	}
	if err := s.recoverRebuilds(); err != nil {
		return nil, err
	}
	if l := opts.EventLog; l != nil {
		var pos []byte
		v, closer, err := db.Get(metaLogKey)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("shard %d: read event log position: %w", id, err)
		default:
			pos = append([]byte(nil), v...)
			closer.Close()
		}
		if err := l.Recover(id, pos); err != nil {
			return nil, fmt.Errorf("shard %d: recover event log: %w", id, err)
		}
	}
	return s, nil
}

func (s *shard) loadOffsets() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixOffset}, UpperBound: []byte{prefixOffset + 1}})
	if err != nil {
		return fmt.Errorf("shard %d: read offsets: %w", s.id, err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		topic, part, ok := parseOffsetKey(it.Key())
		v := it.Value()
		if !ok || len(v) != 8 {
			return fmt.Errorf("shard %d: corrupt offset record %q", s.id, it.Key())
		}
		tp := topicPartition{topic, part}
		off := int64(binary.BigEndian.Uint64(v))
		s.applied[tp] = off
		s.mu.committed[tp] = off
	}
	return it.Error()
}

// run is the writer loop: the only goroutine that mutates the shard.
func (s *shard) run() {
	defer close(s.donec)
	ticker := time.NewTicker(s.opts.CommitInterval)
	defer ticker.Stop()
	for {
		select {
		case <-s.stopc:
			s.drain()
			s.syncReq = true
			s.commit()
			return
		case r := <-s.reqs:
			s.handle(r)
			// Group commit: take whatever else is queued before committing,
			// so concurrent pushes share one fsync.
			for more := true; more && s.pending < s.opts.CommitMaxWrites; {
				select {
				case r := <-s.reqs:
					s.handle(r)
				default:
					more = false
				}
			}
			if s.syncReq || s.pending >= s.opts.CommitMaxWrites {
				s.commit()
			}
		case <-ticker.C:
			if s.pending > 0 || len(s.changed) > 0 || !s.batch.Empty() {
				s.commit()
			}
		}
	}
}

// drain handles every request still queued; used at shutdown.
func (s *shard) drain() {
	for {
		select {
		case r := <-s.reqs:
			s.handle(r)
		default:
			return
		}
	}
}

func (s *shard) handle(r *request) {
	switch r.kind {
	case reqWrite:
		if f := r.fence; f != nil && !s.fences.current(f.tp, f.gen) {
			// Queued before a failed commit dropped the events before it:
			// applying it would leave a gap. The consumer rewinds.
			s.mu.Lock()
			s.mu.stats.WritesFenced += uint64(len(r.writes))
			s.mu.Unlock()
			return
		}
		if r.mark != nil && !s.admitMarked(r) {
			return
		}
		s.applyWrites(r)
		s.recordMarks(r.marks)
	case reqDrop:
		s.dropView(r.view)
		// Commit now, as for a rebuild: until the DeleteRange is committed
		// a write to the view would reload its old state from Pebble and
		// write it back.
		s.syncReq = true
		if r.done != nil {
			s.waiters = append(s.waiters, r.done)
		}
		s.commit()
		return
	case reqPause:
		s.pause(r)
		return
	case reqLoad:
		r.done <- s.load(r)
		return
	case reqRebuild:
		// rebuild commits the switch itself, before any later write is
		// handled: a write handled first would fold into the old state.
		r.done <- s.rebuild(r)
		return
	case reqGC:
		// The candidates were chosen on a snapshot; decide again on current
		// state, which needs the pending batch committed first.
		s.commit()
		s.collect(r.keys)
		// And commit the deletions at once, so a write to a collected
		// entity loads nothing rather than the deleted state.
		if r.done != nil {
			s.waiters = append(s.waiters, r.done)
		}
		s.commit()
		return
	}
	if r.sync {
		s.syncReq = true
	}
	if r.done != nil {
		s.waiters = append(s.waiters, r.done)
	}
}

// recordMarks takes a request's next offsets into the batch's offsets.
func (s *shard) recordMarks(marks []Position) {
	for _, m := range marks {
		tp := topicPartition{m.Topic, m.Partition}
		if m.Offset > s.applied[tp] || !s.has(tp) {
			s.applied[tp] = m.Offset
			s.changed[tp] = true
		}
	}
}

func (s *shard) has(tp topicPartition) bool {
	_, ok := s.applied[tp]
	return ok
}

func (s *shard) applyWrites(r *request) {
	ws := r.writes
	for i := range ws {
		w := &ws[i]
		if p := w.Position; p != nil {
			tp := topicPartition{p.Topic, p.Partition}
			if next, ok := s.applied[tp]; ok && p.Offset < next {
				s.mu.Lock()
				s.mu.stats.WritesSkipped++
				s.mu.Unlock()
				continue
			}
			s.applied[tp] = p.Offset + 1
			s.changed[tp] = true
		}
		// Every target's state first: a write one of whose states is
		// corrupt is applied to none (reject), so that publishing it again
		// once the state is repaired counts it once everywhere.
		s.loaded = s.loaded[:0]
		var err error
		for _, t := range w.Targets {
			var cs *cachedState
			if cs, err = s.state(t, w.Entity); err != nil {
				break
			}
			s.loaded = append(s.loaded, cs)
		}
		if err != nil {
			s.reject(r, i, w, err)
			continue
		}
		for j, t := range w.Targets {
			cs := s.loaded[j]
			t.Layout.Fold(cs.state, w.EventMillis, w.Fields)
			cs.layout = t.Layout
			if !cs.dirty {
				cs.dirty = true
				s.dirty = append(s.dirty, cs)
			}
			if s.opts.EventLog != nil {
				s.folded = append(s.folded, t.Key)
			}
		}
		clear(s.loaded)
		if l := s.opts.EventLog; l != nil {
			l.Append(s.id, w, s.folded)
			s.folded = s.folded[:0]
		}
		s.pending++
	}
}

// state returns the writer's decoded state for (t.Key, entity), loading it
// from Pebble on a cache miss.
func (s *shard) state(t Target, entity []byte) (*cachedState, error) {
	s.keyBuf = appendStateKey(s.keyBuf[:0], t.Key, entity)
	if cs, ok := s.states[string(s.keyBuf)]; ok {
		return cs, nil
	}
	if _, ok := s.quarantined[string(s.keyBuf)]; ok {
		return nil, fmt.Errorf("shard %d: state %x: %w", s.id, s.keyBuf, ErrQuarantined)
	}
	cs := &cachedState{key: append([]byte(nil), s.keyBuf...), layout: t.Layout, state: t.Layout.NewState()}
	v, closer, err := s.db.Get(cs.key)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case pebble.IsCorruptionError(err):
		// Pebble recorded the damage (damage.corruption); the block may be
		// repaired by an operator, so the key is not quarantined.
		return nil, fmt.Errorf("shard %d: get state %x: %w: %w", s.id, cs.key, ErrCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("shard %d: get state: %w", s.id, err)
	default:
		err = t.Layout.Decode(cs.state, v)
		if err != nil {
			// Folding into a fresh state would silently drop history.
			err = s.quarantine(cs.key, v, err)
			closer.Close()
			return nil, err
		}
		closer.Close()
	}
	cs.bytes = cs.memBytes()
	s.cacheBytes += int64(cs.bytes)
	s.states[string(cs.key)] = cs
	return cs, nil
}

// commit writes every dirty state and changed offset in one batch, then
// answers the waiters, and returns the batch's error. On failure the
// writer's cache and offsets are rolled back to what Pebble holds, so
// nothing uncommitted is served or committed later as if it had been
// applied.
func (s *shard) commit() error {
	if s.pending == 0 && len(s.dirty) == 0 && len(s.changed) == 0 && s.batch.Empty() && !(s.syncReq && s.unsynced) {
		s.syncReq = false
		s.answer(nil)
		return nil
	}
	// A failed Set fails the commit like a failed Commit: the batch would
	// otherwise commit offsets past state it does not hold.
	start := time.Now()
	var err error
	horizon := s.opts.Now().Add(-s.opts.PruneSlack).UnixMilli()
	for _, cs := range s.dirty {
		cs.layout.Prune(cs.state, horizon)
		s.valBuf = cs.layout.AppendEncode(s.valBuf[:0], cs.state)
		if serr := s.batch.Set(cs.key, s.valBuf, nil); serr != nil && err == nil {
			err = fmt.Errorf("set state: %w", serr)
		}
		cs.dirty = false
		b := cs.memBytes()
		s.cacheBytes += int64(b - cs.bytes)
		cs.bytes = b
	}
	var offBuf [8]byte
	for tp := range s.changed {
		binary.BigEndian.PutUint64(offBuf[:], uint64(s.applied[tp]))
		if serr := s.batch.Set(offsetKey(tp.topic, tp.partition), offBuf[:], nil); serr != nil && err == nil {
			err = fmt.Errorf("set offset: %w", serr)
		}
	}
	opts := pebble.NoSync
	if s.syncReq {
		opts = pebble.Sync
	}
	l := s.opts.EventLog
	if l != nil {
		// Commit is called even after a failed Set: the log's protocol is
		// Appends, Commit, Committed, and Committed with the error cuts
		// what Commit wrote.
		pos, force, lerr := l.Commit(s.id, s.syncReq, s.opts.Now().UnixMilli())
		if force {
			opts = pebble.Sync
		}
		switch {
		case lerr != nil:
			err = errors.Join(err, fmt.Errorf("event log: %w", lerr))
		case err == nil:
			if serr := s.batch.Set(metaLogKey, pos, nil); serr != nil {
				err = fmt.Errorf("set event log position: %w", serr)
			}
		}
	}
	if err == nil && s.batch.Empty() {
		// Only a sync is asked for (Flush after unsynced commits): Pebble
		// skips an empty batch, and a WAL-only record makes it sync.
		err = s.batch.LogData(nil, nil)
	}
	var visibleMillis int64
	if err == nil {
		visibleMillis, err = s.commitBatch(opts, l != nil)
	}
	if err == nil && s.afterCommit != nil {
		s.afterCommit()
		if l != nil {
			// What afterCommit wrote became visible just now.
			visibleMillis = s.opts.Now().UnixMilli()
		}
	}
	if l != nil {
		l.Committed(s.id, visibleMillis, err)
	}
	s.batch.Reset()
	clear(s.pendingMarks)
	applied := s.pending
	s.pending = 0
	s.dirty = s.dirty[:0]
	s.syncReq = false
	if err != nil {
		err = fmt.Errorf("shard %d: commit: %w", s.id, err)
		s.opts.Logger.Error("commit failed; dropping uncommitted state", "shard", s.id, "err", err)
		if f := s.opts.CommitFailed; f != nil {
			f(s.id, err)
		}
		clear(s.states)
		s.cacheBytes = 0
		// Requests queued behind this commit carry later offsets of the same
		// partitions: applied on top of what was just dropped they would
		// leave a gap for good. Move those partitions' fences, before the
		// next request is handled, so the shards drop them and the
		// consumers rewind to the committed offsets.
		moved := make([]topicPartition, 0, len(s.changed))
		for tp := range s.changed {
			moved = append(moved, tp)
		}
		clear(s.changed)
		s.mu.Lock()
		clear(s.applied)
		for tp, off := range s.mu.committed {
			s.applied[tp] = off
		}
		s.mu.stats.CommitsFailed++
		s.mu.Unlock()
		s.fences.move(moved)
		s.answer(err)
		return err
	}
	s.unsynced = !opts.Sync
	s.mu.Lock()
	for tp := range s.changed {
		s.mu.committed[tp] = s.applied[tp]
	}
	s.mu.stats.Commits++
	s.mu.stats.WritesApplied += uint64(applied)
	s.mu.Unlock()
	if f := s.opts.Committed; f != nil {
		f(s.id, applied, time.Since(start))
	}
	s.notifyDeadLetters()
	clear(s.changed)
	s.evict()
	s.answer(nil)
	return nil
}

// commitBatch commits s.batch. With stamp, it returns the clock read just
// after the batch became visible to Read, the commit time the EventLog
// records. Pebble makes a synced batch visible (applied to the memtable,
// its sequence number published) before the WAL fsync completes, so a
// synced batch is applied without waiting for the sync, the clock read, and
// then the sync awaited: a clock read after Commit returned would be late by
// the fsync, and reads in between, which saw the batch, would look as if
// they ran before it.
func (s *shard) commitBatch(opts *pebble.WriteOptions, stamp bool) (visibleMillis int64, err error) {
	if !stamp || !opts.Sync {
		if err := s.batch.Commit(opts); err != nil {
			return 0, err
		}
		if stamp {
			visibleMillis = s.opts.Now().UnixMilli()
		}
		return visibleMillis, nil
	}
	if err := s.db.ApplyNoSyncWait(s.batch, opts); err != nil {
		return 0, err
	}
	visibleMillis = s.opts.Now().UnixMilli()
	if err := s.batch.SyncWait(); err != nil {
		// The batch is visible and its durability unknown; Commit would
		// have ended the process here (Pebble treats a failed commit as
		// fatal), and so do we: reporting a failure would leave the writer
		// and the EventLog dropping what readers already see.
		s.opts.Fatalf("shard %d: commit: sync WAL: %v", s.id, err)
	}
	return visibleMillis, nil
}

func (s *shard) answer(err error) {
	for _, w := range s.waiters {
		w <- err
	}
	s.waiters = s.waiters[:0]
}

// evict drops clean cached states beyond the bounds, the count
// (CachedStates) and the bytes (this shard's share of CachedStateBytes),
// down to 90% of the bound exceeded so that evictions come in rounds. Map
// iteration order is random, which makes this random eviction: cheap, and
// good enough for a cache whose misses cost one Pebble Get.
func (s *shard) evict() {
	maxBytes := s.opts.CachedStateBytes / int64(s.opts.Partitions)
	if len(s.states) <= s.opts.CachedStates && s.cacheBytes <= maxBytes {
		s.recordCache()
		return
	}
	wantStates := s.opts.CachedStates - s.opts.CachedStates/10
	wantBytes := maxBytes - maxBytes/10
	for k, cs := range s.states {
		if len(s.states) <= wantStates && s.cacheBytes <= wantBytes {
			break
		}
		if !cs.dirty {
			s.uncache(k, cs)
		}
	}
	s.recordCache()
}

// uncache drops one cached state.
func (s *shard) uncache(k string, cs *cachedState) {
	delete(s.states, k)
	s.cacheBytes -= int64(cs.bytes)
}

func (s *shard) recordCache() {
	s.mu.Lock()
	s.mu.stats.CachedStates = len(s.states)
	s.mu.stats.CachedStateBytes = s.cacheBytes
	s.mu.Unlock()
}

func (s *shard) dropView(vk ViewKey) {
	start, end := viewBounds(vk)
	_ = s.batch.DeleteRange(start, end, nil)
	s.unquarantineView(vk)
	for k, cs := range s.states {
		if got, _, _ := parseStateKey(cs.key); got == vk {
			s.uncache(k, cs)
		}
	}
	// Dirty states of the view were just removed from the cache but are
	// still listed; drop them so commit does not write them back.
	kept := s.dirty[:0]
	for _, cs := range s.dirty {
		if got, _, _ := parseStateKey(cs.key); got != vk {
			kept = append(kept, cs)
		}
	}
	s.dirty = kept
	s.syncReq = true
}

// collect deletes the candidate states that are still collectable.
func (s *shard) collect(keys [][]byte) {
	if s.opts.Views == nil {
		return
	}
	now := s.opts.Now()
	deleted := 0
	for _, key := range keys {
		vk, _, ok := parseStateKey(key)
		if !ok {
			continue
		}
		ttl, live := s.opts.Views(vk)
		if live {
			v, closer, err := s.db.Get(key)
			if err != nil {
				continue
			}
			collectable := expired(v, now, ttl)
			closer.Close()
			if !collectable {
				continue
			}
		}
		_ = s.batch.Delete(key, nil)
		if cs, ok := s.states[string(key)]; ok {
			s.uncache(string(key), cs)
		}
		deleted++
	}
	if deleted > 0 {
		s.mu.Lock()
		s.mu.stats.StatesDeleted += uint64(deleted)
		s.mu.Unlock()
	}
}

// expired reports whether an encoded state can be deleted at now. Reads
// report NotFound once the latest event is older than ttl, but deletion waits
// until 2×ttl: until then an admitted late event (at most ttl old) may still
// fold into the state without resetting it, and whether the state still
// exists must not change what that fold produces.
func expired(v []byte, now time.Time, ttl time.Duration) bool {
	maxMillis, err := aggregate.MaxEventMillis(v)
	if err != nil {
		return false
	}
	return maxMillis < now.Add(-2*ttl).UnixMilli()
}
