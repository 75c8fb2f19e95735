package featurestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/featured-dev/featured/aggregate"
)

// ErrClosed is returned by calls on a closed Store.
var ErrClosed = errors.New("featurestore: store is closed")

// ErrPartition is a Write or Read naming a partition the store does not
// have: a caller placing entities with another partition count.
var ErrPartition = errors.New("featurestore: no such partition")

// Store is featured's online state: N Pebble shards, one writer each. All
// methods are safe for concurrent use.
type Store struct {
	dir   string
	opts  Options
	cache interface{ Unref() }
	// fileCache is shared by every partition's Pebble (docs/scaling.md).
	fileCache interface{ Unref() }
	shards    []*shard
	gc        *gcRunner
	fences    fences
	// journal holds atomic pushes until every shard committed them
	// (journal.go).
	journal *journal
	// testPart, in tests, lets applyParts send shard i its part only if it
	// returns true: the others are lost as in a crash.
	testPart func(shard int) bool

	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error

	// scratch holds *aggregate.State for ReadEncoded; one pool serves every
	// layout because ReadEncoded resets and fits the state it is given.
	scratch sync.Pool
	reads   atomic.Uint64 // Reads, for ReadSampler's period
	keyPool sync.Pool
	// deadc wakes the consumer of DeadLetters (DeadLetterNotify).
	deadc chan struct{}

	rebuildMu  sync.Mutex
	rebuilding map[ViewKey]bool // guarded by rebuildMu: the running Rebuilds
}

// Open opens or creates the store under dir.
func Open(dir string, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := opts.FS.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("featurestore: create data dir: %w", err)
	}
	if err := checkOldLayout(opts.FS, dir, opts.Partitions); err != nil {
		return nil, err
	}
	existed, err := checkPartitionCount(opts.FS, dir, opts.Partitions)
	if err != nil {
		return nil, err
	}
	cache := pebble.NewCache(opts.CacheBytes)
	// One file cache for every partition: P Pebbles must not each keep
	// their own thousand open files (docs/scaling.md).
	fileCache := pebble.NewFileCache(runtime.GOMAXPROCS(0), pebble.FileCacheSize(1000))
	s := &Store{dir: dir, opts: opts, cache: cache, fileCache: fileCache, closed: make(chan struct{}), deadc: make(chan struct{}, 1), rebuilding: map[ViewKey]bool{}}
	s.keyPool.New = func() any { b := make([]byte, 0, 64); return &b }
	s.scratch.New = func() any { return new(aggregate.State) }
	fail := func(err error) (*Store, error) {
		s.closeShards()
		fileCache.Unref()
		cache.Unref()
		return nil, err
	}
	for i := 0; i < opts.Partitions; i++ {
		dmg := newDamage(i, opts.Logger)
		if existed {
			if err := checkPartitionDir(opts.FS, dir, i, opts.Partitions); err != nil {
				return fail(err)
			}
		}
		db, err := pebble.Open(partitionDir(dir, i), partitionOptions(&opts, i, cache, fileCache, dmg, existed))
		if err != nil {
			return fail(fmt.Errorf("featurestore: open partition %d: %w", i, err))
		}
		if existed {
			err = checkPartMeta(db, partitionDir(dir, i), i, opts.Partitions)
		} else {
			err = db.Set(metaPartKey, partValue(i, opts.Partitions), pebble.Sync)
		}
		if err != nil {
			db.Close()
			return fail(err)
		}
		sh, err := newShard(i, db, &s.opts, dmg, s.deadc, &s.fences)
		if err != nil {
			db.Close()
			return fail(fmt.Errorf("featurestore: %w", err))
		}
		s.shards = append(s.shards, sh)
	}
	if !existed {
		if err := recordPartitionCount(opts.FS, dir, opts.Partitions); err != nil {
			return fail(err)
		}
	}
	for _, sh := range s.shards {
		go sh.run()
	}
	var j *journal
	err = checkJournalDir(opts.FS, dir)
	if err == nil {
		j, err = openJournal(dir, &s.opts, cache)
	}
	if err == nil {
		s.journal = j
		err = s.replayJournal()
	}
	if err != nil {
		for _, sh := range s.shards {
			close(sh.stopc)
			<-sh.donec
		}
		if j != nil {
			j.close()
		}
		return fail(err)
	}
	s.startRetrier()
	s.gc = startGC(s)
	return s, nil
}

