package ingest

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/registry"
)

// route is everything needed to ingest one source's events under one
// registry generation.
type route struct {
	src       *registry.Source
	dec       *decoder
	targets   []featurestore.Target
	schema    *featurestore.Schema // names the decoded fields for the event log
	ttlMillis []int64              // per target
	maxTTL    int64
}

// routeTable caches routes for one registry generation; it is rebuilt when
// the generation changes.
type routeTable struct {
	gen      uint64
	mu       sync.Mutex
	bySource map[string]*route
}

type router struct {
	reg   *registry.Registry
	table atomic.Pointer[routeTable]
}

// route returns the route of a source as the registry defines it now, or
// nil if the source does not exist.
func (r *router) route(source string) *route {
	snap := r.reg.Snapshot()
	t := r.table.Load()
	if t == nil || t.gen != snap.Generation() {
		t = &routeTable{gen: snap.Generation(), bySource: make(map[string]*route)}
		r.table.Store(t)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if rt, ok := t.bySource[source]; ok {
		return rt
	}
	src, ok := snap.Source(source)
	if !ok {
		return nil
	}
	rt := &route{src: src, dec: newDecoder(src, snap.SourceKeyKinds(source))}
	rt.schema = &featurestore.Schema{Source: src.Name, KeyKinds: snap.SourceKeyKinds(source)}
	for _, f := range src.Fields {
		rt.schema.Names = append(rt.schema.Names, f.Name)
		rt.schema.Kinds = append(rt.schema.Kinds, f.Kind)
	}
	for _, v := range snap.LiveViews(source) {
		ttl := v.TTL.Milliseconds()
		rt.targets = append(rt.targets, featurestore.Target{
			Key:    featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)},
			Layout: v.Layout,
		})
		rt.ttlMillis = append(rt.ttlMillis, ttl)
		rt.maxTTL = max(rt.maxTTL, ttl)
	}
	t.bySource[source] = rt
	return rt
}

// admit returns the targets that accept an event at eventMillis, sharing
// rt.targets when all do, or a RowError when the event is too far in the
// future. An event older than every target view's TTL is history, not an
// error: admit returns no target, so the store logs the event for the
// offline side (exports in event mode and backfills see it; it is logged as
// folded into no view, so served exports reproduce that online never had
// it) and folds it nowhere; no window served now could hold it. Ingest
// counts it as history (sourceStats.add).
func (rt *route) admit(eventMillis int64, now time.Time, maxFuture time.Duration) ([]featurestore.Target, *RowError) {
	if len(rt.targets) == 0 {
		return nil, nil // a source no view reads yet: nothing to fold
	}
	nowMillis := now.UnixMilli()
	if err := aggregate.Admit(eventMillis, nowMillis, rt.maxTTL, maxFuture.Milliseconds()); err != nil {
		if errors.Is(err, aggregate.ErrTooLate) {
			return nil, nil
		}
		return nil, &RowError{Code: ReasonFuture, Field: rt.src.EventTime, Reason: err.Error()}
	}
	all := true
	for _, ttl := range rt.ttlMillis {
		if eventMillis < nowMillis-ttl {
			all = false
			break
		}
	}
	if all {
		return rt.targets, nil
	}
	var some []featurestore.Target
	for i, ttl := range rt.ttlMillis {
		if eventMillis >= nowMillis-ttl {
			some = append(some, rt.targets[i])
		}
	}
	return some, nil
}
