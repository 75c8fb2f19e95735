package featurestore

import "github.com/featured-dev/featured/aggregate"

// Schema names the values of Write.Fields for the event log: the source the
// event came from, its entity key kind and its fields' names and kinds, in
// Fields order. Ingest shares one *Schema per source definition; the store
// only hands it to Options.EventLog.
type Schema struct {
	Source string
	// KeyKinds are the kinds of the entity key's parts, each
	// aggregate.KindString or KindInt64: one for a view of one entity, one
	// per entity for a compound key (internal/keyenc.AppendKey); nil while
	// no view reads the source.
	KeyKinds []aggregate.Kind
	Names    []string
	Kinds    []aggregate.Kind
}

// EventLog is the offline log's hook into the shard writers. It sees every
// write a shard applies, in the order the shard folds them, and commits its
// record of them in step with the shard's Pebble batch: the position Commit
// returns is stored in the same batch as the state the writes produced, so
// after a crash the log and the state name the same prefix of events.
//
// The store's duties (the caller):
//
//  1. Call Recover once per shard, from Open, before the shard's writer
//     starts, with the position last committed in that shard's batch (nil
//     when none was).
//  2. Call Append, Commit and Committed for shard i only from shard i's
//     writer goroutine; calls for different shards run concurrently.
//  3. Per batch, in this order: any number of Appends (one per write
//     applied, in fold order, with the view versions it was folded into),
//     then Commit, then Committed with the batch's outcome, before the
//     batch's waiters are answered.
//  4. Store the position Commit returns in the same Pebble batch as the
//     state, and fsync the batch when Commit asks for it (forceSync).
//  5. Call Committed with the error when the batch fails, after which the
//     state of the writes appended since the previous successful commit is
//     gone; on success, with the clock read just after the batch became
//     visible to Read.
//  6. Run a rebuild's RebuildSource.Tail (Store.Rebuild) on the shard's
//     writer goroutine after committing what the shard held, and commit the
//     rebuild's batch (its swap record) next: an implementation may attach a
//     record of the rebuild to that commit (the offline log's backfill
//     marker, eventlog.Log.MarkRebuild, called from inside Tail). The copy
//     of the staged states runs after that batch is committed and before
//     Committed, whose visibleMillis is then read after the copy.
//
// The implementer's duties:
//
//  1. Recover drops whatever it holds past the committed position, so that
//     the log holds exactly the events the recovered state holds.
//  2. Append does no I/O that can fail: it records the write for the next
//     Commit and retains neither w nor folded.
//  3. Commit makes everything appended since the last Commit at least as
//     durable as the batch (fsynced when sync is true or when it returns
//     forceSync) and returns the position after it. An error fails the
//     batch.
//  4. Committed with an error drops the record of the failed batch; with
//     success, it may move the batch's commit time to visibleMillis, before
//     readers can see the batch's position.
//  5. Methods for different shards are safe to call concurrently.
type EventLog interface {
	// Recover tells the log the position shard last committed (nil when it
	// never committed one): the log drops whatever it holds past it.
	Recover(shard int, committed []byte) error
	// Append records one write as the shard applied it. folded lists the
	// view versions the event was folded into (its Targets: a write one of
	// whose target states is corrupt is refused, not appended; see
	// DeadLetter). Neither w nor folded may be retained after the call.
	Append(shard int, w *Write, folded []ViewKey)
	// Commit makes the writes appended since the last Commit at least as
	// durable as the batch about to be committed (sync: the batch is
	// fsynced) and returns the position to store with it. nowMillis is the
	// store's clock, read before the batch is committed: Read does not see
	// the writes yet. forceSync asks the store to fsync this batch although
	// sync is false. An error fails the batch.
	Commit(shard int, sync bool, nowMillis int64) (pos []byte, forceSync bool, err error)
	// Committed reports the batch's outcome. On success, visibleMillis is
	// the store's clock (the source of Commit's nowMillis) read just after
	// the batch became visible to Read, without waiting for a synced
	// batch's fsync (Pebble publishes a batch before its WAL sync
	// completes). Reads that run after it see the writes and reads that ran
	// before Commit do not, so it, not nowMillis, is the batch's commit time
	// for a log that records one. Only a clock that went back makes it less
	// than nowMillis. Committed runs before the batch's waiters are
	// answered. On error visibleMillis is 0, the state of the writes
	// appended since the previous successful commit is dropped, and so must
	// the log's record of them be.
	Committed(shard int, visibleMillis int64, err error)
}

// metaLogKey holds a shard's last committed EventLog position.
var metaLogKey = []byte{prefixMeta, 'l', 'o', 'g'}