// partitionOptions are the Pebble options of partition i. A node holds
// many partitions, so each DB's own costs are kept small: 4 MiB memtables,
// one compaction at a time, and the block and file caches shared.
func partitionOptions(opts *Options, i int, cache *pebble.Cache, fileCache *pebble.FileCache, dmg *damage, existed bool) *pebble.Options {
	return &pebble.Options{
		Cache:                      cache,
		FileCache:                  fileCache,
		MemTableSize:               4 << 20,
		CompactionConcurrencyRange: func() (int, int) { return 1, 1 },
		Logger:                     pebbleLogger{l: opts.Logger.With("partition", i), part: fmt.Sprintf("partition %d", i), fatal: opts.Fatalf},
		FS:                         opts.FS,
		// Corruption is recorded against the partition and returned to the
		// read that found it, not fatal (damage.go).
		EventListener: dmg.eventListener(),
		// Lookups are point Gets of keys that often do not exist (an
		// entity never seen): filters skip those sstables.
		Levels: [7]pebble.LevelOptions{{FilterPolicy: bloom.FilterPolicy(10)}},
		// A partition of an existing store that is gone must not come back
		// empty: its entities would read as NOT_FOUND.
		ErrorIfNotExists: existed,
	}
}

// checkPartitionCount refuses a partition count other than the one
// recorded: entities are placed by hash modulo the count. It reports
// whether the store existed (its partitions must then exist too). A new
// store's creation starts here: PARTITIONS.creating records it, durably,
// before any partition exists, and Open records PARTITIONS
// (recordPartitionCount) once every partition is created. A creation that
// did not finish (a crash or a failed write in the first Open) left
// partition directories but no PARTITIONS; without the intent they would
// read as a store that lost PARTITIONS, refused for good. No Open returned,
// so nothing was written through them: they are removed and the creation
// starts again.
func checkPartitionCount(fs vfs.FS, dir string, n int) (existed bool, err error) {
	have, err := readPartitionCount(fs, dir)
	if err != nil {
		return false, err
	}
	if have == 0 {
		dirs, err := partitionDirs(fs, dir)
		if err != nil {
			return false, fmt.Errorf("featurestore: list %s: %w", dir, err)
		}
		for _, d := range dirs {
			if err := fs.RemoveAll(filepath.Join(dir, d)); err != nil {
				return false, fmt.Errorf("featurestore: remove %s of an unfinished creation: %w", d, err)
			}
		}
		if err := writeFileSync(fs, dir, creatingFile, partitionsFileBody(n)); err != nil {
			return false, fmt.Errorf("featurestore: record the store's creation: %w", err)
		}
		return false, nil
	}
	if have != n {
		return true, partitionCountError(dir, have, n)
	}
	return true, nil
}

// recordPartitionCount ends a new store's creation: PARTITIONS, written
// under a temporary name and renamed, synced, then PARTITIONS.creating
// removed.
func recordPartitionCount(fs vfs.FS, dir string, n int) error {
	if err := writeFileSync(fs, dir, partitionsFile+".tmp", partitionsFileBody(n)); err != nil {
		return fmt.Errorf("featurestore: record partition count: %w", err)
	}
	if err := fs.Rename(filepath.Join(dir, partitionsFile+".tmp"), filepath.Join(dir, partitionsFile)); err != nil {
		return fmt.Errorf("featurestore: record partition count: %w", err)
	}
	if err := syncDir(fs, dir); err != nil {
		return fmt.Errorf("featurestore: record partition count: %w", err)
	}
	// Left behind, it is ignored beside PARTITIONS.
	if err := fs.Remove(filepath.Join(dir, creatingFile)); err != nil {
		return fmt.Errorf("featurestore: record partition count: %w", err)
	}
	return nil
}

