// Package export computes point-in-time training sets from the offline log
// (package eventlog): for every row of a spine (entity, T), each requested
// feature as the online store answered, or would have answered, at T. It
// owns the spine readers (spine.go), the plan and the in-memory and spilled
// paths (export.go, bucket.go), the columnar working set (table.go), the
// join (join.go), spill files (spill.go), and the sinks that write the
// result (sink.go; pqwrite.go writes Parquet with columns encoded in
// parallel). It never does window arithmetic itself: every value is
// aggregate.Layout.Fold and Layout.Read over the same events, in the same
// order, that the online store folded, which is how an exported value
// equals the served one bit for bit.
//
// # Modes
//
// ModeServed (default) answers what online serving answered at T: the
// entity's events committed at or before T (the log's commit time, when
// the store's batch became visible, made monotone along the log), folded in
// log order into the versions the store folded them into. An event with
// event time <= T that arrived after T is not in the answer (it was not
// online); an admitted event stamped after T but committed before it is.
// The head of every window includes T itself, like Feast's point-in-time
// join (event_timestamp <= T; Chronon excludes it), so a label event
// stamped exactly T is inside its own features unless its row's T is moved
// back by a millisecond. Visibility is in milliseconds: a read in the very
// millisecond a commit of its entity lands may have seen the state before
// it, which ModeServed counts as visible.
//
// ModeEvent answers as if every event had arrived at its event time: the
// events with event time <= T, folded in event-time order (log order on
// ties), with no admission check. For history replayed after the fact.
//
// # Memory
//
// Export reads the log once per entity type. When the spine, the log's
// files and the results are estimated to fit in Request.MemoryBytes, it
// works in memory and in columns (table.go, join.go): the spine is read
// once, its batches kept for the output, while the log's Parquet files are
// decoded column-wise, only the columns the join reads, several files at
// once; entities are numbered, so the join's working set is flat arrays
// with nothing for the GC to scan; entities are then joined over the CPUs
// (one entity's spine rows sorted by time, its log rows by LSN and copied
// next to each other, one incremental fold per view) into results stored
// in the order they are computed, and the output batches are transposed
// from them in spine order and written with the columns of each row group
// encoded on all CPUs (pqwrite.go).
//
// Otherwise spine entries and log rows are partitioned by a hash of the
// entity key into up to 256 buckets of spill files (the spine and the first
// group's log at the same time); buckets are joined in memory the same way,
// two at a time (so sized that two fit the budget), and each one's results
// written sorted by spine row; a k-way merge puts the results back in spine
// order beside the spine's own columns, read a second time, so label
// columns pass through untouched.
//
// offline.ExportHandler runs every export with HandlerOptions.MemoryBytes
// and TempDir (featured serve --export-memory, --export-temp-dir); a
// request's ?memory= may lower the budget, never raise it, so one client
// cannot make the server hold more than its operator allowed.
//
// # Concurrency
//
// An Exporter is safe for concurrent use; its exports read the log under
// the log's read lock (see eventlog), concurrently with ingestion. A Sink
// is used by one export at a time; ParquetFile and IPCStream are not safe
// for concurrent use.
package export
