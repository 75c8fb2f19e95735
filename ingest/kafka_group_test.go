package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/internal/kafkatest"
)

// TestKafkaGroupPartitions: with GroupPartitions set (a cluster node's
// actives), only those partitions' applied offsets are committed to the
// lag tools' group; the others are read and applied all the same.
func TestKafkaGroupPartitions(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "grp", 2)
	e := newEnv(t, defsFor("tx_kafka", "v", topic))
	e.now = time.Now()
	streams := e.entityStreams(6, 37)
	msgs := messages(streams, 0, 40)
	kafkatest.Produce(t, brokers, topic, msgs)
	prefix := "featured-test-" + topic + "-"
	e.runKafkaWith(t, brokers, func(o *KafkaOptions) {
		o.GroupPrefix = prefix
		o.GroupCommitInterval = 50 * time.Millisecond
		o.GroupPartitions = NewPartitionSet(1)
	})
	name := "tx_kafka/" + topic
	var stored map[int32]int64
	waitFor(t, "stored offsets at the end of the topic", 60*time.Second, func() bool {
		stored = e.store.Offsets(name)
		return len(stored) == 2 && stored[0]+stored[1] == int64(len(msgs))
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	waitFor(t, "partition 1's offset committed to the group", 30*time.Second, func() bool {
		offs, err := adm.FetchOffsets(context.Background(), prefix+"tx_kafka")
		if err != nil {
			return false
		}
		o, ok := offs.Lookup(topic, 1)
		return ok && o.At == stored[1]
	})
	offs, err := adm.FetchOffsets(context.Background(), prefix+"tx_kafka")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(topic, 0); ok && o.At >= 0 {
		t.Fatalf("partition 0, not in GroupPartitions, committed at %d", o.At)
	}
	if stored[0] == 0 {
		t.Fatal("partition 0 was not applied")
	}
}
