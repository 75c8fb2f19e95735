package keyenc

import (
	"encoding/binary"
	"unsafe"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/internal/partition"
)

// Partition returns the partition, among n, of the entity key v: Kafka's
// default partitioner over the bytes a producer sends as the record key of
// v (enc, the entity's kafka_key, for int64 keys; string keys are their
// UTF-8 bytes). It is the one placement of an entity: ingest, the push
// path, lookups and the store's migration all call it, so an event lands
// in the partition lookups read. v must be of kind KindString or KindInt64.
func Partition(v aggregate.Value, enc partition.KeyEncoding, n int) int {
	var buf [32]byte
	if v.Kind == aggregate.KindInt64 {
		return partition.Of(partition.AppendInt64(buf[:0], v.I, enc), n)
	}
	// A string's record-key bytes are its own: hashed in place, as a key
	// longer than buf would otherwise be copied to the heap on every row.
	return partition.Of(unsafe.Slice(unsafe.StringData(v.S), len(v.S)), n)
}

// PartitionOf is Partition of an encoded key (AppendEntity's bytes) of an
// entity whose key type is kind. An int64 key that is not 8 bytes is
// placed by its bytes as they are.
func PartitionOf(key []byte, kind aggregate.Kind, enc partition.KeyEncoding, n int) int {
	if kind == aggregate.KindInt64 && len(key) == 8 {
		v := int64(binary.BigEndian.Uint64(key) ^ (1 << 63))
		return Partition(aggregate.Value{Kind: aggregate.KindInt64, I: v}, enc, n)
	}
	return partition.Of(key, n)
}

// PartitionOfKey is PartitionOf for a stored key of the given part kinds:
// a compound key is placed by its first part, as ingest places its events.
func PartitionOfKey(key []byte, kinds []aggregate.Kind, enc partition.KeyEncoding, n int) (int, error) {
	first, err := FirstPart(key, kinds)
	if err != nil {
		return 0, err
	}
	return PartitionOf(first, kinds[0], enc, n), nil
}
