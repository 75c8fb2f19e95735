package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/featured-dev/featured/featurestore"
)

// HeaderEntity is the hex of the entity key (internal/keyenc) on a dead
// letter the store refused (ReasonCorruptState).
const HeaderEntity = "featured-entity"

// storeDeadLetterBatch bounds the dead letters published at once.
const storeDeadLetterBatch = 256

// publishStoreDeadLetters publishes, until ctx ends, the dead letters the
// store recorded: Kafka events it refused after they were handed to it
// because a target state is corrupt (featurestore.DeadLetter). The store
// recorded each in the batch that moved the partition's offset past it, so
// none is lost to a crash; one is deleted only once published, so a crash
// in between publishes it twice, as for decode failures (apply).
func (k *Kafka) publishStoreDeadLetters(ctx context.Context) {
	backoff := newBackoff(k.opts.RetryMin, k.opts.RetryMax)
	for {
		if err := k.publishStoreDeadLettersOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			k.opts.Logger.Error("publish dead letters of refused writes; retrying", "err", err)
			if !backoff.wait(ctx) {
				return
			}
			continue
		}
		backoff.reset()
		select {
		case <-ctx.Done():
			return
		case <-k.store.DeadLetterNotify():
		}
	}
}

func (k *Kafka) publishStoreDeadLettersOnce(ctx context.Context) error {
	for {
		dls, err := k.store.DeadLetters(storeDeadLetterBatch)
		if err != nil {
			return err
		}
		if len(dls) == 0 {
			return nil
		}
		msgs := make([]*kgo.Record, len(dls))
		for i := range dls {
			msgs[i] = k.storeDeadLetter(ctx, &dls[i])
		}
		if err := k.produce(ctx, msgs); err != nil {
			return fmt.Errorf("write dead letters: %w", err)
		}
		if err := k.store.DeleteDeadLetters(dls); err != nil {
			return err
		}
		for i := range dls {
			k.countRefused(&dls[i])
			source, _ := splitOffsetName(dls[i].Position.Topic)
			if dls[i].Source != "" {
				source = dls[i].Source
			}
			k.stats.source(source).deadLetters.Add(1)
		}
	}
}

// splitOffsetName splits a store offset name, "<source>/<topic>[#epoch]"
// (topicConsumer.offsetName).
func splitOffsetName(name string) (source, topic string) {
	source, topic, _ = strings.Cut(name, "/")
	if i := strings.LastIndexByte(topic, '#'); i >= 0 {
		topic = topic[:i]
	}
	return source, topic
}

// storeDeadLetter builds the dead-letter message of dl: the original
// message, fetched again from its partition (the store keeps its position,
// not its bytes), with the usual headers. A message the topic no longer
// holds is dead-lettered with an empty value and the reason saying so.
func (k *Kafka) storeDeadLetter(ctx context.Context, dl *featurestore.DeadLetter) *kgo.Record {
	source, topic := splitOffsetName(dl.Position.Topic)
	if dl.Source != "" {
		source = dl.Source
	}
	dlqTopic := topic + ".dlq"
	if src, ok := k.reg.Snapshot().Source(source); ok && src.Kind == "kafka" && src.DeadLetterTopic != "" {
		dlqTopic = src.DeadLetterTopic
	}
	reason := dl.Err
	key, value, err := k.fetchOne(ctx, topic, dl.Position.Partition, dl.Position.Offset)
	if err != nil {
		reason += fmt.Sprintf(" (the original message could not be read again: %v)", err)
	}
	return &kgo.Record{
		Topic: dlqTopic,
		Key:   key,
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: HeaderReason, Value: []byte(dl.Reason)},
			{Key: HeaderError, Value: []byte(reason)},
			{Key: HeaderSource, Value: []byte(source)},
			{Key: HeaderTopic, Value: []byte(topic)},
			{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(dl.Position.Partition)))},
			{Key: HeaderOffset, Value: []byte(strconv.FormatInt(dl.Position.Offset, 10))},
			{Key: HeaderEntity, Value: fmt.Appendf(nil, "%x", dl.Entity)},
		},
	}
}

// errGone is a message the partition no longer holds.
var errGone = errors.New("ingest: message no longer in the topic")

// fetchOne reads the message at offset of a partition, with a client of
// its own consuming the partition from there.
func (k *Kafka) fetchOne(ctx context.Context, topic string, partition int32, offset int64) (key, value []byte, err error) {
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cl, err := newClient(&k.opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}),
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.FetchMaxBytes(int32(k.opts.MaxBytes)),
		kgo.FetchMaxPartitionBytes(int32(k.opts.MaxBytes)),
		kgo.FetchMaxWait(k.opts.MaxWait),
	)
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(fctx)
		if err := fctx.Err(); err != nil {
			return nil, nil, err
		}
		var rec *kgo.Record
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		fs.EachRecord(func(r *kgo.Record) {
			if rec == nil && r.Offset >= offset {
				rec = r
			}
		})
		switch {
		case rec != nil && rec.Offset == offset:
			return rec.Key, rec.Value, nil
		case rec != nil:
			return nil, nil, errGone // compacted away
		case errors.Is(ferr, kerr.OffsetOutOfRange):
			return nil, nil, errGone // retention removed it
		case ferr != nil:
			return nil, nil, ferr
		}
	}
}

// countRefused moves a published dead letter's event from applied to
// rejected (ReasonCorruptState) in its source's and partition's counters:
// apply counted it as applied when it handed it to the store.
func (k *Kafka) countRefused(dl *featurestore.DeadLetter) {
	source, _ := splitOffsetName(dl.Position.Topic)
	st := k.stats.source(source)
	st.reject(ReasonCorruptState)
	st.unapply()
	k.mu.Lock()
	c := k.mu.consumers[source]
	k.mu.Unlock()
	if c == nil {
		return
	}
	c.mu.Lock()
	pc := c.mu.parts[int(dl.Position.Partition)]
	c.mu.Unlock()
	if pc != nil {
		pc.applied.Add(^uint64(0))
		pc.rejected.Add(1)
	}
}
