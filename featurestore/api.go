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
// keyenc-encoded entity key.
type Write struct {
	Entity      []byte
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

// The Store's methods used by other packages (bodies in store.go):
//
//	func Open(dir string, opts Options) (*Store, error)
//	func (s *Store) Close() error
//	// Write folds ws and returns once they are durable (fsynced).
//	func (s *Store) Write(ctx context.Context, ws []Write) error
//	// Enqueue hands ws to the shard writers and returns without waiting for
//	// the commit; commits happen by count and time. Blocks when queues are full.
//	func (s *Store) Enqueue(ctx context.Context, ws []Write) error
//	// Flush commits everything enqueued so far.
//	func (s *Store) Flush(ctx context.Context) error
//	// Offsets returns, per partition of topic, the next offset to read: the
//	// minimum over shards of the offset after the last one each applied.
//	func (s *Store) Offsets(topic string) (map[int32]int64, error)
//	// Read fills out[i] with feature features[i] of the entity in view vk,
//	// as of atMillis. It never waits for writers.
//	func (s *Store) Read(vk ViewKey, l *aggregate.Layout, entity []byte, features []int, atMillis int64, out []aggregate.Result) error
//	// DropView deletes every entity's state of a view version.
//	func (s *Store) DropView(ctx context.Context, vk ViewKey) error
