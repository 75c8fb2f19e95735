package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/featured-dev/featured/aggregate/aggregatetest"
	"github.com/featured-dev/featured/internal/kafkatest"
)

// recreateTopic deletes topic and creates it again, empty, under the same
// name, as an operator would.
func recreateTopic(t *testing.T, brokers []string, topic string, partitions int) {
	t.Helper()
	kafkatest.DeleteTopic(t, brokers, topic)
	waitFor(t, "the topic deleted", 30*time.Second, func() bool { return !kafkatest.TopicExists(t, brokers, topic) })
	kafkatest.CreateNamedTopic(t, brokers, topic, partitions)
}

// endOffsets returns each partition's end offset (the topic must start at
// offset 0: ReadAll reads from the first offset to the end).
func endOffsets(t *testing.T, brokers []string, topic string, partitions int) map[int32]int64 {
	t.Helper()
	out := map[int32]int64{}
	for p := 0; p < partitions; p++ {
		out[int32(p)] = int64(len(kafkatest.ReadAll(t, brokers, topic, p)))
	}
	return out
}

// prefix returns each entity's first n events.
func prefix(streams map[string][]aggregatetest.Event, n int) map[string][]aggregatetest.Event {
	out := map[string][]aggregatetest.Event{}
	for user, events := range streams {
		out[user] = events[:min(n, len(events))]
	}
	return out
}

// checkResets checks every partition's status: next offset at the end,
// resets and offset epoch as given.
func checkResets(t *testing.T, k *Kafka, ends map[int32]int64, resets int64, epoch int32) {
	t.Helper()
	st := k.Status()
	if len(st) != 1 || len(st[0].Partitions) != len(ends) {
		t.Fatalf("status %+v: want one consumer over %d partitions", st, len(ends))
	}
	for _, p := range st[0].Partitions {
		if p.OffsetResets != resets || p.OffsetEpoch != epoch || p.NextOffset != ends[int32(p.Partition)] || p.Lag != 0 {
			t.Errorf("partition %+v: want %d resets, offset epoch %d, next offset %d, lag 0", p, resets, epoch, ends[int32(p.Partition)])
		}
	}
}

// TestKafkaRecreatedTopic: while ingestion is stopped the topic is deleted
// and recreated with fewer events than were applied, so every stored
// offset is past its partition's new end. On restart each partition is
// reset once and the new events are applied on top of the old ones (a
// client alone would retry forever or reset silently). A restart with the store reopened keeps the
// new offsets: no second reset, nothing applied twice.
func TestKafkaRecreatedTopic(t *testing.T) {
	const partitions = 2
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "tx", partitions)
	t.Cleanup(func() { kafkatest.DeleteTopic(t, brokers, topic+".dlq") })
	e := newEnv(t, defsFor("tx_kafka", "v", topic))
	e.now = time.Now()
	streams := e.entityStreams(8, 51)
	old := messages(streams, 0, 60)
	kafkatest.Produce(t, brokers, topic, old)
	run := e.runKafka(t, brokers)
	waitFor(t, "the old topic's events applied", 60*time.Second, func() bool {
		applied, _ := counted(run.k, "tx_kafka")
		return applied == uint64(len(old))
	})
	run.stop()
	stored := e.store.Offsets("tx_kafka/" + topic)

	recreateTopic(t, brokers, topic, partitions)
	// The same keys land on the same partitions: 10 events per entity
	// instead of 60, so every partition ends before its stored offset.
	fresh := messages(streams, 60, 70)
	kafkatest.Produce(t, brokers, topic, fresh)
	ends := endOffsets(t, brokers, topic, partitions)
	for p, end := range ends {
		if stored[p] <= end {
			t.Fatalf("partition %d: stored offset %d, new end %d: the test needs the stored offset past the end", p, stored[p], end)
		}
	}
	run = e.runKafka(t, brokers)
	waitFor(t, "the recreated topic's events applied", 60*time.Second, func() bool {
		applied, _ := counted(run.k, "tx_kafka")
		return applied == uint64(len(fresh))
	})
	checkResets(t, run.k, ends, 1, 1)
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.checkView(t, "v", prefix(streams, 70))
	if got := e.store.Offsets("tx_kafka/" + topic + "#1"); len(got) != partitions || got[0] != ends[0] || got[1] != ends[1] {
		t.Fatalf("offsets of epoch 1: %v, want %v", got, ends)
	}

	run.stop()
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	e.openStore(t)
	more := messages(streams, 70, 80)
	kafkatest.Produce(t, brokers, topic, more)
	ends = endOffsets(t, brokers, topic, partitions)
	run = e.runKafka(t, brokers)
	waitFor(t, "the events after the restart applied", 60*time.Second, func() bool {
		applied, _ := counted(run.k, "tx_kafka")
		return applied == uint64(len(more))
	})
	checkResets(t, run.k, ends, 0, 1)
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.checkView(t, "v", prefix(streams, 80))
}

// TestKafkaTopicRecreatedWhileRunning: the topic is deleted and recreated
// under a running consumer, with fewer events than were applied. Each
// partition is reset once, from wherever it is found (a fetch's
// out-of-range error once the client has forgotten the old topic, or the
// idle check), and
// the new events are applied on top of the old ones.
func TestKafkaTopicRecreatedWhileRunning(t *testing.T) {
	const partitions = 2
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "tx", partitions)
	t.Cleanup(func() { kafkatest.DeleteTopic(t, brokers, topic+".dlq") })
	e := newEnv(t, defsFor("tx_kafka", "v", topic))
	e.now = time.Now()
	streams := e.entityStreams(8, 61)
	old := messages(streams, 0, 60)
	run := e.runKafka(t, brokers)
	kafkatest.Produce(t, brokers, topic, old)
	waitFor(t, "the old topic's events applied", 60*time.Second, func() bool {
		applied, _ := counted(run.k, "tx_kafka")
		return applied == uint64(len(old))
	})

	recreateTopic(t, brokers, topic, partitions)
	fresh := messages(streams, 60, 70)
	kafkatest.Produce(t, brokers, topic, fresh)
	ends := endOffsets(t, brokers, topic, partitions)
	waitFor(t, "the recreated topic's events applied", 60*time.Second, func() bool {
		applied, _ := counted(run.k, "tx_kafka")
		return applied == uint64(len(old)+len(fresh))
	})
	checkResets(t, run.k, ends, 1, 1)
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.checkView(t, "v", prefix(streams, 70))
}
