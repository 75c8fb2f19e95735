package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/featurestore/featurestoretest"
	"github.com/featured-dev/featured/internal/kafkatest"
)

// TestKafkaFailedCommitRewinds: the store's first commit on shard 0 fails
// (as a full disk under the offline log would make it) while batches with
// later offsets are queued behind it. The partitions it dropped events of
// must rewind to the stored offsets and read them again: every aggregate
// equals the reference, the stored offsets reach the end, and the rewind
// is counted. Without the fence the later batches were applied over the
// gap and the dropped events were lost for good.
func TestKafkaFailedCommitRewinds(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "tx", 2)
	e := newEnv(t, defsFor("tx_kafka", "v", topic))
	e.now = time.Now()
	streams := e.entityStreams(6, 31)
	msgs := messages(streams, 0, 150)
	kafkatest.Produce(t, brokers, topic, msgs)

	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	var log featurestoretest.FailLog
	log.Fail(0, 1)
	var err error
	e.store, err = featurestore.Open(e.dir, featurestore.Options{
		Partitions: e.partitions, GCInterval: -1, Now: func() time.Time { return e.now }, EventLog: &log,
		// Small commits behind small batches: when shard 0's first commit
		// fails, later batches of the same partitions are already queued.
		CommitMaxWrites: 16,
	})
	if err != nil {
		t.Fatal(err)
	}
	run := e.runKafkaWith(t, brokers, func(o *KafkaOptions) { o.BatchSize = 20 })

	name := "tx_kafka/" + topic
	var stored map[int32]int64
	waitFor(t, "stored offsets at the end of the topic", 60*time.Second, func() bool {
		stored = e.store.Offsets(name)
		return len(stored) == 2 && stored[0]+stored[1] == int64(len(msgs))
	})
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.checkView(t, "v", streams)
	if log.Failed() != 1 {
		t.Fatalf("%d commits failed, want the 1 injected", log.Failed())
	}
	var rewinds int64
	for _, p := range run.k.Status()[0].Partitions {
		rewinds += p.Rewinds
		if p.NextOffset != stored[int32(p.Partition)] {
			t.Errorf("partition %+v: next offset is not the stored %d", p, stored[int32(p.Partition)])
		}
	}
	if rewinds < 1 {
		t.Fatalf("no rewind counted after a failed commit: %+v", run.k.Status())
	}
}
