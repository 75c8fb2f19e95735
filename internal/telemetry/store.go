package telemetry

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/featured-dev/featured/featurestore"
)

// storeInstruments are the per-shard store and Pebble metrics. The Pebble
// ones mirror CockroachDB's storage metric names where one fits
// (README "Operations").
type storeInstruments struct {
	commitDuration metric.Float64Histogram
	commitWrites   metric.Int64Histogram
	// shardSets holds each shard's attribute set, grown on first use of a
	// shard: StoreCommitted runs from Open on, before anyone can say how
	// many shards an existing store has.
	shardSets atomic.Pointer[[]metric.RecordOption]
	grow      sync.Mutex
}

func (s *storeInstruments) shardSet(shard int) metric.RecordOption {
	if p := s.shardSets.Load(); p != nil && shard < len(*p) {
		return (*p)[shard]
	}
	s.grow.Lock()
	defer s.grow.Unlock()
	var sets []metric.RecordOption
	if p := s.shardSets.Load(); p != nil {
		sets = *p
	}
	for i := len(sets); i <= shard; i++ {
		sets = append(sets[:i:i], metric.WithAttributeSet(attribute.NewSet(attribute.Int("shard", i))))
	}
	s.shardSets.Store(&sets)
	return sets[shard]
}

var commitBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

func (s *storeInstruments) init(m metric.Meter) error {
	var errs [2]error
	s.commitDuration, errs[0] = m.Float64Histogram("featured.store.commit.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to build and commit one shard batch."), metric.WithExplicitBucketBoundaries(commitBuckets...))
	s.commitWrites, errs[1] = m.Int64Histogram("featured.store.commit.writes", metric.WithUnit("{write}"),
		metric.WithDescription("Writes applied per shard commit (the group commit's batch size)."),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000))
	return joinErrs(errs[:])
}

// StoreCommitted is featurestore.Options.Committed.
func (t *Telemetry) StoreCommitted(shard, writes int, took time.Duration) {
	ctx := context.Background()
	opt := t.store.shardSet(shard)
	t.store.commitDuration.Record(ctx, took.Seconds(), opt)
	t.store.commitWrites.Record(ctx, int64(writes), opt)
}

