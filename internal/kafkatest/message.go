package kafkatest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// produceTimeout caps one Produce call; a million 200-byte messages take a few
// seconds on a 2-core machine.
const produceTimeout = 5 * time.Minute

// readTimeout caps one ReadAll call.
const readTimeout = time.Minute

// produceChunk is how many messages Produce hands to the writer per call, which
// bounds the writer's buffered batches for very large inputs.
const produceChunk = 50_000

// NewWriter returns a kafka.Writer configured the way featured's tests and tools
// must write keyed data, closed in t.Cleanup:
//   - the Murmur2 hash balancer, the Java client's default partitioner, so a key
//     lands on the same partition whichever client wrote it (kafka-go's default
//     is round-robin);
//   - RequiredAcks all in-sync replicas (kafka-go's default waits for none);
//   - batches of up to 5,000 messages flushed after 5 ms (kafka-go's default
//     BatchTimeout of 1 s stalls every synchronous WriteMessages);
//   - no implicit topic creation;
//   - a kafka.Transport of its own. kafka-go's Transport answers metadata from a
//     cache refreshed every 6 s (MetadataTTL), and a writer on a shared transport
//     fails at once with UnknownTopicOrPartition for a topic created since the
//     last refresh, e.g. by CreateTopic.
func NewWriter(t testing.TB, brokers []string, topic string) *kafka.Writer {
	w, closeW := newWriter(brokers, topic)
	t.Cleanup(closeW)
	return w
}

func newWriter(brokers []string, topic string) (w *kafka.Writer, closeW func()) {
	tr := &kafka.Transport{}
	w = &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    5_000,
		// BatchBytes stays at kafka-go's 1 MiB default: the broker rejects
		// batches above message.max.bytes (~1 MiB by default).
		BatchTimeout:           5 * time.Millisecond,
		MaxAttempts:            10,
		AllowAutoTopicCreation: false,
		Transport:              tr,
	}
	return w, func() {
		w.Close()
		tr.CloseIdleConnections()
	}
}

// Produce writes msgs to topic with [NewWriter]'s settings and returns once the
// broker has acknowledged all of them. Each message's Topic must be empty and
// its Partition is ignored: the key decides the partition (a nil key gets a
// random one). It fails the test on any error.
func Produce(t testing.TB, brokers []string, topic string, msgs []kafka.Message) {
	t.Helper()
	if err := produce(brokers, topic, msgs, &kafka.Murmur2Balancer{}); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
}

func produce(brokers []string, topic string, msgs []kafka.Message, balancer kafka.Balancer) error {
	ctx, cancel := context.WithTimeout(context.Background(), produceTimeout)
	defer cancel()
	w, closeW := newWriter(brokers, topic)
	defer closeW()
	w.Balancer = balancer
	for start := 0; start < len(msgs); start += produceChunk {
		end := min(start+produceChunk, len(msgs))
		if err := w.WriteMessages(ctx, msgs[start:end]...); err != nil {
			return fmt.Errorf("produce messages %d..%d of %d to %s: %w", start, end-1, len(msgs), topic, err)
		}
	}
	return nil
}

// ReadAll returns every message of one partition of topic, from its first
// retained offset up to its end offset at the time of the call, in offset order.
// It reads with a kafka.Reader bound to the partition, without a consumer group,
// positioned with SetOffset: the way featured consumes. Use it to check what a
// component wrote, e.g. a dead-letter topic.
func ReadAll(t testing.TB, brokers []string, topic string, partition int) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	msgs, err := readAll(ctx, brokers, topic, partition)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return msgs
}

func readAll(ctx context.Context, brokers []string, topic string, partition int) ([]kafka.Message, error) {
	first, end, err := partitionOffsets(ctx, brokers, topic, partition)
	if err != nil {
		return nil, err
	}
	if first >= end {
		return nil, nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   brokers,
		Topic:     topic,
		Partition: partition,
		MinBytes:  1,
		MaxBytes:  10 << 20,
		MaxWait:   100 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return nil, fmt.Errorf("read %s/%d: set offset %d: %w", topic, partition, first, err)
	}
	msgs := make([]kafka.Message, 0, end-first)
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("read %s/%d at offset %d (want up to %d): %w", topic, partition, r.Offset(), end, err)
		}
		msgs = append(msgs, m)
		if m.Offset+1 >= end {
			return msgs, nil
		}
	}
}

// partitionOffsets returns the first retained offset and the end offset (the
// offset the next message will get) of one partition.
func partitionOffsets(ctx context.Context, brokers []string, topic string, partition int) (first, end int64, err error) {
	a := newAdmin(brokers)
	defer a.close()
	res, err := a.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{
			topic: {kafka.FirstOffsetOf(partition), kafka.LastOffsetOf(partition)},
		},
	})
	if err != nil {
		return 0, 0, fmt.Errorf("list offsets of %s/%d: %w", topic, partition, err)
	}
	for _, po := range res.Topics[topic] {
		if po.Partition != partition {
			continue
		}
		if po.Error != nil {
			return 0, 0, fmt.Errorf("list offsets of %s/%d: %w", topic, partition, po.Error)
		}
		return po.FirstOffset, po.LastOffset, nil
	}
	return 0, 0, fmt.Errorf("list offsets of %s/%d: partition missing from the response", topic, partition)
}
