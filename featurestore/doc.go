// Package featurestore owns featured's online state: N Pebble shards under one
// data directory holding, per (entity, view version), the encoded
// aggregate.State that aggregate.Layout folds events into and reads windows
// from. It also owns, per shard, the Kafka offsets applied to that shard,
// committed in the same Pebble batch as the state they produced.
//
// Layout and encodings are described in docs/format.md.
//
// # Concurrency
//
// Entities map to shards by a stable hash of their encoded key (FNV-1a 64), so
// every view of one entity lives in one shard. Each shard has exactly one
// writer goroutine, the only code that mutates the shard; it owns a cache of
// decoded states so that a hot entity is read from Pebble once, not on every
// event. Write, Enqueue, Flush and DropView hand requests to the writers and
// may be called from any goroutine. Read goes straight to Pebble and never
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
package featurestore
