package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
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
	_, err := c.k.adm.CreateTopic(ctx, int32(min(partitions, 4)), -1, nil, c.dlqTopic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create dead-letter topic %q: %w", c.dlqTopic, err)
	}
	return nil
}

func deadLetter(c *topicConsumer, m *kgo.Record, e *RowError) *kgo.Record {
	reason := e.Reason
	if e.Field != "" {
		reason = e.Field + ": " + reason
	}
	return &kgo.Record{
		Topic: c.dlqTopic,
		Key:   m.Key,
		Value: m.Value,
		Headers: []kgo.RecordHeader{
			{Key: HeaderReason, Value: []byte(e.Code)},
			{Key: HeaderError, Value: []byte(reason)},
			{Key: HeaderSource, Value: []byte(c.source)},
			{Key: HeaderTopic, Value: []byte(c.topic)},
			{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(m.Partition)))},
			{Key: HeaderOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
		},
	}
}

// writeDead writes dead letters, retrying with backoff while the broker is
// unavailable: the partition pauses rather than drop a bad message's record.
func (pc *partitionConsumer) writeDead(ctx context.Context, msgs []*kgo.Record) error {
	backoff := newBackoff(pc.c.k.opts.RetryMin, pc.c.k.opts.RetryMax)
	for {
		err := pc.c.k.produce(ctx, msgs)
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

// produce writes records and waits for every in-sync replica's
// acknowledgement of all of them.
func (k *Kafka) produce(ctx context.Context, recs []*kgo.Record) error {
	for _, r := range recs {
		// A record produced before and failed carries its old partition
		// and attributes; the client sets them again.
		r.Partition, r.Offset = 0, 0
	}
	return k.cl.ProduceSync(ctx, recs...).FirstErr()
}