func (s *Store) closeShards() {
	for _, sh := range s.shards {
		sh.db.Close()
	}
}

// Close stops the TTL scan, commits and syncs what the writers hold, and
// closes the shards. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.gc.stop()
		s.journal.stop()
		for _, sh := range s.shards {
			close(sh.stopc)
		}
		var errs []error
		for _, sh := range s.shards {
			<-sh.donec
			if err := sh.db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("featurestore: close partition %d: %w", sh.id, err))
			}
		}
		if err := s.journal.close(); err != nil {
			errs = append(errs, fmt.Errorf("featurestore: close push journal: %w", err))
		}
		s.fileCache.Unref()
		s.cache.Unref()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Partitions returns the number of partitions, P.
func (s *Store) Partitions() int { return len(s.shards) }

// Write folds ws and returns once they are committed and synced. If ctx ends
// first, Write returns its error; the writes may still be committed. The
// writes it refused are listed, by index in ws, with an error matching
// ErrQuarantined: their entity's state in a target view is corrupt, and the
// write was applied to none of its targets. Every other write is committed.
func (s *Store) Write(ctx context.Context, ws []Write) ([]Rejection, error) {
	var rej []Rejection
	err := s.submit(ctx, ws, nil, nil, nil, true, &rej)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rej, func(a, b Rejection) int { return a.Index - b.Index })
	return rej, nil
}

// Enqueue hands ws to the writers and returns without waiting for a commit.
// marks are the next offsets to read per partition after ws; every shard
// records them (see request.marks). It blocks while a shard's queue is full.
//
// Enqueue is not fenced: if a commit fails, the writes it dropped are gone
// and later ones are applied anyway. A consumer that must not lose events
// to a failed commit (Kafka ingest) calls EnqueueFenced.
func (s *Store) Enqueue(ctx context.Context, ws []Write, marks []Position) error {
	return s.submit(ctx, ws, marks, nil, nil, false, nil)
}

// Fence returns the partition's current fence. A consumer takes it before
// it reads its start offset from Offsets, and hands it to every
// EnqueueFenced of what it reads from there (see Fence).
func (s *Store) Fence(topic string, partition int32) Fence {
	return s.fences.take(topicPartition{topic, partition})
}

// EnqueueFenced is Enqueue for the consumer of one partition: mark is the
// partition's next offset after ws, every write in ws has a Position in
// that partition, and f is the partition's Fence the consumer took before
// reading its start offset. It returns ErrFenced, and queues nothing, when
// a failed commit has moved the fence past f. A request queued under f
// before the fence moved is dropped unapplied by the shards that have not
// handled it yet; f.Moved tells the consumer.
func (s *Store) EnqueueFenced(ctx context.Context, ws []Write, mark Position, f Fence) error {
	if f.moved == nil {
		return errors.New("featurestore: enqueue: zero Fence (take one with Store.Fence)")
	}
	if tp := (topicPartition{mark.Topic, mark.Partition}); tp != f.tp {
		return fmt.Errorf("featurestore: enqueue: mark for %s/%d under the fence of %s/%d", mark.Topic, mark.Partition, f.tp.topic, f.tp.partition)
	}
	if !s.fences.current(f.tp, f.gen) {
		return ErrFenced
	}
	return s.submit(ctx, ws, []Position{mark}, &f, nil, false, nil)
}

// PushRun is a run of records of one push with a batch ID that a consumer
// read from a push topic's partition and hands over with
// EnqueueFencedBatch.
type PushRun struct {
	BatchID string
	// Index holds each write's event index in the push, in the order the
	// partition delivered them.
	Index []int
	// Last is the highest event index of the run's records, those the
	// consumer did not hand over (dead letters) included.
	Last int
}

