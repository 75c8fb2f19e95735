package ingest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate/aggregatetest"
	"github.com/featured-dev/featured/internal/kafkatest"
	"github.com/featured-dev/featured/internal/partition"
)

// TestKafkaPartitionSet: a consumer restricted to partition 0 reads only
// it; partition 1 added at runtime starts from the store's offsets;
// partition 0 removed while its events are being read stops after the
// batch it holds, and added again resumes where the store says. At every
// step each entity's state is the reference of exactly the events of its
// partition that the store's offsets cover: nothing lost, nothing applied
// twice.
func TestKafkaPartitionSet(t *testing.T) {
	const partitions = 2
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "tx", partitions)
	t.Cleanup(func() { kafkatest.DeleteTopic(t, brokers, topic+".dlq") })
	e := newEnv(t, defsFor("tx_kafka", "v", topic))
	e.now = time.Now()
	streams := e.entityStreams(8, 91)
	partOf := map[string]int32{}
	var onPart [partitions]int
	for user := range streams {
		partOf[user] = int32(partition.Of([]byte(user), partitions))
		onPart[partOf[user]]++
	}
	if onPart[0] == 0 || onPart[1] == 0 {
		t.Fatalf("entities per partition %v: the test needs both partitions used", onPart)
	}
	name := "tx_kafka/" + topic

	// applied returns, per entity, the events of the partitions' first
	// offsets[p] messages: what the store holds if it applied each
	// message below its stored offset exactly once.
	applied := func(offsets map[int32]int64) map[string][]aggregatetest.Event {
		t.Helper()
		n := map[string]int{}
		for p := range int32(partitions) {
			for _, m := range kafkatest.ReadAll(t, brokers, topic, int(p)) {
				if m.Offset < offsets[p] {
					n[string(m.Key)]++
				}
			}
		}
		out := map[string][]aggregatetest.Event{}
		for user, events := range streams {
			out[user] = events[:n[user]]
		}
		return out
	}
	var run *kafkaRun
	read := func() []int {
		var ps []int
		for _, cs := range run.k.Status() {
			for _, p := range cs.Partitions {
				ps = append(ps, p.Partition)
			}
		}
		return ps
	}
	atEnds := func(ps ...int32) func() bool {
		ends := endOffsets(t, brokers, topic, partitions)
		return func() bool {
			stored := e.store.Offsets(name)
			for _, p := range ps {
				if stored[p] != ends[p] {
					return false
				}
			}
			return true
		}
	}
	flushed := func() map[int32]int64 {
		t.Helper()
		if err := e.store.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		return e.store.Offsets(name)
	}

	kafkatest.Produce(t, brokers, topic, messages(streams, 0, 50))
	set := NewPartitionSet(0)
	run = e.runKafkaWith(t, brokers, func(o *KafkaOptions) { o.Partitions = set; o.BatchSize = 16 })
	waitFor(t, "partition 0 read to its end", 60*time.Second, atEnds(0))
	stored := flushed()
	if _, ok := stored[1]; ok || !slices.Equal(read(), []int{0}) {
		t.Fatalf("restricted to {0}: stored offsets %v, partitions read %v", stored, read())
	}
	e.checkView(t, "v", applied(stored))

	set.Set(0, 1)
	waitFor(t, "both partitions read to their ends", 60*time.Second, atEnds(0, 1))
	e.checkView(t, "v", applied(flushed()))

	// Partition 0 leaves the set while it has 100 entities' worth of
	// events to read in batches of 16.
	kafkatest.Produce(t, brokers, topic, messages(streams, 50, 150))
	waitFor(t, "partition 0 reading the new events", 60*time.Second, func() bool {
		return e.store.Offsets(name)[0] > stored[0]
	})
	set.Set(1)
	oneAtEnd := atEnds(1)
	waitFor(t, "partition 0 stopped and partition 1 at its end", 60*time.Second, func() bool {
		return slices.Equal(read(), []int{1}) && oneAtEnd()
	})
	stored = flushed()
	t.Logf("partition 0 stopped at offset %d", stored[0])
	e.checkView(t, "v", applied(stored))

	set.Set(0, 1)
	waitFor(t, "partition 0 read again to its end", 60*time.Second, atEnds(0, 1))
	if !slices.Equal(read(), []int{0, 1}) {
		t.Fatalf("partitions read %v, want [0 1]", read())
	}
	e.checkView(t, "v", applied(flushed()))
	e.checkView(t, "v", streams)
}
