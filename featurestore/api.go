package featurestore

import "github.com/featured-dev/featured/aggregate"

// ViewKey names one version of one feature view in the store. ID is the
// registry's stable numeric id of the view name.
type ViewKey struct {
	ID      uint32
	Version uint32
}

// Target is a view version an event is folded into.
type Target struct {
	Key    ViewKey
	Layout *aggregate.Layout
}

// Position is a Kafka (topic, partition, offset) an event came from. Offsets
// are committed in the same Pebble batch as the state they produced.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Write is one event to fold into every Target. Fields is indexed by
// aggregate.Spec.Field (the source's field order). Entity is the
// keyenc-encoded entity key and Partition its partition, which the caller
// computes from the key's record-key bytes (internal/keyenc.Partition):
// the store does not hash keys.
type Write struct {
	Entity      []byte
	Partition   int
	EventMillis int64
	Fields      []aggregate.Value
	Targets     []Target
	// Position is set for events read from Kafka; nil for pushed events.
	Position *Position
	// IngestMillis is the ingest clock when the event was admitted (the
	// instant its per-view TTL admission was decided), for the event log.
	IngestMillis int64
	// Schema names Fields for the event log; nil when the store has no
	// EventLog or the caller does not log.
	Schema *Schema
}

// The Store's methods are documented on them: Open, Close, Write, Enqueue,
// EnqueueFenced, EnqueueFencedBatch, Fence, Flush, Offsets, DropView, Stats and PebbleMetrics in store.go, Read
// in sample.go, Rebuild in rebuild.go; fences and ErrFenced in fence.go. The interfaces the store calls out through, with the duties
// each side has, are EventLog (eventlog.go) and ReadSampler (sample.go).
