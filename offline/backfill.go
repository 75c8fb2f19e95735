package offline

import (
	"context"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/offline/eventlog"
	"github.com/featured-dev/featured/registry"
)

// BackfillLog is what Backfill needs of the offline log; *eventlog.Log
// implements it. Both methods are called from the rebuilt shard's writer
// goroutine, inside featurestore.RebuildFunc, while the shard is paused.
type BackfillLog interface {
	// ScanShard calls fn for every committed row of source in shard, in
	// LSN order (see eventlog.Log.ScanShard).
	ScanShard(ctx context.Context, shard int, source string, fn func(r *eventlog.Row) error) error
	// MarkRebuild records the switch of shard's state of view, written by
	// the shard's next Commit (see eventlog.Log.MarkRebuild).
	MarkRebuild(shard int, view featurestore.ViewKey)
}

var _ BackfillLog = (*eventlog.Log)(nil)

// admits is the ingest's per-view admission rule, replayed: an event is
// folded into a view when its time is within the view's TTL of the ingest
// clock. (The future bound was checked for every view at ingest.)
func admits(v *registry.View, r *eventlog.Row) bool {
	return r.Schema().Source() == v.Source.Name && r.Schema().KeyKind() == v.Entity.Type &&
		r.EventMillis() >= r.IngestMillis()-v.TTL.Milliseconds()
}

// Backfill builds view version v's online state from the offline log and
// switches the store to it, shard by shard (featurestore.Store.Rebuild): each
// shard pauses, commits what it holds, and the state becomes the fold, in log
// order, of every logged event of the view's source that the view admits
// by its TTL at the event's ingest time; then ingestion resumes into it. No
// event is missed (the log is read up to the position the shard committed)
// nor counted twice (nothing is applied while the shard is paused). Exports
// of the view in served mode answer the old state before the switch and the
// new one after it (the switch is recorded in the log: MarkRebuild).
func Backfill(ctx context.Context, store *featurestore.Store, log BackfillLog, v *registry.View) (entities int, err error) {
	vk := featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}
	lay := v.Layout
	fm := &fieldMapper{view: v}
	err = store.Rebuild(ctx, vk, lay, func(ctx context.Context, shard int, emit func([]byte, *aggregate.State) error) error {
		states := map[string]*aggregate.State{}
		var order []string
		maxLSN := int64(-1)
		err := log.ScanShard(ctx, shard, v.Source.Name, func(r *eventlog.Row) error {
			if r.LSN() <= maxLSN {
				return nil // a re-converted segment's duplicate
			}
			maxLSN = r.LSN()
			if !admits(v, r) {
				return nil
			}
			st := states[string(r.Entity())]
			if st == nil {
				st = lay.NewState()
				states[string(r.Entity())] = st
				order = append(order, string(r.Entity()))
			}
			lay.Fold(st, r.EventMillis(), fm.fieldsOf(r))
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range order {
			if err := emit([]byte(k), states[k]); err != nil {
				return err
			}
		}
		entities += len(order)
		log.MarkRebuild(shard, vk)
		return nil
	})
	return entities, err
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
