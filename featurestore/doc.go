// Package featurestore owns featured's online state: P partitions, one
// Pebble each, under one data directory, holding per (entity, view
// version) the encoded aggregate.State that aggregate.Layout folds events
// into and reads windows from. It also owns, per partition, the Kafka
// offsets applied to it, committed in the same Pebble batch as the state
// they produced. The code calls a partition's Pebble and writer a shard.
//
// Layout and encodings are described in docs/format.md; MigrateStore
// rewrites the layout before partitions (N shards placed by FNV-1a).
//
// # Placement
//
// The store does not hash keys: every Write and Read names its partition,
// which the caller computes from the entity key's record-key bytes with
// internal/keyenc.Partition (Kafka's default partitioner modulo P), so an
// entity's partition is the Kafka partition its events arrive on and every
// view of one entity lives in one partition. Options.Partitions, P, is
// fixed when the store is created.
//
// # Hand-over
//
// CheckpointPartition copies one partition (its state and offsets, one
// Pebble) at a commit point of its writer alone; LoadPartition fills an
// empty partition from such a copy, possibly another node's, so that a
// consumer resumes at the copy's offsets (cluster/replicas, docs/scaling.md
// "Replicas"). A load cut short is wiped at the next Open.
//
// # Concurrency
//
// Each partition has exactly one writer goroutine, the only code that
// mutates the partition; it owns a cache of
// decoded states so that a hot entity is read from Pebble once, not on every
// event. Write, Enqueue, EnqueueFenced, Flush and DropView hand requests to
// the writers; they and Fence may be called from any goroutine. Read goes straight to Pebble and never
// waits for a writer; it sees what the writers have committed.
//
// # Durability
//
// Write (push ingest) returns after the batch holding its events is synced.
// Enqueue (Kafka ingest) returns once the writers have the events; they commit
// without fsync every Options.CommitInterval or Options.CommitMaxWrites
// writes. A process crash loses nothing acknowledged by Write and, for
// Enqueue, at most the uncommitted tail, whose offsets are lost with it, so
// the consumer reads those events again: state and offsets never disagree.
//
// # Failed commits
//
// A commit can fail (the EventLog's write or fsync, Pebble, a full disk).
// The shard then drops everything it had not committed, states and
// offsets, and answers Write's waiters with the error. Enqueue has no
// waiter, and requests with later offsets of the same partitions may
// already be queued behind the failed batch: applied on top of it, they
// would record offsets past events that were never applied. So each
// (offset name, partition) has a fence (Store.Fence). A failed commit moves
// the fence of every partition it dropped writes or marks of, before the
// shard handles its next request; shards drop requests queued under an old
// fence, EnqueueFenced refuses them with ErrFenced, and Fence.Moved wakes
// an idle consumer. The consumer takes a new fence, reads Offsets again
// (the committed minimum over shards) and re-reads from there; shards that
// did commit skip the replayed offsets they already hold, so nothing is
// applied twice. The fence is per partition rather than per store so that
// one partition's failure does not rewind the others.
//
// # Exactly-once and atomic pushes
//
// WriteBatch (batch.go) is Write for a push with a batch ID or the atomic
// flag. Each shard that commits part of a push with an ID commits a marker
// of the ID in the same Pebble batch as that part's state, and skips the
// part of any later push with an ID it holds (dedupe.go), for
// Options.DedupeWindow: a retry applies every write exactly once. An atomic
// push (an ID generated if it has none) is first written, synced, to the
// push journal, its own small Pebble database under the data directory
// (journal.go); the entry is deleted once every shard committed its part.
// Open applies the entries a crash left, to the shards that lack their
// marker, before it returns; an entry whose shard commit failed is retried
// in the background with backoff until it commits, and WriteBatch answers
// ErrJournaled meanwhile. So the durable outcome of an atomic push is all
// or nothing; readers may still see one shard's part before another's (no
// snapshot isolation across shards).
//
// # TTL
//
// Reads never serve expired state (aggregate.Layout.Read reports NotFound
// once the entity's latest event is older than the view's TTL). A background
// scan per shard finds expired states and states of views that are no longer
// live (Options.Views) and the writer deletes them, rechecking each first;
// the scan runs on an iterator, paced, so lookups do not stall.
//
// # Corruption
//
// Damaged data is an error of the read that meets it, never a process exit
// and never a silent skip (damage.go):
//
//  1. A Pebble block whose checksum does not match: Pebble reports it to the
//     shard's EventListener.DataCorruption, whose default would call
//     Logger.Fatalf and end the process on the first lookup of any key in
//     the block. The store records it against the shard instead (counted in
//     ShardStats.CorruptionReports, logged at error) and Pebble returns a
//     corruption error to that read, which Read wraps in ErrCorrupt naming
//     the shard. Every key in intact blocks, and every other shard, keeps
//     serving; Store.Ready fails naming the shard until the process is
//     restarted on repaired data, so a replica with a damaged shard leaves
//     the load balancer. The writer refuses writes whose state it cannot
//     read (below), without quarantining the key: the block may be repaired.
//  2. Logger.Fatalf still ends the process (Options.Fatalf). With the listener set, what
//     reaches it in the pinned Pebble (v2.1.7) is a broken invariant or a
//     failed MANIFEST, WAL or commit-pipeline write (and sstable ingestion
//     corruption, a path the store never takes); Pebble's code goes on after
//     those calls as if they had not returned, so its memory no longer
//     matches the disk and serving on would answer from that. The writer's
//     failed WAL sync after a visible commit (shard.commitBatch) stays fatal
//     for the same reason.
//  3. A stored state that does not decode (aggregate.ErrCorrupt) in the
//     writer: its raw bytes are copied under a quarantine key in the same
//     Pebble (docs/format.md), counted (ShardStats.QuarantinedStates) and
//     logged, and every later write to it is refused until the view
//     version is rebuilt (Rebuild) or dropped (DropView), which lifts the
//     quarantine. Restarting the state empty was rejected: its windows
//     would silently lose their history and serve wrong values with no
//     error. Read of such a state returns ErrCorrupt.
//  4. A refused write is applied to none of its targets (all or nothing, so
//     that publishing it again after the repair counts it once in every
//     view), not logged to the EventLog and not counted as applied
//     (ShardStats.WritesRejected). A pushed write comes back from Write as a
//     Rejection. A Kafka write's offset advances as usual and the writer
//     records a DeadLetter in the same batch, so a crash cannot lose it;
//     ingest publishes the records (DeadLetters, DeadLetterNotify) and then
//     deletes them (DeleteDeadLetters).
package featurestore