// EnqueueFencedBatch is EnqueueFenced for a run of records of one push
// with a batch ID, read from a push topic: every shard keeps a marker per
// (partition, batch ID) holding the highest event index the partition has
// delivered, commits it with the writes' state and the partition's offset,
// and skips a write whose index is not above it. A client's retry of a
// push, produced again after its first records, is thus applied only for
// the events the first produce did not deliver. Markers live for
// Options.DedupeWindow from their first commit, as a push's do.
func (s *Store) EnqueueFencedBatch(ctx context.Context, ws []Write, mark Position, f Fence, run PushRun) error {
	if err := CheckBatchID(run.BatchID); err != nil {
		return err
	}
	if len(run.Index) != len(ws) {
		return fmt.Errorf("featurestore: enqueue: %d event indexes for %d writes", len(run.Index), len(ws))
	}
	if f.moved == nil {
		return errors.New("featurestore: enqueue: zero Fence (take one with Store.Fence)")
	}
	if tp := (topicPartition{mark.Topic, mark.Partition}); tp != f.tp {
		return fmt.Errorf("featurestore: enqueue: mark for %s/%d under the fence of %s/%d", mark.Topic, mark.Partition, f.tp.topic, f.tp.partition)
	}
	if !s.fences.current(f.tp, f.gen) {
		return ErrFenced
	}
	now := s.opts.Now().UnixMilli()
	// The marker is the partition's: NUL cannot occur in a batch ID or a
	// direct push's marker, so the names never meet.
	bm := batchMark{
		id:            mark.Topic + "\x00" + strconv.Itoa(int(mark.Partition)) + "\x00" + run.BatchID,
		byIndex:       true,
		index:         run.Index,
		last:          run.Last,
		lowMillis:     now - s.opts.DedupeWindow.Milliseconds(),
		gcBelowMillis: s.markerGCHorizon(nil),
	}
	return s.submit(ctx, ws, []Position{mark}, &f, &bm, false, nil)
}

// Flush commits everything handed to the writers before it, synced.
func (s *Store) Flush(ctx context.Context) error {
	reqs := make([]*request, len(s.shards))
	for i := range reqs {
		reqs[i] = &request{kind: reqFlush, sync: true, done: make(chan error, 1)}
	}
	return s.send(ctx, reqs)
}

// DropView deletes every entity's state of a view version.
func (s *Store) DropView(ctx context.Context, vk ViewKey) error {
	reqs := make([]*request, len(s.shards))
	for i := range reqs {
		reqs[i] = &request{kind: reqDrop, view: vk, sync: true, done: make(chan error, 1)}
	}
	return s.send(ctx, reqs)
}

// submit hands ws to the writers, under fence f when set, each shard's
// part marked with a copy of bm when set; with wait it
// waits for their commits and, when rej is set, collects the writes they
// refused.
func (s *Store) submit(ctx context.Context, ws []Write, marks []Position, f *Fence, bm *batchMark, wait bool, rej *[]Rejection) error {
	n := len(s.shards)
	if err := s.checkPartitions(ws); err != nil {
		return err
	}
	reqs := make([]*request, n)
	// eventIndex: each partition's part of bm.index.
	var eventIndex [][]int
	if bm != nil && bm.byIndex {
		eventIndex = make([][]int, n)
	}
	for i := range ws {
		j := ws[i].Partition
		if reqs[j] == nil {
			reqs[j] = &request{kind: reqWrite}
		}
		reqs[j].writes = append(reqs[j].writes, ws[i])
		if rej != nil {
			reqs[j].index = append(reqs[j].index, i)
		}
		if eventIndex != nil {
			eventIndex[j] = append(eventIndex[j], bm.index[i])
		}
	}
	for i := range reqs {
		if reqs[i] == nil && len(marks) > 0 {
			reqs[i] = &request{kind: reqWrite}
		}
		if reqs[i] == nil {
			continue
		}
		reqs[i].marks = marks
		reqs[i].fence = f
		if bm != nil {
			// Each shard's writer fills in its own outcome.
			m := *bm
			if eventIndex != nil {
				m.index = eventIndex[i]
			}
			reqs[i].mark = &m
		}
		if wait {
			reqs[i].sync = true
			reqs[i].done = make(chan error, 1)
		}
	}
	if err := s.send(ctx, reqs); err != nil {
		return err
	}
	if rej != nil {
		// send received every done: the writers are finished with reqs.
		for _, r := range reqs {
			if r != nil {
				*rej = append(*rej, r.rejected...)
			}
		}
	}
	return nil
}

