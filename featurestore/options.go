package featurestore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/featured-dev/featured/aggregate"
)

// Options configures a Store. The zero value is usable.
type Options struct {
	// Partitions is P, the number of partitions, each its own Pebble and
	// writer: the Kafka partition count of every source topic, as callers
	// place entities by Kafka's default partitioner modulo P. It is fixed
	// when the data directory is created; reopening with another count is
	// an error. The default value is 16.
	Partitions int
	// CacheBytes is the size of the block cache shared by all shards. The
	// default value is 256 MiB.
	CacheBytes int64
	// CommitInterval bounds how long Enqueue'd writes wait before the writer
	// commits them. The default value is 10ms.
	CommitInterval time.Duration
	// CommitMaxWrites commits a shard's batch once it holds this many writes.
	// The default value is 20000.
	CommitMaxWrites int
	// QueueLength is the number of requests each shard's queue holds before
	// Enqueue blocks. The default value is 256.
	QueueLength int
	// CachedStates bounds the decoded states each writer keeps in memory. The
	// default value is 65536.
	CachedStates int
	// CachedStateBytes bounds the memory of the decoded states all writers
	// keep (aggregate.State.MemBytes plus keys), split evenly over the
	// shards; whichever of it and CachedStates is reached first evicts.
	// States written but not yet committed are never evicted, so a batch
	// may take a shard past it until the commit. The default value is
	// 256 MiB.
	CachedStateBytes int64
	// PruneSlack is subtracted from the clock before tiles too old for any
	// read are dropped from a state; it must cover the ingest's largest
	// accepted future skew. The default value is 1h.
	PruneSlack time.Duration
	// GCInterval is the pause between two TTL scans of a shard. The default
	// value is 1m. Negative disables the scan.
	GCInterval time.Duration
	// Views reports whether a view version is live and its TTL. The TTL scan
	// deletes states of views it reports as not live. Nil disables the scan.
	Views func(ViewKey) (ttl time.Duration, live bool)
	// EventLog, when set, records every applied write in fold order and
	// commits its position with each shard's batch (see EventLog). Nil: no
	// log.
	EventLog EventLog
	// DedupeWindow is how long a shard keeps the marker of a push with a
	// batch ID, and so how long a retry of the push is recognised and
	// skipped (WriteBatch). Markers are reclaimed by the hour, so one lives
	// up to an hour longer. The default value is 24h.
	DedupeWindow time.Duration
	// Layouts resolves the view versions of journaled pushes when Open
	// applies what a previous process left in the push journal: nil for a
	// view version that no longer exists (its part is dropped). Open fails
	// if the journal holds pushes and Layouts is nil.
	Layouts func(ViewKey) *aggregate.Layout
	// ReadSampler, when set, is told about one Read in ReadSampleEvery
	// (the answers verify-skew recomputes offline), under ReadSampler's
	// contract. Nil: no sampling.
	ReadSampler ReadSampler
	// ReadSampleEvery is the sampling period of ReadSampler. The default
	// value is 100.
	ReadSampleEvery int
	// Now is the clock. The default value is time.Now.
	Now func() time.Time
	// CommitFailed, when set, is told of every failed shard commit, from
	// that shard's writer goroutine; it must not block. featured serve
	// hands ENOSPC to its disk guard this way. Nil: not called.
	CommitFailed func(shard int, err error)
	// Committed, when set, is told of every successful shard commit that
	// wrote something: how many writes it applied and how long the batch
	// took to build and commit. It is called from the shard's writer
	// goroutine and must not block (featured serve records it in metrics).
	// Nil: not called.
	Committed func(shard, writes int, took time.Duration)
	// Logger receives the store's and Pebble's logs. The default value is
	// slog.Default().
	Logger *slog.Logger
	// FS is the file system of every file the store and its Pebble shards
	// open. The default value is vfs.Default; fault-injection tests wrap
	// it (pebble's vfs/errorfs).
	FS vfs.FS
	// Fatalf is called, from whichever goroutine met it, when the store
	// cannot go on: Pebble's fatal errors (a failed MANIFEST or WAL write,
	// a broken invariant) in a shard or the push journal, a failed WAL
	// sync after a visible commit (doc.go, Corruption) and a failed copy
	// of a rebuild's committed switch (rebuild.go, which Open finishes).
	// It must not return: the code after it goes on
	// as if the process had ended. The default value logs at error and
	// calls os.Exit(1); fault-injection tests model a crash with it.
	Fatalf func(format string, args ...any)
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Partitions == 0 {
		o.Partitions = 16
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = 256 << 20
	}
	if o.CommitInterval == 0 {
		o.CommitInterval = 10 * time.Millisecond
	}
	if o.CommitMaxWrites == 0 {
		o.CommitMaxWrites = 20000
	}
	if o.QueueLength == 0 {
		o.QueueLength = 256
	}
	if o.CachedStateBytes == 0 {
		o.CachedStateBytes = 256 << 20
	}
	if o.CachedStates == 0 {
		o.CachedStates = 65536
	}
	if o.PruneSlack == 0 {
		o.PruneSlack = time.Hour
	}
	if o.GCInterval == 0 {
		o.GCInterval = time.Minute
	}
	if o.DedupeWindow == 0 {
		o.DedupeWindow = 24 * time.Hour
	}
	if o.ReadSampleEvery == 0 {
		o.ReadSampleEvery = 100
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Fatalf == nil {
		l := o.Logger
		o.Fatalf = func(format string, args ...any) {
			l.Error("fatal: " + fmt.Sprintf(format, args...))
			os.Exit(1)
		}
	}
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	var errs []error
	if o.Partitions < 1 || o.Partitions > 4096 {
		errs = append(errs, fmt.Errorf("featurestore: partitions: %d is not in [1, 4096]", o.Partitions))
	}
	if o.CacheBytes < 0 {
		errs = append(errs, fmt.Errorf("featurestore: cache bytes: %d is negative", o.CacheBytes))
	}
	if o.CommitInterval < 0 {
		errs = append(errs, fmt.Errorf("featurestore: commit interval: %s is negative", o.CommitInterval))
	}
	if o.CommitMaxWrites < 1 {
		errs = append(errs, fmt.Errorf("featurestore: commit max writes: %d is less than 1", o.CommitMaxWrites))
	}
	if o.QueueLength < 1 {
		errs = append(errs, fmt.Errorf("featurestore: queue length: %d is less than 1", o.QueueLength))
	}
	if o.CachedStateBytes < 0 {
		errs = append(errs, fmt.Errorf("featurestore: cached state bytes: %d is negative", o.CachedStateBytes))
	}
	if o.CachedStates < 1 {
		errs = append(errs, fmt.Errorf("featurestore: cached states: %d is less than 1", o.CachedStates))
	}
	if o.PruneSlack < 0 {
		errs = append(errs, fmt.Errorf("featurestore: prune slack: %s is negative", o.PruneSlack))
	}
	if o.DedupeWindow < 0 {
		errs = append(errs, fmt.Errorf("featurestore: dedupe window: %s is negative", o.DedupeWindow))
	}
	return errors.Join(errs...)
}
