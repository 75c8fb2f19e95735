package kafkatest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// produceTimeout caps one Produce call; a million 200-byte messages take a few
// seconds on a 2-core machine.
const produceTimeout = 5 * time.Minute

// readTimeout caps one ReadAll call.
const readTimeout = time.Minute

// produceChunk is how many messages Produce hands to the writer per call, which
// bounds the writer's buffered batches for very large inputs.
const produceChunk = 50_000

// NewWriter returns a franz-go producer client configured the way featured's
// tests and tools must write keyed data, producing to topic unless a record
// names its own, closed in t.Cleanup:
//   - the sticky key partitioner with murmur2, the Java client's default, so a
//     key lands on the same partition whichever client wrote it;
//   - acks from all in-sync replicas, idempotent (kgo's defaults);
//   - batches flushed after at most 5 ms;
//   - no implicit topic creation (kgo's default).
func NewWriter(t testing.TB, brokers []string, topic string, opts ...kgo.Opt) *kgo.Client {
	w, err := newWriter(brokers, topic, opts...)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(w.Close)
	return w
}

func newWriter(brokers []string, topic string, opts ...kgo.Opt) (*kgo.Client, error) {
	w, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.MaxBufferedRecords(2 * produceChunk),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("producer client: %w", err)
	}
	return w, nil
}

// Produce writes msgs to topic with [NewWriter]'s settings and returns once the
// broker has acknowledged all of them. Each message's Topic must be empty and
// its Partition is ignored: the key decides the partition (a nil key gets a
// sticky one). It fails the test on any error.
func Produce(t testing.TB, brokers []string, topic string, msgs []*kgo.Record) {
	t.Helper()
	if err := produce(brokers, topic, msgs, nil); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
}

// produce writes msgs to topic, placed by partitioner (nil: NewWriter's).
func produce(brokers []string, topic string, msgs []*kgo.Record, partitioner kgo.Partitioner) error {
	ctx, cancel := context.WithTimeout(context.Background(), produceTimeout)
	defer cancel()
	var opts []kgo.Opt
	if partitioner != nil {
		opts = append(opts, kgo.RecordPartitioner(partitioner))
	}
	w, err := newWriter(brokers, topic, opts...)
	if err != nil {
		return err
	}
	defer w.Close()
	// The client fills in a record's topic, partition and offset: produce
	// copies, so that the caller's messages can be produced again.
	chunk := make([]*kgo.Record, 0, min(produceChunk, len(msgs)))
	for start := 0; start < len(msgs); start += produceChunk {
		end := min(start+produceChunk, len(msgs))
		chunk = chunk[:0]
		for _, m := range msgs[start:end] {
			chunk = append(chunk, &kgo.Record{Key: m.Key, Value: m.Value, Headers: m.Headers, Timestamp: m.Timestamp})
		}
		if err := w.ProduceSync(ctx, chunk...).FirstErr(); err != nil {
			return fmt.Errorf("produce messages %d..%d of %d to %s: %w", start, end-1, len(msgs), topic, err)
		}
	}
	return nil
}

// ReadAll returns every message of one partition of topic, from its first
// retained offset up to its end offset at the time of the call, in offset order.
// It reads with a client consuming the partition directly, without a consumer
// group, from an exact offset: the way featured consumes. Use it to check what a
// component wrote, e.g. a dead-letter topic.
func ReadAll(t testing.TB, brokers []string, topic string, partition int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	msgs, err := readAll(ctx, brokers, topic, partition)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return msgs
}

func readAll(ctx context.Context, brokers []string, topic string, partition int) ([]*kgo.Record, error) {
	first, end, err := partitionOffsets(ctx, brokers, topic, partition)
	if err != nil {
		return nil, err
	}
	if first >= end {
		return nil, nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {int32(partition): kgo.NewOffset().At(first)}}),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.FetchMaxBytes(10<<20),
		kgo.FetchMaxPartitionBytes(10<<20),
		kgo.FetchMaxWait(100*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("read %s/%d: %w", topic, partition, err)
	}
	defer cl.Close()
	msgs := make([]*kgo.Record, 0, end-first)
	next := first
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s/%d at offset %d (want up to %d): %w", topic, partition, next, end, err)
		}
		if err := fs.Err0(); err != nil {
			return nil, fmt.Errorf("read %s/%d at offset %d (want up to %d): %w", topic, partition, next, end, err)
		}
		for _, m := range fs.Records() {
			msgs = append(msgs, m)
			next = m.Offset + 1
			if next >= end {
				return msgs, nil
			}
		}
	}
}

// partitionOffsets returns the first retained offset and the end offset (the
// offset the next message will get) of one partition.
func partitionOffsets(ctx context.Context, brokers []string, topic string, partition int) (first, end int64, err error) {
	a, err := newAdmin(brokers)
	if err != nil {
		return 0, 0, err
	}
	defer a.close()
	starts, err := a.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, 0, fmt.Errorf("list offsets of %s/%d: %w", topic, partition, err)
	}
	ends, err := a.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, 0, fmt.Errorf("list offsets of %s/%d: %w", topic, partition, err)
	}
	s, ok1 := starts.Lookup(topic, int32(partition))
	e, ok2 := ends.Lookup(topic, int32(partition))
	switch {
	case !ok1 || !ok2:
		return 0, 0, fmt.Errorf("list offsets of %s/%d: partition missing from the response", topic, partition)
	case s.Err != nil:
		return 0, 0, fmt.Errorf("list offsets of %s/%d: %w", topic, partition, s.Err)
	case e.Err != nil:
		return 0, 0, fmt.Errorf("list offsets of %s/%d: %w", topic, partition, e.Err)
	}
	return s.Offset, e.Offset, nil
}
