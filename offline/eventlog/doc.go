// Package eventlog is featured's offline log: every event the online store
// folded, in the order each shard folded it, with the view versions it was
// folded into, and the backfill markers that say when a view version's
// state was rebuilt from it. It owns the WAL, its segments, their sealing
// into Parquet files, retention, and reading all of it back (Scan,
// ScanFiles, ScanShard, Events). It knows nothing of exports, views or
// windows: package export reads it; package offline wires it.
//
// Log implements featurestore.EventLog. Each store shard's writer appends
// every write it applies, in the order it folds them, with the view
// versions it folded the event into; the shard's Pebble batch carries the
// log's position, so after a crash the log and the state name the same
// prefix of events. Per shard:
//
//   - Rows are encoded into an in-memory frame (no I/O on the hot path).
//     At each store commit the frame is written to the shard's WAL segment
//     (wal/p-NNNN/<seq>.wal: frames of length, CRC-32C, first LSN,
//     commit time, the source schemas used, rows) and fsynced when the batch
//     is. On open the WAL is cut back to the committed position: rows past
//     it belong to events whose state was lost too (push callers got an
//     error; Kafka reads them again from the offsets committed with the
//     state), so nothing is lost or doubled.
//   - On open every segment kept is read and checked (checksums, whole
//     frames, LSNs following on, no segment number skipped). Damage below
//     the committed position is not a crash: the segment is set aside
//     (<seq>.wal.damaged, or <seq>.wal.missing), counted in Stats, and
//     scans of the shard fail with ErrDamaged until an operator restores
//     or accepts the loss of it (damage.go; docs/reliability.md).
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
//     event_time, entity (the join key, string or int64; a compound key's
//     keyenc bytes, binary, its part kinds in the metadata
//     featured.key_kinds), kafka_partition
//     and kafka_offset (null for pushed events), views (the view versions
//     folded, id<<32|version), and fields, a struct of the source's fields,
//     so no field name can collide with the fixed columns.
//   - Retention deletes day directories older than Options.Retention (by
//     ingest day), independently of any view's TTL. Lifetime features and
//     windows reaching further back than the retention cannot be recomputed
//     exactly; keep the retention above the largest TTL.
//
// # Backfill markers
//
// A backfill of a view version (offline.Backfill, through
// featurestore.Store.Rebuild) calls MarkRebuild from the rebuilt shard's
// writer goroutine; the shard's next Commit, the rebuild's batch, writes
// the marker to wal/p-NNNN/markers with the WAL position after an empty
// frame of that commit's own, and the marker counts only if the store keeps
// that batch (Recover and a failed Committed drop it). Markers reports the
// committed ones; see marker in markers.go for the file's lines.
//
// # What other packages use
//
// Row and Schema are the decoded form of a logged event (read-only,
// reused by the scans); File, ListFiles, OpenFile and the Col* names let
// the export decode log files column-wise; AppendRecord and DecodeRecord
// let it spill rows in the log's own encoding; Bytes sizes its budget.
// CreateFile writes a log file directly (benchmarks, tools); CheckWAL is a
// consistency check for tests and tools.
//
// # Concurrency
//
// A Log's EventLog methods follow featurestore.EventLog's rules (one
// shard's calls from its writer goroutine); so does MarkRebuild. Scan,
// ScanFiles, ScanShard, ScanShardFrom, HoldConversion, Events, Markers and
// Bytes may run concurrently with ingestion and with each other (a
// backfill's tail calls ScanShardFrom on the paused writer: from a cursor
// it reads only the WAL, under the shard's HoldConversion, and takes no
// lock the converter holds); other scans read under a read lock that
// holds off the converter's renames and deletes and the retention. Close
// the Log after the store.
package eventlog
