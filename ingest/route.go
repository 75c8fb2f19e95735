package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/internal/partition"
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
	// kafkaKey and partitions place the source's events: the store
	// partition of an entity is its Kafka partition (keyenc.Partition).
	kafkaKey   partition.KeyEncoding
	partitions int
}

// routeTable caches routes for one registry generation; it is rebuilt when
// the generation changes.
type routeTable struct {
	gen      uint64
	mu       sync.Mutex
	bySource map[string]*route
}

type router struct {
	reg *registry.Registry
	// partitions is the store's partition count, P.
	partitions int
	table      atomic.Pointer[routeTable]
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
	rt := &route{src: src, dec: newDecoder(src, snap.SourceKeyKinds(source)), kafkaKey: snap.SourceKafkaKey(source), partitions: r.partitions}
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

// ReasonWrongPartition: a Kafka record read from a partition other than
// its entity's, or keyed with bytes other than its entity key's encoding
// (the entity's kafka_key). Lookups read the entity's partition, so such a
// record is dead-lettered rather than applied where no lookup finds it.
const ReasonWrongPartition = "wrong_partition"

// place returns the store partition of rec's entity: its key's first part's
// (a compound key lives with its first entity, so one node answers a row's
// views of it). For a Kafka record (kafkaPartition >= 0; -1 for a push) it
// checks, rather than trusts, the producer's placement: the record must be
// in that partition and, when it has a key, keyed by the first part's
// record-key bytes.
func (rt *route) place(rec *Record, kafkaPartition int, recordKey []byte) (int, *RowError) {
	first := rec.Key[0]
	p := keyenc.Partition(first, rt.kafkaKey, rt.partitions)
	if kafkaPartition < 0 {
		return p, nil
	}
	if kafkaPartition != p {
		return p, &RowError{Code: ReasonWrongPartition, Field: rt.src.EntityKey[0],
			Reason: fmt.Sprintf("record in partition %d, but its entity key belongs to partition %d of %d (Kafka's default partitioner over the key's %s bytes)", kafkaPartition, p, rt.partitions, kafkaKeyName(rt.kafkaKey))}
	}
	if len(recordKey) > 0 {
		var buf [32]byte
		var want []byte
		if first.Kind == aggregate.KindInt64 {
			want = partition.AppendInt64(buf[:0], first.I, rt.kafkaKey)
		} else {
			want = partition.AppendString(buf[:0], first.S)
		}
		if !bytes.Equal(recordKey, want) {
			return p, &RowError{Code: ReasonWrongPartition, Field: rt.src.EntityKey[0],
				Reason: fmt.Sprintf("record key is not the %s encoding of its entity key", kafkaKeyName(rt.kafkaKey))}
		}
	}
	return p, nil
}

func kafkaKeyName(enc partition.KeyEncoding) string {
	return (&registry.Entity{KafkaKey: enc}).KafkaKeyName()
}

// checkTopicPartitions refuses a Kafka source topic whose partition count
// is not the store's: partition i of the topic is partition i of the
// store, so with another count events would land where lookups do not
// look (docs/scaling.md, "One partition count, one partitioner").
func checkTopicPartitions(topic string, have, partitions int) error {
	if have != partitions {
		return fmt.Errorf("%w: topic %q has %d partitions, the store %d (--partitions): create the topic with %d, or the store with %d",
			ErrPartitionCount, topic, have, partitions, partitions, have)
	}
	return nil
}

// ErrPartitionCount is a Kafka source topic whose partition count is not
// the store's.
var ErrPartitionCount = errors.New("ingest: topic partition count is not the store's")

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
