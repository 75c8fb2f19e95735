package ingest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/aggregate/aggregatetest"
	"github.com/featured-dev/featured/internal/kafkatest"
	"github.com/featured-dev/featured/registry"
)

// kafkaRun runs a Kafka ingester until the test ends or stop is called.
type kafkaRun struct {
	k    *Kafka
	stop func()
}

func (e *env) runKafka(t *testing.T, brokers []string) *kafkaRun {
	t.Helper()
	return e.runKafkaWith(t, brokers, nil)
}

// runKafkaWith is runKafka with the test's options changed by edit.
func (e *env) runKafkaWith(t *testing.T, brokers []string, edit func(*KafkaOptions)) *kafkaRun {
	t.Helper()
	opts := KafkaOptions{
		Options: Options{Now: func() time.Time { return e.now }},
		Brokers: brokers, RetryMin: 50 * time.Millisecond, RetryMax: time.Second, PartitionCheck: time.Second,
		// Idle partitions check their offsets often, so every test also
		// checks that a healthy partition is never taken for a reset one.
		OffsetCheck: 200 * time.Millisecond,
	}
	if edit != nil {
		edit(&opts)
	}
	k, err := NewKafka(e.reg, e.store, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := k.Run(ctx); err != nil {
			t.Errorf("kafka run: %v", err)
		}
	})
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return &kafkaRun{k: k, stop: stop}
}

// waitFor polls cond every 20ms until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func historyOf(k *Kafka, source string) uint64 {
	for _, s := range k.Stats() {
		if s.Source == source {
			return s.History
		}
	}
	return 0
}

func counted(k *Kafka, source string) (applied, rejected uint64) {
	for _, s := range k.Stats() {
		if s.Source == source {
			applied = s.Applied
			for _, n := range s.Rejected {
				rejected += n
			}
		}
	}
	return applied, rejected
}

// messages renders streams as keyed Kafka messages, entities interleaved.
func messages(streams map[string][]aggregatetest.Event, from, to int) []*kgo.Record {
	var msgs []*kgo.Record
	for i := from; i < to; i++ {
		for user, events := range streams {
			if i < len(events) {
				msgs = append(msgs, &kgo.Record{Key: []byte(user), Value: eventJSON(user, events[i], i)})
			}
		}
	}
	return msgs
}

func TestKafkaMatchesReference(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "tx", 4)
	e := newEnvP(t, defsFor("tx_kafka", "v", topic), 4)
	e.now = time.Now()
	streams := e.entityStreams(12, 11)
	run := e.runKafka(t, brokers)
	msgs := messages(streams, 0, 150)
	kafkatest.Produce(t, brokers, topic, msgs)
	waitFor(t, "all events applied", 60*time.Second, func() bool {
		applied, _ := counted(run.k, "tx_kafka")
		return applied == uint64(len(msgs))
	})
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.checkView(t, "v", streams)
	offs := e.store.Offsets("tx_kafka/" + topic)
	var total int64
	for _, o := range offs {
		total += o
	}
	if len(offs) != 4 || total != int64(len(msgs)) {
		t.Fatalf("stored offsets %v: want 4 partitions summing to %d", offs, len(msgs))
	}
	st := run.k.Status()
	if len(st) != 1 || !st[0].Ready || len(st[0].Partitions) != 4 {
		t.Fatalf("status %+v: want one ready consumer over 4 partitions", st)
	}
	for _, p := range st[0].Partitions {
		if p.Lag != 0 || p.NextOffset != offs[int32(p.Partition)] || p.OffsetResets != 0 || p.OffsetEpoch != 0 {
			t.Errorf("partition %+v: want lag 0, next offset %d, no offset reset", p, offs[int32(p.Partition)])
		}
	}
}

// TestKafkaRestartResumes stops ingestion midway (store closed and
// reopened, as after a restart), produces more, and checks that nothing is
// lost or counted twice.
func TestKafkaRestartResumes(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "tx", 3)
	e := newEnvP(t, defsFor("tx_kafka", "v", topic), 3)
	e.now = time.Now()
	streams := e.entityStreams(5, 21)
	first := messages(streams, 0, 70)
	kafkatest.Produce(t, brokers, topic, first)
	run := e.runKafka(t, brokers)
	waitFor(t, "first half applied", 60*time.Second, func() bool {
		applied, _ := counted(run.k, "tx_kafka")
		return applied == uint64(len(first))
	})
	run.stop()

	second := messages(streams, 70, 150)
	kafkatest.Produce(t, brokers, topic, second)
	run = e.runKafka(t, brokers)
	waitFor(t, "second half applied", 60*time.Second, func() bool {
		applied, _ := counted(run.k, "tx_kafka")
		return applied == uint64(len(second))
	})
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.checkView(t, "v", streams)
}

