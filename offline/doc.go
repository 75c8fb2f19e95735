// Package offline owns featured's offline log and everything computed from
// it: point-in-time training sets (Export), backfills of new view versions
// (Backfill) and the online/offline consistency check (VerifySkew). It never
// does window arithmetic itself: every value is aggregate.Layout.Fold and
// Layout.Read over the same events, in the same order, that the online
// store folded, which is how an exported value equals the served one bit for
// bit.
//
// # The log
//
// Log implements featurestore.EventLog. Each store shard's writer appends
// every write it applies, in the order it folds them, with the view
// versions it folded the event into; the shard's Pebble batch carries the
// log's position, so after a crash the log and the state name the same
// prefix of events. Per shard:
//
//   - Rows are encoded into an in-memory frame (no I/O on the hot path).
//     At each store commit the frame is written to the shard's WAL segment
//     (wal/shard-NNN/<seq>.wal: frames of length, CRC-32C, first LSN,
//     commit time, the source schemas used, rows) and fsynced when the batch
//     is. On open the WAL is cut back to the committed position: rows past
//     it belong to events whose state was lost too (push callers got an
//     error; Kafka reads them again from the offsets committed with the
//     state), so nothing is lost or doubled.
//   - A frame's commit time is the store's clock when its batch became
//     visible to reads. The store stamps the batch before committing it
//     and reads the clock again once Pebble has published it (before a
//     synced batch's fsync completes); when that is later, the frame's
//     commit time and CRC are rewritten in place (same varint length, else
//     the stamp stays), before the committed position moves past the
//     frame, so readers never see it change. The rewrite is not fsynced
//     unless it straddles a 512-byte sector of a synced frame: lost in a
//     crash, it leaves the stamp, misplacing only reads made between the
//     two instants. A backfill marker's commit time moves the same way, by
//     a line appended after it.
//   - A segment is sealed after SegmentBytes or SegmentAge; the commit that
//     seals it is synced, and only then is it converted to Parquet by the
//     log's converter goroutine: one file per (source schema, UTC day of
//     ingest), <dir>/<source>/<yyyy-mm-dd>/sNNN-<first LSN>.parquet, row
//     groups of RowGroupRows, written to a temporary name, fsynced and
//     renamed, then the segment is deleted. Files are never rewritten in
//     place; a torn file can only be a temporary one (ignored, rebuilt from
//     the WAL); converting a segment again after a crash between rename and
//     delete rewrites the same names with the same rows, and readers drop a
//     repeated (shard, LSN).
//   - Columns: shard, lsn, ingest_time (the ingest clock at admission),
//     commit_time (the store clock when the batch became visible to reads),
//     event_time, entity (the join key, string or int64), kafka_partition
//     and kafka_offset (null for pushed events), views (the view versions
//     folded, id<<32|version), and fields, a struct of the source's fields,
//     so no field name can collide with the fixed columns.
//   - Retention deletes day directories older than Options.Retention (by
//     ingest day), independently of any view's TTL. Lifetime features and
//     windows reaching further back than the retention cannot be recomputed
//     exactly; keep the retention above the largest TTL.
//
// # Export modes
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
// Handler runs every export with HandlerOptions.MemoryBytes and TempDir
// (featured serve --export-memory, --export-temp-dir); a request's ?memory=
// may lower the budget, never raise it, so one client cannot make the
// server hold more than its operator allowed.
//
// # Concurrency
//
// A Log's EventLog methods follow featurestore.EventLog's rules (one shard's
// calls from its writer goroutine). Export, Events, VerifySkew and Backfill
// may run concurrently with ingestion and with each other; they read under a
// read lock that holds off the converter's renames and deletes and the
// retention. An Exporter and a Sampler are safe for concurrent use. Close
// the Log after the store.
package offline
