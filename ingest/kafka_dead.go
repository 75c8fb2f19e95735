package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/segmentio/kafka-go"
)

// Dead-letter message headers.
const (
	HeaderReason    = "featured-reason" // a Reason* code
	HeaderError     = "featured-error"  // the human explanation
	HeaderSource    = "featured-source"
	HeaderTopic     = "featured-topic"
	HeaderPartition = "featured-partition"
	HeaderOffset    = "featured-offset"
)

// ensureDLQ creates the dead-letter topic when it is missing.
func (c *topicConsumer) ensureDLQ(ctx context.Context, partitions int) error {
	res, err := c.k.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: c.dlqTopic, NumPartitions: min(partitions, 4), ReplicationFactor: -1,
	}}})
	if err != nil {
		return fmt.Errorf("create dead-letter topic %q: %w", c.dlqTopic, err)
	}
	if e := res.Errors[c.dlqTopic]; e != nil && !errors.Is(e, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create dead-letter topic %q: %w", c.dlqTopic, e)
	}
	return nil
}

func deadLetter(c *topicConsumer, m *kafka.Message, e *RowError) kafka.Message {
	reason := e.Reason
	if e.Field != "" {
		reason = e.Field + ": " + reason
	}
	return kafka.Message{
		Topic: c.dlqTopic,
		Key:   m.Key,
		Value: m.Value,
		Headers: []kafka.Header{
			{Key: HeaderReason, Value: []byte(e.Code)},
			{Key: HeaderError, Value: []byte(reason)},
			{Key: HeaderSource, Value: []byte(c.source)},
			{Key: HeaderTopic, Value: []byte(c.topic)},
			{Key: HeaderPartition, Value: []byte(strconv.Itoa(m.Partition))},
			{Key: HeaderOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
		},
	}
}

// writeDead writes dead letters, retrying with backoff while the broker is
// unavailable: the partition pauses rather than drop a bad message's record.
func (pc *partitionConsumer) writeDead(ctx context.Context, msgs []kafka.Message) error {
	backoff := newBackoff(pc.c.k.opts.RetryMin, pc.c.k.opts.RetryMax)
	for {
		err := pc.c.k.dlq.WriteMessages(ctx, msgs...)
		if err == nil {
			pc.c.k.stats.source(pc.c.source).deadLetters.Add(uint64(len(msgs)))
			return nil
		}
		pc.setErr(fmt.Errorf("write dead letters to %q: %w", pc.c.dlqTopic, err))
		if !backoff.wait(ctx) {
			return ctx.Err()
		}
	}
}
