// Package offline is the offline side of featured: the offline log every
// store shard writes, and what is computed from it. The work lives in
// subpackages, which import one way (eventlog <- export <- skew, all
// checked by internal/lint):
//
//   - eventlog: the offline log (implements featurestore.EventLog): WAL
//     segments per shard, sealed into Parquet files by a converter,
//     retention, backfill markers, and reading it all back.
//   - export: point-in-time training sets from the log (spine, join,
//     spill, Parquet and Arrow sinks), in served or event mode.
//   - skew: samples of the store's answers and their recomputation
//     through the export (verify-skew).
//   - internal/codec: value encodings the log and the export share.
//
// This package wires them for featured serve: the HTTP handlers of
// /v1/export, /v1/backfill and /v1/verify-skew (ExportHandler,
// BackfillHandler, VerifySkewHandler), and Backfill, which builds a view
// version's online state from the log through featurestore.Store.Rebuild.
// Backfill sits here rather than in eventlog or export because it is the
// one operation that writes to the store: it joins the log, the registry's
// view and the store, which neither subpackage may import together.
//
// The handlers return their errors for the caller's router to write
// (HandlerFunc); each may run concurrently with the others and with
// ingestion. Backfill runs one shard at a time: it scans the shard's log on
// its caller's goroutine while the shard ingests, with its states bounded
// in memory (BackfillOptions), then folds the tail on the shard's writer
// goroutine, paused (see BackfillLog). The marker's LSN is the exact
// boundary between the rows the backfill folded and those folded live
// (BackfillWith states the invariant).
package offline
