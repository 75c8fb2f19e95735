package ingest

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/featured-dev/featured/internal/kafkatest"
)

// TestKafkaPausesWhileNotWritable: while Options.Writable refuses (a full
// disk), consumers apply nothing and say so in their status; once it
// allows again, they resume by themselves and every aggregate equals the
// reference: nothing lost, nothing doubled.
func TestKafkaPausesWhileNotWritable(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "tx", 2)
	e := newEnv(t, defsFor("tx_kafka", "v", topic))
	e.now = time.Now()
	streams := e.entityStreams(4, 41)
	msgs := messages(streams, 0, 150)
	kafkatest.Produce(t, brokers, topic, msgs)

	var full atomic.Bool
	full.Store(true)
	diskFull := errors.New("disk full: test")
	run := e.runKafkaWith(t, brokers, func(o *KafkaOptions) {
		o.Writable = func() error {
			if full.Load() {
				return diskFull
			}
			return nil
		}
		o.RetryMin = 10 * time.Millisecond
	})
	waitFor(t, "both partitions report the pause", 60*time.Second, func() bool {
		st := run.k.Status()
		if len(st) == 0 || len(st[0].Partitions) != 2 {
			return false
		}
		for _, p := range st[0].Partitions {
			if !strings.Contains(p.LastError, "paused: disk full: test") {
				return false
			}
		}
		return true
	})
	name := "tx_kafka/" + topic
	if off := e.store.Offsets(name); len(off) != 0 {
		t.Fatalf("offsets stored while paused: %v", off)
	}

	full.Store(false)
	waitFor(t, "stored offsets at the end of the topic", 60*time.Second, func() bool {
		stored := e.store.Offsets(name)
		return len(stored) == 2 && stored[0]+stored[1] == int64(len(msgs))
	})
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.checkView(t, "v", streams)
}