// ObserveStore registers the observable instruments that read st's Stats
// and Pebble metrics, once per collection.
func (t *Telemetry) ObserveStore(st *featurestore.Store) error {
	m := t.meter
	c := newCollector(m)
	commits := c.counter("featured.store.commits", "{commit}", "Successful shard commits.")
	commitFailures := c.counter("featured.store.commit.failures", "{commit}", "Failed shard commits (their uncommitted state was dropped).")
	writes := c.counter("featured.store.writes", "{write}", "Writes by result: applied, skipped (already applied offsets), fenced (dropped after a failed commit), rejected (corrupt target state).")
	deleted := c.counter("featured.store.ttl.deleted_states", "{state}", "States deleted by the TTL sweep.")
	ttlScans := c.counter("featured.store.ttl.scans", "{scan}", "Completed TTL sweeps of the shard.")
	ttlScanned := c.counter("featured.store.ttl.scanned_states", "{state}", "States the TTL sweep read.")
	ttlLast := c.gauge("featured.store.ttl.last_scan_time", "s", "Unix time the shard's last TTL sweep ended (0: none yet).")
	queue := c.gauge("featured.store.queue.depth", "{request}", "Requests waiting for the shard's writer.")
	cached := c.gauge("featured.store.cached.states", "{state}", "Decoded states in the shard writer's cache.")
	cachedBytes := c.gauge("featured.store.cached.bytes", "By", "Memory of the shard writer's cache.")
	quarantined := c.gauge("featured.store.quarantined.states", "{state}", "States set aside because they do not decode.")
	corruption := c.counter("featured.store.corruption.reports", "{report}", "Pebble's reports of on-disk corruption.")

	compactions := c.counter("featured.storage.compactions", "{compaction}", "Pebble compactions (CockroachDB rocksdb.compactions).")
	l0Files := c.gauge("featured.storage.l0.files", "{file}", "Sstables in L0 (CockroachDB storage.l0-num-files).")
	l0Sublevels := c.gauge("featured.storage.l0.sublevels", "{sublevel}", "L0 sublevels (CockroachDB storage.l0-sublevels).")
	readAmp := c.gauge("featured.storage.read_amplification", "{level}", "Read amplification (CockroachDB rocksdb.read-amplification).")
	stalls := c.counter("featured.storage.write_stalls", "{stall}", "Pebble write stalls (CockroachDB storage.write-stalls).")
	memtable := c.gauge("featured.storage.memtable.size", "By", "Memtable size (CockroachDB rocksdb.memtable.total-size).")
	disk := c.gauge("featured.storage.disk.usage", "By", "Disk space used by the shard (CockroachDB storage.disk.used).")
	hits := c.counter("featured.storage.block_cache.hits", "{hit}", "Block cache hits, over the one cache every shard shares (CockroachDB rocksdb.block.cache.hits).")
	misses := c.counter("featured.storage.block_cache.misses", "{miss}", "Block cache misses (CockroachDB rocksdb.block.cache.misses).")
	cacheSize := c.gauge("featured.storage.block_cache.size", "By", "Block cache bytes in use (CockroachDB rocksdb.block.cache.usage).")
	if err := c.err(); err != nil {
		return err
	}
	n := st.Partitions()
	shardSets := make([]metric.ObserveOption, n)
	writeSets := make([][4]metric.ObserveOption, n)
	for i := range n {
		shardSets[i] = metric.WithAttributeSet(attribute.NewSet(attribute.Int("shard", i)))
		for j, r := range [4]string{"applied", "skipped", "fenced", "rejected"} {
			writeSets[i][j] = metric.WithAttributeSet(attribute.NewSet(attribute.Int("shard", i), attribute.String("result", r)))
		}
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for i, s := range st.Stats() {
			a := shardSets[i]
			o.ObserveInt64(commits, int64(s.Commits), a)
			o.ObserveInt64(commitFailures, int64(s.CommitsFailed), a)
			for j, v := range [4]uint64{s.WritesApplied, s.WritesSkipped, s.WritesFenced, s.WritesRejected} {
				o.ObserveInt64(writes, int64(v), writeSets[i][j])
			}
			o.ObserveInt64(deleted, int64(s.StatesDeleted), a)
			o.ObserveInt64(ttlScans, int64(s.TTLScans), a)
			o.ObserveInt64(ttlScanned, int64(s.TTLStatesScanned), a)
			o.ObserveInt64(ttlLast, s.TTLLastScanMillis/1000, a)
			o.ObserveInt64(queue, int64(s.QueueDepth), a)
			o.ObserveInt64(cached, int64(s.CachedStates), a)
			o.ObserveInt64(cachedBytes, s.CachedStateBytes, a)
			o.ObserveInt64(quarantined, int64(s.QuarantinedStates), a)
			o.ObserveInt64(corruption, int64(s.CorruptionReports), a)
			o.ObserveInt64(stalls, int64(s.WriteStalls), a)
		}
		// One db.Metrics() per shard per collection.
		for i, pm := range st.PebbleMetrics() {
			a := shardSets[i]
			o.ObserveInt64(compactions, pm.Compact.Count, a)
			o.ObserveInt64(l0Files, pm.Levels[0].TablesCount, a)
			o.ObserveInt64(l0Sublevels, int64(pm.Levels[0].Sublevels), a)
			o.ObserveInt64(readAmp, int64(pm.ReadAmp()), a)
			o.ObserveInt64(memtable, int64(pm.MemTable.Size), a)
			o.ObserveInt64(disk, int64(pm.DiskSpaceUsage()), a)
			if i == 0 {
				o.ObserveInt64(hits, pm.BlockCache.Hits)
				o.ObserveInt64(misses, pm.BlockCache.Misses)
				o.ObserveInt64(cacheSize, pm.BlockCache.Size)
			}
		}
		return nil
	}, c.instruments...)
	if err != nil {
		return fmt.Errorf("telemetry: observe store: %w", err)
	}
	return nil
}
