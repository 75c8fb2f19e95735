package ingest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/featurestore"
	"github.com/featured-dev/featured/internal/kafkatest"
	"github.com/featured-dev/featured/internal/keyenc"
	"github.com/featured-dev/featured/internal/partition"
)

// placementDefs is one Kafka source whose entity has key type typ and
// kafka_key enc, and a view counting its events.
func placementDefs(topic, typ, enc string) string {
	return fmt.Sprintf(`
entities:
  - {name: e, join_key: id, type: %s, kafka_key: %s}
sources:
  - {name: src, kind: kafka, topic: %s, entity_key: id, event_time: ts, fields: {items: int64}}
feature_views:
  - name: v
    entity: e
    source: src
    ttl: 2d
    features:
      - {name: n, aggregation: count}
`, typ, enc, topic)
}

// TestPlacementMatchesBroker produces keyed records with the real
// broker's default partitioner (kafka-go's Murmur2Balancer{Consistent:
// true}, Java's murmur2 over the record key), for utf8, decimal and
// int64_be keys, and checks that every record is in the partition
// keyenc.Partition names, that ingest applied every one (none refused as
// wrong_partition), and that the store reads each entity from there.
func TestPlacementMatchesBroker(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	const parts, entities = 4, 40
	for _, tc := range []struct {
		typ, enc string
		kind     aggregate.Kind
		keyEnc   partition.KeyEncoding
	}{
		{"string", "utf8", aggregate.KindString, partition.UTF8},
		{"int64", "decimal", aggregate.KindInt64, partition.Decimal},
		{"int64", "int64_be", aggregate.KindInt64, partition.Int64BE},
	} {
		t.Run(tc.enc, func(t *testing.T) {
			topic := kafkatest.CreateTopic(t, brokers, "place", parts)
			t.Cleanup(func() { kafkatest.DeleteTopic(t, brokers, topic+".dlq") })
			e := newEnvP(t, placementDefs(topic, tc.typ, tc.enc), parts)
			e.now = time.Now()
			ts := e.now.Add(-time.Minute).UnixMilli()
			values := make([]aggregate.Value, entities)
			var msgs []*kgo.Record
			for i := range values {
				var key []byte
				var id string
				if tc.kind == aggregate.KindString {
					values[i] = aggregate.Value{Kind: aggregate.KindString, S: fmt.Sprintf("user-%d", i)}
					key, id = []byte(values[i].S), fmt.Sprintf("%q", values[i].S)
				} else {
					values[i] = aggregate.Value{Kind: aggregate.KindInt64, I: int64(i*7919 - 100)}
					key, id = partition.AppendInt64(nil, values[i].I, tc.keyEnc), fmt.Sprint(values[i].I)
				}
				msgs = append(msgs, &kgo.Record{Key: key, Value: []byte(fmt.Sprintf(`{"id":%s,"ts":%d,"items":1}`, id, ts))})
			}
			// kafkatest's writer places keyed records as the Java client's
			// default partitioner does (murmur2).
			w := kafkatest.NewWriter(t, brokers, topic)
			if err := w.ProduceSync(t.Context(), msgs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			// The broker's placement is keyenc.Partition's.
			for p := 0; p < parts; p++ {
				for _, m := range kafkatest.ReadAll(t, brokers, topic, p) {
					var want int
					if tc.kind == aggregate.KindString {
						want = keyenc.Partition(aggregate.Value{Kind: aggregate.KindString, S: string(m.Key)}, tc.keyEnc, parts)
					} else {
						want = partition.Of(m.Key, parts)
					}
					if want != p {
						t.Errorf("key %x is in partition %d, keyenc places it in %d", m.Key, p, want)
					}
				}
			}
			run := e.runKafka(t, brokers)
			waitFor(t, "every record handled", 60*time.Second, func() bool {
				applied, rejected := counted(run.k, "src")
				return applied+rejected == entities
			})
			if applied, rejected := counted(run.k, "src"); applied != entities || rejected != 0 {
				t.Fatalf("applied %d, rejected %d: want %d and 0", applied, rejected, entities)
			}
			if err := e.store.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			v, err := e.reg.Snapshot().View("v", 0)
			if err != nil {
				t.Fatal(err)
			}
			vk := featurestore.ViewKey{ID: v.ID, Version: uint32(v.Version)}
			out := make([]aggregate.Result, 1)
			for _, val := range values {
				key, err := keyenc.AppendEntity(nil, val)
				if err != nil {
					t.Fatal(err)
				}
				if err := e.store.Read(vk, v.Layout, keyenc.Partition(val, tc.keyEnc, parts), key, []int{0}, e.now.UnixMilli(), out); err != nil {
					t.Fatal(err)
				}
				if out[0].Status != aggregate.StatusPresent || out[0].Value.I != 1 {
					t.Errorf("entity %+v: %+v, want a count of 1", val, out[0])
				}
			}
		})
	}
}

// TestWrongPartitionDeadLettered produces records to partitions other than
// their entity's, and one keyed with other bytes than its entity key:
// each is dead-lettered with reason wrong_partition and counted for the
// source; the well-placed ones are applied.
func TestWrongPartitionDeadLettered(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	const parts = 2
	topic := kafkatest.CreateTopic(t, brokers, "tx", parts)
	t.Cleanup(func() { kafkatest.DeleteTopic(t, brokers, topic+".dlq") })
	e := newEnvP(t, defsFor("tx_kafka", "v", topic), parts)
	e.now = time.Now()
	ts := e.now.Add(-time.Minute).UnixMilli()
	msg := func(user, key string) *kgo.Record {
		return &kgo.Record{Key: []byte(key), Value: []byte(fmt.Sprintf(`{"user_id":%q,"ts":%d,"items":1}`, user, ts))}
	}
	home := func(user string) int { return partition.Of([]byte(user), parts) }
	// Each record names the partition it goes to in its Partition field.
	w := kafkatest.NewWriter(t, brokers, topic, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var msgs []*kgo.Record
	misplaced := map[string]bool{}
	for i := 0; i < 6; i++ {
		u := fmt.Sprintf("user-%d", i)
		good := msg(u, u)
		good.Partition = int32(home(u))
		bad := msg(u, u)
		bad.Partition = int32(1 - home(u))
		misplaced[string(bad.Value)] = true
		msgs = append(msgs, good, bad)
	}
	// In its entity's partition, but keyed as another entity.
	rekeyed := msg("user-0", "someone-else")
	rekeyed.Partition = int32(home("user-0"))
	rekeyed.Value = append(rekeyed.Value[:len(rekeyed.Value)-1], []byte(`,"amount":1}`)...)
	misplaced[string(rekeyed.Value)] = true
	msgs = append(msgs, rekeyed)
	if err := w.ProduceSync(t.Context(), msgs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	run := e.runKafka(t, brokers)
	waitFor(t, "every record handled", 60*time.Second, func() bool {
		applied, rejected := counted(run.k, "tx_kafka")
		return applied+rejected == uint64(len(msgs))
	})
	for _, s := range run.k.Stats() {
		if s.Source == "tx_kafka" && (s.Applied != 6 || s.Rejected[ReasonWrongPartition] != 7) {
			t.Fatalf("stats %+v: want 6 applied, 7 rejected as %s", s, ReasonWrongPartition)
		}
	}
	var dead []*kgo.Record
	waitFor(t, "dead letters", 30*time.Second, func() bool {
		dead = dead[:0]
		for p := 0; p < parts; p++ {
			dead = append(dead, kafkatest.ReadAll(t, brokers, topic+".dlq", p)...)
		}
		return len(dead) >= len(misplaced)
	})
	for _, m := range dead {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if !misplaced[string(m.Value)] || h[HeaderReason] != ReasonWrongPartition || !strings.Contains(h[HeaderError], "partition") && !strings.Contains(h[HeaderError], "record key") {
			t.Errorf("dead letter %q headers %v: want one of the misplaced records, reason %s", m.Value, h, ReasonWrongPartition)
		}
	}
	if len(dead) != len(misplaced) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(misplaced))
	}
}

// TestTopicPartitionCountRefused: a source topic whose partition count is
// not the store's is not consumed; readiness names both counts.
func TestTopicPartitionCountRefused(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "tx", 3)
	e := newEnvP(t, defsFor("tx_kafka", "v", topic), 2)
	run := e.runKafka(t, brokers)
	waitFor(t, "a readiness error naming both counts", 30*time.Second, func() bool {
		err := run.k.Ready()
		return err != nil && strings.Contains(err.Error(), topic) && strings.Contains(err.Error(), "has 3 partitions, the store 2")
	})
}
