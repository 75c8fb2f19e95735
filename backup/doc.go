// Package backup owns featured's backups at a destination: a directory or an
// object store (s3://bucket/prefix, file:///path, through gocloud.dev/blob).
// It uploads a data dir laid out by a checkpoint (featurestore.Store
// Checkpoint, registry.Registry.CopyTo, eventlog.Log.CopyTo), lists the
// backups a destination holds, restores one into an empty data dir and
// deletes the backups past a retention count. ReadObject reads a single
// file from the same kinds of places (featured import feast reads a Feast
// registry file with it).
//
// # Layout at the destination
//
//	manifests/<id>.json      one per complete backup (Manifest)
//	data/<ab>/<sha256>       file contents, addressed by their SHA-256
//	partitions/p-NNNN/       one partition's checkpoints, the same layout
//	                         inside (OpenPartition; cluster hand-over)
//
// Files are content-addressed, so a file the destination already holds is
// not uploaded again: Pebble's sstables never change once written, and an
// incremental backup uploads only the sstables made since, the MANIFESTs,
// and whole every file appended to since the last backup (Pebble's WALs,
// the offline log's open segments: up to 64 MiB a shard) with the offline
// log's new files. An sstable that the newest backup names with the same
// path, size and modification time is not even read (Upload). A manifest is
// written after every file it names, so a manifest names only files that
// are there; a backup cut short leaves unreferenced data that Prune deletes.
//
// # Concurrency
//
// A Dest may be used from several goroutines, but one destination takes
// one writer at a time: Prune deletes data that no manifest names, which
// includes the files of a backup still uploading. featured serialises its
// backups and prunes (cmd/featured).
package backup