// checkPartitions refuses writes whose Partition is not one of the store's.
func (s *Store) checkPartitions(ws []Write) error {
	for i := range ws {
		if p := ws[i].Partition; p < 0 || p >= len(s.shards) {
			return fmt.Errorf("featurestore: write %d: %w: %d, the store has %d", i, ErrPartition, p, len(s.shards))
		}
	}
	return nil
}

// send queues reqs[i] on shard i (nil entries are skipped) and waits for the
// ones that carry a done channel.
func (s *Store) send(ctx context.Context, reqs []*request) error {
	for i, r := range reqs {
		if r == nil {
			continue
		}
		select {
		case s.shards[i].reqs <- r:
		case <-s.closed:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var errs []error
	for i, r := range reqs {
		if r == nil || r.done == nil {
			continue
		}
		var err error
		select {
		case err = <-r.done:
		case <-s.shards[i].donec:
			// The writer answers what it took before it stopped; a
			// request queued after its last drain is never taken.
			select {
			case err = <-r.done:
			default:
				err = ErrClosed
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Offsets returns, for each partition of topic that every shard has an
// offset for, the next offset to read: the minimum over shards. A partition
// missing from the result has to be read from its start; shards skip events
// they already applied.
func (s *Store) Offsets(topic string) map[int32]int64 {
	out := make(map[int32]int64)
	seen := make(map[int32]int)
	for _, sh := range s.shards {
		sh.mu.Lock()
		for tp, off := range sh.mu.committed {
			if tp.topic != topic {
				continue
			}
			if cur, ok := out[tp.partition]; !ok || off < cur {
				out[tp.partition] = off
			}
			seen[tp.partition]++
		}
		sh.mu.Unlock()
	}
	for p, n := range seen {
		if n < len(s.shards) {
			delete(out, p)
		}
	}
	return out
}

// Stats returns each shard's counters.
func (s *Store) Stats() []ShardStats {
	out := make([]ShardStats, len(s.shards))
	for i, sh := range s.shards {
		sh.mu.Lock()
		out[i] = sh.mu.stats
		sh.mu.Unlock()
		out[i].QueueDepth = len(sh.reqs)
		sh.damage.fill(&out[i])
	}
	return out
}

// read is Read without the sampling (sample.go).
func (s *Store) read(vk ViewKey, l *aggregate.Layout, partition int, entity []byte, features []int, atMillis int64, out []aggregate.Result) error {
	if len(out) < len(features) {
		return fmt.Errorf("featurestore: read: %d results for %d features", len(out), len(features))
	}
	if partition < 0 || partition >= len(s.shards) {
		return fmt.Errorf("featurestore: read: %w: %d, the store has %d", ErrPartition, partition, len(s.shards))
	}
	sh := s.shards[partition]
	kp := s.keyPool.Get().(*[]byte)
	key := appendStateKey((*kp)[:0], vk, entity)
	v, closer, err := sh.db.Get(key)
	*kp = key
	s.keyPool.Put(kp)
	if errors.Is(err, pebble.ErrNotFound) {
		for i := range features {
			out[i] = aggregate.Result{Status: aggregate.StatusNotFound}
		}
		return nil
	}
	if err != nil {
		return sh.readError(vk, err)
	}
	scratch := s.scratch.Get().(*aggregate.State)
	err = l.ReadEncoded(scratch, v, features, atMillis, out)
	closer.Close()
	s.scratch.Put(scratch)
	if err != nil {
		return sh.readError(vk, err)
	}
	return nil
}

// PebbleMetrics returns each shard's Pebble metrics, in shard order. Each
// call asks every shard's DB once (pebble.DB.Metrics takes the DB's locks and
// walks its levels): call it once per metrics scrape, not per metric.
func (s *Store) PebbleMetrics() []*pebble.Metrics {
	out := make([]*pebble.Metrics, len(s.shards))
	for i, sh := range s.shards {
		out[i] = sh.db.Metrics()
	}
	return out
}
