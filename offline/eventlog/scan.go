package eventlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
)

// Scan calls fn for every committed row of the given sources (all sources
// when sources is nil): Parquet files first, then WAL segments not yet
// converted, each up to the position its shard committed. Rows of one shard
// come in LSN order within a file; across files the caller orders by
// (shard, LSN), and drops a repeated (shard, LSN) (a crash between a
// conversion's rename and its WAL delete leaves both until the converter
// runs again). Conversions and retention wait while Scan runs. r is reused:
// it and its slices are valid only during the call.
func (l *Log) Scan(ctx context.Context, sources map[string]bool, fn func(r *Row) error) error {
	return l.ScanFiles(ctx, sources, func(files []File) error {
		for _, f := range files {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := readLogFile(ctx, l.opts.FS, f.Path, fn); err != nil {
				return err
			}
		}
		return nil
	}, fn)
}

// ScanFiles is Scan with the Parquet files handed over as a list (sorted
// by source, shard and first LSN), for readers that decode them column-wise
// and in parallel; WAL rows still come one by one, after the files.
func (l *Log) ScanFiles(ctx context.Context, sources map[string]bool, filesFn func([]File) error, fn func(r *Row) error) error {
	l.files.RLock()
	defer l.files.RUnlock()
	l.mu.Lock()
	shards := make([]*shardLog, 0, len(l.shards))
	for _, sl := range l.shards {
		shards = append(shards, sl)
	}
	l.mu.Unlock()
	sort.Slice(shards, func(i, j int) bool { return shards[i].id < shards[j].id })
	if err := damageErr(shards); err != nil {
		return err
	}
	srcs, err := listDirs(l.opts.FS, l.dir)
	if err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	var all []File
	for _, s := range srcs {
		if s == walDir || (sources != nil && !sources[s]) {
			continue
		}
		files, err := listFiles(l.opts.FS, l.dir, s)
		if err != nil {
			return err
		}
		all = append(all, files...)
	}
	if err := filesFn(all); err != nil {
		return err
	}
	for _, sl := range shards {
		sl.mu.Lock()
		cseg, coff := sl.mu.seg, sl.mu.off
		sl.mu.Unlock()
		segs, err := listSegments(l.opts.FS, sl.dir)
		if err != nil {
			return fmt.Errorf("offline: %w", err)
		}
		for _, seg := range segs {
			if seg > cseg {
				break
			}
			limit := int64(-1)
			if seg == cseg {
				limit = coff
			}
			_, err := readFrames(l.opts.FS, filepath.Join(sl.dir, segName(seg)), limit, false, func(fr *walFrame) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				return fr.rows(sl.id, func(r *Row) error {
					if sources != nil && !sources[r.schema.source] {
						return nil
					}
					return fn(r)
				})
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// ShardCursor is a position in one shard's committed log, as
// ScanShardFrom returns it: the rows before it have been read. The zero
// ShardCursor is the log's start.
type ShardCursor struct {
	seg   uint64
	off   int64
	valid bool
}

// ScanShard calls fn for every committed row of source in shard, in LSN
// order (a repeated LSN may follow a crash during a conversion).
func (l *Log) ScanShard(ctx context.Context, shard int, source string, fn func(r *Row) error) error {
	_, err := l.ScanShardFrom(ctx, shard, source, ShardCursor{}, fn)
	return err
}

// ScanShardFrom calls fn for every row of source in shard committed after
// from, in LSN order, up to the shard's committed position when it starts,
// and returns that position. From the zero ShardCursor it reads the
// shard's Parquet files and then its WAL; from a cursor it returned, only
// the WAL past it, which must still be there: the caller holds the shard's
// conversion (HoldConversion) from before the call that returned the
// cursor to after this one. It may run concurrently with the shard's
// writer (rows committed meanwhile are left for the next call).
func (l *Log) ScanShardFrom(ctx context.Context, shard int, source string, from ShardCursor, fn func(r *Row) error) (ShardCursor, error) {
	sl := l.shard(shard)
	if err := damageErr([]*shardLog{sl}); err != nil {
		return from, err
	}
	sl.mu.Lock()
	to := ShardCursor{seg: sl.mu.seg, off: sl.mu.off, valid: true}
	sl.mu.Unlock()
	if !from.valid {
		l.files.RLock()
		defer l.files.RUnlock()
		files, err := listFiles(l.opts.FS, l.dir, source)
		if err != nil {
			return from, err
		}
		for _, f := range files {
			if f.Shard != shard {
				continue
			}
			if err := readLogFile(ctx, l.opts.FS, f.Path, fn); err != nil {
				return from, err
			}
		}
	}
	segs, err := listSegments(l.opts.FS, sl.dir)
	if err != nil {
		return from, fmt.Errorf("offline: %w", err)
	}
	for _, seg := range segs {
		if seg > to.seg {
			break
		}
		var start int64
		if from.valid {
			if seg < from.seg {
				continue
			}
			if seg == from.seg {
				start = from.off
			}
		}
		limit := int64(-1)
		if seg == to.seg {
			limit = to.off
		}
		_, err := readFramesFrom(l.opts.FS, filepath.Join(sl.dir, segName(seg)), start, limit, false, func(fr *walFrame) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fr.rows(shard, func(r *Row) error {
				if r.schema.source != source {
					return nil
				}
				return fn(r)
			})
		})
		if from.valid && seg == from.seg && errors.Is(err, fs.ErrNotExist) {
			// Converted under the hold: only a segment sealed before it
			// was taken can be, and then from is at its end.
			continue
		}
		if err != nil {
			return from, err
		}
	}
	return to, nil
}

// Event is one logged event, as Events reports it.
type Event struct {
	Source       string
	Shard        int
	LSN          int64 // per shard, in fold order
	IngestMillis int64 // the ingest clock at admission
	CommitMillis int64 // the store's clock when the event's batch became visible to reads
	EventMillis  int64
	Entity       []byte // keyenc
	// Partition and Offset are the Kafka position (HasOffset) of the event.
	HasOffset bool
	Partition int32
	Offset    int64
	// Views are the view versions the store folded the event into.
	Views []featurestore.ViewKey
	// Fields are the source's fields by name.
	Fields map[string]aggregate.Value
}

// Events calls fn for every committed event of source ("" for all), in no
// particular order across shards and files; a (shard, LSN) may repeat after
// a crash interrupted a conversion (see the package doc). For tests,
// audits and tools; exports use the same scan.
func (l *Log) Events(ctx context.Context, source string, fn func(Event) error) error {
	var sources map[string]bool
	if source != "" {
		sources = map[string]bool{source: true}
	}
	return l.Scan(ctx, sources, func(r *Row) error {
		e := Event{
			Source: r.schema.source, Shard: int(r.shard), LSN: r.lsn, IngestMillis: r.ingestMillis,
			CommitMillis: r.commitMillis, EventMillis: r.eventMillis, Entity: append([]byte(nil), r.entity...),
			HasOffset: r.hasPos, Partition: r.partition, Offset: r.offset, Fields: map[string]aggregate.Value{},
		}
		for _, v := range r.views {
			e.Views = append(e.Views, featurestore.ViewKey{ID: uint32(v >> 32), Version: uint32(v)})
		}
		for i, n := range r.schema.names {
			if r.fields[i].Kind != aggregate.KindNull {
				e.Fields[n] = r.fields[i]
			}
		}
		return fn(e)
	})
}

// Bytes estimates the log's size on disk for sources: their Parquet files
// and the whole WAL. Exports size their memory budget by it.
func (l *Log) Bytes(sources map[string]bool) int64 {
	var n int64
	fs := l.opts.FS
	var walk func(dir string)
	walk = func(dir string) {
		names, _ := fs.List(dir)
		for _, name := range names {
			p := filepath.Join(dir, name)
			fi, err := fs.Stat(p)
			switch {
			case err != nil:
			case fi.IsDir():
				walk(p)
			default:
				n += fi.Size()
			}
		}
	}
	for src := range sources {
		walk(filepath.Join(l.dir, src))
	}
	walk(filepath.Join(l.dir, walDir))
	return n
}