// TestKafkaDeadLetters sends one bad message of each kind between good
// ones: the bad ones land on the dead-letter topic with their reason, the
// counters move, the good ones are applied and the partition keeps going.
// A valid message older than the TTL is counted as history and is no dead
// letter.
func TestKafkaDeadLetters(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "tx", 1)
	t.Cleanup(func() { kafkatest.DeleteTopic(t, brokers, topic+".dlq") })
	e := newEnvP(t, defsFor("tx_kafka", "v", topic), 1)
	e.now = time.Now()
	ts := e.now.Add(-time.Minute).UnixMilli()
	bad := map[string]string{
		`not json`:                   ReasonMalformed,
		fmt.Sprintf(`{"ts":%d}`, ts): ReasonMissingKey,
		`{"user_id":"a"}`:            ReasonMissingTime,
		fmt.Sprintf(`{"user_id":"a","ts":%d,"items":"x"}`, ts): ReasonWrongType,
		fmt.Sprintf(`{"user_id":"a","ts":%d}`, ts+3600_000):    ReasonFuture,
	}
	var msgs []*kgo.Record
	good := 0
	for v := range bad {
		msgs = append(msgs, &kgo.Record{Value: []byte(v)})
		msgs = append(msgs, &kgo.Record{Key: []byte("g"), Value: []byte(fmt.Sprintf(`{"user_id":"g","ts":%d,"items":1}`, ts))})
		good++
	}
	// Valid but older than the TTL: history, not a dead letter.
	msgs = append(msgs, &kgo.Record{Key: []byte("h"), Value: []byte(fmt.Sprintf(`{"user_id":"h","ts":%d,"items":1}`, ts-3*24*3600_000))})
	run := e.runKafka(t, brokers)
	kafkatest.Produce(t, brokers, topic, msgs)
	waitFor(t, "every message handled", 60*time.Second, func() bool {
		applied, rejected := counted(run.k, "tx_kafka")
		return applied == uint64(good) && rejected == uint64(len(bad)) && historyOf(run.k, "tx_kafka") == 1
	})
	var dead []*kgo.Record
	waitFor(t, "dead letters", 30*time.Second, func() bool {
		dead = kafkatest.ReadAll(t, brokers, topic+".dlq", 0)
		return len(dead) >= len(bad)
	})
	if len(dead) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(dead), len(bad))
	}
	for _, m := range dead {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		want, ok := bad[string(m.Value)]
		if !ok || h[HeaderReason] != want || h[HeaderError] == "" || h[HeaderSource] != "tx_kafka" || h[HeaderTopic] != topic {
			t.Errorf("dead letter %q headers %v: want reason %q", m.Value, h, want)
		}
	}
	_, rejected := counted(run.k, "tx_kafka")
	if rejected != uint64(len(bad)) {
		t.Fatalf("rejected %d, want %d", rejected, len(bad))
	}
}

// TestKafkaMissingTopic: a source whose topic does not exist is reported
// not ready, with the reason, and starts consuming once the topic exists.
func TestKafkaMissingTopic(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := "missing-" + strings.ReplaceAll(t.Name(), "/", "-") + fmt.Sprint(time.Now().UnixNano())
	e := newEnv(t, defsFor("tx_kafka", "v", topic))
	e.now = time.Now()
	run := e.runKafka(t, brokers)
	waitFor(t, "a readiness error naming the topic", 30*time.Second, func() bool {
		err := run.k.Ready()
		return err != nil && strings.Contains(err.Error(), "does not exist") && strings.Contains(err.Error(), topic)
	})
	kafkatest.CreateNamedTopic(t, brokers, topic, 2)
	t.Cleanup(func() { kafkatest.DeleteTopic(t, brokers, topic+".dlq") })
	waitFor(t, "ready once the topic exists", 30*time.Second, func() bool { return run.k.Ready() == nil })
	kafkatest.Produce(t, brokers, topic, []*kgo.Record{{Key: []byte("u"), Value: []byte(fmt.Sprintf(`{"user_id":"u","ts":%d}`, e.now.UnixMilli()))}})
	waitFor(t, "the event applied", 30*time.Second, func() bool {
		applied, _ := counted(run.k, "tx_kafka")
		return applied == 1
	})
}

// TestKafkaConsumersFollowRegistry: a Kafka source applied while featured
// runs starts consuming without a restart, and deleting it stops its
// consumer.
func TestKafkaConsumersFollowRegistry(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	topic := kafkatest.CreateTopic(t, brokers, "tx", 2)
	t.Cleanup(func() { kafkatest.DeleteTopic(t, brokers, topic+".dlq") })
	e := newEnv(t, `entities: [{name: user, join_key: user_id, type: string}]`)
	e.now = time.Now()
	run := e.runKafka(t, brokers)
	if st := run.k.Status(); len(st) != 0 {
		t.Fatalf("consumers before any Kafka source: %+v", st)
	}
	d, err := registry.ParseYAML([]byte(defsFor("tx_kafka", "v", topic)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.reg.Apply(d); err != nil {
		t.Fatal(err)
	}
	kafkatest.Produce(t, brokers, topic, []*kgo.Record{{Key: []byte("u"), Value: []byte(fmt.Sprintf(`{"user_id":"u","ts":%d}`, e.now.UnixMilli()))}})
	waitFor(t, "the new source's event applied", 30*time.Second, func() bool {
		applied, _ := counted(run.k, "tx_kafka")
		return applied == 1
	})
	for _, del := range [][2]string{{"view", "v"}, {"source", "tx_kafka"}} {
		if _, err := e.reg.Delete(del[0], del[1], 0); err != nil {
			t.Fatalf("delete %s %s: %v", del[0], del[1], err)
		}
	}
	waitFor(t, "the consumer to stop", 30*time.Second, func() bool {
		for _, c := range run.k.Status() {
			if c.Source == "tx_kafka" {
				return false
			}
		}
		return true
	})
}
