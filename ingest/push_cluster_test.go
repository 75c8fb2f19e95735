package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/aggregate"
	"github.com/featured-dev/featured/aggregate/aggregatetest"
	"github.com/featured-dev/featured/internal/kafkatest"
	"github.com/featured-dev/featured/internal/partition"
	"github.com/featured-dev/featured/internal/testdefs"
)

// pushOnlyDefs is the view v over the push source tx alone, so that the
// replicas' Kafka ingesters read nothing but push topics.
var pushOnlyDefs = testdefs.Doc([]string{testdefs.Source("tx", "push", "")}, []string{testdefs.View("v", "tx", "2d")})

// clusterFixture is one cluster group on the test broker: its options, and
// the push topic's offsets name in a replica's store.
type clusterFixture struct {
	opts    ClusterOptions
	topic   string
	offsets string
}

func newClusterFixture(t *testing.T, partitions int) *clusterFixture {
	t.Helper()
	brokers := kafkatest.Brokers(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	group := "featured-test-" + hex.EncodeToString(b[:])
	f := &clusterFixture{
		opts:  ClusterOptions{Brokers: brokers, Group: group, Partitions: partitions, TransactionalID: group + "-node-0"},
		topic: PushTopic(group, "tx"),
	}
	f.offsets = "tx/" + f.topic
	t.Cleanup(func() {
		kafkatest.DeleteTopic(t, brokers, f.topic)
		kafkatest.DeleteTopic(t, brokers, f.topic+".dlq")
	})
	return f
}

// pusher is a cluster-mode Pusher of e's registry, with e's clock.
func (f *clusterFixture) pusher(t *testing.T, e *env) *Pusher {
	t.Helper()
	c := f.opts
	p, err := NewPusher(e.reg, e.store, Options{Now: func() time.Time { return e.now }, Cluster: &c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// replica runs Kafka ingest into e in cluster mode, restricted to set when
// it is not nil.
func (f *clusterFixture) replica(t *testing.T, e *env, set *PartitionSet) *kafkaRun {
	t.Helper()
	return e.runKafkaWith(t, f.opts.Brokers, func(o *KafkaOptions) {
		c := f.opts
		o.Cluster = &c
		o.Partitions = set
	})
}

// caughtUp says whether e's store has applied every partition in set (all
// when nil) past the highest offset in positions.
func (f *clusterFixture) caughtUp(e *env, set []int32, positions map[int32]int64) func() bool {
	return func() bool {
		stored := e.store.Offsets(f.offsets)
		for p, o := range positions {
			if set != nil && !containsPartition(set, p) {
				continue
			}
			if stored[p] <= o {
				return false
			}
		}
		return true
	}
}

func containsPartition(set []int32, p int32) bool {
	for _, q := range set {
		if q == p {
			return true
		}
	}
	return false
}

// note records a push's positions in seen, keeping the highest per
// partition.
func note(seen map[int32]int64, res PushResult) {
	for _, p := range res.Positions {
		seen[p.Partition] = max(seen[p.Partition], p.Offset)
	}
}

// onPartitions keeps the streams of the entities whose records go to a
// partition in set.
func onPartitions(streams map[string][]aggregatetest.Event, n int, set ...int32) map[string][]aggregatetest.Event {
	out := map[string][]aggregatetest.Event{}
	for user, events := range streams {
		_, p := EventKey(nil, aggregate.Value{Kind: aggregate.KindString, S: user}, partition.UTF8, n)
		if containsPartition(set, p) {
			out[user] = events
		}
	}
	return out
}

// TestClusterPushReplicas: pushes through one cluster-mode Pusher (plain,
// with batch IDs, atomic, and a retried batch ID) reach, in two replicas
// consuming the push topic (one all partitions, one a subset), the state a
// single-node push of the same events gives; a replica stopped and started
// again in the middle applies every event exactly once.
func TestClusterPushReplicas(t *testing.T) {
	const partitions = 3
	f := newClusterFixture(t, partitions)
	now := time.Now()
	ref := newEnvP(t, pushOnlyDefs, f.opts.Partitions)
	ref.now = now
	streams := ref.entityStreams(6, 41)
	subset := []int32{0, 2}
	if len(onPartitions(streams, partitions, subset...)) == 0 || len(onPartitions(streams, partitions, 1)) == 0 {
		t.Fatal("the test needs entities on partition 1 and on the subset")
	}
	front := newEnvP(t, pushOnlyDefs, f.opts.Partitions)
	front.now = now
	all := newEnvP(t, pushOnlyDefs, f.opts.Partitions)
	all.now = now
	part := newEnvP(t, pushOnlyDefs, f.opts.Partitions)
	part.now = now

	single := ref.pusher(t)
	cluster := f.pusher(t, front)
	runAll := f.replica(t, all, nil)
	f.replica(t, part, NewPartitionSet(subset...))

	seen := map[int32]int64{}
	ctx := context.Background()
	push := func(batch []json.RawMessage, k int) {
		t.Helper()
		po := PushOptions{}
		switch k % 4 {
		case 1:
			po.BatchID = fmt.Sprintf("batch-%d", k)
		case 2:
			po.Atomic = true
		case 3:
			po.Atomic, po.BatchID = true, fmt.Sprintf("batch-%d", k)
		}
		want, err := single.PushJSON(ctx, "tx", batch, po)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cluster.PushJSON(ctx, "tx", batch, po)
		if err != nil {
			t.Fatal(err)
		}
		if got.Accepted != want.Accepted || len(got.Rejected) != 0 || len(got.Positions) == 0 {
			t.Fatalf("push %d: cluster %+v, single node %+v", k, got, want)
		}
		if po.Atomic && got.BatchID == "" {
			t.Fatalf("push %d: atomic push answered no batch ID", k)
		}
		note(seen, got)
		if po.BatchID != "" {
			// The client's retry of a push whose answer was lost: produced
			// again, applied once.
			again, err := cluster.PushJSON(ctx, "tx", batch, po)
			if err != nil {
				t.Fatal(err)
			}
			note(seen, again)
		}
	}
	var batch []json.RawMessage
	k := 0
	for i := 0; i < 150; i++ {
		if i == 75 {
			// Half-way, the all-partitions replica stops; it resumes after
			// the next pushes from the offsets its store holds.
			waitFor(t, "the replica at the first half", 60*time.Second, f.caughtUp(all, nil, seen))
			runAll.stop()
		}
		if i == 100 {
			runAll = f.replica(t, all, nil)
		}
		for user, events := range streams {
			batch = append(batch, eventJSON(user, events[i], i))
			if len(batch) == 53 {
				push(batch, k)
				batch, k = nil, k+1
			}
		}
	}
	push(batch, k)

	waitFor(t, "the all-partitions replica", 60*time.Second, f.caughtUp(all, nil, seen))
	waitFor(t, "the subset replica", 60*time.Second, f.caughtUp(part, subset, seen))
	ref.checkView(t, "v", streams)
	all.checkView(t, "v", streams)
	part.checkView(t, "v", onPartitions(streams, partitions, subset...))
	for p := range part.store.Offsets(f.offsets) {
		if !containsPartition(subset, p) {
			t.Errorf("subset replica holds offsets of partition %d, want partitions %v only", p, subset)
		}
	}
	st := runAll.k.Stats()
	if len(st) != 1 || len(st[0].Rejected) != 0 {
		t.Errorf("replica stats %+v: want no rejection", st)
	}
}

// TestClusterPushAtomic: an atomic push with one bad event produces
// nothing; one whose node dies before the commit (its client closed with
// the transaction open) is never applied, and the next node with the same
// transactional ID fences it and pushes on.
func TestClusterPushAtomic(t *testing.T) {
	const partitions = 2
	f := newClusterFixture(t, partitions)
	now := time.Now()
	front := newEnvP(t, pushOnlyDefs, f.opts.Partitions)
	front.now = now
	rep := newEnvP(t, pushOnlyDefs, f.opts.Partitions)
	rep.now = now
	streams := front.entityStreams(4, 77)
	batch := func(from, to int) []json.RawMessage {
		var b []json.RawMessage
		for i := from; i < to; i++ {
			for user, events := range streams {
				b = append(b, eventJSON(user, events[i], i))
			}
		}
		return b
	}
	ctx := context.Background()
	p := f.pusher(t, front)

	bad := append(batch(0, 10), json.RawMessage(`{"user_id":"u","ts":"yesterday"}`))
	res, err := p.PushJSON(ctx, "tx", bad, PushOptions{Atomic: true})
	if !errors.Is(err, ErrAtomicRejected) || len(res.Rejected) != 1 || res.Rejected[0].Index != len(bad)-1 || res.Positions != nil {
		t.Fatalf("atomic push with a bad event: %+v, %v", res, err)
	}
	if kafkatest.TopicExists(t, f.opts.Brokers, f.topic) {
		t.Fatalf("the refused push created %s", f.topic)
	}

	first, err := p.PushJSON(ctx, "tx", batch(0, 50), PushOptions{Atomic: true})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int32]int64{}
	note(seen, first)

	crash := errors.New("test: node died before the commit")
	p.cluster.testBeforeCommit = func(*kgo.Client) error { return crash }
	if _, err := p.PushJSON(ctx, "tx", batch(50, 100), PushOptions{Atomic: true}); !errors.Is(err, crash) {
		t.Fatalf("crashing push: %v", err)
	}
	p.Close()

	// The node comes back with its transactional ID: its first
	// transaction fences the one left open.
	p2 := f.pusher(t, front)
	second, err := p2.PushJSON(ctx, "tx", batch(100, 150), PushOptions{Atomic: true})
	if err != nil {
		t.Fatal(err)
	}
	note(seen, second)

	run := f.replica(t, rep, nil)
	waitFor(t, "the replica", 60*time.Second, f.caughtUp(rep, nil, seen))
	for _, cs := range run.k.Status() {
		for _, ps := range cs.Partitions {
			if ps.Skipped != 0 || ps.Rejected != 0 {
				t.Errorf("partition %d: %d offsets counted skipped, %d events rejected; want none (transaction markers are no loss)", ps.Partition, ps.Skipped, ps.Rejected)
			}
		}
	}
	// A partition whose last record is a commit marker is caught up: its
	// next offset reaches the end, past the marker.
	waitFor(t, "next offsets past the last commit markers", 30*time.Second, func() bool {
		for _, cs := range run.k.Status() {
			for _, ps := range cs.Partitions {
				if !ps.Reading || ps.NextOffset != ps.HighWatermark || ps.Lag != 0 {
					return false
				}
			}
		}
		return true
	})
	for _, cs := range run.k.Status() {
		for _, ps := range cs.Partitions {
			if ps.Rejected != 0 {
				t.Errorf("partition %d: %d events rejected: a marker was taken for an event", ps.Partition, ps.Rejected)
			}
		}
	}
	want := map[string][]aggregatetest.Event{}
	for user, events := range streams {
		want[user] = append(append([]aggregatetest.Event(nil), events[:50]...), events[100:150]...)
	}
	rep.checkView(t, "v", want)
}

// TestClusterPushValidation: a cluster-mode push refuses and rejects
// exactly as a single-node push does, and produces nothing for a push with
// no good event.
func TestClusterPushValidation(t *testing.T) {
	f := newClusterFixture(t, 2)
	ref := newEnvP(t, pushOnlyDefs, f.opts.Partitions)
	front := newEnvP(t, pushOnlyDefs, f.opts.Partitions)
	front.now = ref.now
	single := ref.pusher(t)
	c := f.opts
	c.TransactionalID = ""
	cluster, err := NewPusher(front.reg, front.store, Options{Now: func() time.Time { return front.now }, Cluster: &c, MaxBatch: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	singleSmall, err := NewPusher(ref.reg, ref.store, Options{Now: func() time.Time { return ref.now }, MaxBatch: 3})
	if err != nil {
		t.Fatal(err)
	}
	ms := ref.now.UnixMilli()
	bad := []json.RawMessage{
		json.RawMessage(`{"ts":1}`),
		json.RawMessage(fmt.Sprintf(`{"user_id":"a","ts":%d}`, ms+3600_000)),
		json.RawMessage(`[1]`),
	}
	ctx := context.Background()
	want, werr := single.PushJSON(ctx, "tx", bad, PushOptions{})
	got, gerr := cluster.PushJSON(ctx, "tx", bad, PushOptions{})
	if werr != nil || gerr != nil || !reflect.DeepEqual(got.Rejected, want.Rejected) || got.Accepted != 0 || len(want.Rejected) != 3 {
		t.Fatalf("bad events: cluster %+v, %v; single node %+v, %v", got, gerr, want, werr)
	}
	for _, tc := range []struct {
		name   string
		source string
		events []json.RawMessage
		po     PushOptions
		want   error
	}{
		{"empty", "tx", nil, PushOptions{}, ErrEmptyBatch},
		{"too large", "tx", append(bad, bad...), PushOptions{}, ErrBatchTooLarge},
		{"unknown source", "nope", bad, PushOptions{}, ErrUnknownSource},
		{"bad batch id", "tx", bad, PushOptions{BatchID: "a\x00b"}, ErrBadBatchID},
	} {
		_, werr := singleSmall.PushJSON(ctx, tc.source, tc.events, tc.po)
		_, gerr := cluster.PushJSON(ctx, tc.source, tc.events, tc.po)
		if !errors.Is(werr, tc.want) || !errors.Is(gerr, tc.want) || werr.Error() != gerr.Error() {
			t.Errorf("%s: cluster %v, single node %v, want %v", tc.name, gerr, werr, tc.want)
		}
	}
	if _, err := cluster.PushJSON(ctx, "tx", bad[:1], PushOptions{Atomic: true}); !errors.Is(err, ErrAtomicUnsupported) {
		t.Errorf("atomic push without a transactional ID: %v, want ErrAtomicUnsupported", err)
	}
	if kafkatest.TopicExists(t, f.opts.Brokers, f.topic) {
		t.Errorf("pushes with no good event created %s", f.topic)
	}
}

// BenchmarkClusterPush: one push of 100 events, applied on a single node
// (validated, written and synced to the store) against produced in cluster
// mode (validated, produced with acks=all and acknowledged), plain and
// atomic. Run with FEATURED_KAFKA_BROKERS set; the ratios are what holds on
// a shared machine.
func BenchmarkClusterPush(b *testing.B) {
	const perPush = 100
	brokers := kafkatest.Brokers(b)
	now := time.Now()
	var events []json.RawMessage
	for i := range perPush {
		ms := now.UnixMilli() - int64(i)*1000
		events = append(events, json.RawMessage(fmt.Sprintf(`{"user_id":"user-%d","ts":%d,"amount":%d.5,"items":%d,"flag":true,"merchant":"m%d"}`, i%17, ms, i, i%5, i%3)))
	}
	run := func(b *testing.B, p *Pusher, po PushOptions) {
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			res, err := p.PushJSON(ctx, "tx", events, po)
			if err != nil || res.Accepted != perPush {
				b.Fatalf("push: %+v, %v", res, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perPush), "ns/event")
	}
	for _, atomic := range []bool{false, true} {
		po := PushOptions{Atomic: atomic}
		b.Run(fmt.Sprintf("single/atomic=%v", atomic), func(b *testing.B) {
			e := newEnv(b, pushOnlyDefs)
			p, err := NewPusher(e.reg, e.store, Options{Now: func() time.Time { return now }})
			if err != nil {
				b.Fatal(err)
			}
			run(b, p, po)
		})
		b.Run(fmt.Sprintf("cluster/atomic=%v", atomic), func(b *testing.B) {
			e := newEnvP(b, pushOnlyDefs, 4)
			var s [4]byte
			_, _ = rand.Read(s[:])
			group := "featured-bench-" + hex.EncodeToString(s[:])
			b.Cleanup(func() { kafkatest.DeleteTopic(b, brokers, PushTopic(group, "tx")) })
			c := &ClusterOptions{Brokers: brokers, Group: group, Partitions: 4, TransactionalID: group + "-0"}
			p, err := NewPusher(e.reg, e.store, Options{Now: func() time.Time { return now }, Cluster: c})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			// The topic's creation is not a push's cost.
			if _, err := p.PushJSON(context.Background(), "tx", events, po); err != nil {
				b.Fatal(err)
			}
			run(b, p, po)
		})
	}
}

// TestClusterPushTopicPartitions: a push topic that exists with another
// partition count than the cluster's is refused by the pusher and by the
// replicas' consumer, each naming both counts.
func TestClusterPushTopicPartitions(t *testing.T) {
	f := newClusterFixture(t, 3)
	kafkatest.CreateNamedTopic(t, f.opts.Brokers, f.topic, 2)
	front := newEnvP(t, pushOnlyDefs, f.opts.Partitions)
	p := f.pusher(t, front)
	ev := []json.RawMessage{json.RawMessage(fmt.Sprintf(`{"user_id":"a","ts":%d}`, front.now.UnixMilli()))}
	_, err := p.PushJSON(context.Background(), "tx", ev, PushOptions{})
	if !errors.Is(err, ErrPushTopic) || !strings.Contains(err.Error(), "has 2 partitions, the cluster 3") {
		t.Fatalf("push to a 2-partition topic in a 3-partition cluster: %v", err)
	}
	run := f.replica(t, newEnvP(t, pushOnlyDefs, f.opts.Partitions), nil)
	waitFor(t, "the replica to refuse the topic", 30*time.Second, func() bool {
		err := run.k.Ready()
		return err != nil && strings.Contains(err.Error(), "has 2 partitions, the cluster 3")
	})
}

// TestClusterPushValues: typed events (the gRPC path) produced in cluster
// mode are applied by a replica as the JSON path's would be.
func TestClusterPushValues(t *testing.T) {
	f := newClusterFixture(t, 2)
	now := time.Now()
	front := newEnvP(t, pushOnlyDefs, f.opts.Partitions)
	front.now = now
	rep := newEnvP(t, pushOnlyDefs, f.opts.Partitions)
	rep.now = now
	p := f.pusher(t, front)
	run := f.replica(t, rep, nil)
	streams := front.entityStreams(3, 19)
	seen := map[int32]int64{}
	for user, events := range streams {
		var batch []map[string]aggregate.Value
		for i, ev := range events {
			m := map[string]aggregate.Value{"user_id": {Kind: aggregate.KindString, S: user}}
			if i%2 == 0 {
				m["ts"] = aggregate.Value{Kind: aggregate.KindInt64, I: ev.Millis}
			} else {
				m["ts"] = aggregate.Value{Kind: aggregate.KindString, S: time.UnixMilli(ev.Millis).UTC().Format(time.RFC3339Nano)}
			}
			for f, v := range ev.Fields {
				m[fieldNames[f]] = v
			}
			batch = append(batch, m)
		}
		res, err := p.PushValues(context.Background(), "tx", batch, PushOptions{})
		if err != nil || res.Accepted != len(events) {
			t.Fatalf("push values: %+v, %v", res, err)
		}
		note(seen, res)
	}
	waitFor(t, "the replica", 60*time.Second, f.caughtUp(rep, nil, seen))
	rep.checkView(t, "v", streams)
	if st := run.k.Stats(); len(st) != 1 || len(st[0].Rejected) != 0 {
		t.Errorf("replica stats %+v: want no rejection", st)
	}
}

// TestClusterPushRetryAfterPartialProduce: a push with a batch ID whose
// first produce delivered only a prefix of its events (the same push's
// first k events, which carry the same indexes), then retried in full, is
// applied exactly once per event: the retry adds only what was missing.
func TestClusterPushRetryAfterPartialProduce(t *testing.T) {
	f := newClusterFixture(t, 2)
	now := time.Now()
	front := newEnvP(t, pushOnlyDefs, f.opts.Partitions)
	front.now = now
	rep := newEnvP(t, pushOnlyDefs, f.opts.Partitions)
	rep.now = now
	p := f.pusher(t, front)
	f.replica(t, rep, nil)
	streams := front.entityStreams(4, 23)
	var events []json.RawMessage
	for i := 0; i < 150; i++ {
		for user, evs := range streams {
			events = append(events, eventJSON(user, evs[i], i))
		}
	}
	seen := map[int32]int64{}
	ctx := context.Background()
	for _, part := range [][]json.RawMessage{events[:250], events, events} {
		res, err := p.PushJSON(ctx, "tx", part, PushOptions{BatchID: "partial-1"})
		if err != nil || res.Accepted != len(part) {
			t.Fatalf("push of %d events: %+v, %v", len(part), res, err)
		}
		note(seen, res)
	}
	waitFor(t, "the replica", 60*time.Second, f.caughtUp(rep, nil, seen))
	rep.checkView(t, "v", streams)
}
