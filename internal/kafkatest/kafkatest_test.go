package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/internal/partition"
)

func TestMain(m *testing.M) {
	code := m.Run()
	// BenchmarkConsume's topic outlives each benchmark run (b.N changes), so it
	// is deleted here, once.
	if err := deleteBenchTopic(); err != nil {
		fmt.Fprintln(os.Stderr, "kafkatest:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func TestParseBrokers(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "127.0.0.1:19092", want: []string{"127.0.0.1:19092"}},
		{in: " a:1, b:2 ", want: []string{"a:1", "b:2"}},
		{in: "a:1,,b:2", wantErr: "entry 1 is empty"},
		{in: "localhost", wantErr: `entry 0 ("localhost") is not host:port`},
		{in: "a:1,b:", wantErr: `entry 1 ("b:") is not host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBrokers(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseBrokers(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseBrokers(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(mod), "module github.com/featured-dev/featured\n") {
		t.Fatalf("RepoRoot() = %s, whose go.mod starts %q", root, strings.SplitN(string(mod), "\n", 2)[0])
	}
}

func TestBrokersStable(t *testing.T) {
	first := Brokers(t)
	if len(first) == 0 {
		t.Fatal("Brokers returned no address")
	}
	first[0] = "mutated:1"
	if second := Brokers(t); second[0] == "mutated:1" {
		t.Fatal("Brokers returned a shared slice: a caller's change leaked into the next call")
	}
}

func TestCreateTopic(t *testing.T) {
	t.Parallel()
	brokers := Brokers(t)

	t.Run("unique names with the asked partitions", func(t *testing.T) {
		a := CreateTopic(t, brokers, "create", 3)
		b := CreateTopic(t, brokers, "create", 1)
		if a == b || !strings.HasPrefix(a, "create-") || !strings.HasPrefix(b, "create-") {
			t.Fatalf("CreateTopic names %q and %q: want distinct names prefixed create-", a, b)
		}
		for topic, want := range map[string]int{a: 3, b: 1} {
			if got := partitionCount(t, brokers, topic); got != want {
				t.Errorf("topic %s has %d partitions, want %d", topic, got, want)
			}
		}
	})

	t.Run("deleted by cleanup", func(t *testing.T) {
		var topic string
		t.Run("owner", func(t *testing.T) {
			topic = CreateTopic(t, brokers, "cleanup", 1)
			if !TopicExists(t, brokers, topic) {
				t.Fatalf("topic %s not listed right after CreateTopic", topic)
			}
		})
		waitFor(t, 30*time.Second, fmt.Sprintf("topic %s to be deleted", topic), func() bool {
			return !TopicExists(t, brokers, topic)
		})
	})

	t.Run("named topic and DeleteTopic", func(t *testing.T) {
		topic := uniqueName("named")
		if TopicExists(t, brokers, topic) {
			t.Fatalf("topic %s exists before CreateNamedTopic", topic)
		}
		CreateNamedTopic(t, brokers, topic, 2)
		if got := partitionCount(t, brokers, topic); got != 2 {
			t.Fatalf("named topic %s has %d partitions, want 2", topic, got)
		}
		DeleteTopic(t, brokers, topic)
		waitFor(t, 30*time.Second, fmt.Sprintf("topic %s to be deleted", topic), func() bool {
			return !TopicExists(t, brokers, topic)
		})
		// Deleting a missing topic (again here, and by the cleanup) is no error.
		DeleteTopic(t, brokers, topic)
	})

	t.Run("no implicit creation", func(t *testing.T) {
		// featured must treat a missing topic as an error; the broker runs with
		// auto.create.topics.enable=false so that tests see what production sees.
		topic := uniqueName("missing")
		w := NewWriter(t, brokers, topic, kgo.UnknownTopicRetries(1))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := w.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte("v")}).FirstErr()
		if !errors.Is(err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("writing to missing topic %s: error = %v, want %v", topic, err, kerr.UnknownTopicOrPartition)
		}
		if TopicExists(t, brokers, topic) {
			t.Fatalf("writing to missing topic %s created it", topic)
		}
	})
}

func TestReadAll(t *testing.T) {
	t.Parallel()
	brokers := Brokers(t)
	topic := CreateTopic(t, brokers, "readall", 1)

	if got := ReadAll(t, brokers, topic, 0); len(got) != 0 {
		t.Fatalf("ReadAll of an empty partition returned %d messages", len(got))
	}
	var want []string
	for round, n := range []int{3, 2} {
		msgs := make([]*kgo.Record, n)
		for i := range msgs {
			v := fmt.Sprintf("round%d-msg%d", round, i)
			msgs[i] = &kgo.Record{Key: []byte("k"), Value: []byte(v)}
			want = append(want, v)
		}
		Produce(t, brokers, topic, msgs)
		got := ReadAll(t, brokers, topic, 0)
		var values []string
		for i, m := range got {
			if m.Offset != int64(i) || m.Partition != 0 || m.Topic != topic {
				t.Errorf("message %d is %s/%d@%d, want %s/0@%d", i, m.Topic, m.Partition, m.Offset, topic, i)
			}
			values = append(values, string(m.Value))
		}
		if !slices.Equal(values, want) {
			t.Fatalf("after round %d ReadAll = %q, want %q", round, values, want)
		}
	}
}

// TestProduceReadBack is the helper's end-to-end check against the real broker:
// 10,000 keyed messages over 4 partitions, read back with one partition-bound
// client per partition (no group, an exact start offset), as featured's ingest
// reads.
func TestProduceReadBack(t *testing.T) {
	t.Parallel()
	const (
		partitions = 4
		keys       = 1000
		perKey     = 10
	)
	brokers := Brokers(t)
	topic := CreateTopic(t, brokers, "readback", partitions)

	msgs := make([]*kgo.Record, 0, keys*perKey)
	for seq := range perKey {
		for k := range keys {
			msgs = append(msgs, &kgo.Record{
				Key:   fmt.Appendf(nil, "user-%04d", k),
				Value: fmt.Appendf(nil, "user-%04d/%d", k, seq),
			})
		}
	}
	Produce(t, brokers, topic, msgs)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got := make([][]*kgo.Record, partitions)
	errs := make([]error, partitions)
	var wg sync.WaitGroup
	for p := range partitions {
		wg.Go(func() { got[p], errs[p] = readAll(ctx, brokers, topic, p) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	partitionOf := map[string]int{}
	nextSeq := map[string]int{}
	total := 0
	for p, pm := range got {
		total += len(pm)
		// 1000 keys hash to each of 4 partitions about 250 times; far less
		// means the keys were not spread by hash.
		if len(pm) < keys*perKey/partitions/2 {
			t.Errorf("partition %d holds %d messages, want about %d", p, len(pm), keys*perKey/partitions)
		}
		for i, m := range pm {
			key := string(m.Key)
			if int(m.Partition) != p || m.Offset != int64(i) {
				t.Fatalf("partition %d message %d is %d@%d", p, i, m.Partition, m.Offset)
			}
			if prev, seen := partitionOf[key]; seen && prev != p {
				t.Fatalf("key %s in partitions %d and %d", key, prev, p)
			}
			partitionOf[key] = p
			if want := partition.Of(m.Key, partitions); want != p {
				t.Fatalf("key %s in partition %d, Murmur2 says %d", key, p, want)
			}
			if want := fmt.Sprintf("%s/%d", key, nextSeq[key]); string(m.Value) != want {
				t.Fatalf("partition %d offset %d value %q, want %q (per-key order)", p, m.Offset, m.Value, want)
			}
			nextSeq[key]++
		}
	}
	if total != keys*perKey || len(partitionOf) != keys {
		t.Fatalf("read %d messages of %d keys, want %d of %d", total, len(partitionOf), keys*perKey, keys)
	}
	for key, n := range nextSeq {
		if n != perKey {
			t.Fatalf("key %s has %d messages, want %d", key, n, perKey)
		}
	}
}

// TestConsumerGroup proves that franz-go's consumer groups work against the
// pinned broker version: partitions split between members by the group's
// balancer, and committed offsets resumed from by a new member.
func TestConsumerGroup(t *testing.T) {
	t.Parallel()
	brokers := Brokers(t)

	t.Run("members split partitions", func(t *testing.T) {
		topic := CreateTopic(t, brokers, "group-gen", 4)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		group := topic + "-group"
		m1 := newMember(t, brokers, group, topic)
		m1.poll(ctx)
		waitFor(t, time.Minute, "a lone member to own all 4 partitions", func() bool {
			return slices.Equal(m1.owned(), []int32{0, 1, 2, 3})
		})
		m2 := newMember(t, brokers, group, topic)
		m2.poll(ctx)
		waitFor(t, time.Minute, "two members to own two partitions each", func() bool {
			p1, p2 := m1.owned(), m2.owned()
			return len(p1) == 2 && len(p2) == 2 && slices.Equal(slices.Sorted(slices.Values(append(p1, p2...))), []int32{0, 1, 2, 3})
		})
	})

	t.Run("member resumes from committed offsets", func(t *testing.T) {
		topic := CreateTopic(t, brokers, "group-commit", 4)
		group := topic + "-group"
		batch := func(round, n int) []*kgo.Record {
			msgs := make([]*kgo.Record, n)
			for i := range msgs {
				msgs[i] = &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "round%d", round)}
			}
			return msgs
		}
		consume := func(n int, wantValue string) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
				kgo.FetchMaxWait(100*time.Millisecond), kgo.DisableAutoCommit(),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			for got := 0; got < n; {
				fs := cl.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					t.Fatalf("fetch after %d of %d: %v", got, n, err)
				}
				for _, m := range fs.Records() {
					if string(m.Value) != wantValue {
						t.Fatalf("fetched %q at %d/%d, want %q: the group did not resume from its commit", m.Value, m.Partition, m.Offset, wantValue)
					}
					got++
				}
				if err := cl.CommitRecords(ctx, fs.Records()...); err != nil {
					t.Fatalf("commit: %v", err)
				}
			}
		}
		Produce(t, brokers, topic, batch(1, 100))
		consume(100, "round1")
		Produce(t, brokers, topic, batch(2, 50))
		consume(50, "round2")

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a, err := newAdmin(brokers)
		if err != nil {
			t.Fatal(err)
		}
		defer a.close()
		committed, err := a.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		for p := range 4 {
			_, end, err := partitionOffsets(ctx, brokers, topic, p)
			if err != nil {
				t.Fatal(err)
			}
			if c, ok := committed.Lookup(topic, int32(p)); !ok || c.Err != nil || c.At != end {
				t.Errorf("partition %d: committed offset %+v, end offset %d", p, c, end)
			}
		}
	})
}

// member is a group member that records the partitions it owns.
type member struct {
	cl *kgo.Client
	mu sync.Mutex
	ps map[int32]bool
}

func newMember(t *testing.T, brokers []string, group, topic string) *member {
	t.Helper()
	m := &member{ps: map[int32]bool{}}
	change := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, tps map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range tps[topic] {
				if add {
					m.ps[p] = true
				} else {
					delete(m.ps, p)
				}
			}
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.OnPartitionsAssigned(change(true)), kgo.OnPartitionsRevoked(change(false)), kgo.OnPartitionsLost(change(false)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	m.cl = cl
	return m
}

// poll keeps the member polling (the group's callbacks run from polls) until
// ctx ends.
func (m *member) poll(ctx context.Context) {
	go func() {
		for ctx.Err() == nil {
			if m.cl.PollFetches(ctx).IsClientClosed() {
				return
			}
		}
	}()
}

func (m *member) owned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.ps))
}

func partitionCount(t *testing.T, brokers []string, topic string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := newAdmin(brokers)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	md, err := a.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	tp, ok := md.Topics[topic]
	if !ok || tp.Err != nil {
		t.Fatalf("topic %s not in metadata (%v)", topic, tp.Err)
	}
	return len(tp.Partitions)
}

// waitFor polls cond every 50 ms until it holds, failing the test after total.
func waitFor(t *testing.T, total time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(total)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", total, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
