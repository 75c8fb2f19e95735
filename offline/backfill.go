package offline

import (
	"context"
	"slices"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/registry"
)

// BackfillLog is what Backfill needs of the offline log; *eventlog.Log
// implements it.
type BackfillLog interface {
	// HoldConversion keeps shard's WAL segments in the WAL until release
	// (see eventlog.Log.HoldConversion). Called from Backfill's goroutine.
	HoldConversion(shard int) (release func())
	// ScanShardFrom calls fn for every row of source in shard committed
	// after from, in LSN order, and returns where it stopped (see
	// eventlog.Log.ScanShardFrom). Called first from Backfill's goroutine
	// while the shard ingests, from the zero cursor, then from the shard's
	// writer goroutine, paused, from the cursor the first call returned.
	ScanShardFrom(ctx context.Context, shard int, source string, from eventlog.ShardCursor, fn func(r *eventlog.Row) error) (eventlog.ShardCursor, error)
	// MarkRebuild records the switch of shard's state of view, written by
	// the shard's next Commit (see eventlog.Log.MarkRebuild). Called from
	// the shard's writer goroutine, after the second scan.
	MarkRebuild(shard int, view featurestore.ViewKey)
}

var _ BackfillLog = (*eventlog.Log)(nil)

// BackfillOptions bounds a backfill. The zero value is usable.
type BackfillOptions struct {
	// MemoryBytes bounds the states the backfill holds in memory at once
	// (featurestore.RebuildOptions.MemoryBytes): past it they are written
	// out, pruned, to the store's staging keys. The default value is
	// 256 MiB.
	MemoryBytes int64
	// BatchBytes bounds each Pebble batch the backfill writes. The default
	// value is 4 MiB.
	BatchBytes int64
	// scanned, when set (tests), is called from the scan that runs while
	// the shard ingests, after each row it folded, with the shard.
	scanned func(shard int)
}

// BackfillStats reports a backfill's work (featurestore.RebuildStats).
type BackfillStats = featurestore.RebuildStats

// admits is the ingest's per-view admission rule, replayed: an event is
// folded into a view when its time is within the view's TTL of the ingest
// clock. (The future bound was checked for every view at ingest.)
func admits(v *registry.View, r *eventlog.Row) bool {
	return r.Schema().Source() == v.Source.Name && slices.Equal(r.Schema().KeyKinds(), v.KeyKinds()) &&
		r.EventMillis() >= r.IngestMillis()-v.TTL.Milliseconds()
}

// Backfill is BackfillWith default options; it returns the number of
// entities rebuilt.
func Backfill(ctx context.Context, store *featurestore.Store, log BackfillLog, v *registry.View) (entities int, err error) {
	st, err := BackfillWith(ctx, store, log, v, BackfillOptions{})
	return st.Entities, err
}

// BackfillWith builds view version v's online state from the offline log
// and switches the store to it, shard by shard (featurestore.Store.Rebuild):
// the state becomes the fold, in log order, of every logged event of the
// view's source that the view admits by its TTL at the event's ingest
// time; the events logged after the switch are folded live.
//
// The invariant, per shard: the shard's committed log position P, read by
// the rebuild's tail scan on the paused writer, is the boundary. The first
// scan folds the rows below a cursor C (the committed position when it
// began) while ingest goes on; the tail folds the rows in [C, P), which the
// shard committed meanwhile; MarkRebuild records P's LSN, and the marker is
// committed in the switch's batch, before the writer folds any later event.
// So every logged row below the marker's LSN is folded by the backfill,
// every one at or above it live, none twice (a repeated LSN, left by an
// interrupted conversion, is skipped) and none missed (conversion is held
// from before C is read until the tail has read to P, so [C, P) is still
// in the WAL). Exports of the view in served mode answer the old state
// before the marker's commit time and the new one after it.
//
// Memory is bounded by opts.MemoryBytes (states spill to the store) and
// ingest into a shard waits only for the tail, not for the scan of the
// whole log.
func BackfillWith(ctx context.Context, store *featurestore.Store, log BackfillLog, v *registry.View, opts BackfillOptions) (BackfillStats, error) {
	vk := featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}
	src := &backfillSource{log: log, view: v, vk: vk, fm: &fieldMapper{view: v}, scanned: opts.scanned}
	defer src.release()
	return store.Rebuild(ctx, vk, v.Layout, featurestore.RebuildOptions{MemoryBytes: opts.MemoryBytes, BatchBytes: opts.BatchBytes}, src)
}

