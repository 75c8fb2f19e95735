package ingest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/featured-dev/featured/registry"
)

// topicConsumer reads one source's topic: one goroutine per partition.
type topicConsumer struct {
	k      *Kafka
	source string
	topic  string
	// offsetTopic names the source's offsets in the store: two sources may
	// read one topic, and each needs its own record of what it applied.
	offsetTopic string
	dlqTopic    string
	startOffset int64

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		err   string
		ready bool
		parts map[int]*partitionConsumer
	}
}

func (k *Kafka) newTopicConsumer(src *registry.Source) *topicConsumer {
	c := &topicConsumer{
		k:           k,
		source:      src.Name,
		topic:       src.Topic,
		offsetTopic: src.Name + "/" + src.Topic,
		dlqTopic:    src.DeadLetterTopic,
		startOffset: kafka.FirstOffset,
	}
	if c.dlqTopic == "" {
		c.dlqTopic = src.Topic + ".dlq"
	}
	if src.StartOffset == "latest" {
		c.startOffset = kafka.LastOffset
	}
	c.mu.parts = make(map[int]*partitionConsumer)
	return c
}

func (c *topicConsumer) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	c.cancel = cancel
	c.wg.Go(func() { c.run(ctx) })
}

func (c *topicConsumer) stop() {
	c.cancel()
	c.wg.Wait()
}

func (c *topicConsumer) setErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.mu.err = ""
		return
	}
	c.mu.err = err.Error()
	c.mu.ready = false
}

// run finds the topic's partitions (retrying, with the failure visible in
// Status, while the topic or the broker is missing), makes sure the
// dead-letter topic exists, and starts a reader per partition; it keeps
// looking for new partitions.
func (c *topicConsumer) run(ctx context.Context) {
	log := c.k.opts.Logger.With("source", c.source, "topic", c.topic)
	backoff := newBackoff(c.k.opts.RetryMin, c.k.opts.RetryMax)
	dlqReady := false
	for {
		n, err := c.partitions(ctx)
		if err == nil {
			err = checkTopicPartitions(c.topic, n, c.k.store.Partitions())
		}
		if err == nil && !dlqReady {
			err = c.ensureDLQ(ctx, n)
			dlqReady = err == nil
		}
		if err != nil {
			c.setErr(err)
			log.Warn("kafka source not ready; retrying", "err", err)
			if !backoff.wait(ctx) {
				return
			}
			continue
		}
		backoff.reset()
		c.mu.Lock()
		for p := 0; p < n; p++ {
			if _, ok := c.mu.parts[p]; !ok {
				pc := &partitionConsumer{c: c, partition: p}
				c.mu.parts[p] = pc
				c.wg.Go(func() { pc.run(ctx) })
			}
		}
		c.mu.err = ""
		c.mu.ready = true
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.k.opts.PartitionCheck):
		}
	}
}

// ErrTopicMissing is reported while a Kafka source's topic does not exist.
var ErrTopicMissing = errors.New("ingest: kafka topic does not exist")

func (c *topicConsumer) partitions(ctx context.Context) (int, error) {
	md, err := c.k.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.topic}})
	if err != nil {
		return 0, fmt.Errorf("read metadata from %v: %w", c.k.opts.Brokers, err)
	}
	for _, t := range md.Topics {
		if t.Name != c.topic {
			continue
		}
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				return 0, fmt.Errorf("%w: %q (create it, or fix the source's topic)", ErrTopicMissing, c.topic)
			}
			return 0, fmt.Errorf("topic %q: %w", c.topic, t.Error)
		}
		if len(t.Partitions) == 0 {
			return 0, fmt.Errorf("%w: %q has no partitions", ErrTopicMissing, c.topic)
		}
		return len(t.Partitions), nil
	}
	return 0, fmt.Errorf("%w: %q", ErrTopicMissing, c.topic)
}

func (c *topicConsumer) status() ConsumerStatus {
	c.mu.Lock()
	s := ConsumerStatus{Source: c.source, Topic: c.topic, Ready: c.mu.ready, Error: c.mu.err}
	parts := make([]*partitionConsumer, 0, len(c.mu.parts))
	for _, pc := range c.mu.parts {
		parts = append(parts, pc)
	}
	c.mu.Unlock()
	for _, pc := range parts {
		s.Partitions = append(s.Partitions, pc.status())
	}
	sort.Slice(s.Partitions, func(i, j int) bool { return s.Partitions[i].Partition < s.Partitions[j].Partition })
	return s
}