// backfillSource is Backfill's featurestore.RebuildSource. Shards are
// rebuilt one at a time: Scan runs on Backfill's goroutine and hands over
// to Tail on the shard's writer through the store's request.
type backfillSource struct {
	log     BackfillLog
	view    *registry.View
	vk      featurestore.ViewKey
	fm      *fieldMapper
	scanned func(shard int)

	// Of the shard being rebuilt. hold releases its conversion; it is
	// idempotent and only read once set, so Tail on the writer and
	// Backfill's return (a cancelled wait) may both call it.
	hold   func()
	cursor eventlog.ShardCursor
	maxLSN int64
}

var _ featurestore.RebuildSource = (*backfillSource)(nil)

func (b *backfillSource) release() {
	if b.hold != nil {
		b.hold()
	}
}

// fold folds r, skipping a repeated LSN and rows the view does not admit.
func (b *backfillSource) fold(r *eventlog.Row, fold featurestore.RebuildFold) error {
	if r.LSN() <= b.maxLSN {
		return nil // a re-converted segment's duplicate
	}
	b.maxLSN = r.LSN()
	if !admits(b.view, r) {
		return nil
	}
	return fold(r.Entity(), r.EventMillis(), b.fm.fieldsOf(r))
}

func (b *backfillSource) Scan(ctx context.Context, shard int, fold featurestore.RebuildFold) error {
	b.release() // a previous shard's, if its tail never ran
	b.hold = b.log.HoldConversion(shard)
	b.maxLSN = -1
	var err error
	b.cursor, err = b.log.ScanShardFrom(ctx, shard, b.view.Source.Name, eventlog.ShardCursor{}, func(r *eventlog.Row) error {
		if err := b.fold(r, fold); err != nil {
			return err
		}
		if b.scanned != nil {
			b.scanned(shard)
		}
		return nil
	})
	return err
}

func (b *backfillSource) Tail(ctx context.Context, shard int, fold featurestore.RebuildFold) error {
	defer b.release()
	_, err := b.log.ScanShardFrom(ctx, shard, b.view.Source.Name, b.cursor, func(r *eventlog.Row) error {
		return b.fold(r, fold)
	})
	if err != nil {
		return err
	}
	b.log.MarkRebuild(shard, b.vk)
	return nil
}

// fieldMapper maps rows' fields to a view's Source.Fields order. One
// rebuild's shards run one at a time, so one mapper serves them all.
type fieldMapper struct {
	view *registry.View
	// fieldMap maps the view's Source.Fields to the fields of rows of
	// schema mapped; scratch receives them.
	mapped   *eventlog.Schema
	fieldMap []int
	identity bool
	scratch  []aggregate.Value
}

// fieldsOf maps a row's fields (its schema's order) to the view's
// Source.Fields order, by name and kind: a field the row's schema lacks, or
// has with another kind, is null, as the decoder would have made it.
func (m *fieldMapper) fieldsOf(r *eventlog.Row) []aggregate.Value {
	if s := r.Schema(); m.mapped != s {
		m.mapped = s
		m.fieldMap = m.fieldMap[:0]
		m.identity = len(s.Names()) == len(m.view.Source.Fields)
		for i, f := range m.view.Source.Fields {
			j := s.Field(f.Name, f.Kind)
			m.fieldMap = append(m.fieldMap, j)
			m.identity = m.identity && j == i
		}
		m.scratch = make([]aggregate.Value, len(m.view.Source.Fields))
	}
	if m.identity {
		return r.Fields() // the row's schema is the view's source as it reads it
	}
	for i, j := range m.fieldMap {
		if j < 0 {
			m.scratch[i] = aggregate.Value{}
		} else {
			m.scratch[i] = r.Fields()[j]
		}
	}
	return m.scratch
}
